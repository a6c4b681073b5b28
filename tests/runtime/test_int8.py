"""int8 runtime: close to PyTorch for every cell and shape, step equals run exactly, nothing allocated per step,
bad input and bad files refused. (Bit-exactness against a NumPy twin: test_int8_twin.py.)"""

import numpy as np
import pytest
from safetensors.numpy import save

from rnnedge import runtime
from rnnedge.export.calibrate import calibrate
from rnnedge.export.quantize_int8 import quantize_int8
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import artifact, file_tensors
from rnnedge.runtime import spec as specs
from tests.helpers import (
    CALIBRATION_SEED,
    TOLERANCE,
    bytes_allocated_by_steps,
    make_model,
    make_spec,
    random_inputs,
    stream_all,
    torch_forward,
    write_artifact,
)

CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
CASES = [(cell, layers, bi, kind) for cell in CELLS for layers in (1, 3) for bi in (False, True)
         for kind in ("dense", "tokens")]


def _int8(tmp_path, spec, seed=0):
    model = make_model(spec, seed)
    return model, runtime.load(write_artifact(model, tmp_path / "m.int8.safetensors", "int8"))


@pytest.mark.parametrize("case", CASES, ids=[f"{c}-{n}L-{'bi' if b else 'uni'}-{k}" for c, n, b, k in CASES])
def test_int8_run_is_close_to_the_pytorch_model_over_long_streams(case, tmp_path):
    cell, layers, bi, kind = case
    spec = make_spec(cell, layers=layers, bidirectional=bi, kind=kind, activation="none")
    model, int8 = _int8(tmp_path, spec)
    X = random_inputs(spec, 2, 1000, seed=1)
    err = float(np.abs(int8.run(X) - torch_forward(model, X)).max())
    assert 0 < err <= TOLERANCE["int8"]  # 0 would mean nothing was quantised


@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("cell", CELLS)
def test_int8_step_equals_int8_run_exactly(cell, kind, tmp_path):
    spec = make_spec(cell, layers=2, kind=kind)
    _, int8 = _int8(tmp_path, spec)
    X = random_inputs(spec, 3, 200, seed=2)
    np.testing.assert_array_equal(stream_all(int8.stream(3), X), int8.run(X))


def test_int8_run_with_lengths_equals_each_sequence_alone(tmp_path):
    spec = make_spec("gru", layers=2, bidirectional=True, on="last_step")
    _, int8 = _int8(tmp_path, spec)
    X = random_inputs(spec, 3, 40, seed=3)
    lengths = np.array([40, 7, 23])
    together = int8.run(X, lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(together[b], int8.run(X[b : b + 1, :n])[0])


def test_a_bidirectional_int8_model_refuses_to_stream(tmp_path):
    _, int8 = _int8(tmp_path, make_spec("lstm", bidirectional=True))
    with pytest.raises(ValueError, match="bidirectional"):
        int8.stream()


@pytest.mark.parametrize("kind", ["dense", "tokens"])
def test_int8_step_allocates_no_memory_after_the_first_call(kind, tmp_path):
    spec = make_spec("lstm", layers=2, kind=kind)
    _, int8 = _int8(tmp_path, spec)
    assert bytes_allocated_by_steps(int8.stream(2), random_inputs(spec, 2, 300)) == 0


def test_int8_weights_are_int8_and_the_state_is_integer(tmp_path):
    spec = make_spec("lstm", layers=2)
    _, int8 = _int8(tmp_path, spec)
    lay = int8.layout
    matrices = sum(int(np.prod(shape)) for name, (shape, dtype) in file_tensors.int8_tensors(spec).items()
                   if dtype == "int8" and not name.endswith(".shift"))
    assert lay.qblob.dtype == np.int8 and lay.qblob.size == matrices
    assert lay.iblob.dtype == np.int32
    stream = int8.stream(1)
    assert stream.state.dtype == np.int32 and stream.logits_q.dtype == np.int32
    stream.step(random_inputs(spec, 1, 1)[:, 0])
    assert np.abs(stream.state).max() <= 32767  # int16 values
    assert np.any(stream.state != 0)


def test_int8_stream_refuses_bad_input_and_keeps_its_state(tmp_path):
    spec = make_spec("gru", kind="dense")
    _, int8 = _int8(tmp_path, spec)
    stream = int8.stream(2)
    X = random_inputs(spec, 2, 5)
    for t in range(5):
        stream.step(np.ascontiguousarray(X[:, t]))
    state = stream.state.copy()
    bad = np.ascontiguousarray(X[:, 0]).copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        stream.step(bad)
    with pytest.raises(TypeError, match="dtype"):
        stream.step(X[:, 0].astype(np.float64))
    with pytest.raises(ValueError, match="shape"):
        stream.step(np.zeros((3, spec["input"]["features"]), np.float32))
    np.testing.assert_array_equal(stream.state, state)

    tokens = make_spec("lstm", kind="tokens")
    _, int8t = _int8(tmp_path, tokens)
    stream = int8t.stream(2)
    stream.step(np.array([1, 2]))
    state = stream.state.copy()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        stream.step(np.array([1, tokens["input"]["vocab"]]))
    np.testing.assert_array_equal(stream.state, state)


def _int8_tensors(spec, seed=0):
    model = make_model(spec, seed)
    ranges = calibrate(model, random_inputs(spec, 2, 100, seed=CALIBRATION_SEED))
    return quantize_int8(spec, canonical_tensors(model), ranges)[0]


@pytest.mark.parametrize("damage, message", [
    (lambda t: t["layers.0.fwd.shift"].__setitem__((1, 0), 40), "shift"),
    (lambda t: t["layers.0.fwd.requant"].__setitem__((0, 0), 12345), "multiplier"),
    (lambda t: t["layers.0.cell_power"].__setitem__(0, 9), "cell_power"),
    (lambda t: t["layers.0.fwd.w_hh"].__setitem__((0, 0), -128), "-128"),
])
def test_an_int8_file_with_impossible_constants_is_refused(damage, message, tmp_path):
    spec = make_spec("lstm")
    tensors = _int8_tensors(spec)
    damage(tensors)
    path = tmp_path / "m.int8.safetensors"
    _write_raw(path, tensors, spec)
    with pytest.raises(runtime.ArtifactError, match=message):
        runtime.load(path)


def test_an_int8_file_whose_sums_could_overflow_int32_is_refused(tmp_path):
    spec = make_spec("gru")
    tensors = _int8_tensors(spec)
    tensors["layers.0.fwd.b_hh"][3] = 2**31 - 1000  # |bias| + sum |w| * 2^15 >= 2^31 (b_hh: gru's n rows)
    path = tmp_path / "m.int8.safetensors"
    _write_raw(path, tensors, spec)
    with pytest.raises(ValueError, match="overflow"):
        runtime.load(path)


def _write_raw(path, tensors, spec):
    """A file as a careless or hostile writer would make it: valid checksum, unchecked contents."""
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    metadata = {"rnnedge.format": str(artifact.FORMAT_VERSION), "rnnedge.precision": "int8",
                "rnnedge.spec": specs.dumps(specs.validate(spec)),
                "rnnedge.sha256": artifact.sha256(spec, "int8", tensors)}
    with open(path, "wb") as f:
        f.write(save(tensors, metadata=metadata))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rows_of_near_zero_weights_still_quantise_and_stay_close(cell, tmp_path):
    """A trained model can hold a row of weights ~1e-6 next to a bias of ~0.1: its per-row scale would put the
    bias beyond int32. The quantiser widens that row's scale instead of refusing the model."""
    import torch

    spec = make_spec(cell, activation="none")
    model = make_model(spec)
    with torch.no_grad():
        model.layers[0].weight_ih_l0[3].mul_(1e-5)  # one gate row of w_ih, and the head's first row
        model.head.weight[0].mul_(1e-6)
    int8 = runtime.load(write_artifact(model, tmp_path / "m.int8.safetensors", "int8"))
    X = random_inputs(spec, 2, 300, seed=4)
    assert float(np.abs(int8.run(X) - torch_forward(model, X)).max()) <= TOLERANCE["int8"]
