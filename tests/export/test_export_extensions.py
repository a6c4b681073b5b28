"""Specs with ONNX layer extensions through the export: both ONNX graphs against ONNX Runtime and PyTorch, and
export_checkpoint's report, vectors and firmware sources (written where firmware_ref's step runs the model)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from rnnedge.export import parity
from rnnedge.export.firmware import firmware_unsupported, write_float_model_sources
from rnnedge.export.onnx_graphs import build_sequence_graph, build_step_graph, read_initial_state, state_names
from rnnedge.export.pipeline import ExportInputError, export_checkpoint
from rnnedge.export.vectors import check_vectors, read_vectors, vectors_file
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import spec as specs
from rnnedge.train.checkpoint import save_checkpoint
from tests.helpers import TOLERANCE, make_model, make_spec, write_artifact
from tests.train.test_model_extensions import CASES, case_id, extended_model

STEPS = 300


@pytest.fixture(autouse=True)
def one_torch_thread_no_footprint(monkeypatch):
    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")  # the Cortex-M footprint has its own tests
    with parity.torch_single_thread():
        yield


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.float64) - b).max())


def step_graph_loop(session, spec: dict, x: np.ndarray) -> np.ndarray:
    """model.step.onnx stepped as a caller would: the state inputs start from the graph's metadata (h0 / c0)."""
    initial = read_initial_state(session.get_modelmeta().custom_metadata_map)
    widths = [layer["hidden"] for layer in spec["layers"] for _ in range(2 if layer["cell"] == "lstm" else 1)]
    state = {name: np.tile(initial.get(name, np.zeros(w, np.float32)), (x.shape[0], 1))
             for name, w in zip(state_names(spec, "in"), widths)}
    ys = []
    for t in range(x.shape[1]):
        y, *new = session.run(["y", *state_names(spec, "out")], {"x": np.ascontiguousarray(x[:, t]), **state})
        state = dict(zip(state_names(spec, "in"), new))
        ys.append(y)
    return np.stack(ys, axis=1)


@pytest.mark.parametrize("on", ["every_step", "last_step"])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_onnx_graphs_of_extended_layers_match_pytorch_in_onnx_runtime(case, on):
    cell, ext = case
    model = extended_model(cell, ext, layers=2, on=on, hidden=6)
    tensors = canonical_tensors(model)
    sequence_graph = build_sequence_graph(model.spec, tensors)
    onnx.checker.check_model(sequence_graph, full_check=True)
    session = parity.ort_session(sequence_graph.SerializeToString())
    for batch in (1, 3):  # the initial state is broadcast to any batch
        x = parity.random_streams(model.spec, batch, STEPS, seed=batch)
        assert max_abs(parity.ort_sequence(session, x), parity.torch_sequence(model, x)) <= TOLERANCE["f32"]
    if not specs.can_stream(model.spec):
        with pytest.raises(ValueError, match="bidirectional or reverse"):
            build_step_graph(model.spec, tensors)
        return
    step_graph = build_step_graph(model.spec, tensors)
    onnx.checker.check_model(step_graph, full_check=True)
    stepped = step_graph_loop(parity.ort_session(step_graph.SerializeToString()), model.spec, x)
    assert max_abs(stepped, parity.torch_every_prefix(model, x)) <= TOLERANCE["f32"]


def test_step_graph_metadata_holds_the_initial_state_the_stream_starts_from():
    model = extended_model("lstm", {"initial_state": True, "peepholes": True}, layers=2)
    tensors = canonical_tensors(model)
    meta = {p.key: p.value for p in build_step_graph(model.spec, tensors).metadata_props}
    initial = read_initial_state(meta)
    assert sorted(initial) == ["c0_in", "c1_in", "h0_in", "h1_in"]
    assert np.array_equal(initial["c1_in"], tensors["layers.1.fwd.c0"])
    plain = make_model(make_spec("lstm"))
    meta = {p.key: p.value for p in build_step_graph(plain.spec, canonical_tensors(plain)).metadata_props}
    assert read_initial_state(meta) == {}


def test_extension_attributes_are_the_onnx_operators_own():
    model = extended_model("lstm", {"reverse": True, "input_forget": True, "peepholes": True, "clip": 1.5,
                                    "initial_state": True})
    tensors = canonical_tensors(model)
    (node,) = [n for n in build_sequence_graph(model.spec, tensors).graph.node if n.op_type == "LSTM"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["direction"] == b"reverse" and attrs["input_forget"] == 1 and attrs["clip"] == pytest.approx(1.5)
    assert node.input[4] == "" and node.input[5].endswith("h0_dbh") and node.input[7] == "layers.0.P"
    graph = build_sequence_graph(model.spec, tensors).graph
    P = onnx.numpy_helper.to_array(next(t for t in graph.initializer if t.name == "layers.0.P"))
    p_i, p_f, p_o = np.split(tensors["layers.0.fwd.p"], 3)
    assert np.array_equal(P, np.concatenate([p_i, p_o, p_f])[None])  # ONNX's order: i o f


# -- export_checkpoint -------------------------------------------------------------------------------------------
def write_checkpoint(tmp_path, model) -> str:
    path = tmp_path / "model.pt"
    save_checkpoint(path, model)
    return path


STREAMING = extended_model("lstm", {"peepholes": True, "initial_state": True, "clip": 2.5}, layers=2,
                           on="last_step", hidden=8)


def test_extended_streaming_model_exports_f32_and_int8w_with_a_passing_report_and_firmware(tmp_path):
    # a firmware folder of an earlier export of a PyTorch-cell model into the same place
    plain = write_checkpoint(tmp_path, make_model(make_spec("lstm")))
    out = tmp_path / "out"
    export_checkpoint(plain, out, steps=50, precisions=("f32", "int8w"))
    assert (out / "firmware" / "f32" / "model_data.c").is_file()

    report = export_checkpoint(write_checkpoint(tmp_path, STREAMING), out, steps=400, precisions=("f32", "int8w"))
    assert report["passed"], report["failures"]
    rows = {row["name"]: row for row in report["artifacts"]}
    assert {"pytorch_step", "onnx", "onnx_step", "runtime_stream", "runtime_run", "runtime_int8w_stream",
            "runtime_int8w_run"} <= set(rows)
    for name in ("onnx", "onnx_step", "runtime_stream", "runtime_run"):
        assert rows[name]["max_abs_diff"] <= 1e-5, rows[name]
    # firmware_ref's float steps run peepholes, clip and the initial state: each precision's C sources, written
    # over the earlier model's (tests/firmware/test_host_float_extensions.py replays such sources)
    assert "refused" not in (report.get("firmware") or {})
    for precision in ("f32", "int8w"):
        for name in ("model_data.h", "model_data.c", "vectors_data.h"):
            assert f"firmware/{precision}/{name}" in report["files"], (precision, name)
        source = (out / "firmware" / precision / "model_data.c").read_text()
        assert source.count(".flags = RNNEDGE_EXT_PEEPHOLES | RNNEDGE_EXT_CLIP | RNNEDGE_EXT_INIT,") == 2
    assert "not written" not in (out / "report.md").read_text()

    # golden vectors start from the model's h0 / c0: state[0] is one step away from them, and they replay
    for precision in ("f32", "int8w"):
        vectors = out / vectors_file(precision)
        assert check_vectors(vectors, out / f"model.{precision}.safetensors") == []
    _, v = read_vectors(out / vectors_file("f32"))
    x0 = torch.from_numpy(v["input"][:1])
    with torch.no_grad():
        _, state = STREAMING.step(x0, STREAMING.initial_state(1))
    want = torch.cat([s for layer in state for s in layer], dim=1).numpy()[0]
    assert np.abs(v["state"][0] - want).max() <= 1e-5


def test_reverse_model_exports_whole_sequence_rows_only(tmp_path):
    model = extended_model("gru", {"reverse": True, "linear_before_reset": False, "initial_state": True},
                           layers=2, on="last_step")
    out = tmp_path / "out"
    report = export_checkpoint(write_checkpoint(tmp_path, model), out, steps=300, precisions=("f32", "int8w"))
    assert report["passed"], report["failures"]
    assert not any(row["stepped"] for row in report["artifacts"])
    assert not (out / "model.step.onnx").exists() and not (out / vectors_file("f32")).exists()
    assert report.get("firmware") is None  # cannot stream: no firmware, as for a bidirectional model


def test_int8_of_a_spec_int8_cannot_run_is_an_export_input_error_naming_it(tmp_path):
    model = extended_model("gru", {"activations": [{"fn": "hardsigmoid", "alpha": 0.2, "beta": 0.5},
                                                   {"fn": "tanh"}]}, hidden=6)
    ckpt = write_checkpoint(tmp_path, model)
    with pytest.raises(ExportInputError, match=r"int8 precision cannot run this model: layers\[0\]: activations"):
        export_checkpoint(ckpt, tmp_path / "out", steps=20, precisions=("f32", "int8"))
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_firmware_writers_refuse_extensions_naming_each_layer_and_extension(tmp_path):
    out = tmp_path / "out"
    export_checkpoint(write_checkpoint(tmp_path, STREAMING), out, steps=20)
    for precision in ("f32", "int8w"):  # the float steps run every extension that streams
        assert firmware_unsupported(STREAMING.spec, precision) == []
    assert (out / "firmware" / "f32" / "model_data.c").is_file()
    assert "refused" not in (json.loads((out / "report.json").read_text()).get("firmware") or {})
    reverse = extended_model("lstm", {"reverse": True, "clip": 1.5}, layers=2)
    assert firmware_unsupported(reverse.spec, "int8w") == ["layers[0] reverse", "layers[1] reverse"]
    weights = write_artifact(reverse, tmp_path / "model.f32.safetensors", "f32")
    with pytest.raises(ValueError, match=r"firmware_ref's f32 step does not implement .*layers\[1\] reverse"):
        write_float_model_sources(weights, tmp_path / "fw")
    assert firmware_unsupported(make_spec("gru"), "int8") == []


@pytest.mark.parametrize("cell, ext", [("lstm", {"clip": 1.5, "initial_state": True, "input_forget": True}),
                                       ("gru", {"linear_before_reset": False, "initial_state": True}),
                                       ("gru", {"reverse": True, "clip": 1.0})], ids=["lstm", "gru", "gru-reverse"])
def test_extensions_int8_runs_export_in_every_precision_with_a_passing_report(tmp_path, cell, ext):
    model = extended_model(cell, ext, layers=2, hidden=8)
    out = tmp_path / "out"
    report = export_checkpoint(write_checkpoint(tmp_path, model), out, steps=300, precisions=("f32", "int8w", "int8"))
    assert report["passed"], report["failures"]
    assert {"runtime_int8_run"} <= {row["name"] for row in report["artifacts"]}
    streams = specs.can_stream(model.spec)
    assert firmware_unsupported(model.spec, "int8") == ([f"layers[{l}] reverse" for l in range(2)] if not streams
                                                        else [])  # the int8 C step runs every other extension
    for precision in ("f32", "int8w", "int8"):  # sources where firmware_ref's step runs the model, never else
        runs = streams and not firmware_unsupported(model.spec, precision)
        for name in ("model_data.h", "model_data.c", "vectors_data.h"):
            assert (out / "firmware" / precision / name).is_file() == runs, (precision, name)
            assert (f"firmware/{precision}/{name}" in report["files"]) == runs, (precision, name)
    if streams:
        assert "int8" not in report["firmware"].get("refused", {})
        assert check_vectors(out / vectors_file("int8"), out / "model.int8.safetensors") == []
    else:
        assert report.get("firmware") is None  # cannot stream: no firmware in any precision
