/*
 * rnnedge_int8_math.h: the integer primitives of the int8 step (runtime/int8_math.py), one static function each,
 * named as there, and the gate pre-activation of two requantised terms (sat16_sum, gru_n_pre_int8). Included by
 * src/rnnedge_int8.c only (after rnnedge.h and rnnedge_dsp.h), as part of that file: split out by concern, not a
 * public header.
 */
#ifndef RNNEDGE_INT8_MATH_H
#define RNNEDGE_INT8_MATH_H

#define Q15_ONE 32768 /* 1.0 in Q0.15 */

/* The DSP build inlines the primitives a cell applies per hidden unit into its loops (-Os calls them: ~10
 * instructions of call overhead each, seven calls per LSTM unit); the plain build keeps them out of line (size). */
#if RNNEDGE_DSP_DOT && defined(__GNUC__)
#define UNIT_INLINE __attribute__((always_inline)) inline
#else
#define UNIT_INLINE
#endif

/* -- primitives (runtime/int8_math.py) --------------------------------------------------------------------- */

/** Any int32 -> int16, clamped to [-32768, 32767]: SSAT on the DSP path; elsewhere two ifs (the equivalent nested
 * ?: becomes two compares and branches), in which gcc -Os finds the SSAT only sometimes. */
static int16_t sat16(int32_t x)
{
#if RNNEDGE_DSP_DOT
    return (int16_t)rnnedge_ssat16(x);
#else
    if (x > INT16_MAX) {
        x = INT16_MAX;
    }
    if (x < INT16_MIN) {
        x = INT16_MIN;
    }
    return (int16_t)x;
#endif
}

/** Any int64 -> int16, clamped: the one saturation of a gate pre-activation's exactly summed terms (the DSP path
 * clamps its int32 terms' sum with QADD and SSAT instead: sat16_sum). */
#if !RNNEDGE_DSP_DOT || RNNEDGE_EXTENSIONS
static int16_t sat16_wide(int64_t x)
{
    if (x > INT16_MAX) {
        x = INT16_MAX;
    }
    if (x < INT16_MIN) {
        x = INT16_MIN;
    }
    return (int16_t)x;
}
#endif

/** Any int64 -> int32, clamped. */
static int32_t saturate_int32(int64_t x)
{
    return (int32_t)(x < INT32_MIN ? INT32_MIN : x > INT32_MAX ? INT32_MAX : x);
}

/** round(a * b / 2^31), ties toward +infinity; INT32_MIN * INT32_MIN, the one overflow, gives INT32_MAX.
 * gemmlowp adds a nudge of 2^30 (ab >= 0) or 1 - 2^30 (ab < 0) and divides toward zero; for ab < 0 that division
 * is a floor shift of nudged + 2^31 - 1 = ab + 2^30, so both signs are floor((ab + 2^30) / 2^31). */
static int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    /* |ab| <= 2^62; the result is in [INT32_MIN, INT32_MAX] once the one overflow is excluded */
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/** round(x / 2^exponent), ties away from zero, 0 <= exponent <= 31 (gemmlowp's mask-and-threshold form, all in
 * int32: it equals int8_math's "add half, minus one for negative x, then floor" for every int32 x). */
static UNIT_INLINE int32_t rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u); /* 2^e - 1 <= INT32_MAX */
    const int32_t remainder = x & mask;                             /* x mod 2^e, in [0, 2^e) */
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/** rounding_divide_by_pot(x, e) for |x| <= 2^30 and 1 <= e <= 31: the cells' products (|f c|, |i g|, |o tanh c|,
 * a GRU blend's sum: below 2^30) and a cell value's shift. On the DSP path in 4 instructions for a constant e
 * (gemmlowp's form takes 7): x - 1 for a negative x (no wrap: |x| <= 2^30) turns ties away from zero into ties up,
 * which is floor(x / 2^e) plus bit e - 1; elsewhere rounding_divide_by_pot itself. */
static UNIT_INLINE int32_t rounding_divide_by_pot_small(int32_t x, int32_t e)
{
#if RNNEDGE_DSP_DOT
    const int32_t y = x + (x >> 31);
    return (y >> e) + ((y >> (e - 1)) & 1);
#else
    return rounding_divide_by_pot(x, e);
#endif
}

/** x * m for (M, S) = quantize_multiplier(m): RDBPOT(SRDHM(sat32(x * 2^max(S, 0)), M), max(-S, 0)). One branch
 * per sign of S: the left shift (S > 0) is followed by a division by 2^0, which is the identity. */
static int32_t multiply_by_quantized_multiplier(int32_t x, int32_t M, int32_t S)
{
    if (S > 0) { /* S <= 30: |x| * 2^S <= 2^61 */
        return saturating_rounding_doubling_high_mul(saturate_int32((int64_t)x * ((int64_t)1 << S)), M);
    }
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, M), -S); /* S >= -31 */
}

/** round(x / 2^15), ties away from zero, for |x| < 2^46 (a GRU's r * yh_n: r in [0, 32767], yh_n int32), whose
 * quotient fits int32: add half (one less for a negative x), then floor, as int8_math.rounding_divide_by_pot. */
static int32_t rounding_divide_by_pot15_wide(int64_t x)
{
    return (int32_t)((x + (x < 0 ? (int64_t)(1 << 14) - 1 : (int64_t)(1 << 14))) >> 15);
}

/** int16 Q3.12 -> int16 sigmoid in Q0.15: a = |3x|, table index a >> 9, 9 bits of linear interpolation.
 * r <= 65535 * 2^9 + 511 * 65535 < 2^26: int32. */
static UNIT_INLINE int16_t sigmoid_q15(int16_t x)
{
    const int32_t a = 3 * (x < 0 ? -(int32_t)x : (int32_t)x); /* <= 98304 */
    const int32_t u = a >> 9;
    int32_t r;
    if (u >= 255) {
        r = (int32_t)0x7FFF << 10;
    } else {
        const int32_t lo = (int32_t)rnnedge_sigmoid_table_q16[u];
        r = (lo << 9) + (a & 511) * ((int32_t)rnnedge_sigmoid_table_q16[u + 1] - lo);
    }
    return (int16_t)(x >= 0 ? (r + (1 << 9)) >> 10 : ((1 << 25) - r + (1 << 9) - 1) >> 10);
}

/** int16 Q3.12 -> int16 tanh in Q0.15: tanh(x) = 2 sigmoid(2x) - 1, the same table at index a >> 8, 8 bits of
 * interpolation. The negative branch's numerator can be negative: a floor shift (see the check above). */
static UNIT_INLINE int16_t tanh_q15(int16_t x)
{
    const int32_t a = 3 * (x < 0 ? -(int32_t)x : (int32_t)x);
    const int32_t u = a >> 8;
    int32_t r;
    if (u >= 255) {
        r = (int32_t)0xFFFF << 8;
    } else {
        const int32_t lo = (int32_t)rnnedge_sigmoid_table_q16[u];
        r = (lo << 8) + (a & 255) * ((int32_t)rnnedge_sigmoid_table_q16[u + 1] - lo);
    }
    return (int16_t)(x >= 0 ? (r - (1 << 23) + (1 << 7)) >> 8 : (-r + (1 << 23) + (1 << 7) - 1) >> 8);
}

/** int16 c with real value c * 2^p, -27 <= p <= 3 -> tanh in Q0.15, via Q3.12 (e = p + 12): sat16(c * 2^e)
 * for e >= 0 (|c| * 2^15 <= 2^30: int32), RDBPOT(c, -e) for e < 0. */
static UNIT_INLINE int16_t tanh_of_cell_q15(int16_t c, int32_t p)
{
    const int32_t e = p + 12;
    if (e >= 0) {
        return tanh_q15(sat16((int32_t)c * ((int32_t)1 << e)));
    }
    return tanh_q15((int16_t)rounding_divide_by_pot_small((int32_t)c, -e)); /* -e in [1, 15] */
}

#if RNNEDGE_DSP_DOT
/** multiply_by_quantized_multiplier(x, M, S) for M in [0, 2^31) (quantize_multiplier's M: 0 or [2^30, 2^31); the
 * runtime's loader refuses others), the same integers in fewer instructions where S < 0 (the common case; S >= 0
 * takes the plain function), inlined into the row loops:
 *   SRDHM(x, M) = floor((2xM + 2^31) / 2^32). With m2 = 2M as an int32 (wrapping), SMMULR(x, m2) is exactly that
 *     for M < 2^30 and that minus x for M >= 2^30 (m2 = 2M - 2^32 < 0), so adding x where m2 < 0 gives SRDHM: 4
 *     instructions (LSL, SMMULR, AND with m2 ASR 31, ADD), no overflow (|SRDHM - x| <= |x| / 2), and y = SRDHM >=
 *     -M > INT32_MIN;
 *   RDBPOT(y, e), e = -S >= 1: y - 1 where y < 0 (no wrap: y > INT32_MIN) turns ties away from zero into ties up,
 *     floor((t + 2^(e-1)) / 2^e) = ceil(q / 2) for q = t >> (e - 1) (e - 1 = ~S): (q >> 1) + (q & 1), which cannot
 *     overflow where q + 1 could. rnnedge_mve.h's vector form gives the same integers. */
#if defined(__GNUC__)
__attribute__((always_inline)) /* -Os would call it: 2 x 10 instructions of call overhead per gate row */
#endif
static inline int32_t mbqm_dsp(int32_t x, int32_t M, int32_t S)
{
    int32_t m2;
    int32_t t;
    int32_t q;
#if defined(__GNUC__)
    if (__builtin_expect(S >= 0, 0)) {
#else
    if (S >= 0) {
#endif
        return multiply_by_quantized_multiplier(x, M, S);
    }
    m2 = (int32_t)((uint32_t)M << 1);
    t = rnnedge_smmulr(x, m2) + (x & (m2 >> 31));
    t += t >> 31;
    q = t >> ~S;
    return (q >> 1) + (q & 1);
}
#endif

/* -- gate pre-activations from their requantised terms (both paths; mbqm_dsp above on the DSP path) ------- */

/** sat16(a + b) for two int32 terms, added exactly (int64: |a + b| <= 2^32) and saturated once. */
static int16_t sat16_sum(int32_t a, int32_t b)
{
#if RNNEDGE_DSP_DOT
    return (int16_t)rnnedge_ssat16(rnnedge_qadd(a, b)); /* clamping to int32 first leaves the int16 clamp unchanged */
#else
    return sat16_wide((int64_t)a + (int64_t)b);
#endif
}

/** The pre-activation of a linear_before_reset GRU's n row for hidden unit j: sat16(yx_n + RDBPOT(r * yh_n, 15)),
 * r in [0, 32767] (Q0.15), yh_n = MBQM(b_hn[j] + W_hn[j] . h) not saturated: |r * yh_n| < 2^46, and the sum of
 * yx_n and the quotient (each int32) is exact in int64 (kernels_int8 gru_update_int8). */
static UNIT_INLINE int16_t gru_n_pre_int8(const rnnedge_layer_int8 *layer, int32_t j, int32_t r, int32_t acc_x,
                                          int32_t acc_h)
{
    const int32_t row = 2 * layer->hidden + j;
#if RNNEDGE_DSP_DOT
    const int32_t yx_n = mbqm_dsp(acc_x, layer->mult_x[row], (int32_t)layer->shift_x[row]);
    const int32_t yh_n = mbqm_dsp(acc_h, layer->mult_h[row], (int32_t)layer->shift_h[row]);
    /* both terms int32: QADD then SSAT clamps as the int64 sum's one saturation (sat16_sum) */
    return sat16_sum(yx_n, rounding_divide_by_pot15_wide((int64_t)r * (int64_t)yh_n));
#else
    const int64_t yx_n = multiply_by_quantized_multiplier(acc_x, layer->mult_x[row], (int32_t)layer->shift_x[row]);
    const int32_t yh_n = multiply_by_quantized_multiplier(acc_h, layer->mult_h[row], (int32_t)layer->shift_h[row]);
    return sat16_wide(yx_n + rounding_divide_by_pot15_wide((int64_t)r * (int64_t)yh_n));
#endif
}

#endif /* RNNEDGE_INT8_MATH_H */
