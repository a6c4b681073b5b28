"""The peers harness measures the user's own shapes: --workloads takes kws / har / seed, a shape string
(lstm256-in13-out10) or a model file (an artifact or a spec), each resolved to a spec the harness builds every engine
from; anything else is refused with a message that names it, before anything is built. Nothing here is timed."""

import json
import math

import pytest

from benchmarks.peer_build import workload_spec, workload_specs
from rnnedge.runtime import spec as specs
from tests.benchmarks import quick_peers
from tests.helpers import make_model, make_spec, write_artifact


def test_built_in_workloads_resolve_to_their_own_specs():
    for name, spec in workload_specs().items():
        assert workload_spec(name) == (name, spec)


@pytest.mark.parametrize("text, cell, hidden, layers, bi, features, out", [
    ("lstm256-in13-out10", "lstm", 256, 1, False, 13, 10),
    ("gru100x2", "gru", 100, 2, False, 16, 8),
    ("rnn_tanh64x2bi", "rnn_tanh", 64, 2, True, 16, 8),
    ("rnn_relu7bi-out3", "rnn_relu", 7, 1, True, 16, 3),
])
def test_a_shape_string_gives_that_model(text, cell, hidden, layers, bi, features, out):
    name, spec = workload_spec(text)
    assert name == text
    got = [(lay["cell"], lay["hidden"], lay["bidirectional"]) for lay in spec["layers"]]
    assert got == [(cell, hidden, bi)] * layers
    assert spec["input"]["kind"] == "dense" and spec["input"]["features"] == features
    assert len(spec["input"]["mean"]) == len(spec["input"]["std"]) == features
    assert spec["head"]["out"] == out and spec["head"]["on"] == ("last_step" if bi else "every_step")
    assert specs.can_stream(spec) is not bi
    assert workload_spec(text)[1] == spec  # the same text, the same model (its input statistics seeded)


@pytest.mark.parametrize("precision", ["f32", "int8"])
def test_a_model_file_gives_its_shape(tmp_path, precision):
    spec = make_spec("gru", layers=2, hidden=10, features=3, out=5, head_hidden=((6, "gelu"),))
    path = write_artifact(make_model(spec), tmp_path / f"my.model.{precision}.safetensors", precision)
    name, got = workload_spec(path)
    assert name == "my" and got == specs.validate(spec)
    (tmp_path / "spec.json").write_text(specs.dumps(spec))
    assert workload_spec(str(tmp_path / "spec.json")) == ("spec", specs.validate(spec))
    (tmp_path / "har.json").write_text(specs.dumps(spec))  # a file named as a built-in workload keeps its own shape
    assert workload_spec(str(tmp_path / "har.json")) == ("har_file", specs.validate(spec))


def _reverse_spec() -> dict:
    spec = make_spec("lstm")
    spec["layers"] = [dict(spec["layers"][0], reverse=True, peepholes=True)]
    return spec


@pytest.mark.parametrize("text, keys", [
    ("lstm128-in40-out12+relu", {"activations": ["sigmoid", "relu", "relu"]}),
    ("gru64+lbr0+hardsigmoid", {"linear_before_reset": False, "activations": ["hardsigmoid", "tanh"]}),
    ("lstm32+peepholes+cifg+clip", {"peepholes": True, "input_forget": True, "clip": 3.0}),
    ("rnn_tanh16x2bi+relu", {"activations": ["relu", "relu"]}),
])
def test_a_shape_takes_the_extensions_other_exporters_write(text, keys):
    name, spec = workload_spec(text)
    assert name == text and spec["version"] == specs.EXTENDED_VERSION
    for layer in spec["layers"]:
        got = {k: ([a["fn"] for a in layer[k]] if k == "activations" else layer[k]) for k in keys}
        assert got == keys
        if "hardsigmoid" in str(keys):
            assert (layer["activations"][0]["alpha"], layer["activations"][0]["beta"]) == (0.2, 0.5)


@pytest.mark.parametrize("entry, message", [
    ("lstm", "unknown workload 'lstm'"),
    ("lstm0", "0 hidden units is outside 1..4096"),
    ("gru8x9", "9 layers is outside 1..8"),
    ("lstm8-in99999", "99999 features is outside"),
    ("missing.json", "no such file"),
    ("garbage.json", "not a model spec or rnnedge artifact"),
    ("tokens.json", "token input; the peers harness feeds dense features only"),
    ("reverse.json", "layer 0: reverse"),
    ("gru8+peepholes", "extension \\+peepholes does not apply to a gru layer"),
    ("rnn_tanh8+hardsigmoid", "extension \\+hardsigmoid does not apply to a rnn_tanh layer"),
    ("lstm8+foo", "unknown extension \\+foo"),
])
def test_what_the_harness_cannot_build_is_refused_by_name(tmp_path, entry, message):
    (tmp_path / "garbage.json").write_text("{not json")
    (tmp_path / "tokens.json").write_text(specs.dumps(make_spec(kind="tokens")))
    (tmp_path / "reverse.json").write_text(specs.dumps(_reverse_spec()))
    entry = str(tmp_path / entry) if entry.endswith(".json") else entry
    with pytest.raises(ValueError, match=message):
        workload_spec(entry)


def test_a_bad_workload_stops_the_command_with_exit_2_before_anything_is_built(tmp_path):
    proc = quick_peers(tmp_path, "rnnedge_f32,ort_fp32", "kws,lstm0")
    assert proc.returncode == 2 and "0 hidden units is outside" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.specialised
def test_a_shape_runs_end_to_end_with_every_column_measured(tmp_path):
    proc = quick_peers(tmp_path, "rnnedge_int8,ort_int8", "gru24x2-in5-out3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(next(tmp_path.glob("peers-*.json")).read_text())
    assert report["workloads"]["gru24x2-in5-out3"]["spec"]["layers"][1]["hidden"] == 24
    rows = report["table"]["gru24x2-in5-out3"]
    assert set(rows) == {"rnnedge_int8", "ort_int8"}
    for engine, row in rows.items():
        for key in ("step", "seq", "seq32", "b8", "b64", "b256", "cold_warm", "rss", "bytes"):
            assert math.isfinite(row[key]) and row[key] > 0, (engine, key, row[key])
        assert row["err"] < 0.05  # int8 against PyTorch float on the same seeded weights


@pytest.mark.specialised
def test_a_shape_with_extensions_runs_end_to_end_against_onnx_runtime(tmp_path):
    """ORT runs the extensions' own ONNX attributes; rnnedge its compiled step (kernel_info: specialised)."""
    proc = quick_peers(tmp_path, "rnnedge_f32,rnnedge_int8,ort_fp32", "gru16-in5-out3+lbr0+clip")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(next(tmp_path.glob("peers-*.json")).read_text())
    rows = report["table"]["gru16-in5-out3+lbr0+clip"]
    assert rows["rnnedge_f32"]["err"] < 1e-5 and rows["ort_fp32"]["err"] < 1e-5
    assert rows["rnnedge_int8"]["err"] < 0.05


def test_an_engine_that_cannot_run_a_workload_is_left_out_by_name(tmp_path):
    """int8 computes only the cell's own functions and PyTorch's modules none of the extensions: a relu LSTM is
    built for every other engine."""
    from benchmarks.peer_build import build

    name, spec = workload_spec("lstm8-in3-out2+relu")
    info = build(tmp_path, name, spec, steps=4, seq_steps=4, batch_steps=2)
    assert info["left_out"] == {"rnnedge_int8": "int8 cannot run it: layers[0]: activations ['sigmoid', 'relu', "
                                                "'relu'] (int8 computes only the cell's own sigmoid/tanh/relu)",
                                "torch": "PyTorch's nn.LSTM / nn.GRU / nn.RNN have no activations"}
    assert not (tmp_path / f"{name}.int8.safetensors").exists() and (tmp_path / f"{name}.int8w.safetensors").exists()
