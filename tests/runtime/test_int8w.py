"""int8w runtime: step equals run bit for bit; a float64 NumPy twin of the dequantised model agrees within
1e-5; PyTorch agrees within TOLERANCE["int8w"]; weights stay int8 in memory; bad files are refused."""

import itertools
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

from rnnedge import runtime
from rnnedge.export.quantize import dequantize_rows, quantize_int8w
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import ArtifactError, artifact, file_tensors
from rnnedge.runtime import spec as specs
from tests.helpers import (
    TOLERANCE,
    bytes_allocated_by_steps,
    make_model,
    make_spec,
    random_inputs,
    stream_all,
    torch_forward,
    write_artifact,
)

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
TWIN_TOLERANCE = 1e-5  # the runtime's float32 arithmetic vs float64 on the same dequantised weights


def _load(tmp_path, spec, name="m.int8w.safetensors", seed=0):
    model = make_model(spec, seed)
    return model, runtime.load(write_artifact(model, tmp_path / name, "int8w"))


# -- a NumPy twin: dequantise every matrix, then the equations in float64 -----------------------------------
def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _cell(cell, x, h, c, w_ih, w_hh, b_ih, b_hh):
    gx, gh = w_ih @ x + b_ih, w_hh @ h + b_hh
    H = h.shape[0]
    if cell == "lstm":
        i, f, g, o = np.split(gx + gh, 4)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        return _sigmoid(o) * np.tanh(c), c
    if cell == "gru":
        r, z = _sigmoid(gx[: 2 * H] + gh[: 2 * H]).reshape(2, H)
        n = np.tanh(gx[2 * H :] + r * gh[2 * H :])
        return (1 - z) * n + z * h, c
    pre = gx + gh
    return (np.maximum(pre, 0) if cell == "rnn_relu" else np.tanh(pre)), c


def numpy_twin(spec: dict, q: dict, X: np.ndarray) -> np.ndarray:
    """(B, T, out) float64 for an every_step head, (B, out) for last_step; full-length sequences."""
    t64 = {name: q[name].astype(np.float64) for name in q}
    for name in file_tensors.quantized_matrices(spec):
        t64[name] = dequantize_rows(q[name], q[f"{name}.scale"]).astype(np.float64)
    inp = spec["input"]
    if inp["kind"] == "dense":
        seq = (X.astype(np.float64) - np.asarray(inp["mean"])) / np.asarray(inp["std"])
    else:
        seq = t64["embedding.weight"][X]
    B, T = seq.shape[:2]
    for l, layer in enumerate(spec["layers"]):
        H = layer["hidden"]
        out = np.zeros((B, T, H * specs.directions(layer)))
        for d, name in enumerate(("fwd", "bwd")[: specs.directions(layer)]):
            w = [t64[f"layers.{l}.{name}.{k}"] for k in ("w_ih", "w_hh", "b_ih")]
            b_hh = np.zeros_like(w[2])  # the file folds every recurrent bias it can into b_ih
            if layer["cell"] == "gru":
                b_hh[2 * H :] = t64[f"layers.{l}.{name}.b_hh"]
            w.append(b_hh)
            for b in range(B):
                h, c = np.zeros(H), np.zeros(H)
                for t in (range(T - 1, -1, -1) if d else range(T)):
                    h, c = _cell(layer["cell"], seq[b, t], h, c, *w)
                    out[b, t, d * H : (d + 1) * H] = h
        seq = out
    if spec["head"]["on"] == "last_step":
        H = spec["layers"][-1]["hidden"]
        seq = np.concatenate([seq[:, -1, :H], seq[:, 0, H:]], axis=-1)
    y = seq @ t64["head.weight"].T + t64["head.bias"]
    if spec["head"]["activation"] == "softmax":
        y = np.exp(y - y.max(-1, keepdims=True))
        y /= y.sum(-1, keepdims=True)
    elif spec["head"]["activation"] == "sigmoid":
        y = _sigmoid(y)
    return y


# -- tests --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("cell", CELLS)
def test_int8w_step_equals_int8w_run_bit_for_bit(cell, kind, tmp_path):
    spec = make_spec(cell, layers=2, kind=kind)
    _, rt = _load(tmp_path, spec)
    X = random_inputs(spec, 3, 200)
    assert np.array_equal(stream_all(rt.stream(3), X), rt.run(X))


TWIN_CASES = list(itertools.product(CELLS, (False, True), ("dense", "tokens"), ("every_step", "last_step")))


@pytest.mark.parametrize("case", TWIN_CASES, ids=["-".join(map(str, c)) for c in TWIN_CASES])
def test_int8w_run_matches_a_float64_numpy_twin_of_the_dequantised_model(case, tmp_path):
    cell, bi, kind, on = case
    spec = specs.validate(make_spec(cell, layers=2, bidirectional=bi, kind=kind, on=on, activation="sigmoid"))
    model = make_model(spec)
    q, _ = quantize_int8w(spec, canonical_tensors(model))
    artifact.write(tmp_path / "m.safetensors", q, spec, "int8w")
    rt = runtime.load(tmp_path / "m.safetensors")
    X = random_inputs(spec, 2, 120)
    assert np.abs(rt.run(X) - numpy_twin(spec, q, X)).max() <= TWIN_TOLERANCE


TORCH_CASES = list(itertools.product(CELLS, (1, 3), (False, True), ("dense", "tokens")))


@pytest.mark.parametrize("case", TORCH_CASES, ids=[f"{c}-{n}L-{'bi' if b else 'uni'}-{k}" for c, n, b, k in TORCH_CASES])
def test_int8w_run_is_close_to_the_pytorch_model_over_long_streams(case, tmp_path):
    cell, layers, bi, kind = case
    spec = make_spec(cell, layers, bi, kind, activation="none")
    model, rt = _load(tmp_path, spec)
    X = random_inputs(spec, 2, 1000)
    err = np.abs(rt.run(X) - torch_forward(model, X)).max()
    assert 0 < err <= TOLERANCE["int8w"]  # 0 would mean the weights were never quantised


def test_int8w_weights_stay_int8_in_memory_and_nbytes_says_so(tmp_path):
    spec = make_spec("lstm", layers=2, kind="tokens", hidden=32, embed_dim=16, vocab=64)
    model = make_model(spec)
    f32 = runtime.load(write_artifact(model, tmp_path / "m.f32.safetensors"))
    int8w = runtime.load(write_artifact(model, tmp_path / "m.int8w.safetensors", "int8w"))
    matrices = sum(int(np.prod(specs.tensor_shapes(int8w.spec)[n])) for n in file_tensors.quantized_matrices(int8w.spec))
    lay = int8w.layout
    assert lay.qblob.dtype == np.int8 and lay.qblob.size == matrices
    assert lay.blob.dtype == np.float32 and lay.blob.size == f32.layout.blob.size - matrices + sum(
        specs.tensor_shapes(int8w.spec)[n][0] for n in file_tensors.quantized_matrices(int8w.spec))  # + one scale per row
    assert int8w.nbytes == lay.blob.nbytes + lay.qblob.nbytes + lay.table.nbytes
    assert int8w.nbytes < 0.35 * f32.nbytes
    # state stays float32 as f32's; the specialised int8w step's scratch also holds its int16 limbs and int32 sums
    assert int8w.stream(2).state.nbytes == f32.stream(2).state.nbytes
    assert int8w.stream(2)._buf.dtype == np.float32


@pytest.mark.parametrize("kind", ["dense", "tokens"])
def test_int8w_step_allocates_no_memory_after_the_first_call(kind, tmp_path):
    spec = make_spec("lstm", layers=2, kind=kind)
    _, model = _load(tmp_path, spec)
    stream = model.stream(2)
    assert bytes_allocated_by_steps(stream, random_inputs(spec, 2, 500)) == 0


def test_int8w_stream_refuses_bad_input_and_keeps_its_state(tmp_path):
    _, dense = _load(tmp_path, make_spec("gru", kind="dense", features=5), "d.safetensors")
    _, tokens = _load(tmp_path, make_spec("gru", kind="tokens", vocab=40), "t.safetensors")
    stream = dense.stream(1)
    stream.step(np.ones((1, 5), np.float32))
    state = stream.state.copy()
    with pytest.raises(ValueError, match="NaN or infinity; the state is unchanged"):
        stream.step(np.array([[0, 0, np.nan, 0, 0]], np.float32))
    with pytest.raises(TypeError, match="float64; expected float32"):
        stream.step(np.zeros((1, 5)))
    assert np.array_equal(stream.state, state)
    tstream = tokens.stream(2)
    tstream.step(np.array([1, 2], np.int64))
    state = tstream.state.copy()
    with pytest.raises(ValueError, match=r"token id 40 is outside the vocabulary \[0, 40\)"):
        tstream.step(np.array([3, 40], np.int64))
    assert np.array_equal(tstream.state, state)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tokens.run(np.array([[1, 2, 99]]))
    stream.reset()
    assert not stream.state.any()


def test_a_tampered_int8w_file_is_refused(tmp_path):
    path = write_artifact(make_model(make_spec("gru")), tmp_path / "m.int8w.safetensors", "int8w")
    data = bytearray(Path(path).read_bytes())
    data[-7] ^= 0x01
    Path(path).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="SHA-256"):
        runtime.load(path)


def _write_raw(path, tensors, spec, precision):
    """A file with a correct checksum but tensors the writer would refuse: what a foreign tool might make."""
    metadata = {"rnnedge.format": str(artifact.FORMAT_VERSION), "rnnedge.precision": precision,
                "rnnedge.spec": specs.dumps(specs.validate(spec)), "rnnedge.sha256": artifact.sha256(spec, precision, tensors)}
    Path(path).write_bytes(save(tensors, metadata=metadata))


def test_an_int8w_file_missing_a_scale_or_with_float_weights_is_refused(tmp_path):
    spec = make_spec("lstm")
    tensors = canonical_tensors(make_model(spec))
    q, _ = quantize_int8w(spec, tensors)
    with pytest.raises(ArtifactError, match=r"missing \['layers.0.fwd.w_hh.scale'\]"):
        artifact.write(tmp_path / "w.safetensors", {k: v for k, v in q.items() if k != "layers.0.fwd.w_hh.scale"},
                       spec, "int8w")
    _write_raw(tmp_path / "a.safetensors", {k: v for k, v in q.items() if k != "head.weight.scale"}, spec, "int8w")
    with pytest.raises(ArtifactError, match=r"missing \['head.weight.scale'\]"):
        runtime.load(tmp_path / "a.safetensors")
    float_weights = dict(q, **{"layers.0.fwd.w_ih": tensors["layers.0.fwd.w_ih"]})
    _write_raw(tmp_path / "b.safetensors", float_weights, spec, "int8w")
    with pytest.raises(ArtifactError, match="layers.0.fwd.w_ih is float32, int8w needs int8"):
        runtime.load(tmp_path / "b.safetensors")
    bad_scale = dict(q, **{"head.weight.scale": np.zeros_like(q["head.weight.scale"])})
    _write_raw(tmp_path / "c.safetensors", bad_scale, spec, "int8w")
    with pytest.raises(ArtifactError, match="not positive"):
        runtime.load(tmp_path / "c.safetensors")
    _write_raw(tmp_path / "d.safetensors", q, spec, "f32")  # int8w tensors labelled f32
    with pytest.raises(ArtifactError, match="unexpected"):
        runtime.load(tmp_path / "d.safetensors")
