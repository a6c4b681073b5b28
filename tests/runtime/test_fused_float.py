"""The f32 / int8w step compiled for the loaded model (runtime/fused_float.py) against the generic kernels.

Every pair of (cell, precision, input kind, depth) values: the specialised step (batch 1 and 3) follows the generic
kernels' outputs within float32 rounding over 200 steps; it refuses bad input before touching the state, allocates nothing
per step, and its generated source is written once. A layer with an ONNX extension (other than a GRU's
linear_before_reset false: test_fused_float_reset_before.py) keeps the generic kernels.
"""

from __future__ import annotations

import re
import sys

import numba
import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.runtime.layout import L_HIDDEN, L_N_IN, L_OFF_WHH, L_OFF_WIH
from tests.helpers import (
    bytes_allocated_by_steps,
    make_model,
    make_spec,
    pairwise_cases,
    random_inputs,
    stream_all,
    write_artifact,
)

pytestmark = pytest.mark.specialised  # the step a user gets (tests/conftest.py)

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
# the two steps sum in other orders (and int8w's specialised step splits [x; h] into two int16 limbs): outputs
# agree to float32 rounding, a few 1e-7, after 200 steps; 1e-5 is the f32 parity budget against PyTorch
TOLERANCE = 1e-5


def _pair(tmp_path, spec, precision, monkeypatch, seed=0):
    """(specialised model, generic model) of one artifact."""
    path = write_artifact(make_model(spec, seed), tmp_path / f"m.{precision}.safetensors", precision)
    fast = runtime.load(path)
    assert fast.kernel_info["step"] == "specialised", fast.kernel_info
    monkeypatch.setenv("RNNEDGE_SPECIALISE", "0")
    slow = runtime.load(path)
    assert slow.kernel_info["step"] == "generic"
    monkeypatch.delenv("RNNEDGE_SPECIALISE")
    return fast, slow


CASES = pairwise_cases()  # every pair of (cell, precision, input kind, depth) values


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_specialised_step_follows_the_generic_kernels_for_200_steps_at_batch_1_and_3(case, tmp_path, monkeypatch):
    cell, precision, kind, layers = case
    spec = make_spec(cell, layers=layers, kind=kind)
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    for batch in (1, 3):
        X = random_inputs(spec, batch, 200, seed=batch)
        got, want = stream_all(fast.stream(batch), X), stream_all(slow.stream(batch), X)
        assert np.abs(got - want).max() <= TOLERANCE
        # run() below 4 sequences: the first layer's input sums of chunks of steps computed ahead
        # (fused_float_run.py), the rest of each step by the step's own code: stepping's numbers, bit for bit
        assert np.array_equal(fast.run(X), got)


@pytest.mark.parametrize("precision", ["f32", "int8w"])
def test_a_stream_gives_the_same_numbers_at_every_batch_and_run_equals_step(precision, tmp_path, monkeypatch):
    # 144 gate rows: nine blocks of 16, so every mat-vec has a group of blocks and a tail; batch 9: two groups of
    # four streams sharing each weight load, and one stream alone (as at batch 1)
    spec = make_spec("lstm", layers=2, hidden=36)
    fast, _ = _pair(tmp_path, spec, precision, monkeypatch)
    X = random_inputs(spec, 9, 60)
    together = stream_all(fast.stream(9), X)
    alone = np.concatenate([stream_all(fast.stream(1), X[b : b + 1]) for b in range(9)])
    assert np.array_equal(together, alone)
    assert np.array_equal(fast.run(X), together)


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize(("cell", "hidden"), [("gru", 20), ("lstm", 30), ("rnn_tanh", 50), ("lstm", 16)])
def test_gate_rows_that_end_inside_a_panel_of_64_columns_follow_the_generic_kernels(cell, hidden, precision, tmp_path,
                                                                                   monkeypatch):
    # f32 (and int8w on FMA8) read W^T in panels of 64 columns: gru 20 (60 gate rows) and rnn 50 end inside the first
    # panel after four blocks of 16, lstm 30 (120) inside the second, lstm 16 (64) on its edge; batch 5: a group of
    # four and one; batch 9: int8w's step for 8 streams and more, converting each panel once for all of them
    spec = make_spec(cell, layers=2, hidden=hidden)
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    X = random_inputs(spec, 9, 40)
    got = stream_all(fast.stream(9), X)
    assert np.abs(got - stream_all(slow.stream(9), X)).max() <= TOLERANCE
    assert np.array_equal(stream_all(fast.stream(5), X[:5]), got[:5])
    X, got = X[:5], got[:5]
    assert np.array_equal(fast.run(X), got)
    assert np.array_equal(fast.run(X[:1]), got[:1])  # run() of one sequence: the first layer projected ahead


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("activation", ["softmax", "log_softmax", "sigmoid", "none"])
def test_head_stacks_and_activations_run_specialised_as_the_generic_kernels_do(activation, precision, tmp_path,
                                                                              monkeypatch):
    spec = make_spec("gru", layers=2, activation=activation,
                     head_hidden=((9, "relu"), (8, "gelu"), (7, "gelu_tanh"), (6, "tanh"), (5, "sigmoid"),
                                  (4, "none")))
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    X = random_inputs(spec, 9, 100)  # 9 streams: int8w on FMA8 converts each group of columns once for them
    got = stream_all(fast.stream(9), X)
    assert np.abs(got - stream_all(slow.stream(9), X)).max() <= TOLERANCE
    assert np.array_equal(got[:2], stream_all(fast.stream(2), X[:2]))  # the same numbers at every batch


@pytest.mark.parametrize("precision", ["f32", "int8w"])
def test_run_with_lengths_and_a_last_step_head_matches_the_generic_kernels(precision, tmp_path, monkeypatch):
    spec = make_spec("lstm", layers=2, on="last_step")
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    X, lengths = random_inputs(spec, 4, 50), np.array([50, 1, 17, 33])
    X[1, 5:] = np.nan  # past its length: never read
    for B in (4, 3):  # 3: run() projects chunks of steps ahead (fused_float_run.py), 4: it steps
        got = fast.run(X[:B], lengths[:B])
        assert np.abs(got - slow.run(np.nan_to_num(X[:B]), lengths[:B])).max() <= TOLERANCE
        for b, n in enumerate(lengths[:B]):
            assert np.array_equal(stream_all(fast.stream(1), X[b : b + 1, :n])[0, -1], got[b])


@pytest.mark.parametrize("precision", ["f32", "int8w"])
def test_bad_input_is_refused_by_the_specialised_step_with_the_state_unchanged(precision, tmp_path):
    for kind, bad in (("dense", np.nan), ("dense", np.inf), ("tokens", 40), ("tokens", -1)):
        spec = make_spec("gru", layers=2, kind=kind)
        model = runtime.load(write_artifact(make_model(spec), tmp_path / f"{kind}.{precision}.safetensors", precision))
        assert model.kernel_info["step"] == "specialised"
        stream = model.stream(2)
        X = random_inputs(spec, 2, 10)
        stream_all(stream, X)
        state, y = stream.state.copy(), stream.y.copy()
        x = np.ascontiguousarray(X[:, 0])
        x[1, ...] = bad
        with pytest.raises(ValueError, match="the state is unchanged"):
            stream.step(x)
        assert np.array_equal(stream.state, state) and np.array_equal(stream.y, y)


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("kind", ["dense", "tokens"])
def test_specialised_step_allocates_no_memory(kind, precision, tmp_path):
    spec = make_spec("lstm", layers=2, kind=kind)
    model = runtime.load(write_artifact(make_model(spec), tmp_path / f"m.{precision}.safetensors", precision))
    assert model.kernel_info["step"] == "specialised"
    # five streams: a group of four on the register-blocked sums and one alone
    grown = bytes_allocated_by_steps(model.stream(5), random_inputs(spec, 5, 500))
    assert grown == 0, f"step() allocated {grown} bytes over 500 steps"


def test_generated_source_is_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNEDGE_CACHE_DIR", str(tmp_path / "cache"))
    spec = make_spec("rnn_relu", layers=1, hidden=11)
    path = write_artifact(make_model(spec, seed=5), tmp_path / "m.safetensors")
    first = runtime.load(path).kernel_info
    written = sorted((tmp_path / "cache").glob("*.py"))
    assert [p.name for p in written] == [first["source"].rsplit("/", 1)[-1]]
    stamp = written[0].stat().st_mtime_ns
    sys.modules.pop(f"rnnedge_generated.{written[0].stem}")  # as a new process: found in the folder, not rewritten
    again = runtime.load(path)
    assert again.kernel_info["source"] == first["source"]
    assert f"rnnedge_generated.{written[0].stem}" in sys.modules
    assert sorted((tmp_path / "cache").glob("*.py")) == written and written[0].stat().st_mtime_ns == stamp


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("hidden", [24, 40])
def test_the_step_reads_its_matrices_in_panels_from_a_cache_line_boundary_in_the_layouts_own_array(hidden, precision,
                                                                                                 tmp_path):
    # gru 24: W_hh^T (24 x 72), one full panel of 64 columns and a tail of 8; 40: (40 x 120), a tail of 56. f32's
    # float32 blob, int8w's int8 qblob (except where its sums are VNNI's limbs: they read pairs of rows in place)
    from rnnedge.runtime import fused
    from rnnedge.runtime.fused_float import half_copy, limb_sums
    from rnnedge.runtime.fused_float_blob import TAIL

    spec = make_spec("gru", layers=2, hidden=hidden)
    model = runtime.load(write_artifact(make_model(spec), tmp_path / f"m.{precision}.safetensors", precision))
    lay = model.layout
    array = (lambda: lay.blob) if precision == "f32" else (lambda: lay.qblob)
    rows = [lay.layers[0], lay.layers[2]]
    mats = {int(r[c]): (int(r[k]), 3 * hidden) for r in rows for c, k in ((L_OFF_WIH, L_N_IN), (L_OFF_WHH, L_HIDDEN))}
    before = array().copy()
    row_major = {off: before[off : off + K * N].reshape(K, N).copy() for off, (K, N) in mats.items()}
    assert model.kernel_info["step"] == "specialised"
    blob = array()
    if precision == "int8w" and limb_sums():
        assert lay.panels == {} and blob is lay.qblob and np.array_equal(blob, before)
        return
    assert (blob.ctypes.data + blob.itemsize * int(rows[0][L_OFF_WHH])) % 64 == 0
    assert lay.panels == mats
    for off, (K, N) in mats.items():
        assert np.array_equal(lay.matrix(off, K, N), row_major[off])  # read back row-major, as the file has it
        first = blob[off : off + K * 64].reshape(K, 64)  # the first panel: columns 0..63, row stride 64
        assert np.array_equal(first, row_major[off][:, :64])
        tail = blob[off + K * 64 : off + K * N].reshape(K, N - 64)  # the last panel at its own width
        assert np.array_equal(tail, row_major[off][:, 64:])
    rest = np.ones(before.size, dtype=bool)
    for off, (K, N) in mats.items():
        rest[off : off + K * N] = False
    assert np.array_equal(blob[: before.size][rest], before[rest])  # nothing else moved
    assert blob.nbytes == before.nbytes + TAIL and not blob[before.size :].any()  # then a tail of zeros
    assert not blob.flags.writeable
    if precision == "int8w" and half_copy():  # its sums read a float16 copy of qblob from the first W_ih^T on
        q0, half = int(rows[0][L_OFF_WIH]), fused.specialised(model).weights[2]
        assert np.array_equal(half.view(np.float16), blob[q0:]) and not half.flags.writeable
        assert (half.ctypes.data + 2 * (int(rows[0][L_OFF_WHH]) - q0)) % 64 == 0
        assert model.nbytes == model.layout.nbytes + half.nbytes
    else:
        assert model.nbytes == model.layout.nbytes  # the step reads that array, not a second copy


@pytest.mark.parametrize("at", [0, 16, 32, 48])
def test_the_f32_steps_weights_stay_read_only_wherever_the_blob_was_allocated(at, tmp_path):
    # numba compiles (and caches) a read-only array apart from a writable one: a moved blob that became writable
    # made the step compiled by `rnnedge compile` miss in a process whose blob had to move
    spec = make_spec("gru", layers=1, hidden=24)
    model = runtime.load(write_artifact(make_model(spec), tmp_path / "m.safetensors"))
    assert not model.layout.blob.flags.writeable
    from rnnedge.runtime.fused_float_blob import placed  # after load: it imports through runtime.fused

    placed = placed(model.layout.blob, at)
    assert not placed.flags.writeable and placed.ctypes.data % 64 == at
    assert numba.typeof(placed) == numba.typeof(model.layout.blob)
    assert model.kernel_info["step"] == "specialised" and not model.layout.blob.flags.writeable  # moved or not


@pytest.mark.parametrize("wide", [True, False])
@pytest.mark.parametrize("streams", [1, 2, 3, 4])
@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_the_register_tiles_cover_every_sum_once_and_fit_the_registers(streams, count, wide):
    from rnnedge.runtime.fused_float_fma import tiles

    passes = tiles(streams, count, wide)
    sums = [(s, u) for ss, us in passes for s in ss for u in us]
    assert sorted(sums) == [(s, u) for s in range(streams) for u in range(count)]  # each sum in exactly one pass
    if not wide:  # 16 ymm registers: at most four 16-lane sums (8 registers) per pass, beside weights and inputs
        assert all(len(ss) * len(us) <= 4 for ss, us in passes)
        if streams > 1:  # every weight vector loaded once per pass serves all the streams
            assert all(len(ss) == streams for ss, _ in passes)


def _same_sums(buf, started, streams, count) -> None:
    """Each stream's 16 count sums (at 3 + 80 s in the tests' buffers) equal, bit for bit."""
    for s in range(streams):
        at = slice(3 + 80 * s, 3 + 80 * s + 16 * count)
        assert np.array_equal(buf[at], started[at])


@pytest.mark.parametrize("streams", [1, 4])
@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_sums_started_in_registers_equal_sums_started_from_the_buffer_bit_for_bit(streams, count):
    """FMA_BIAS (f32's b + W v) and FMA8_ZERO (int8w's W v) start each chain from b or 0 in registers; the step used to
    write b (or 0) into every stream's sums first and start FMA / FMA8 from there. The chains are the same."""
    from rnnedge.runtime.fused_float_fma import FMA, FMA8, FMA8_ZERO, FMA_BIAS

    from_buf, from_bias = FMA[streams, count], FMA_BIAS[streams, count]
    from_buf8, from_zero = FMA8[streams, count], FMA8_ZERO[streams, count]

    @numba.njit
    def run(buf, started, w, bias):
        from_buf(buf, 3, 80, w, 5, 70, 400, 37, 37)
        from_bias(started, 3, 80, w, 5, 70, 400, 37, 37, bias, 2)

    @numba.njit
    def run8(buf, started, q):
        from_buf8(buf, 3, 80, q, 5, 70, 400, 37, 37)
        from_zero(started, 3, 80, q, 5, 70, 400, 37, 37)

    rng = np.random.default_rng(streams * 10 + count)
    w = rng.standard_normal(5 + 36 * 70 + 64 + 16).astype(np.float32)  # W^T (37, 70) at 5, row stride 70
    q = rng.integers(-127, 128, w.size).astype(np.int8)
    bias = rng.standard_normal(2 + 64).astype(np.float32)
    base = rng.standard_normal(400 + 37 * streams).astype(np.float32)  # inputs at 400, 37 apart
    for s in range(streams):  # the sums' start in the buffer: b where FMA_BIAS reads it from registers
        base[3 + 80 * s: 3 + 80 * s + 16 * count] = bias[2:2 + 16 * count]
    buf, started = base.copy(), base.copy()
    started[3:400] = np.nan  # nothing FMA_BIAS leaves unwritten is read
    run(buf, started, w, bias)
    _same_sums(buf, started, streams, count)
    buf, started = base.copy(), base.copy()
    for s in range(streams):
        buf[3 + 80 * s: 3 + 80 * s + 16 * count] = 0.0
    started[3:400] = np.nan
    run8(buf, started, q)
    _same_sums(buf, started, streams, count)


@pytest.mark.parametrize("streams", [1, 4])
@pytest.mark.parametrize("count", [1, 3, 4])
def test_int8w_sums_stored_scaled_equal_the_scale_applied_after_bit_for_bit(streams, count):
    """FMA8_SCALED stores each finished sum as b + s * sum (int8w's row scale and bias) from registers; the cell
    update used to form that from FMA8_ZERO's sum, `w[b + j] + w[s + j] * av[j]` under the kernels' fast-math (one
    fused multiply-add): the same numbers, on int8 weights and on a float32 copy of them (run()'s)."""
    from rnnedge.runtime.fused_float_fma import FMA8_SCALED, FMA8_ZERO
    from rnnedge.runtime.jit import fast_kernel

    from_zero, scaled = FMA8_ZERO[streams, count], FMA8_SCALED[streams, count]

    @fast_kernel
    def after(buf, sb, n):  # the update's former expression, per sum
        for s in range(streams):
            a = buf[3 + 80 * s:]
            for j in range(n):
                a[j] = sb[9 + j] + sb[90 + j] * a[j]

    @numba.njit
    def run(buf, started, q, sb):
        from_zero(buf, 3, 80, q, 5, 70, 400, 37, 37)
        after(buf, sb, 16 * count)
        scaled(started, 3, 80, q, 5, 70, 400, 37, 37, sb, 90, 9)

    rng = np.random.default_rng(streams * 10 + count)
    q = rng.integers(-127, 128, 5 + 36 * 70 + 64 + 16).astype(np.int8)
    sb = np.concatenate([rng.standard_normal(90), rng.uniform(1e-4, 1e-2, 80)]).astype(np.float32)  # b at 9, s at 90
    base = rng.standard_normal(400 + 37 * streams).astype(np.float32)
    for weights in (q, q.astype(np.float32)):  # int8 converted as loaded, or the float32 copy (exact)
        buf, started = base.copy(), base.copy()
        started[3:400] = np.nan  # nothing FMA8_SCALED leaves unwritten is read
        run(buf, started, weights, sb)
        _same_sums(buf, started, streams, count)


@pytest.mark.parametrize("streams", [1, 4])
@pytest.mark.parametrize("count", [1, 3, 4])
def test_fma8_sums_int8_weights_their_float16_bits_and_their_float32_copy_alike_bit_for_bit(streams, count):
    """FMA8 converts int8 weights as it loads them, widens float16 bits held in a uint16 array (int8w's step and
    run() where the CPU has F16C: fused_float.half_copy) and loads float32 as they are (run()'s copy on Zen 1):
    one set of values, exactly, so the same sums, from the buffer and stored scaled."""
    from rnnedge.runtime.fused_float_fma import FMA8, FMA8_SCALED, weight_kind

    plain, scaled = FMA8[streams, count], FMA8_SCALED[streams, count]

    @numba.njit
    def run(buf, scaled_buf, q, sb):
        plain(buf, 3, 80, q, 5, 70, 400, 37, 37)
        scaled(scaled_buf, 3, 80, q, 5, 70, 400, 37, 37, sb, 90, 9)

    rng = np.random.default_rng(streams * 10 + count)
    q = rng.integers(-128, 128, 5 + 36 * 70 + 64 + 16).astype(np.int8)  # every int8 value, -128 too
    q[5:20] = [-128, 127, -127, 1, -1, 0, 64, -64, 100, -100, 3, -3, 127, -128, 2]
    sb = np.concatenate([rng.standard_normal(90), rng.uniform(1e-4, 1e-2, 80)]).astype(np.float32)
    base = rng.standard_normal(400 + 37 * streams).astype(np.float32)
    kinds, sums = [], []
    for weights in (q, q.astype(np.float16).view(np.uint16), q.astype(np.float32)):
        buf, scaled_buf = base.copy(), base.copy()
        scaled_buf[3:400] = np.nan  # nothing FMA8_SCALED leaves unwritten is read
        run(buf, scaled_buf, weights, sb)
        kinds.append(weight_kind(numba.typeof(weights).dtype))
        sums.append((buf, scaled_buf))
    assert kinds == ["int8", "half", "float32"]
    for s in range(streams):  # the sums themselves: W^T (37, 70) at 5, inputs at 400 + 37 s, added to buf's start
        W, v = q[5:5 + 37 * 70].reshape(37, 70).astype(np.float64), base[400 + 37 * s:437 + 37 * s].astype(np.float64)
        at = slice(3 + 80 * s, 3 + 80 * s + min(16 * count, 70))
        want = base[at] + (v @ W)[:at.stop - at.start]
        np.testing.assert_allclose(sums[0][0][at], want, rtol=1e-4, atol=1e-3)
    for buf, scaled_buf in sums[1:]:
        _same_sums(buf, sums[0][0], streams, count)
        _same_sums(scaled_buf, sums[0][1], streams, count)


@pytest.mark.parametrize("kind", ["dense", "tokens"])
def test_int8w_steps_and_runs_the_same_numbers_from_its_float16_copy_as_from_its_int8_weights(kind, tmp_path,
                                                                                            monkeypatch):
    # the step's sums read qw: a float16 copy of qblob from the first layer's W_ih^T on where the CPU has F16C, else
    # that part of qblob itself (a token model's embedding table comes before it; on AVX512-VNNI the sums without the
    # copy are VNNI's limbs, which read qblob in place: FMA8 on the int8 weights is compared here on every CPU)
    from rnnedge.runtime import fused, fused_float, fused_float_fma, fused_float_vnni

    spec = make_spec("lstm", layers=2, hidden=20, kind=kind, vocab=300)
    path = write_artifact(make_model(spec), tmp_path / "m.int8w.safetensors", "int8w")
    monkeypatch.setattr(fused_float_vnni, "KERNEL", "fma")
    got = {}
    for half in (True, False):
        monkeypatch.setattr(fused_float, "half_copy", lambda half=half: half)
        model = runtime.load(path)
        qw = fused.specialised(model).weights[2]
        q0 = int(model.layout.layers[0][L_OFF_WIH])
        assert (q0 > 0) == (kind == "tokens")
        if half:
            assert qw.dtype == np.uint16 and np.array_equal(qw.view(np.float16), model.layout.qblob[q0:])
            assert "float16 copy" in model.kernel_info["matvec"] and "float16 copy" in model.kernel_info["run"]
            # AVX-512: one stream's sums widen 8 weights at a time (fused_float_fma: the same chains, the same sums)
            assert ("8-lane halves" in model.kernel_info["matvec"]) == fused_float_fma.WIDE
            assert model.nbytes == model.layout.nbytes + qw.nbytes
        else:
            assert qw.dtype == np.int8 and qw.size == model.layout.qblob.size - q0
            assert np.shares_memory(qw, model.layout.qblob) and model.nbytes == model.layout.nbytes  # a view
            assert "float16" not in model.kernel_info["matvec"]
        X = random_inputs(spec, 9, 30, seed=3)
        got[half] = [stream_all(model.stream(b), X[:b]) for b in (1, 5, 9)] + [model.run(X[:2]), model.run(X[:5])]
    for a, b in zip(got[True], got[False]):
        np.testing.assert_array_equal(a, b)


def test_rnnedge_int8w_float16_0_keeps_int8w_weights_int8_in_memory(tmp_path, monkeypatch):
    from rnnedge.runtime import fused, fused_float_vnni

    spec = make_spec("gru", layers=1, hidden=20)
    path = write_artifact(make_model(spec), tmp_path / "m.int8w.safetensors", "int8w")
    monkeypatch.setenv("RNNEDGE_INT8W_FLOAT16", "0")
    model = runtime.load(path)
    weights = fused.specialised(model).weights
    if fused_float_vnni.KERNEL == "avx512_vnni":  # VNNI's limbs read the int8 weights in place
        assert weights == (model.layout.qblob, model.layout.blob)
        assert model.kernel_info["matvec"].startswith("avx512_vnni: [x] and [h] as two int16 limbs")
    else:  # FMA8 converts them as loaded
        assert weights[2].dtype == np.int8 and np.shares_memory(weights[2], model.layout.qblob)
    assert model.nbytes == model.layout.nbytes and "float16" not in model.kernel_info["matvec"]


def _layer_texts(layer, cell: str, precision: str, tmp_path) -> list[str]:
    """The source `layer` (fused_float_source's _layer_f32 / _layer_int8w_fma) writes for a small model's first
    layer, with its weights' true size and with a size of 0 (every block would read past them)."""
    from rnnedge.runtime.fused_float_source import Lines

    path = tmp_path / f"m.{precision}.safetensors"
    model = runtime.load(write_artifact(make_model(make_spec(cell, hidden=20)), path, precision))
    texts = []
    for w_size in (model.layout.blob.size, 0):
        out = Lines()
        layer(out, model.layout.layers[0], "V", 3, 40, 160, w_size=w_size)
        texts.append("\n".join(out.lines))
    return texts


def test_int8w_sums_are_stored_scaled_unless_the_scales_blocks_would_read_past_the_weights(tmp_path):
    from rnnedge.runtime.fused_float_step import layer_int8w_fma

    texts = _layer_texts(layer_int8w_fma, "gru", "int8w", tmp_path)
    scaled_in_update = re.compile(r"w\[\d+ \+ j\] \* av\[")  # b + s * sum formed by the cell update
    assert "fma8s_" in texts[0] and "fma8z_" not in texts[0] and not scaled_in_update.search(texts[0])
    assert "fma8s_" not in texts[1] and "fma8z_" in texts[1] and scaled_in_update.search(texts[1])


def test_the_f32_sums_start_from_the_bias_in_registers_unless_its_blocks_would_read_past_the_weights(tmp_path):
    from rnnedge.runtime.fused_float_step import layer_f32

    texts = _layer_texts(layer_f32, "lstm", "f32", tmp_path)
    assert "fmab_" in texts[0] and "= bv[i]" not in texts[0]
    assert "fmab_" not in texts[1] and texts[1].count("= bv[i]") == 2  # b_ih and b_hh copied, then FMA from buf


@pytest.mark.parametrize("copy", [False, True])
def test_int8w_run_sums_the_int8_weights_or_a_float32_copy_made_per_run_and_equals_stepping_either_way(
        tmp_path, monkeypatch, copy):
    from rnnedge.runtime import fused, fused_float
    from rnnedge.runtime.fused_float_source import qw_start

    monkeypatch.setattr(fused_float, "float_copy", lambda: copy)
    spec = make_spec("gru", layers=2, hidden=20)
    fast, _ = _pair(tmp_path, spec, "int8w", monkeypatch)
    lay = fast.layout
    step, rows = fused.specialised(fast), [lay.layers[0], lay.layers[2]]
    made = fused_float._run_weights(lay, rows, step.weights, True)
    first, second = made(), made()
    if fused_float.limb_sums():  # the limb sums read the int8 weights in run() too
        assert first == (lay.qblob, lay.blob)
        return
    assert first[:2] == (lay.qblob, lay.blob)
    part = lay.qblob[qw_start(rows):]  # from the first layer's W_ih^T on
    if copy:
        assert first[2].dtype == np.float32 and np.array_equal(first[2], part.astype(np.float64))  # exact
        assert first[2] is not second[2] and lay.qblob.dtype == np.int8  # per run(); the model keeps int8 only
    else:  # the step's own qw, as the step reads it
        assert first[2] is step.weights[2] and second[2] is step.weights[2]
    assert ("float32 copy" in fast.kernel_info["run"]) == copy
    for batch in (1, 3, 5):  # projected ahead below four sequences; stepped from four
        X = random_inputs(spec, batch, 23, seed=batch)
        np.testing.assert_array_equal(fast.run(X), stream_all(fast.stream(batch), X), err_msg=f"B={batch}")


def test_int8w_on_fma8_compiles_its_wide_step_only_for_a_stream_that_runs_it(tmp_path, monkeypatch):
    # from 16 streams where the sums read the float16 copy (converting it as loaded is cheap), else from 8
    from rnnedge.runtime import fused, fused_float

    spec = make_spec("gru", layers=1, hidden=21)  # a shape of its own: its module is loaded by this test only
    fast, _ = _pair(tmp_path, spec, "int8w", monkeypatch)
    step = fused.specialised(fast)
    if fused_float.limb_sums():  # one step at every batch there
        assert step.wide is None
        return
    wide = step.wide[0]
    assert wide == (16 if fused_float.half_copy() else 8) and f"from {wide} streams" in fast.kernel_info["matvec"]
    X = random_inputs(spec, wide, 30)
    fewer = stream_all(fast.stream(wide - 1), X[:-1])
    assert step.wide[1].signatures == []  # a stream of fewer never compiles it (empty-cache start)
    many = fast.stream(wide)
    assert many._kernel is step.wide[1] and step.kernel_for(wide - 1) is step.kernel
    assert np.array_equal(stream_all(many, X)[:-1], fewer)  # the same numbers
