"""An ONNX graph made by any tool -> spec + canonical tensors, proven against the original graph, exported."""

from __future__ import annotations

import itertools
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from rnnedge.export import cli
from rnnedge.export.from_module import MappingError
from rnnedge.export.from_onnx import ProofError, map_onnx, prove_mapping
from rnnedge.export.onnx_graphs import build_sequence_graph
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import spec as specs
from rnnedge.train.model import RecurrentModel

torch.set_num_threads(1)


def our_spec(cell, bidirectional, kind, on, layers):
    inp = ({"kind": "dense", "features": 3, "mean": [0.5, -0.25, 1.0], "std": [2.0, 0.5, 1.0]} if kind == "dense"
           else {"kind": "tokens", "vocab": 11, "embed_dim": 4, "padding_idx": 0})
    return specs.validate({"version": 1, "input": inp, "task": "tag" if on == "every_step" else "classify",
                           "layers": [{"cell": cell, "hidden": 5, "bidirectional": bidirectional}] * layers,
                           "head": {"out": 3, "on": on, "activation": "softmax" if kind == "dense" else "sigmoid"}})


MATRIX = list(itertools.product(specs.CELLS, (False, True), ("dense", "tokens"), ("every_step", "last_step"), (1, 2)))


@pytest.mark.parametrize("cell,bidirectional,kind,on,layers", MATRIX)
def test_our_own_graphs_round_trip_to_the_same_spec_and_tensors(cell, bidirectional, kind, on, layers):
    spec = our_spec(cell, bidirectional, kind, on, layers)
    torch.manual_seed(0)
    tensors = canonical_tensors(RecurrentModel(spec).eval())
    mapping = map_onnx(build_sequence_graph(spec, tensors))
    assert mapping.spec == spec
    assert set(mapping.tensors) == set(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(mapping.tensors[name], value, err_msg=name)
    assert mapping.max_abs_diff <= 1e-5


def _const(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def lstm_layout1_graph(direction="forward", H=6, F=4, O=3, seed=0):
    """A hand-built LSTM with layout=1 (batch-major) and a MatMul + Add head on every step."""
    rng = np.random.default_rng(seed)
    D = 2 if direction == "bidirectional" else 1
    nodes = [helper.make_node("LSTM", ["x", "W", "R", "B"], ["Y", "Y_h"], name="lstm", hidden_size=H, layout=1,
                              direction=direction),
             helper.make_node("Reshape", ["Y", "merge"], ["features"], name="merge_directions"),  # (B, T, D*H)
             helper.make_node("MatMul", ["features", "head_w"], ["product"], name="head_matmul"),
             helper.make_node("Add", ["product", "head_b"], ["y"], name="head_add")]
    init = [_const("W", rng.normal(0, 0.4, (D, 4 * H, F))), _const("R", rng.normal(0, 0.4, (D, 4 * H, H))),
            _const("B", rng.normal(0, 0.4, (D, 8 * H))), _const("merge", [0, 0, -1], np.int64),
            _const("head_w", rng.normal(0, 0.4, (D * H, O))), _const("head_b", rng.normal(0, 0.4, O))]
    graph = helper.make_graph(nodes, "lstm_layout1", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                    ["b", "t", F])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "t", O])], initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_hand_built_lstm_with_layout_1_and_a_matmul_add_head(direction):
    mapping = map_onnx(lstm_layout1_graph(direction))
    spec = mapping.spec
    assert spec["layers"] == [{"cell": "lstm", "hidden": 6, "bidirectional": direction == "bidirectional"}]
    assert spec["head"] == {"out": 3, "on": "every_step", "activation": "none"}
    assert spec["input"]["kind"] == "dense" and spec["input"]["features"] == 4
    assert mapping.max_abs_diff <= 1e-5
    # ONNX Runtime runs no layout=1 recurrent node: the proof runs it as layout=0 between Transposes, and says so
    assert mapping.proof_reference == "ONNX Runtime (layout=1 nodes as layout=0 + Transpose)"
    assert any("layout=1 node(s) ['lstm'] run as layout=0" in n for n in mapping.notes)


def test_the_proof_refuses_a_wrong_mapping_with_the_measured_difference():
    model = lstm_layout1_graph()
    mapping = map_onnx(model)
    mapping.tensors["layers.0.fwd.w_hh"] = mapping.tensors["layers.0.fwd.w_hh"] + 1e-2
    with pytest.raises(ProofError) as e:
        prove_mapping(model, mapping)
    assert 1e-5 < e.value.max_abs_diff < 1 and "differs from" in str(e.value)


class TorchGRU(nn.Module):
    def __init__(self, bidirectional):
        super().__init__()
        self.rnn = nn.GRU(5, 7, num_layers=2, batch_first=True, bidirectional=bidirectional)
        self.fc = nn.Linear(14 if bidirectional else 7, 3)

    def forward(self, x):
        y, _ = self.rnn(x)
        return torch.softmax(self.fc(y), dim=-1)


class TorchLastHidden(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(5, 7, batch_first=True)
        self.fc = nn.Linear(7, 3)

    def forward(self, x):
        _, h = self.rnn(x)
        return self.fc(h[-1])


def torch_onnx(module, path):
    torch.manual_seed(0)
    for p in module.parameters():
        nn.init.uniform_(p, -0.4, 0.4)
    try:
        torch.onnx.export(module.eval(), (torch.randn(2, 4, 5),), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch", 1: "time"}})
    except Exception as e:  # noqa: BLE001 - an exporter that is not there, or not in this torch
        pytest.skip(f"torch.onnx.export (dynamo=False) is unavailable: {type(e).__name__}: {e}")
    return onnx.load(str(path))


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("module,on", [(lambda: TorchGRU(False), "every_step"), (lambda: TorchGRU(True), "every_step"),
                                       (TorchLastHidden, "last_step")])
def test_torch_onnx_export_of_a_plain_gru_and_linear(tmp_path, module, on):
    mapping = map_onnx(torch_onnx(module(), tmp_path / "gru.onnx"))
    assert {layer["cell"] for layer in mapping.spec["layers"]} == {"gru"}
    assert mapping.spec["head"]["on"] == on
    assert mapping.max_abs_diff <= 1e-5 and mapping.proof_reference == "ONNX Runtime"


class LearnedInitialState(nn.Module):
    """A user's GRU + LSTM with learned initial states, broadcast over the batch with expand(-1, B, -1): torch
    exports the broadcast as Shape / ConstantOfShape(1) / Equal / Where / Expand."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(5, 6, batch_first=True)
        self.lstm = nn.LSTM(6, 4, batch_first=True)
        self.h0 = nn.Parameter(torch.zeros(1, 1, 6))
        self.h1 = nn.Parameter(torch.zeros(1, 1, 4))
        self.c1 = nn.Parameter(torch.zeros(1, 1, 4))
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        batch = x.shape[0]
        y, _ = self.gru(x, self.h0.expand(-1, batch, -1).contiguous())
        y, _ = self.lstm(y, (self.h1.expand(-1, batch, -1).contiguous(), self.c1.expand(-1, batch, -1).contiguous()))
        return self.fc(y[:, -1])


@pytest.mark.filterwarnings("ignore")
def test_torch_onnx_export_of_learned_initial_states(tmp_path):
    mapping = map_onnx(torch_onnx(LearnedInitialState(), tmp_path / "h0.onnx"))
    assert [layer.get("initial_state") for layer in mapping.spec["layers"]] == [True, True]
    for name in ("layers.0.fwd.h0", "layers.1.fwd.h0", "layers.1.fwd.c0"):
        assert np.abs(mapping.tensors[name]).max() > 0  # the learned values, not zeros
    assert mapping.max_abs_diff <= 1e-5 and mapping.proof_reference == "ONNX Runtime"


def test_every_unsupported_node_is_listed_in_one_error():
    H, F = 4, 3
    nodes = [helper.make_node("Conv", ["x", "kernel"], ["conv_out"], name="my_conv"),
             helper.make_node("Transpose", ["conv_out"], ["tbf"], name="to_time_major", perm=[1, 0, 2]),
             helper.make_node("LSTM", ["tbf", "W", "R"], ["Y", "Y_h"], name="my_lstm", hidden_size=H,
                              activations=["Sigmoid", "Gelu", "Tanh"]),
             helper.make_node("GRU", ["tbf", "Wg", "Rg", "", "", "h0"], ["Yg"], name="my_gru", hidden_size=H),
             helper.make_node("Abs", ["Y_h"], ["y"], name="my_abs")]
    init = [_const("kernel", np.ones((F, F, 1))), _const("W", np.zeros((1, 4 * H, F))),
            _const("R", np.zeros((1, 4 * H, H))), _const("Wg", np.zeros((1, 3 * H, F))),
            _const("Rg", np.zeros((1, 3 * H, H))), _const("h0", np.arange(2 * H).reshape(1, 2, H))]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", F])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(MappingError) as e:
        map_onnx(model)
    message = str(e.value)
    for expected in ("'my_conv' (Conv): operator Conv is not supported",
                     "'my_lstm' (LSTM): activations ['Gelu'] are not supported",
                     "'my_gru' (GRU): initial_h differs between batch rows",
                     "'my_abs' (Abs): operator Abs is not supported"):
        assert expected in message
    assert "4 node(s)" in message


def test_reverse_with_peepholes_and_layout_1_maps_to_the_spec_extensions():
    model = lstm_layout1_graph()
    lstm = model.graph.node[0]
    del lstm.attribute[[a.name for a in lstm.attribute].index("direction")]
    lstm.attribute.append(helper.make_attribute("direction", "reverse"))
    model.graph.initializer.append(_const("P", np.linspace(-0.5, 0.5, 3 * 6).reshape(1, 18)))
    lstm.input.extend(["", "", "", "P"])
    mapping = map_onnx(model)
    assert mapping.spec["layers"] == [{"cell": "lstm", "hidden": 6, "bidirectional": False, "reverse": True,
                                       "peepholes": True}]
    assert mapping.spec["version"] == specs.EXTENDED_VERSION
    p_i, p_o, p_f = np.split(np.linspace(-0.5, 0.5, 18).astype(np.float32), 3)  # ONNX's P: i, o, f
    np.testing.assert_array_equal(mapping.tensors["layers.0.fwd.p"], np.concatenate([p_i, p_f, p_o]))
    assert mapping.max_abs_diff <= 1e-5


@pytest.mark.filterwarnings("ignore")
def test_cli_exports_an_onnx_file_through_every_precision(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")
    source = tmp_path / "src" / "gru.onnx"
    source.parent.mkdir()
    torch_onnx(TorchLastHidden(), source)
    out = tmp_path / "out"
    assert cli.main([str(source), "--precision", "f32,int8w,int8", "--stream-steps", "200", "--out", str(out)]) == 0
    for name in ("model.pt", "onnx_mapping.json", "model.onnx", "model.step.onnx", "model.f32.safetensors",
                 "model.int8w.safetensors", "model.int8.safetensors", "report.json", "report.md"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] and report["module"]["source"] == "onnx"
    assert report["module"]["proof_max_abs_diff"] <= 1e-5
    assert "Source: ONNX file" in (out / "report.md").read_text()
    assert "ONNX graph mapped to an rnnedge last_step model" in capsys.readouterr().out


def test_cli_refuses_to_overwrite_the_source_onnx_and_lists_unsupported_nodes(tmp_path, capsys):
    onnx.save_model(lstm_layout1_graph(), tmp_path / "model.onnx")
    assert cli.main([str(tmp_path / "model.onnx"), "--out", str(tmp_path), "--force"]) == 2
    assert "would overwrite it" in capsys.readouterr().err


# -- the report's rows against the original ONNX file (issue 7: "parity measured against ONNX Runtime running the
# original file") ----------------------------------------------------------------------------------------------------
def _original_rows(report):
    return {row["name"]: row for row in report["artifacts"] if row.get("reference")}


@pytest.mark.filterwarnings("ignore")
def test_cli_report_has_rows_against_the_original_onnx_for_every_precision(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")
    source = tmp_path / "src" / "gru.onnx"
    source.parent.mkdir()
    torch_onnx(TorchLastHidden(), source)
    out = tmp_path / "out"
    assert cli.main([str(source), "--precision", "f32,int8w,int8", "--stream-steps", "120", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    rows = _original_rows(report)
    assert set(rows) == {f"original_runtime{p}_{how}" for p in ("", "_int8w", "_int8") for how in ("run", "stream")}
    for row in rows.values():
        assert row["passed"] and row["reference"] == "original ONNX (ORT)", row
        assert row["comparison"].startswith("original ONNX (ORT) vs runtime ")
    assert rows["original_runtime_run"]["max_abs_diff"] <= 1e-5
    assert rows["original_runtime_stream"]["max_abs_diff"] <= 1e-5
    assert 0 < rows["original_runtime_int8_run"]["max_abs_diff"] <= 0.1
    assert report["module"]["original_parity"] == "measured"
    md = (out / "report.md").read_text()
    assert "original ONNX (ORT) vs runtime int8 stream().step() loop" in md


def test_api_export_of_a_layout_1_graph_is_measured_with_ort_on_the_layout_0_rewrite(tmp_path, monkeypatch):
    from rnnedge.export.from_onnx import export_onnx

    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")
    onnx.save_model(lstm_layout1_graph("forward"), tmp_path / "lstm.onnx")
    report = export_onnx(tmp_path / "lstm.onnx", tmp_path / "out", steps=40, precisions=("f32", "int8w"))
    assert report["passed"]
    rows = _original_rows(report)
    assert set(rows) == {"original_runtime_run", "original_runtime_stream", "original_runtime_int8w_run",
                         "original_runtime_int8w_stream"}
    assert all(r["reference"] == "original ONNX (ORT)" and r["passed"] for r in rows.values())
    assert rows["original_runtime_stream"]["max_abs_diff"] <= 1e-5


def test_original_rows_fail_a_runtime_model_that_differs_from_the_original(tmp_path):
    from rnnedge.export import comparisons
    from rnnedge.export.from_onnx import original_graph, state_dict_from_tensors
    from rnnedge.export.rules import criterion
    from rnnedge.runtime.model import Model

    model = lstm_layout1_graph("forward")
    mapping = map_onnx(model)
    graph, why_not = original_graph(model, mapping)
    assert why_not is None and graph.fixed_batch is None
    torch_model = state_dict_from_tensors(mapping.spec, mapping.tensors)
    X = np.random.default_rng(3).standard_normal((3, 30, 4)).astype(np.float32)
    streams = comparisons.Streams.of(torch_model, X, np.array([30, 30, 17]))
    criteria = {"f32": criterion("f32", 1e-5, None)}
    good = comparisons.original_rows(graph, mapping.spec, streams, None, {}, criteria, tmp_path, ["f32"],
                                   load=lambda p: Model(mapping.spec, "f32", mapping.tensors))
    assert [r["passed"] for r in good] == [True, True]
    wrong = dict(mapping.tensors, **{"layers.0.fwd.w_hh": mapping.tensors["layers.0.fwd.w_hh"] + 1e-3})
    bad = comparisons.original_rows(graph, mapping.spec, streams, None, {}, criteria, tmp_path, ["f32"],
                                  load=lambda p: Model(mapping.spec, "f32", wrong))
    assert [r["passed"] for r in bad] == [False, False]
    assert all(1e-5 < r["max_abs_diff"] < 1 for r in bad)
    assert all(r["comparison"].startswith("original ONNX (ORT) vs runtime f32") for r in bad)


EXTENDED = [{"cell": "gru", "hidden": 5, "bidirectional": False, "reverse": True, "linear_before_reset": False},
            {"cell": "lstm", "hidden": 5, "bidirectional": True, "peepholes": True, "input_forget": True, "clip": 2.5,
             "initial_state": True},
            {"cell": "rnn_tanh", "hidden": 5, "bidirectional": True, "initial_state": True,
             "activations": [{"fn": "softsign", "alpha": 0.0, "beta": 0.0},
                             {"fn": "hardsigmoid", "alpha": 0.3, "beta": 0.4}]}]


@pytest.mark.parametrize("layer", EXTENDED, ids=["gru-reverse-lbr0", "lstm-every-extension", "rnn-activations"])
@pytest.mark.parametrize("on", ["every_step", "last_step"])
def test_our_own_graphs_of_extended_specs_round_trip(layer, on):
    spec = specs.validate({"version": 2, "input": {"kind": "dense", "features": 3}, "layers": [layer],
                           "head": {"out": 3, "on": on, "activation": "softmax"}})
    torch.manual_seed(0)
    model = RecurrentModel(spec).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "h0_" in name or "c0_" in name:
                p.uniform_(-0.5, 0.5)  # a real initial state, not zeros
    tensors = canonical_tensors(model)
    mapping = map_onnx(build_sequence_graph(spec, tensors))
    assert mapping.spec == spec
    assert set(mapping.tensors) == set(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(mapping.tensors[name], value, err_msg=name)
    assert mapping.max_abs_diff <= 1e-5
