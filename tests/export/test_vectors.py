"""Golden test vectors (export/vectors.py): written, read back, replayed, and refused when damaged."""

from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from rnnedge.export.quantize_int8 import Ranges, quantize_int8
from rnnedge.export.vectors import (
    DEFAULT_STEPS,
    VectorsError,
    check_vectors,
    read_vectors,
    save_vectors,
    state_layout,
    vectors_file,
    write_vectors,
)
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import artifact
from rnnedge.runtime.model import Model
from tests.helpers import make_model, make_spec, random_inputs, write_artifact


def _artifact(tmp_path, spec: dict, precision: str, seed: int = 0) -> str:
    model = make_model(spec, seed)
    path = tmp_path / f"model.{precision}.safetensors"
    if precision != "int8":
        return write_artifact(model, path, precision)
    ranges = Ranges(input_absmax=4.0 if spec["input"]["kind"] == "dense" else None,
                    hidden_absmax=[2.0 if layer["cell"] == "rnn_relu" else 1.0 for layer in spec["layers"]],
                    cell_absmax=[2.0 if layer["cell"] == "lstm" else 0.0 for layer in spec["layers"]])
    tensors, _ = quantize_int8(model.spec, canonical_tensors(model), ranges)
    artifact.write(path, tensors, model.spec, "int8")
    return str(path)


def _sequence(spec: dict, steps: int, seed: int = 1) -> np.ndarray:
    return random_inputs(spec, 1, steps, seed)[0]


def _vectors(tmp_path, precision="int8", kind="dense", cell="lstm", layers=1, steps=10):
    spec = make_spec(cell=cell, layers=layers, kind=kind, hidden=6, features=3, vocab=20, embed_dim=4, out=3)
    weights = _artifact(tmp_path, spec, precision)
    path = tmp_path / vectors_file(precision)
    write_vectors(path, weights, _sequence(spec, steps), steps=steps)
    return str(path), weights


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("precision", ["f32", "int8w", "int8"])
def test_round_trip_and_replay(tmp_path, precision, kind, cell, layers):
    spec = make_spec(cell=cell, layers=layers, kind=kind, hidden=6, features=3, vocab=20, embed_dim=4, out=3)
    weights = _artifact(tmp_path, spec, precision)
    X = _sequence(spec, 15)
    path = tmp_path / vectors_file(precision)
    written = write_vectors(path, weights, X, steps=11)

    meta, t = read_vectors(path)
    assert meta == written
    assert (meta["format"], meta["precision"], meta["steps"]) == (2, precision, 11)
    assert meta["artifact"] == f"model.{precision}.safetensors"
    with safe_open(weights, "np") as f:
        assert meta["artifact_sha256"] == f.metadata()["rnnedge.sha256"]
    assert meta["state_layout"] == state_layout(spec)
    model = Model(*artifact.read(weights))
    assert meta["spec"] == model.spec

    int8, dense = precision == "int8", kind == "dense"
    S = (12 if cell == "lstm" else 6) * layers
    expected = {"input": ((11, 3), np.float32) if dense else ((11,), np.int64),
                "state": ((11, S), np.int16 if int8 else np.float32), "output": ((11, 3), np.float32)}
    if int8:
        expected["logits_q"] = ((11, 3), np.int32)
        if dense:
            expected["input_q"] = ((11, 3), np.int16)
    assert {k: (v.shape, v.dtype) for k, v in t.items()} == {k: (s, np.dtype(d)) for k, (s, d) in expected.items()}
    np.testing.assert_array_equal(t["input"], X[:11])

    # what 'output at step t' and 'state after step t' mean: the whole-sequence run of the same inputs
    np.testing.assert_allclose(t["output"], model.run(X[None, :11])[0], atol=1e-5 if not int8 else 1e-6)
    assert np.any(t["state"] != 0)
    if int8 and dense:  # the quantised input, computed independently of the kernel
        inp = spec["input"]
        with safe_open(weights, "np") as f:
            s_x = f.get_tensor("input.scale")[0]
        norm = (X[:11] - np.float32(inp["mean"][0])) / np.float32(inp["std"][0])
        np.testing.assert_array_equal(t["input_q"], np.clip(np.rint(norm / s_x), -32767, 32767))
    if int8:  # the output is the softmax of the dequantised integer logits
        with safe_open(weights, "np") as f:
            z = t["logits_q"] * f.get_tensor("head.scale").astype(np.float64)
        softmax = np.exp(z - z.max(axis=1, keepdims=True))
        np.testing.assert_allclose(t["output"], softmax / softmax.sum(axis=1, keepdims=True), atol=1e-6)

    assert check_vectors(path, weights) == []


def test_state_layout_of_mixed_layers_matches_the_stream(tmp_path):
    spec = make_spec(kind="dense", features=3, out=2)
    spec["layers"] = [{"cell": "lstm", "hidden": 6, "bidirectional": False},
                      {"cell": "gru", "hidden": 5, "bidirectional": False}]
    weights = _artifact(tmp_path, spec, "f32")
    X = _sequence(spec, 8)
    meta = write_vectors(tmp_path / "v.safetensors", weights, X)
    assert meta["state_layout"] == [[0, "h", 0, 6], [0, "c", 6, 6], [1, "h", 12, 5]]
    _, t = read_vectors(tmp_path / "v.safetensors")
    stream = Model(*artifact.read(weights)).stream(batch=1)
    for step in range(len(X)):
        stream.step(X[step : step + 1].copy())
    np.testing.assert_array_equal(t["state"][-1], stream.state[0])  # state after the last step
    assert check_vectors(tmp_path / "v.safetensors", weights) == []


def test_steps_default_and_short_sequences(tmp_path):
    spec = make_spec(cell="gru", kind="tokens", hidden=4, vocab=20, embed_dim=3, out=2)
    weights = _artifact(tmp_path, spec, "int8")
    assert write_vectors(tmp_path / "a", weights, _sequence(spec, DEFAULT_STEPS + 10))["steps"] == DEFAULT_STEPS
    assert write_vectors(tmp_path / "b", weights, _sequence(spec, 5))["steps"] == 5
    assert write_vectors(tmp_path / "c", weights, _sequence(spec, 5), steps=100)["steps"] == 5


def test_bad_input_sequences_are_refused(tmp_path):
    spec = make_spec(kind="dense", hidden=4, features=3, out=2)
    weights = _artifact(tmp_path, spec, "f32")
    X = _sequence(spec, 5)
    for bad in (X[None], X[:, :2], X.astype(np.int64), X[:0]):
        with pytest.raises(ValueError, match="X "):
            write_vectors(tmp_path / "v", weights, bad)
    with pytest.raises(ValueError, match="steps"):
        write_vectors(tmp_path / "v", weights, X, steps=0)
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_vectors(tmp_path / "v", weights, X)
    assert not (tmp_path / "v").exists()


def test_bidirectional_model_is_refused(tmp_path):
    spec = make_spec(bidirectional=True, hidden=4, features=3, out=2)
    weights = _artifact(tmp_path, spec, "f32")
    with pytest.raises(ValueError, match="bidirectional"):
        write_vectors(tmp_path / "v", weights, _sequence(spec, 5))
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("where", ["last byte", "middle of the data"])
def test_tampered_file_is_refused(tmp_path, where):
    path, _ = _vectors(tmp_path)
    data = bytearray(Path(path).read_bytes())
    header_end = 8 + int.from_bytes(data[:8], "little")
    i = len(data) - 1 if where == "last byte" else (header_end + len(data)) // 2
    data[i] ^= 0x01
    Path(path).write_bytes(bytes(data))
    with pytest.raises(VectorsError, match="SHA-256 of the header and tensors does not match"):
        read_vectors(path)


@pytest.mark.parametrize("cut", [1, 100, "header"])
def test_truncated_file_is_refused(tmp_path, cut):
    path, weights = _vectors(tmp_path)
    data = Path(path).read_bytes()
    keep = 20 if cut == "header" else len(data) - cut
    Path(path).write_bytes(data[:keep])
    with pytest.raises(VectorsError, match="truncated"):
        read_vectors(path)
    with pytest.raises(VectorsError, match="truncated"):
        check_vectors(path, weights)


def test_weight_file_is_not_a_vectors_file(tmp_path):
    _, weights = _vectors(tmp_path)
    with pytest.raises(VectorsError, match="not an rnnedge vectors file.*weight file"):
        read_vectors(weights)


@pytest.mark.parametrize("precision, delta", [("int8", 1), ("f32", 1e-3), ("int8w", 1e-3)])
def test_one_altered_state_element_is_one_mismatch(tmp_path, precision, delta):
    path, weights = _vectors(tmp_path, precision=precision)
    meta, t = read_vectors(path)
    state = t["state"].copy()
    original = state[4, 9].item()
    state[4, 9] += delta
    save_vectors(path, meta, {**t, "state": state})  # a consistent file (fresh sha256) that is wrong
    problems = check_vectors(path, weights)
    assert len(problems) == 1, problems
    msg = problems[0]
    assert msg.startswith("state: step 4, position 9 (layer 0 c[3]): ")
    assert f"expected {state[4, 9].item()!r} (vectors file)" in msg
    assert f"actual {original!r} (runtime)" in msg


def test_within_tolerance_is_not_a_mismatch_but_int8_is_exact(tmp_path):
    path, weights = _vectors(tmp_path, precision="f32", cell="gru")
    meta, t = read_vectors(path)
    save_vectors(path, meta, {**t, "output": t["output"] + np.float32(4e-6)})
    assert check_vectors(path, weights) == []

    (tmp_path / "int8").mkdir()
    path, weights = _vectors(tmp_path / "int8", precision="int8", cell="gru")
    meta, t = read_vectors(path)
    logits = t["logits_q"].copy()
    logits[2, 1] -= 1
    save_vectors(path, meta, {**t, "logits_q": logits})
    (msg,) = check_vectors(path, weights)
    assert msg.startswith("logits_q: step 2, position 1: ") and "rule exact" in msg


def test_many_mismatches_are_listed_up_to_a_limit(tmp_path):
    path, weights = _vectors(tmp_path, precision="int8", steps=10)
    meta, t = read_vectors(path)
    save_vectors(path, meta, {**t, "state": t["state"] + np.int16(1)})  # 10 steps x 12 values
    problems = check_vectors(path, weights, max_listed=5)
    assert len(problems) == 6
    assert problems[0].startswith("state: step 0, position 0 (layer 0 h[0])")
    assert problems[-1] == "state: 115 more mismatching elements not listed"


def test_vectors_are_tied_to_one_weight_file(tmp_path):
    spec = make_spec(kind="dense", hidden=4, features=3, out=2)
    first = _artifact(tmp_path, spec, "f32", seed=0)
    write_vectors(tmp_path / "v", first, _sequence(spec, 6))
    (tmp_path / "other").mkdir()
    second = _artifact(tmp_path / "other", spec, "f32", seed=1)  # same name and spec, other weights
    (msg,) = check_vectors(tmp_path / "v", second)
    assert msg.startswith("weight file: the vectors were made with model.f32.safetensors")
    assert check_vectors(tmp_path / "v", first) == []
