"""rnnedge-export refuses what it cannot trust with exit 2 and one line naming it, writes nothing, and turns any
other exception into exit 3 with a log; no traceback reaches the terminal (issue 13, items 7 and 9)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from rnnedge.export import cli
from rnnedge.export.onnx_graphs import build_sequence_graph
from rnnedge.export.onnx_in.checks import OPSET_MAX, OPSET_MIN
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import spec as specs
from rnnedge.train.model import RecurrentModel
from tests.export.test_from_onnx import lstm_layout1_graph

TOKENS_SPEC = {"version": 1, "input": {"kind": "tokens", "vocab": 9, "embed_dim": 3, "padding_idx": 0},
               "layers": [{"cell": "gru", "hidden": 4, "bidirectional": False}],
               "head": {"out": 3, "on": "every_step", "activation": "softmax"}, "task": "tag"}
DENSE_SPEC = {"version": 1, "input": {"kind": "dense", "features": 2},
              "layers": [{"cell": "gru", "hidden": 4, "bidirectional": False}],
              "head": {"out": 2, "on": "last_step", "activation": "softmax"}, "task": "classify"}


def refused(argv: list[str], capsys, *says: str) -> str:
    """Run the command in-process: exit 2, one error line holding every `says` (after the progress lines of the
    stages that ran, if any), no traceback."""
    assert cli.main(argv) == 2
    *progress, err = capsys.readouterr().err.splitlines(keepends=True)
    assert all(line.startswith("rnnedge export: ") and "error" not in line for line in progress), progress
    assert err.startswith("rnnedge export: error:") and err.endswith("\n"), err
    assert "Traceback" not in err
    for part in says:
        assert part in err, err
    return err


def save_onnx(model: onnx.ModelProto, path: Path) -> str:
    onnx.save(model, str(path))
    return str(path)


def test_an_initializer_whose_dims_claim_more_raw_data_than_it_holds_exits_2_naming_it(tmp_path, capsys):
    model = lstm_layout1_graph()
    model.graph.initializer[0].dims[1] = 10_000  # W: (1, 24, 4) float32 raw_data, now claiming (1, 10000, 4)
    path = save_onnx(model, tmp_path / "lying.onnx")
    refused([path, "--out", str(tmp_path / "out")], capsys, "initializer 'W' declares dims [1, 10000, 4]",
            "160,000 bytes of raw_data", "holds 384 bytes", "nothing was written")
    assert not (tmp_path / "out").exists()


def test_an_initializer_whose_float_data_is_too_short_exits_2_naming_it(tmp_path, capsys):
    model = lstm_layout1_graph()
    head_b = next(t for t in model.graph.initializer if t.name == "head_b")
    values = numpy_helper.to_array(head_b)
    head_b.ClearField("raw_data")
    head_b.float_data.extend(values[:1].tolist())
    path = save_onnx(model, tmp_path / "short.onnx")
    refused([path, "--out", str(tmp_path / "out")], capsys, "initializer 'head_b' declares dims [3]",
            "holds 1 values in float_data")
    assert not (tmp_path / "out").exists()


def test_a_constant_inside_a_node_is_checked_like_an_initializer(tmp_path, capsys):
    model = lstm_layout1_graph()
    merge = next(t for t in model.graph.initializer if t.name == "merge")
    constant = helper.make_node("Constant", [], ["merge"], name="merge_constant", value=copy.deepcopy(merge))
    constant.attribute[0].t.dims[0] = 1_000_000_000_000  # 10^12 int64 values claimed, 3 held
    model.graph.initializer.remove(merge)
    model.graph.node.insert(0, constant)
    path = save_onnx(model, tmp_path / "constant.onnx")
    refused([path, "--out", str(tmp_path / "out")], capsys, "attribute 'value' of node 'merge_constant'",
            "declares dims [1000000000000]")


@pytest.mark.parametrize("metadata, says", [
    ("[" * 100_000 + "]" * 100_000, "metadata rnnedge.spec nests too deeply"),
    ('{"task": "tag", "input": {"padding_idx": ' + "9" * 5000 + "}}", "metadata rnnedge.spec is not readable JSON"),
    ("[1, 2]", "metadata rnnedge.spec must be a JSON object, got list"),
], ids=["deep-nesting", "5000-digit-integer", "not-an-object"])
def test_onnx_metadata_that_is_not_a_readable_spec_exits_2(tmp_path, capsys, metadata, says):
    model = lstm_layout1_graph()
    helper.set_model_props(model, {"rnnedge.spec": metadata})
    path = save_onnx(model, tmp_path / "meta.onnx")
    refused([path, "--out", str(tmp_path / "out")], capsys, path, says)
    assert not (tmp_path / "out").exists()


def test_a_4000_digit_padding_idx_in_onnx_metadata_is_refused_by_the_spec_rules(tmp_path, capsys):
    spec = specs.validate(copy.deepcopy(TOKENS_SPEC))
    torch.manual_seed(0)
    model = build_sequence_graph(spec, canonical_tensors(RecurrentModel(spec).eval()))
    written = {"task": "tag", "input": {"padding_idx": 10**3999}}
    helper.set_model_props(model, {"rnnedge.spec": str(written).replace("'", '"')})
    path = save_onnx(model, tmp_path / "padding.onnx")
    refused([path, "--out", str(tmp_path / "out")], capsys, "input.padding_idx")


def test_an_onnx_file_declaring_opset_99_exits_2_naming_it_and_the_supported_range(tmp_path, capsys):
    model = lstm_layout1_graph()
    model.opset_import[0].version = 99
    path = save_onnx(model, tmp_path / "future.onnx")
    refused([path, "--out", str(tmp_path / "out")], capsys, "ai.onnx opset 99",
            f"ai.onnx opsets {OPSET_MIN} to {OPSET_MAX}")
    assert not (tmp_path / "out").exists()


def test_an_unknown_operator_domain_exits_2_naming_it(tmp_path, capsys):
    model = lstm_layout1_graph()
    model.opset_import.append(helper.make_opsetid("com.example.custom", 3))
    path = save_onnx(model, tmp_path / "custom.onnx")
    refused([path, "--out", str(tmp_path / "out")], capsys, "operator domain 'com.example.custom' (version 3)")


def _relu_session(opset: int):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_the_supported_opset_range_is_what_onnx_defines_and_onnxruntime_runs():
    assert OPSET_MAX == onnx.defs.onnx_opset_version()
    for opset in (OPSET_MIN, OPSET_MAX):
        assert _relu_session(opset).run(None, {"x": np.array([-1.0, 2.0], np.float32)})[0].tolist() == [0.0, 2.0]
    with pytest.raises(Exception, match="opset"):  # ORT raises its own exception classes
        _relu_session(OPSET_MAX + 1)


def _checkpoint(path: Path, spec: dict, state_dict: dict | None = None) -> str:
    torch.manual_seed(0)
    model = RecurrentModel(specs.validate(copy.deepcopy(DENSE_SPEC)))
    torch.save({"format": "rnnedge-checkpoint", "version": 1, "spec": spec,
                "state_dict": state_dict or model.state_dict(), "metrics": {}}, path)
    return str(path)


@pytest.mark.parametrize("field, value", [(("input", "features"), 10**12), (("head", "out"), 10**12),
                                          (("layers", 0, "hidden"), 2**40)])
def test_a_checkpoint_whose_spec_claims_sizes_beyond_its_tensors_exits_2_before_allocating(tmp_path, capsys, field,
                                                                                         value):
    spec = copy.deepcopy(DENSE_SPEC)
    inner = spec
    for key in field[:-1]:
        inner = inner[key]
    inner[field[-1]] = value
    path = _checkpoint(tmp_path / "huge.pt", spec)
    refused([path, "--out", str(tmp_path / "out")], capsys, f"= {value} exceeds every dimension",
            "the spec does not describe these weights")


def test_a_checkpoint_whose_spec_nests_too_deeply_exits_2(tmp_path, capsys):
    spec = copy.deepcopy(DENSE_SPEC)
    deep: list = []
    spec["input"]["mean"] = deep
    for _ in range(200):
        deep.append([])
        deep = deep[0]
    refused([_checkpoint(tmp_path / "deep.pt", spec), "--out", str(tmp_path / "out")], capsys,
            "nests deeper than any spec")


def test_a_checkpoint_holding_a_5000_digit_integer_exits_2_in_one_line(tmp_path, capsys):
    spec = copy.deepcopy(DENSE_SPEC)
    spec["layers"][0]["hidden"] = 10**5000
    refused([_checkpoint(tmp_path / "bigint.pt", spec), "--out", str(tmp_path / "out")], capsys,
            "not a loadable rnnedge checkpoint: it holds something other than tensors and plain values")


@pytest.mark.parametrize("kind", ["fifo", "folder", "dev-zero"])
@pytest.mark.parametrize("role", ["onnx", "checkpoint", "data"])
def test_an_input_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path, kind, role):
    name = {"onnx": "model.onnx", "checkpoint": "model.pt", "data": "data.npz"}[role]
    target = tmp_path / name
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        target.symlink_to("/dev/zero")
    if role == "data":
        argv = [_checkpoint(tmp_path / "ok.pt", copy.deepcopy(DENSE_SPEC)), "--data", str(target)]
    else:
        argv = [str(target)]
    # a subprocess with a timeout: a reader blocked on the FIFO would otherwise hang the test run
    done = subprocess.run([sys.executable, "-m", "rnnedge.export", *argv, "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    kind_named = {"fifo": "a FIFO (named pipe)", "folder": "a folder", "dev-zero": "a device"}[kind]
    assert f"{target} is {kind_named}, not a regular file" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["export_checkpoint", "_out_dir"])
def test_an_internal_error_exits_3_with_a_short_message_and_the_log_holding_the_traceback(tmp_path, capsys,
                                                                                          monkeypatch, where):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug for the test")

    monkeypatch.setattr(cli, where, broken)
    path = _checkpoint(tmp_path / "ok.pt", copy.deepcopy(DENSE_SPEC))
    assert cli.main([path, "--out", str(tmp_path / "out"), "--stream-steps", "5"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("rnnedge export: internal error: RuntimeError: a bug for the test")
    assert err.count("\n") == 1 and "Traceback" not in err
    log = Path(err.rsplit("the traceback is in ", 1)[1].strip())
    assert "Traceback" in log.read_text() and "a bug for the test" in log.read_text()
    log.unlink()
    assert not (tmp_path / "out").exists()


def _without_w(model: onnx.ModelProto) -> None:
    model.graph.node[0].input[1] = ""  # the LSTM's required W


def _int32_head_bias(model: onnx.ModelProto) -> None:
    next(t for t in model.graph.initializer if t.name == "head_b").data_type = TensorProto.INT32  # same 12 bytes


@pytest.mark.parametrize("damage", [_without_w, _int32_head_bias], ids=["lstm-without-W", "int32-bias-added-to-float"])
def test_a_graph_onnx_checker_refuses_is_bad_input_even_where_the_mapper_did_not_foresee_it(tmp_path, capsys,
                                                                                            damage):
    model = lstm_layout1_graph()
    damage(model)
    path = save_onnx(model, tmp_path / "malformed.onnx")
    refused([path, "--out", str(tmp_path / "out")], capsys, f"{path}: not a valid ONNX graph (")


def test_a_graph_input_fixing_sizes_too_large_to_run_exits_2_naming_it(tmp_path, capsys):
    model = lstm_layout1_graph()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 2**40
    path = save_onnx(model, tmp_path / "huge_input.onnx")
    refused([path, "--out", str(tmp_path / "out")], capsys, "graph input 'x' fixes sizes [1099511627776, 4]")


@pytest.mark.parametrize("field, value", [(("input", "std"), ["wide", 1.0]), (("input", "mean"), [None, 0.0]),
                                          (("layers", 0, "cell"), "transformer")])
def test_a_checkpoint_spec_holding_values_of_the_wrong_type_exits_2_naming_the_file(tmp_path, capsys, field, value):
    spec = copy.deepcopy(DENSE_SPEC)
    inner = spec
    for key in field[:-1]:
        inner = inner[key]
    inner[field[-1]] = value
    refused([_checkpoint(tmp_path / "typed.pt", spec), "--out", str(tmp_path / "out")], capsys,
            str(tmp_path / "typed.pt"), "its spec")


@pytest.mark.parametrize("options, says", [
    (["--stream-steps", str(10**12)], "--stream-steps must be an integer from 1 to 1,000,000, got 1000000000000"),
    (["--seed", "-1"], "--seed must be an integer from 0 to 4294967295, got -1"),
])
def test_options_that_would_exhaust_memory_or_seeds_exit_2(tmp_path, capsys, options, says):
    refused([_checkpoint(tmp_path / "ok.pt", copy.deepcopy(DENSE_SPEC)), "--out", str(tmp_path / "out"), *options],
            capsys, says)


@pytest.mark.parametrize("init_args, says", [
    ("[" * 20_000 + "]" * 20_000, "--init-args nests too deeply"),
    ('{"hidden": ' + "9" * 5000 + "}", "--init-args is not valid JSON: Exceeds the limit (4300 digits)"),
    ("[4]", "--init-args must be a JSON object of keyword arguments, got list"),
], ids=["deep-nesting", "5000-digit-integer", "not-an-object"])
def test_init_args_that_are_not_a_readable_json_object_exit_2(tmp_path, capsys, init_args, says):
    state_dict = tmp_path / "state.pt"
    torch.save({}, state_dict)
    refused(["--module", "tests/export/user_models.py:Anything", "--state-dict", str(state_dict), "--init-args",
             init_args, "--out", str(tmp_path / "out")], capsys, says)


def test_finite_weights_that_add_up_to_inf_in_int8w_exit_2_naming_the_tensor(tmp_path, capsys):
    torch.manual_seed(0)
    model = RecurrentModel(specs.validate(copy.deepcopy(DENSE_SPEC)))
    state = model.state_dict()
    for name in ("layers.0.bias_ih_l0", "layers.0.bias_hh_l0"):  # GRU: int8w folds the r and z biases together
        state[name] = torch.full_like(state[name], 3e38)
    path = _checkpoint(tmp_path / "huge_bias.pt", copy.deepcopy(DENSE_SPEC), state)
    refused([path, "--out", str(tmp_path / "out"), "--precision", "f32,int8w", "--stream-steps", "5"], capsys,
            "the int8w weights overflow float32: layers.0.fwd.b_ih holds inf", "nothing was written")
    assert not (tmp_path / "out").exists()


def _mutate_graph(model: onnx.ModelProto, rng: np.random.Generator) -> None:
    """One edit of the kinds a broken exporter or a damaged file makes: dims, types, attributes, ops, wiring."""
    graph, kind = model.graph, rng.integers(0, 6)
    tensor = graph.initializer[rng.integers(0, len(graph.initializer))]
    node = graph.node[rng.integers(0, len(graph.node))]
    if kind == 0 and len(tensor.dims):
        tensor.dims[rng.integers(0, len(tensor.dims))] = int(rng.choice([0, 1, 7, 10**6]))
    elif kind == 1:
        tensor.data_type = int(rng.integers(0, 30))
    elif kind == 2:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.INT:
                a.i = int(rng.choice([0, -1, 2**40, 3]))
    elif kind == 3:
        node.op_type = str(rng.choice(["GRU", "RNN", "Gemm", "Add", "Foo", "Scan"]))
    elif kind == 4 and len(node.input):
        node.input[rng.integers(0, len(node.input))] = str(rng.choice(["", "x", "W", "nope"]))
    elif kind == 5:
        graph.input[0].type.tensor_type.shape.dim[rng.integers(0, 3)].dim_value = int(rng.choice([0, 1, 5, 2**40]))


def test_mutated_onnx_files_map_or_exit_2_never_another_exception(tmp_path):
    from rnnedge.export.from_onnx import load_onnx, map_onnx
    from rnnedge.export.module_values import MappingError

    rng = np.random.default_rng(0)
    outcomes = {"mapped": 0, "refused": 0}
    for case in range(40):
        model = lstm_layout1_graph(seed=case)
        for _ in range(rng.integers(1, 3)):
            _mutate_graph(model, rng)
        path = tmp_path / f"case{case}.onnx"
        onnx.save(model, str(path))
        try:
            map_onnx(load_onnx(path), where=str(path))
            outcomes["mapped"] += 1
        except MappingError:  # ProofError is one too: the CLI's exit 2
            outcomes["refused"] += 1
    assert outcomes["mapped"] > 5 and outcomes["refused"] > 20, outcomes


def test_mutated_checkpoint_specs_load_or_exit_2_never_another_exception(tmp_path):
    from rnnedge.export.pipeline import ExportInputError, _load_model

    rng = np.random.default_rng(0)
    odd = [None, True, -1, 0, 3, 2**40, 1.5, float("nan"), "x", "lstm", "tokens", [], {}, [1, 2], {"a": 1}, 10**30]
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(100):
        spec = copy.deepcopy(DENSE_SPEC if case % 2 else TOKENS_SPEC)
        torch.manual_seed(0)
        state = RecurrentModel(specs.validate(copy.deepcopy(spec))).state_dict()
        places = [(spec, k) for k in spec] + [(spec["input"], k) for k in spec["input"]] + \
                 [(spec["layers"][0], k) for k in spec["layers"][0]] + [(spec["head"], k) for k in spec["head"]]
        where, key = places[rng.integers(0, len(places))]
        if case % 5:  # every fifth checkpoint stays intact: the loop must load those
            where[key] = copy.deepcopy(odd[rng.integers(0, len(odd))])
        path = tmp_path / f"case{case}.pt"
        torch.save({"format": "rnnedge-checkpoint", "version": 1, "spec": spec, "state_dict": state, "metrics": {}},
                   path)
        try:
            _load_model(path)
            outcomes["loaded"] += 1
        except ExportInputError:
            outcomes["refused"] += 1
    assert outcomes["loaded"] >= 20 and outcomes["refused"] > 50, outcomes


def test_a_nul_byte_in_a_path_exits_2_showing_it(tmp_path, capsys):
    refused([str(tmp_path / "m\0odel.onnx"), "--out", str(tmp_path / "out")], capsys, "m\\x00odel.onnx': cannot be read")
    path = _checkpoint(tmp_path / "ok.pt", copy.deepcopy(DENSE_SPEC))
    refused([path, "--out", str(tmp_path / "o\0ut")], capsys, "holds a NUL byte")


def test_ctrl_c_during_an_export_exits_130_in_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "export_checkpoint", interrupted)
    path = _checkpoint(tmp_path / "ok.pt", copy.deepcopy(DENSE_SPEC))
    assert cli.main([path, "--out", str(tmp_path / "out"), "--stream-steps", "5"]) == 130
    err = capsys.readouterr().err
    assert err == "rnnedge export: interrupted; nothing was written\n"
    assert not (tmp_path / "out").exists()
