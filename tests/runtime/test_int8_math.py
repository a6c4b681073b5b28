"""int8 fixed-point primitives: each numba kernel equals a plain NumPy twin bit for bit on large random inputs and
the edge cases, and each is within its documented error of the real-valued function."""

import math

import numpy as np
import pytest

from rnnedge.runtime.int8_math import (
    CELL_POWER_MAX,
    CELL_POWER_MIN,
    INT32_MAX,
    INT32_MIN,
    SIGMOID_TABLE_Q16,
    clamp_int8,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_right,
    quantize_multiplier,
    rounding_divide_by_pot,
    sat16,
    saturating_rounding_doubling_high_mul,
    sigmoid_q15,
    tanh_of_cell_q15,
    tanh_q15,
)
from rnnedge.runtime.jit import kernel

N = 1_000_000
ALL_INT16 = np.arange(-(2**15), 2**15, dtype=np.int64)
SIGMOID_ERROR = 5e-5  # max |sigmoid_q15(x) / 2^15 - sigmoid(x / 2^12)| over all int16 x, measured 3.9e-5
TANH_ERROR = 1e-4  # the same for tanh, measured 6.3e-5


# -- the kernels over arrays (numba loops, so a million calls take milliseconds) ----------------------------
@kernel
def _srdhm_all(out, a, b):
    for i in range(a.shape[0]):
        out[i] = saturating_rounding_doubling_high_mul(a[i], b[i])


@kernel
def _rdbpot_all(out, x, e):
    for i in range(x.shape[0]):
        out[i] = rounding_divide_by_pot(x[i], e[i])


@kernel
def _mbqm_all(out, x, M, S):
    for i in range(x.shape[0]):
        out[i] = multiply_by_quantized_multiplier(x[i], M[i], S[i])


@kernel
def _mbqm_right_all(out, x, M, S):
    for i in range(x.shape[0]):
        out[i] = multiply_by_quantized_multiplier_right(x[i], M[i], S[i])


@kernel
def _clamps_all(out16, out8, x):
    for i in range(x.shape[0]):
        out16[i] = sat16(x[i])
        out8[i] = clamp_int8(x[i])


@kernel
def _activations_all(sig, tanh, x):
    for i in range(x.shape[0]):
        sig[i] = sigmoid_q15(x[i])
        tanh[i] = tanh_q15(x[i])


@kernel
def _tanh_of_cell_all(out, c, p):
    for i in range(c.shape[0]):
        out[i] = tanh_of_cell_q15(c[i], p)


def _run(fn, n, *args):
    out = np.zeros(n, dtype=np.int64)
    fn(out, *args)
    return out


# -- plain NumPy twins: int64 arrays, written from the definitions, not from the kernels ---------------------
def srdhm_twin(a, b):
    """floor((a*b + 2^30) / 2^31): round to nearest, ties up; the one overflow saturates."""
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, (a * b + 2**30) >> 31)


def rdbpot_twin(x, e):
    """sign(x) * floor((|x| + 2^e / 2) / 2^e): round to nearest, ties away from zero."""
    half = (np.int64(1) << e) >> 1
    return np.sign(x) * ((np.abs(x) + half) >> e)


def mbqm_twin(x, M, S):
    shifted = np.clip(x << np.maximum(S, 0), INT32_MIN, INT32_MAX)
    return rdbpot_twin(srdhm_twin(shifted, M), np.maximum(-S, 0))


def sigmoid_twin(x):
    a = np.abs(3 * x)
    u = np.minimum(a >> 9, 254)
    lo, hi = SIGMOID_TABLE_Q16[u], SIGMOID_TABLE_Q16[u + 1]
    r = np.where(a >> 9 >= 255, 0x7FFF << 10, lo * 512 + (a % 512) * (hi - lo))
    return np.where(x >= 0, (r + 512) // 1024, (2**25 - r + 511) // 1024)


def tanh_twin(x):
    a = np.abs(3 * x)
    u = np.minimum(a >> 8, 254)
    lo, hi = SIGMOID_TABLE_Q16[u], SIGMOID_TABLE_Q16[u + 1]
    r = np.where(a >> 8 >= 255, 0xFFFF << 8, lo * 256 + (a % 256) * (hi - lo))
    return np.where(x >= 0, (r - 2**23 + 128) // 256, (-r + 2**23 + 127) // 256)


def tanh_of_cell_twin(c, p):
    e = p + 12
    q312 = np.clip(c << e, -(2**15), 2**15 - 1) if e >= 0 else rdbpot_twin(c, np.full_like(c, -e))
    return tanh_twin(q312)


def _assert_equal(actual, expected, *inputs):
    """Bit for bit; on failure, print the first mismatches with their inputs."""
    bad = np.flatnonzero(actual != expected)
    for i in bad[:10]:
        print(f"ERROR at pos {i}: inputs {[int(v[i]) for v in inputs]} Act: {actual[i]} Ref: {expected[i]}")
    assert bad.size == 0, f"{bad.size} mismatches"


def _int32(rng, n):
    return rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True, dtype=np.int64)


# -- saturating_rounding_doubling_high_mul -------------------------------------------------------------------
def _srdhm_edges():
    special = np.array([INT32_MIN, INT32_MIN + 1, -(2**30), -2, -1, 0, 1, 2, 2**30, INT32_MAX], dtype=np.int64)
    a, b = (v.ravel() for v in np.meshgrid(special, special))
    odd = np.arange(-(2**15) + 1, 2**15, 2, dtype=np.int64)  # (odd * 2^15) * 2^15 = odd * 2^30: every tie
    return np.concatenate([a, odd << 15, -odd << 15]), np.concatenate([b, np.full(2 * odd.size, 2**15)])


def test_srdhm_equals_twin_bit_exact_on_random_and_edge_inputs():
    rng = np.random.default_rng(0)
    ea, eb = _srdhm_edges()
    a = np.concatenate([_int32(rng, N), ea])
    b = np.concatenate([_int32(rng, N), eb])
    _assert_equal(_run(_srdhm_all, a.size, a, b), srdhm_twin(a, b), a, b)
    assert saturating_rounding_doubling_high_mul(INT32_MIN, INT32_MIN) == INT32_MAX
    assert saturating_rounding_doubling_high_mul(3 << 15, 1 << 15) == 2  # 1.5 -> 2
    assert saturating_rounding_doubling_high_mul(-3 << 15, 1 << 15) == -1  # -1.5 -> -1: ties go up


def test_srdhm_is_the_nearest_integer_to_the_exact_product():
    rng = np.random.default_rng(1)
    a, b = _int32(rng, N), _int32(rng, N)
    r = _run(_srdhm_all, N, a, b)
    assert np.all(np.abs(r * 2**31 - a * b) <= 2**30)  # exact in int64: |r - ab/2^31| <= 1/2


# -- rounding_divide_by_pot ---------------------------------------------------------------------------------
def test_rdbpot_equals_twin_bit_exact_for_every_exponent_0_to_31():
    rng = np.random.default_rng(2)
    e = rng.integers(0, 31, N, endpoint=True, dtype=np.int64)
    x = _int32(rng, N)
    ties = (2 * rng.integers(-(2**20), 2**20, N, dtype=np.int64) + 1) << np.maximum(e - 1, 0)  # exactly half-way
    fits = (ties >= INT32_MIN) & (ties <= INT32_MAX)
    special = np.array([INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX], dtype=np.int64)
    se, sx = (v.ravel() for v in np.meshgrid(np.arange(32, dtype=np.int64), special))
    x, e = np.concatenate([x, ties[fits], sx]), np.concatenate([e, e[fits], se])
    _assert_equal(_run(_rdbpot_all, x.size, x, e), rdbpot_twin(x, e), x, e)
    assert rounding_divide_by_pot(-3, 1) == -2 and rounding_divide_by_pot(3, 1) == 2  # ties away from zero
    assert rounding_divide_by_pot(INT32_MIN, 31) == -1 and rounding_divide_by_pot(INT32_MAX, 31) == 1
    assert rounding_divide_by_pot(-(2**30), 31) == -1 and rounding_divide_by_pot(-(2**30) + 1, 31) == 0


# -- quantize_multiplier and multiply_by_quantized_multiplier -------------------------------------------------
def test_quantize_multiplier_range_and_error():
    rng = np.random.default_rng(3)
    for m in np.exp2(rng.uniform(-31.9, 29.9, 10_000)):
        M, S = quantize_multiplier(float(m))
        assert 2**30 <= M < 2**31 and -31 <= S <= 30
        assert abs(M * 2.0 ** (S - 31) - m) <= m * 2.0**-31
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0**-33) == (0, 0)  # below the range: flushed to zero
    assert quantize_multiplier(1.0) == (2**30, 1)
    assert quantize_multiplier(0.5) == (2**30, 0)
    assert quantize_multiplier(1.0 - 2.0**-40) == (2**30, 1)  # M rounds to 2^31: halved
    for bad in (-1.0, 2.0**30, math.inf, math.nan):
        with pytest.raises(ValueError):
            quantize_multiplier(bad)


def _random_multipliers(rng, n, low, high):
    qm = [quantize_multiplier(float(m)) for m in np.exp2(rng.uniform(low, high, n))]
    return np.array([q[0] for q in qm], dtype=np.int64), np.array([q[1] for q in qm], dtype=np.int64)


def test_mbqm_equals_twin_bit_exact_including_left_shift_saturation():
    rng = np.random.default_rng(4)
    M, S = _random_multipliers(rng, 2000, -31.9, 29.9)
    M, S = np.tile(M, N // 2000), np.tile(S, N // 2000)
    x = _int32(rng, N)
    x[::7] >>= rng.integers(0, 31, x[::7].size)  # small x too, so positive shifts do not always saturate
    x[:6] = [INT32_MIN, INT32_MIN, INT32_MAX, -1, 0, 1]
    M[:6], S[:6] = [INT32_MAX, 2**30, INT32_MAX, 2**30, INT32_MAX, 2**30], [0, 30, 30, -31, 5, -31]
    _assert_equal(_run(_mbqm_all, N, x, M, S), mbqm_twin(x, M, S), x, M, S)


def test_mbqm_without_left_shift_equals_the_twin_for_every_shift_up_to_zero():
    rng = np.random.default_rng(5)
    M, S = _random_multipliers(rng, 2000, -31.9, -0.1)
    M, S = np.tile(M, N // 2000), np.tile(S, N // 2000)
    x = _int32(rng, N)
    x[::7] >>= rng.integers(0, 31, x[::7].size)
    x[:6] = [INT32_MIN, INT32_MIN, INT32_MAX, -1, 0, 1]
    M[:6], S[:6] = [INT32_MAX, 2**30, INT32_MAX, 2**30, 0, 2**30], [0, 0, -31, -31, 0, -1]
    assert S.max() <= 0
    _assert_equal(_run(_mbqm_right_all, N, x, M, S), mbqm_twin(x, M, S), x, M, S)


def test_mbqm_is_within_one_of_the_real_product():
    rng = np.random.default_rng(5)
    m = np.exp2(rng.uniform(-31.9, 15.9, N // 100)).repeat(100)
    qm = {mi: quantize_multiplier(float(mi)) for mi in np.unique(m)}
    M = np.array([qm[mi][0] for mi in m], dtype=np.int64)
    S = np.array([qm[mi][1] for mi in m], dtype=np.int64)
    limit = (2**31 >> np.maximum(S, 0)) - 1  # x * 2^max(S,0) stays in int32: no saturation
    x = np.round(rng.uniform(-1, 1, N) * limit).astype(np.int64)
    err = np.abs(_run(_mbqm_all, N, x, M, S) - x * m)
    assert err.max() <= 1.0 + 1e-9


# -- sat16, clamp_int8 ----------------------------------------------------------------------------------------
def test_sat16_and_clamp_int8_equal_np_clip():
    rng = np.random.default_rng(6)
    x = np.concatenate([_int32(rng, N), np.arange(-40000, 40000, dtype=np.int64), [INT32_MIN, INT32_MAX]])
    out16, out8 = np.zeros(x.size, dtype=np.int64), np.zeros(x.size, dtype=np.int64)
    _clamps_all(out16, out8, x)
    _assert_equal(out16, np.clip(x, -32768, 32767), x)
    _assert_equal(out8, np.clip(x, -128, 127), x)


# -- gate activations -----------------------------------------------------------------------------------------
def _activations():
    sig, tanh = np.zeros(ALL_INT16.size, dtype=np.int64), np.zeros(ALL_INT16.size, dtype=np.int64)
    _activations_all(sig, tanh, ALL_INT16)
    return sig, tanh


def test_sigmoid_and_tanh_equal_twin_bit_exact_on_every_int16_input():
    sig, tanh = _activations()
    _assert_equal(sig, sigmoid_twin(ALL_INT16), ALL_INT16)
    _assert_equal(tanh, tanh_twin(ALL_INT16), ALL_INT16)


def test_sigmoid_and_tanh_are_within_their_bound_of_the_real_functions_and_monotonic():
    sig, tanh = _activations()
    x = ALL_INT16 / 2.0**12
    sig_err = np.abs(sig / 2.0**15 - 1.0 / (1.0 + np.exp(-x))).max()
    tanh_err = np.abs(tanh / 2.0**15 - np.tanh(x)).max()
    print(f"max abs error: sigmoid {sig_err:.3g}, tanh {tanh_err:.3g}")
    assert sig_err <= SIGMOID_ERROR and tanh_err <= TANH_ERROR
    assert np.all(np.diff(sig) >= 0) and np.all(np.diff(tanh) >= 0)
    assert sig.min() >= 0 and sig.max() <= 32767 and tanh.min() >= -32767 and tanh.max() <= 32767
    assert sigmoid_q15(0) == 16384 and tanh_q15(0) == 0


def test_sigmoid_table_is_unsigned_q16_and_monotonic():
    assert SIGMOID_TABLE_Q16.shape == (256,) and SIGMOID_TABLE_Q16[0] == 32768 and SIGMOID_TABLE_Q16[-1] <= 65535
    assert np.all(np.diff(SIGMOID_TABLE_Q16) >= 0)


# -- tanh of the cell state -----------------------------------------------------------------------------------
def test_tanh_of_cell_equals_twin_and_the_real_tanh_for_every_scale():
    for p in range(CELL_POWER_MIN, CELL_POWER_MAX + 1):
        out = _run(_tanh_of_cell_all, ALL_INT16.size, ALL_INT16, p)
        _assert_equal(out, tanh_of_cell_twin(ALL_INT16, p), ALL_INT16)
        rounding = 2.0**-13 if p < -12 else 0.0  # Q(p) finer than Q3.12: the input rounds by half an LSB
        err = np.abs(out / 2.0**15 - np.tanh(ALL_INT16 * 2.0**p)).max()
        assert err <= TANH_ERROR + rounding, (p, err)
    assert np.array_equal(_run(_tanh_of_cell_all, ALL_INT16.size, ALL_INT16, -12), tanh_twin(ALL_INT16))
