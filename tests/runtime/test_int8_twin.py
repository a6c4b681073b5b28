"""The int8 model (runtime/kernels_int8.py) equals a plain NumPy twin (tests/runtime/int8_twin.py) bit for bit:
streams of 5000 steps whose constants and inputs saturate every stage, whole sequences in both directions,
variable lengths. Tensors are random (not exported from a trained model) so that every limit is reached."""

import functools

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.runtime import artifact
from rnnedge.runtime.int8_math import SIGMOID_TABLE_Q16
from rnnedge.runtime.model import Model
from rnnedge.runtime.spec import CELLS, HEAD_ON
from tests.helpers import make_spec, stream_all
from tests.runtime import int8_twin
from tests.runtime.int8_twin import Int8Twin, random_int8_tensors, saturating_dense_inputs
from tests.runtime.test_int8_math import ALL_INT16, mbqm_twin, rdbpot_twin, sigmoid_twin, tanh_twin

BATCH, STEPS = 2, 5000
VOCAB = 20
CASES = [(cell, layers, kind) for cell in CELLS for layers in (1, 3) for kind in ("dense", "tokens")]


@functools.cache
def _case(cell, layers, kind, on="every_step"):
    """(spec, tensors, X (B, T, F) float32 or (B, T) int64) of one streaming case; small sizes vary by case."""
    i = CASES.index((cell, layers, kind))
    spec = make_spec(cell, layers=layers, kind=kind, on=on, activation="none", hidden=(5, 8, 12)[i % 3],
                     features=3 + i % 5, vocab=VOCAB, embed_dim=3 + (i + 2) % 5, out=3)
    rng = np.random.default_rng(1000 + i)
    powers = {(1, "dense"): [-15], (1, "tokens"): [-12], (3, "dense"): [-15, -12, 1], (3, "tokens"): [-9, -15, -12]}
    powers = powers[layers, kind]  # the LSTM cell's scale 2^p per layer (other cells ignore it)
    tensors = random_int8_tensors(spec, rng, hot=True, cell_powers=powers)
    if layers > 1:  # the middle layer without left shifts: the kernels' shorter requantisation path runs there
        for name in [n for n in tensors if n.startswith("layers.1.") and n.endswith(".shift")]:
            tensors[name] = np.minimum(tensors[name], 0).astype(np.int8)
    if kind == "dense":
        if i % 4 == 0:  # a power-of-two scale: the inputs then hold exact ties of rint
            tensors["input.scale"] = np.array([2.0**-13], dtype=np.float32)
        X = saturating_dense_inputs(spec, float(tensors["input.scale"][0]), rng, BATCH, STEPS)
    else:
        X = rng.integers(0, VOCAB, (BATCH, STEPS)).astype(np.int64)
        X[:, :VOCAB] = np.arange(VOCAB)  # every token id, in both streams
    return spec, tensors, X


def _twin_input(twin, X):
    return twin.quantize_input(X) if twin.spec["input"]["kind"] == "dense" else twin.embed(X)


def _assert_every_step_equal(actual, expected, what):
    """actual, expected (T, B, N): bit for bit; the message names the first differing step and its values."""
    bad = np.argwhere(actual != expected)
    msg = ""
    if bad.size:
        t, b, k = bad[0]
        msg = (f"{what}: {np.unique(bad[:, 0]).size} steps differ, the first at step {t} (stream {b}, index {k}: "
               f"runtime {actual[t, b, k]}, twin {expected[t, b, k]})\n  runtime {actual[t, b]}\n  twin    "
               f"{expected[t, b]}")
    np.testing.assert_array_equal(actual, expected, err_msg=msg)


# -- the twin's own primitives against test_int8_math's twins (which test the numba kernels) ------------------
def test_twin_primitives_equal_the_primitive_twins_and_the_runtime_table():
    assert np.array_equal(int8_twin.SIGMOID_TABLE, SIGMOID_TABLE_Q16)
    assert np.array_equal(int8_twin.sigmoid_q15(ALL_INT16), sigmoid_twin(ALL_INT16))
    assert np.array_equal(int8_twin.tanh_q15(ALL_INT16), tanh_twin(ALL_INT16))
    rng = np.random.default_rng(0)
    x = rng.integers(-(2**31), 2**31, 200_000, dtype=np.int64)
    x[::3] >>= rng.integers(0, 31, x[::3].size)
    M = rng.integers(2**30, 2**31, x.size, dtype=np.int64)
    S = rng.integers(-31, 31, x.size, dtype=np.int64)
    e = rng.integers(0, 32, x.size, dtype=np.int64)
    assert np.array_equal(int8_twin.rdbpot(x, e), rdbpot_twin(x, e))
    assert np.array_equal(Int8Twin(make_spec("gru"), random_int8_tensors(make_spec("gru"), rng)).mbqm(x, M, S),
                          mbqm_twin(x, M, S))


# -- streams ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell,layers,kind", CASES)
def test_int8_stream_equals_numpy_twin_bit_exact_at_every_step_over_5000_saturating_steps(cell, layers, kind,
                                                                                          tmp_path):
    spec, tensors, X = _case(cell, layers, kind)
    path = tmp_path / "m.int8.safetensors"
    artifact.write(path, tensors, spec, "int8")  # the random tensors pass the artifact's own checks
    stream = runtime.load(path).stream(BATCH)
    twin = Int8Twin(spec, tensors, batch=BATCH)
    S, O = stream.state.shape[1], stream.logits_q.shape[1]
    state, logits, y = np.zeros((STEPS, BATCH, S), np.int64), np.zeros((STEPS, BATCH, O), np.int64), []
    twin_state, twin_logits = np.zeros_like(state), np.zeros_like(logits)
    for t in range(STEPS):
        x = np.ascontiguousarray(X[:, t])
        y.append(stream.step(x).copy())
        state[t], logits[t] = stream.state, stream.logits_q
        twin_logits[t] = twin.step_quantised(_twin_input(twin, x))
        twin_state[t] = twin.state_vector()
    _assert_every_step_equal(state, twin_state, "state")
    _assert_every_step_equal(logits, twin_logits, "integer logits")
    np.testing.assert_array_equal(np.stack(y), twin.dequantize(twin_logits))  # head activation "none"

    # the data reached the limits this test claims to cover
    counts = dict(twin.counts)
    print(f"\n{cell} x{layers} {kind}: {np.unique(state).size} distinct state values, saturations {counts}")
    assert counts.get("yx_wide", 0) > 0 and counts.get("yh_wide", 0) > 0, counts  # terms beyond int16, summed whole
    assert counts.get("pre_activation", 0) > 0 and counts.get("mbqm_left_shift", 0) > 0, counts
    if kind == "dense":
        assert counts["input"] > 0, counts
        if tensors["input.scale"][0] == 2.0**-13:
            assert counts["input_tie"] > 0, counts
    if cell == "lstm":
        assert counts.get("cell", 0) > 0, counts
    assert np.unique(state).size > 500, "the state hardly moves: the test would prove little"


@pytest.mark.parametrize("cell,layers,kind", CASES)
def test_int8_run_equals_the_stream_at_every_step(cell, layers, kind):
    spec, tensors, X = _case(cell, layers, kind)
    ys = stream_all(Model(spec, "int8", tensors).stream(BATCH), X)
    assert np.array_equal(Model(spec, "int8", tensors).run(X), ys)
    last = Model({**spec, "head": {**spec["head"], "on": "last_step"}}, "int8", tensors)
    assert np.array_equal(last.run(X), ys[:, -1])


# -- whole sequences, both directions -----------------------------------------------------------------------
def _mixed_spec(on):
    """Three layers of different cells and directions: bidirectional gru, forward lstm, bidirectional rnn_relu."""
    spec = make_spec("gru", kind="tokens", on=on, activation="none", hidden=6, vocab=VOCAB, embed_dim=5, out=3)
    spec["layers"] = [{"cell": "gru", "hidden": 6, "bidirectional": True},
                      {"cell": "lstm", "hidden": 7, "bidirectional": False},
                      {"cell": "rnn_relu", "hidden": 5, "bidirectional": True}]
    return spec


def _bidir_spec(cell, layers, on):
    if cell == "mixed":
        return _mixed_spec(on)
    kind = "dense" if (CELLS.index(cell) + layers) % 2 else "tokens"
    return make_spec(cell, layers=layers, bidirectional=True, kind=kind, on=on, activation="none", hidden=6,
                     features=4, vocab=VOCAB, embed_dim=5, out=3)


def _random_sequences(spec, tensors, rng, batch, steps):
    if spec["input"]["kind"] == "dense":
        return saturating_dense_inputs(spec, float(tensors["input.scale"][0]), rng, batch, steps)
    return rng.integers(0, VOCAB, (batch, steps)).astype(np.int64)


@pytest.mark.parametrize("on", HEAD_ON)
@pytest.mark.parametrize("cell,layers", [(cell, layers) for cell in CELLS for layers in (1, 2)] + [("mixed", 3)])
def test_bidirectional_int8_run_equals_numpy_twin_bit_exact(cell, layers, on):
    spec = _bidir_spec(cell, layers, on)
    rng = np.random.default_rng(CELLS.index(cell) if cell in CELLS else 9)
    tensors = random_int8_tensors(spec, rng)
    X = _random_sequences(spec, tensors, rng, BATCH, 300)
    twin = Int8Twin(spec, tensors, batch=BATCH)
    expected = twin.dequantize(twin.run(_twin_input(twin, X)))
    np.testing.assert_array_equal(Model(spec, "int8", tensors).run(X), expected)
    assert twin.counts["pre_activation"] > 0, dict(twin.counts)


def test_stream_refuses_a_bidirectional_int8_model():
    spec = _mixed_spec("every_step")
    tensors = random_int8_tensors(spec, np.random.default_rng(0))
    with pytest.raises(ValueError, match="bidirectional"):
        Model(spec, "int8", tensors).stream(1)
    with pytest.raises(ValueError, match="bidirectional"):
        Model(make_spec("lstm", bidirectional=True), "int8",
              random_int8_tensors(make_spec("lstm", bidirectional=True), np.random.default_rng(1))).stream(2)


@pytest.mark.parametrize("cell,bidirectional,on", [("lstm", False, "every_step"), ("gru", True, "last_step"),
                                                   ("rnn_relu", True, "every_step"), ("rnn_tanh", False, "last_step"),
                                                   ("mixed", None, "last_step")])
def test_int8_run_of_different_lengths_equals_each_sequence_alone_and_the_twin(cell, bidirectional, on):
    if cell == "mixed":
        spec = _mixed_spec(on)
    else:
        kind = "dense" if bidirectional else "tokens"
        spec = make_spec(cell, layers=2, bidirectional=bidirectional, kind=kind, on=on, activation="none",
                         hidden=6, features=4, vocab=VOCAB, embed_dim=5, out=3)
    rng = np.random.default_rng(7)
    tensors = random_int8_tensors(spec, rng)
    model = Model(spec, "int8", tensors)
    twin = Int8Twin(spec, tensors, batch=1)
    lengths = np.array([40, 23, 1, 39])
    X = _random_sequences(spec, tensors, rng, lengths.size, 40)
    for b, n in enumerate(lengths):  # what lies past a length must not matter, even input run() would refuse
        X[b, n:] = np.nan if spec["input"]["kind"] == "dense" else -1
    y = model.run(X, lengths)
    for b, n in enumerate(lengths):
        alone = model.run(X[b : b + 1, :n])[0]
        twin_y = twin.dequantize(twin.run(_twin_input(twin, X[b : b + 1, :n])))[0]
        if on == "every_step":
            np.testing.assert_array_equal(y[b, :n], alone, err_msg=f"sequence {b} (length {n})")
            assert np.all(y[b, n:] == 0)
        else:
            np.testing.assert_array_equal(y[b], alone, err_msg=f"sequence {b} (length {n})")
        np.testing.assert_array_equal(alone, twin_y, err_msg=f"sequence {b} (length {n}) against the twin")
