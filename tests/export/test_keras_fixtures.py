"""Keras models as tf2onnx converts them (committed fixtures, tests/export/fixtures/keras, issue 12): ONNX Runtime
still gives the recorded outputs, and map_onnx either converts each graph (proved against ONNX Runtime, and the
converted f32 model reproduces the recorded outputs) or refuses it naming exactly the nodes listed below; every
converted fixture goes through the whole export (f32, int8w, int8) and passes the report's rules against ORT on the
original file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from rnnedge.export.from_module import MappingError, ProofError
from rnnedge.export.from_onnx import export_onnx, load_onnx, map_onnx
from rnnedge.runtime.model import Model

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.onnx"))
SHAPES = 2  # each .npz holds x_i, ort_i, keras_i for i < SHAPES
RECORDED_TOLERANCE = 1e-6  # ORT now vs ORT when the fixtures were made (same graph, same inputs)
KERAS_TOLERANCE = 1e-5  # what make_fixtures.py demanded of tf2onnx
CONVERTED_TOLERANCE = 1e-5  # the mapper's proof tolerance

# fixture -> (the op types the refusal names, node by node, sorted; why). When the mapper learns one of these,
# its test fails: move the fixture out of this dict (or update what it still refuses). The Loops tf2onnx writes for
# SimpleRNN, GRU(reset_after=False) and Keras 3's GRU convert (export/onnx_in/loops.py reads each body as one cell
# step); a Loop that is not one cell step is tested in tests/export/test_onnx_loops.py.
# Bidirectional(merge_mode='sum') converts: the head reads the directions' sum as their concatenation with its weight
# repeated (export/onnx_in/glue.py sum_of_directions). Every fixture converts today.
EXPECTED_REFUSALS: dict[str, tuple[list[str], str]] = {}


def recorded(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{name}.npz", allow_pickle=False) as data:
        return dict(data)


def refused_nodes(message: str) -> list[tuple[str, str]]:
    """(node name, op type) of every node a MappingError names."""
    return re.findall(r"^\s*node '(.+)' \((\w+)\):", message, flags=re.MULTILINE)


def test_the_fixture_folder_holds_every_generated_fixture_with_its_outputs():
    manifest = json.loads((FIXTURES / "manifest.json").read_text())
    assert sorted(entry["name"] for entry in manifest["fixtures"]) == NAMES
    assert set(EXPECTED_REFUSALS) <= set(NAMES), set(EXPECTED_REFUSALS) - set(NAMES)
    for name in NAMES:
        assert (FIXTURES / f"{name}.npz").is_file(), name


@pytest.mark.parametrize("name", NAMES)
def test_onnx_runtime_reproduces_the_recorded_outputs_of_the_keras_fixture(name):
    data = recorded(name)
    session = ort.InferenceSession(str(FIXTURES / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    for i in range(SHAPES):
        (got,) = session.run(None, {graph_input.name: data[f"x_{i}"]})
        assert got.shape == data[f"ort_{i}"].shape
        np.testing.assert_allclose(got, data[f"ort_{i}"], rtol=0, atol=RECORDED_TOLERANCE, err_msg=f"{name} x_{i}")
        np.testing.assert_allclose(data[f"keras_{i}"], data[f"ort_{i}"], rtol=0, atol=KERAS_TOLERANCE,
                                   err_msg=f"{name}: tf2onnx was not faithful to Keras on x_{i}")


@pytest.mark.parametrize("name", NAMES)
def test_the_keras_fixture_converts_or_is_refused_naming_its_nodes_and_ops(name):
    model = load_onnx(FIXTURES / f"{name}.onnx")
    if name in EXPECTED_REFUSALS:
        ops, reason = EXPECTED_REFUSALS[name]
        with pytest.raises(MappingError) as refusal:
            map_onnx(model)
        message = str(refusal.value)
        assert not isinstance(refusal.value, ProofError), f"{name}: mapped but wrong ({reason}): {message}"
        named = refused_nodes(message)
        assert sorted(op for _, op in named) == ops, f"{name} ({reason}):\n{message}"
        if "Loop" in ops:
            assert "would need its body recognised as one standard cell step" in message, message
        graph_nodes = {node.name: node.op_type for node in model.graph.node}
        for node_name, op in named:
            assert graph_nodes.get(node_name) == op, f"{name}: the refusal names {node_name!r} ({op}) wrongly"
        return
    mapping = map_onnx(model)
    assert mapping.max_abs_diff <= CONVERTED_TOLERANCE
    data = recorded(name)
    converted = Model(mapping.spec, "f32", mapping.tensors)
    for i in range(SHAPES):
        x = data[f"x_{i}"]
        if mapping.input_time_major:
            x = np.swapaxes(x, 0, 1)
        got = converted.run(x.astype(np.int64) if x.dtype.kind == "i" else x)
        if mapping.output_time_major:
            got = np.swapaxes(got, 0, 1)
        np.testing.assert_allclose(got, data[f"ort_{i}"], rtol=0, atol=CONVERTED_TOLERANCE, err_msg=f"{name} x_{i}")


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", [n for n in NAMES if n not in EXPECTED_REFUSALS])
def test_the_converted_keras_fixture_exports_in_every_precision_and_passes_against_the_original(name, tmp_path,
                                                                                                 monkeypatch):
    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")
    report = export_onnx(FIXTURES / f"{name}.onnx", tmp_path / "out", precisions=("f32", "int8w", "int8"), steps=60)
    failed = [r for r in report["artifacts"] if not r.get("passed", True)]
    assert report["passed"], json.dumps(failed)[:2000]
    rows = [r for r in report["artifacts"] if r.get("reference")]
    if report["module"]["original_parity"] == "measured":
        assert {r["name"] for r in rows} >= {"original_runtime_run", "original_runtime_int8_run"}
    else:  # a fixed time axis cannot take the parity streams; the proof ran ORT on the original at its length
        assert "fixed" in report["module"]["original_parity"]
