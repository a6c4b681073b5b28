"""Fixed-point primitives of the `int8` precision (docs/int8.md), one scalar kernel each.

Every kernel works on integers only: arguments are widened to int64 on entry, every intermediate fits int64,
and each result is narrowed explicitly (np.int32 / np.int16 / np.int8). No float operation appears in a
kernel; float is used on the host only, by `quantize_multiplier` and to build the sigmoid table at import.
Shifts of negative numbers are arithmetic (floor), as in numba, NumPy and every C compiler we target.

Requantisation (gemmlowp / TFLM, "double rounding"):

- quantize_multiplier(m) = (M, S) with m ~ M * 2^(S-31), M in [2^30, 2^31) (or (0, 0)).
- saturating_rounding_doubling_high_mul(a, b) = floor((a*b + 2^30) / 2^31), i.e. round(a*b / 2^31) with ties
  toward +infinity, and INT32_MAX for INT32_MIN * INT32_MIN (the one overflow).
- rounding_divide_by_pot(x, e) = round(x / 2^e), ties away from zero, 0 <= e <= 31; x int32, or any int64 whose
  quotient fits int32 (a GRU's r * yh_n, |.| < 2^46, kernels_int8).
- multiply_by_quantized_multiplier(x, M, S) = RDBPOT(SRDHM(x * 2^max(S,0), M), max(-S,0)); the product
  x * 2^max(S,0) saturates to int32 (TFLM leaves its overflow undefined; where it is defined they agree).
  |result - x*m| <= 1 for every int32 x (two roundings of at most 1/2 each, plus |x| * 2^-32 from M).

Gate activations, Q3.12 int16 in, Q0.15 int16 out: TFLM's int16 Logistic / Tanh with input multiplier 3,
left shift 0. TABLE[k] = min(65535, round(65536 * sigmoid(k / 24))), k = 0..255 (unsigned Q0.16; k/24 is
the real input at index k). With a = |3x|:

    sigmoid: u = a >> 9, t = a & 511; r = 0x7FFF << 10 if u >= 255 else (TABLE[u] << 9) + t * (TABLE[u+1] - TABLE[u])
             y = (r + 2^9) >> 10 if x >= 0 else (2^25 - r + 2^9 - 1) >> 10
    tanh:    u = a >> 8, t = a & 255; r = 0xFFFF << 8 if u >= 255 else (TABLE[u] << 8) + t * (TABLE[u+1] - TABLE[u])
             y = (r - 2^23 + 2^7) >> 8 if x >= 0 else (-r + 2^23 + 2^7 - 1) >> 8

(tanh(x) = 2 sigmoid(2x) - 1, so tanh reads the same table at twice the resolution). Over all 65536 inputs
the error against the real function is below 5e-5 (sigmoid) and 1e-4 (tanh), in real units; see the tests.
The table is built from the formula above, not copied from TFLM (whose entries were tuned by about one count),
so outputs may differ from TFLM's by an LSB or so where the tables differ.

GELU, Q3.12 int16 in and out (hidden head layers; both spec names, "gelu" and "gelu_tanh"): gelu_tanh is exactly
x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3), since 0.5 (1 + tanh(u)) = sigmoid(2u); the exact erf form
differs from it by less than 1e-3 everywhere, far below int8's error, so "gelu" computes the same integers. With
GELU_C = round(0.044715 * 2^20) = 46887, GELU_K = round(2 sqrt(2/pi) * 2^20) = 1673285 and R(a, e) = (a + 2^(e-1)) >> e
(round half up, on int64):

    inner = x + R(GELU_C * x^3, 44)         (Q3.12 of x + 0.044715 x^3; |GELU_C x^3| < 2^61, |inner| < 2^17)
    s     = sigmoid_q15(sat16(R(GELU_K * inner, 20)))        (2u in Q3.12, saturated: sigmoid is flat past +-8)
    y     = R(x * s, 15)                    (Q3.12, |y| <= 32767: s <= 32767 < 2^15)

Pre-activations past +-8 saturate in Q3.12, the price of sharing the gates' format. Over all 65536 inputs
|y - gelu_tanh(x)| < 3e-3 in real units, nearly all of it where 2u saturates (|x| > 3.6): sigmoid(8) = 1 - 3.4e-4
leaves y = 0.99966 x there (and -3.4e-4 |x| for x < -3.6); below 2e-4 for |x| < 2 (tests/runtime/test_int8_heads.py).

Cell tanh: c int16 with real value c * 2^p is brought to Q3.12 by e = p + 12: c << e saturated to int16 when
e >= 0 (exact until it saturates, where |real| >= 8 and tanh is already saturated), RDBPOT(c, -e) when e < 0.
Supported: -27 <= p <= 3.
"""

import math

import numpy as np

from rnnedge.runtime.jit import int_inline

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
INT8_MIN, INT8_MAX = -(2**7), 2**7 - 1
SHIFT_MIN, SHIFT_MAX = -31, 30  # the exponent S of quantize_multiplier
CELL_POWER_MIN, CELL_POWER_MAX = -27, 3  # p of tanh_of_cell_q15
# p of an int8 LSTM's cell state (kernels_int8): i * g (Q0.30) is shifted right by 30 + p, which must lie in
# [15, 31]; 2^-15 is resolution to spare for a cell that never leaves [-1, 1]
CELL_POWER_MIN_INT8, CELL_POWER_MAX_INT8 = -15, 1


def quantize_multiplier(m):
    """(M, S) with m = q * 2^S, q in [0.5, 1), M = round(q * 2^31) (ties away from zero), so m ~ M * 2^(S-31).

    Host side, at export time. Supported: 0 <= m < 2^30 (S <= 30). m == 0, and m < 2^-32 (S < -31, where
    every int32 x * m rounds to 0 or +-1), give (0, 0), as TFLM does.
    """
    if not math.isfinite(m) or m < 0:
        raise ValueError(f"multiplier is {m} and must be finite and >= 0")
    if m == 0:
        return 0, 0
    q, S = math.frexp(m)
    M = math.floor(q * 2**31 + 0.5)  # q * 2^31 < 2^31 has 22 fraction bits to spare: + 0.5 is exact
    if M == 2**31:
        M //= 2
        S += 1
    if S > SHIFT_MAX:
        raise ValueError(f"multiplier is {m} and must be < 2^{SHIFT_MAX}")
    if S < SHIFT_MIN:
        return 0, 0
    return M, S


@int_inline
def saturating_rounding_doubling_high_mul(a, b):
    """int32 a, b -> int32 round(a * b / 2^31), gemmlowp's nudge-and-truncate; INT32_MIN^2 -> INT32_MAX."""
    a = np.int64(a)
    b = np.int64(b)
    ab = a * b
    nudged = ab + (np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30)))
    # C's division by 2^31, toward zero, without a branch: add 2^31 - 1 to a negative value, then floor
    high = (nudged + ((nudged >> 63) & np.int64((1 << 31) - 1))) >> 31
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.int32(INT32_MAX) if overflow else np.int32(high)


@int_inline
def rounding_divide_by_pot(x, exponent):
    """int32 x, 0 <= exponent <= 31 -> int32 round(x / 2^exponent), ties away from zero (gemmlowp). Also exact for
    an int64 x whose quotient fits int32 (|x| < 2^62: x + half cannot overflow)."""
    x = np.int64(x)
    exponent = np.int64(exponent)
    # gemmlowp's mask-and-threshold form, rewritten: add half (one less for a negative x, so its ties go
    # down, away from zero), then floor; equal for every int32 x and exponent, with fewer operations
    half = (np.int64(1) << exponent) >> 1
    nudge = np.int64(1) if (x < 0) & (exponent > 0) else np.int64(0)
    return np.int32((x + half - nudge) >> exponent)


@int_inline
def multiply_by_quantized_multiplier_right(x, M, S):
    """multiply_by_quantized_multiplier for S <= 0 and M >= 0, the usual case, without its left shift and
    SRDHM's one overflow (INT32_MIN * INT32_MIN, impossible with M >= 0): the same result, fewer operations,
    so the int8 kernels' per-row loops vectorise well. Callers check S <= 0 for the whole loop first."""
    ab = np.int64(x) * np.int64(M)
    nudged = ab + (np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30)))
    high = (nudged + ((nudged >> 63) & np.int64((1 << 31) - 1))) >> 31
    return rounding_divide_by_pot(high, -np.int64(S))


@int_inline
def saturate_int32(x):
    """Any integer x -> int32, clamped to [INT32_MIN, INT32_MAX]."""
    x = np.int64(x)
    return np.int32(min(max(x, np.int64(INT32_MIN)), np.int64(INT32_MAX)))


@int_inline
def multiply_by_quantized_multiplier(x, M, S):
    """int32 x -> int32 x * m for (M, S) = quantize_multiplier(m): RDBPOT(SRDHM(x * 2^max(S,0), M), max(-S,0))."""
    x = np.int64(x)
    S = np.int64(S)
    left = S if S > 0 else np.int64(0)
    right = -S if S < 0 else np.int64(0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(saturate_int32(x << left), M), right)


@int_inline
def sat16(x):
    """Any integer x -> int16, clamped to [-32768, 32767]."""
    x = np.int64(x)
    return np.int16(min(max(x, np.int64(INT16_MIN)), np.int64(INT16_MAX)))


@int_inline
def clamp_int8(x):
    """Any integer x -> int8, clamped to [-128, 127]."""
    x = np.int64(x)
    return np.int8(min(max(x, np.int64(INT8_MIN)), np.int64(INT8_MAX)))


def _sigmoid_table_q16():
    """TABLE (256,) int32: min(65535, round(65536 * sigmoid(k / 24))); host side, once at import."""
    k = np.arange(256, dtype=np.float64)
    return np.minimum(np.floor(65536.0 / (1.0 + np.exp(-k / 24.0)) + 0.5), 65535).astype(np.int32)


SIGMOID_TABLE_Q16 = _sigmoid_table_q16()


@int_inline
def sigmoid_q15(x):
    """int16 x in Q3.12 -> int16 sigmoid(x) in Q0.15 (the module docstring's formula), without branches."""
    x = np.int64(x)
    a = abs(3 * x)
    u = a >> 9
    k = min(u, np.int64(254))  # a safe index; u >= 255 takes the saturated value below
    lo = np.int64(SIGMOID_TABLE_Q16[k])
    r = (lo << 9) + (a & 511) * (np.int64(SIGMOID_TABLE_Q16[k + 1]) - lo)
    r = np.int64(0x7FFF << 10) if u >= 255 else r
    return np.int16(((r + (1 << 9)) >> 10) if x >= 0 else (((1 << 25) - r + (1 << 9) - 1) >> 10))


@int_inline
def tanh_q15(x):
    """int16 x in Q3.12 -> int16 tanh(x) in Q0.15 (the module docstring's formula), without branches."""
    x = np.int64(x)
    a = abs(3 * x)
    u = a >> 8
    k = min(u, np.int64(254))
    lo = np.int64(SIGMOID_TABLE_Q16[k])
    r = (lo << 8) + (a & 255) * (np.int64(SIGMOID_TABLE_Q16[k + 1]) - lo)
    r = np.int64(0xFFFF << 8) if u >= 255 else r
    return np.int16(((r - (1 << 23) + (1 << 7)) >> 8) if x >= 0 else ((-r + (1 << 23) + (1 << 7) - 1) >> 8))


@int_inline
def tanh_of_cell_q15(c, p):
    """int16 c with real value c * 2^p, -27 <= p <= 3 -> int16 tanh in Q0.15, via Q3.12 (module docstring)."""
    c = np.int64(c)
    e = np.int64(p) + 12
    up = sat16(c << max(e, np.int64(0)))
    down = np.int16(rounding_divide_by_pot(c, max(-e, np.int64(0))))
    return tanh_q15(up if e >= 0 else down)


GELU_C = 46887  # round(0.044715 * 2^20)
GELU_K = 1673285  # round(2 sqrt(2 / pi) * 2^20)


@int_inline
def gelu_q12(x):
    """int16 x in Q3.12 -> int16 gelu(x) = x * sigmoid(2u) in Q3.12 (the module docstring's formula)."""
    x = np.int64(x)
    inner = x + ((np.int64(GELU_C) * x * x * x + (np.int64(1) << 43)) >> 44)
    s = np.int64(sigmoid_q15(sat16((np.int64(GELU_K) * inner + (np.int64(1) << 19)) >> 20)))
    return np.int16((x * s + (1 << 14)) >> 15)
