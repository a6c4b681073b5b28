"""Streaming behaviour: step equals run at every t, reset, no allocation, threads, memory held."""

import threading

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.runtime import fused
from tests.helpers import bytes_allocated_by_steps, make_model, make_spec, random_inputs, stream_all, write_artifact


@pytest.fixture(scope="module")
def lstm_model(tmp_path_factory):
    spec = make_spec("lstm", layers=2, kind="dense")
    return runtime.load(write_artifact(make_model(spec), tmp_path_factory.mktemp("m") / "m.safetensors"))


def test_stepping_one_sample_at_a_time_equals_the_whole_sequence_output_at_every_t(lstm_model):
    X = random_inputs(lstm_model.spec, 2, 300)
    assert np.array_equal(stream_all(lstm_model.stream(2), X), lstm_model.run(X))


def test_after_reset_a_stream_equals_a_fresh_one(lstm_model):
    X = random_inputs(lstm_model.spec, 1, 200)
    used = lstm_model.stream(1)
    stream_all(used, X[:, :137])
    used.reset()
    assert np.array_equal(stream_all(used, X), stream_all(lstm_model.stream(1), X))


@pytest.mark.parametrize("kind", ["dense", "tokens"])
def test_step_allocates_no_memory_after_the_first_call(kind, tmp_path):
    spec = make_spec("gru", layers=2, kind=kind)
    model = runtime.load(write_artifact(make_model(spec), tmp_path / "m.safetensors"))
    stream = model.stream(2)
    grown = bytes_allocated_by_steps(stream, random_inputs(spec, 2, 1000))
    assert grown == 0, f"step() allocated {grown} bytes over 1000 steps"


def test_independent_streams_in_threads_equal_sequential_streams(lstm_model):
    X = [random_inputs(lstm_model.spec, 1, 400, seed=s) for s in range(4)]
    expected = [stream_all(lstm_model.stream(1), x) for x in X]
    results = [None] * 4

    def work(i):
        results[i] = stream_all(lstm_model.stream(1), X[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        assert np.array_equal(got, want)


def test_memory_held_is_reported_and_is_the_weights_plus_state(lstm_model):
    stream = lstm_model.stream(3)
    assert lstm_model.nbytes >= lstm_model.layout.blob.nbytes > 0
    state_floats = 2 * (12 + 12)  # two LSTM layers of 12 units: h and c
    step = fused.specialised(lstm_model)  # a specialised step's scratch serves all 3 streams at once
    scratch = lstm_model.layout.scratch_size if step is None else max(lstm_model.layout.scratch_size, step.scratch(3))
    assert stream.nbytes == 4 * (3 * state_floats + 3 * 4 + scratch)


def test_a_bidirectional_model_refuses_to_stream_but_runs(tmp_path):
    spec = make_spec("gru", bidirectional=True)
    model = runtime.load(write_artifact(make_model(spec), tmp_path / "m.safetensors"))
    with pytest.raises(ValueError, match="bidirectional.*run"):
        model.stream(1)
    assert model.run(random_inputs(spec, 1, 20)).shape == (1, 20, 4)


@pytest.mark.parametrize("precision", ["f32", "int8w", "int8"])
@pytest.mark.parametrize("kind", ["dense", "tokens"])
def test_inputs_of_any_memory_layout_step_alike_through_the_one_compiled_entry(precision, kind, tmp_path):
    spec = make_spec("gru", layers=2, kind=kind)
    model = runtime.load(write_artifact(make_model(spec), tmp_path / "m.safetensors", precision=precision))
    X = random_inputs(spec, 3, 40)
    streams = [model.stream(3) for _ in range(5)]
    contiguous, strided, readonly, fortran, broadcast = streams
    # every input calls the machine code compiled for x of any layout, never numba's dispatcher (which would
    # compile the step again, for seconds, the first time an x of another layout came)
    assert contiguous._entry is not contiguous._kernel
    compiled = len(contiguous._kernel.overloads)  # the one kernel all five streams call (one model)
    for t in range(X.shape[1]):
        x = np.ascontiguousarray(X[:, t])
        frozen = x.copy()
        frozen.setflags(write=False)
        want = contiguous.step(x).copy()
        assert np.array_equal(strided.step(X[:, t]), want)  # a view with the time axis's strides
        assert np.array_equal(readonly.step(frozen), want)
        if kind == "dense":
            assert np.array_equal(fortran.step(np.asfortranarray(x)), want)
        same = np.broadcast_to(x[:1], x.shape)  # stride 0 between streams: the first stream's input for all three
        got = broadcast.step(same)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], got[0]) and np.array_equal(got[2], got[0])
    assert len(contiguous._kernel.overloads) == compiled  # no other layout compiled anything


@pytest.mark.specialised
@pytest.mark.parametrize("precision", ["f32", "int8w", "int8"])
def test_a_streams_buffer_starts_on_a_cache_line_at_every_batch(precision, tmp_path):
    # the specialised steps place their 16-lane sums (and int8w's converted weight columns, from 8 streams) at
    # multiples of 16 elements of it: on a line each, where numpy's large arrays start 16 bytes past a page
    model = runtime.load(write_artifact(make_model(make_spec("gru")), tmp_path / "m.safetensors", precision))
    X = random_inputs(model.spec, 300, 3)
    for batch in (1, 9, 300):
        stream = model.stream(batch)
        assert stream._buf.ctypes.data % 64 == 0, batch
        assert np.array_equal(stream_all(stream, X[:batch]), model.run(X[:batch])), batch
