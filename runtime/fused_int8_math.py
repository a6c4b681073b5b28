"""The int8 primitives of a specialised step (runtime/fused_int8.py) in 32-bit lanes where the values allow.

Each returns the integer of its runtime/int8_math.py twin for every input the int8 step gives it (docs/int8.md);
the difference is width. numba widens every integer operation to int64, so LLVM's vectoriser fills a zmm register
with 8 lanes; here each intermediate is cut back to np.int32 as soon as it is formed, which lets LLVM narrow the
operations to 16 lanes. Only where int32 holds the exact value:

- pair_table: the sigmoid table read as one int32 per index, the step TABLE[k + 1] - TABLE[k] and TABLE[k] - 2^15
  as two int16, so a vector of lanes needs one gather instead of two and one pmaddwd forms the interpolation
  (fused_int8_simd's sigmoid / tanh rows, where every value stays below 2^26: a = |3x| <= 98304, the entry shifted
  by 9 or 8 bits < 2^25, the step < 2^9 * 2^15), with one more entry holding the saturated value (step 0), so
  clamping a saturates without a compare and select.
- rdbpot32(x, e): x int32 with |x| + 2^(e-1) < 2^31, 1 <= e <= 31: the cell and blend products of the int8 step
  (f * c, i * g, o * tanh(c), (32768 - z) n + z h), each at most 2^30 in magnitude (docs/int8.md, Bounds).
- sat16_32: clamp of an int32 to int16's range, kept int32.
- mbqm_right: int8_math's right-shift MBQM with each row's rounding constants precomputed (rounding_rows); its
  products stay in int64, as does a GRU's r * yh_n (< 2^46).
"""

import numpy as np

from rnnedge.runtime.int8_math import SIGMOID_TABLE_Q16
from rnnedge.runtime.jit import int_inline

TANH_AT = 256  # where the tanh rows' copy of the pairs starts in pair_table()
PLANES_AT = 512  # where the pairs' byte planes start: the sigmoid rows' at PLANES_AT, the tanh rows' PLANES_AT + TANH_AT


def pair_table() -> np.ndarray:
    """(1024,) int32: two tables of 256 pairs (at 0 the sigmoid rows', at TANH_AT the tanh rows'), then the same two
    as byte planes (at PLANES_AT + 0 / TANH_AT: four rows of 256 bytes, row p holding byte p of every entry, for
    fused_int8_simd's vpermi2b lookups). Entry k = 0..254 of
    each is (TABLE[k + 1] - TABLE[k]) | (TABLE[k] - 2^15) << 16, two int16 (the table is non-decreasing, and at
    least 2^15: sigmoid(k / 24) >= 1/2); entry 255 holds the saturated result with step 0: sigmoid_q15's
    r = 0x7FFF << 10 = 65534 << 9, tanh_q15's 0xFFFF << 8 (fused_int8_simd clamps a to 255 << shift, so every
    u >= 255 reads it with a fraction of 0)."""
    lo = np.append(SIGMOID_TABLE_Q16[:255].astype(np.int64), 0)
    step = np.append(SIGMOID_TABLE_Q16[1:].astype(np.int64) - lo[:255], 0)
    assert step.min() >= 0 and step.max() < 2**15 and lo[:255].min() >= 2**15
    tables = []
    for saturated in ((0x7FFF << 10) >> 9, (0xFFFF << 8) >> 8):  # sigmoid's, tanh's: T[255] << shift
        lo[255] = saturated
        tables.append(step | ((lo - 2**15) << 16))
    pairs = np.concatenate(tables).astype(np.int32)
    planes = [pairs[f : f + 256].view(np.uint8).reshape(256, 4).T.copy().view(np.int32).reshape(-1)
              for f in (0, TANH_AT)]
    return np.concatenate([pairs, *planes])


@int_inline
def sat16_32(x):
    """int32 x -> clamp(x, -32768, 32767), as int32."""
    return np.int32(min(max(np.int32(x), np.int32(-32768)), np.int32(32767)))


@int_inline
def rdbpot32(x, e):
    """int32 round(x / 2^e), ties away from zero, for 1 <= e <= 31 and |x| + 2^(e-1) < 2^31."""
    x = np.int32(x)
    return np.int32(np.int32(x + np.int32(np.int32(1) << np.int32(e - 1)) - np.int32(x < 0)) >> np.int32(e))


def rounding_rows(shift: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For mbqm_right, per row of shifts S in [-31, 0]: e = -S, half = 2^e / 2 and half - 1 where e > 0 (int32)."""
    e = -shift.astype(np.int64)
    assert e.min(initial=0) >= 0 and e.max(initial=0) <= 31
    half = (np.int64(1) << e) >> 1
    return e.astype(np.int32), half.astype(np.int32), (half - (e > 0)).astype(np.int32)


@int_inline
def mbqm_right(x, M, e, half, half_neg):
    """int8_math.multiply_by_quantized_multiplier_right(x, M, -e) with the rounding constants of rounding_rows: SRDHM
    is floor((x M + 2^30) / 2^31) for either sign of the product (its nudge-and-truncate form, restated), and the
    RDBPOT's half (one less for a negative value) comes from the row instead of being formed from e each time."""
    high = (np.int64(x) * np.int64(M) + np.int64(1 << 30)) >> np.int64(31)
    return np.int32((high + (np.int64(half_neg) if high < 0 else np.int64(half))) >> np.int64(e))
