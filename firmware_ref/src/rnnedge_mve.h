/*
 * rnnedge_mve.h: the int8 step of PyTorch's cells (RNN, LSTM, GRU) and the linear head with the Helium (MVE)
 * instructions of Armv8.1-M (Cortex-M55, M85): the same integers as the plain C of rnnedge_int8.c, bit for bit.
 *
 * RNNEDGE_MVE (default: 1 where the compiler targets integer MVE, __ARM_FEATURE_MVE bit 0, e.g.
 * -mcpu=cortex-m55; else 0) selects it; src/rnnedge_int8.c, its one user, hands a layer without ONNX layer
 * extensions (flags 0) and the head to it. Layers with extensions and hidden head layers run the plain / DSP code.
 * There is no plain-C twin of these instructions: RNNEDGE_MVE 1 without MVE is an error.
 *
 * The file formats and the weights are unchanged: the kernels read the row-major int8 matrices as export writes
 * them, four rows at a time through four pointers, so nothing is packed, at export or at run time.
 *
 * Dot products. For four gate rows and eight inputs: one VLDRH of the int16 inputs, then per row one VLDRB.S16
 * (eight int8 weights widened to int16) and one VMLADAVA.S16 (eight products added into the row's int32
 * accumulator): 9 instructions per 32 multiply-accumulates. The sums are exact in int32 in any order (export
 * proves |bias| + sum |w| * 2^15 < 2^31 per row; see dot_int8), so the integers equal the plain path's. The last
 * n mod 8 inputs are one predicated chunk (VCTP): lanes past the row's end read nothing and count zero.
 *
 * Everything after the dot products runs on four rows (or hidden units) per vector, int32 lanes; a last group of
 * fewer than four rows repeats the last row in the spare lanes and stores only the valid ones (VCTP + VSTRH/VSTRW
 * predicated), so no row is read or written past its array. The primitives, each the integer function of
 * rnnedge_int8.c (int8_math.py) on four lanes:
 *   MBQM(x, M, S)          VQSHL by max(S, 0) (saturating, the left-shift branch), VQRDMULH (gemmlowp's SRDHM:
 *                          floor((2xM + 2^31) / 2^32) with the one overflow saturated), then RDBPOT by max(-S, 0)
 *   RDBPOT(x, e)           VRSHL / VRSHR round ties up; a negative lane first adds -1 (its sign bit: VAND with the
 *                          negative shift count, VSHR #31), which turns that into ties away from zero. With a
 *                          shift of 0 the fix-up is 0 (the shift count's sign bit is clear)
 *   sat16(a + b)           VQADD (int32 saturation leaves the int16 clamp unchanged), then VQMOVNB / VMAX / VMIN
 *   sigmoid_q15, tanh_q15  two VLDRH gathers of the sigmoid table (entries u and u + 1) and the same linear
 *                          interpolation; the negative side is 32768 - pos (sigmoid) and -pos (tanh), which equal
 *                          the scalar formulas' (r + 2^9 - 1 ...) >> 10 forms for every r (worked out in each)
 *   RDBPOT(r * yh_n, 15)   a GRU's n row, |r * yh_n| < 2^46: VRMULH.U32 of |yh_n| and r << 17 gives
 *                          floor((|yh_n| r + 2^14) / 2^15), the rounding of the magnitude; the sign goes back on
 *                          (ties away from zero), so no 64-bit lane is needed
 */
#ifndef RNNEDGE_MVE_H
#define RNNEDGE_MVE_H

#include <stdint.h>

/* Little-endian only: the narrowing stores write each int32 lane's low half. */
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && !defined(__ARMEB__)
#include <arm_mve.h>
#define RNNEDGE_HAVE_MVE 1
#else
#define RNNEDGE_HAVE_MVE 0
#endif

#ifndef RNNEDGE_MVE
#define RNNEDGE_MVE RNNEDGE_HAVE_MVE
#endif

#if RNNEDGE_MVE && !RNNEDGE_HAVE_MVE
#error "RNNEDGE_MVE 1 needs a compiler that targets integer MVE (-mcpu=cortex-m55, -march=armv8.1-m.main+mve)"
#endif

#if RNNEDGE_MVE

/* gcc -Os (arm.mk's default) spills the dot product's row pointers to the stack and forms each row's next address
 * from its base and a counter (17 instructions per eight inputs instead of 10); -O2 keeps them in registers with
 * post-incremented loads and a low-overhead loop (DLS / LE). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("O2")
#endif

/* -- four-lane primitives ------------------------------------------------------------------------------------ */

/** MBQM(x, M, S) on four lanes, S in [-31, 30] (multiply_by_quantized_multiplier). */
static inline int32x4_t mve_mbqm(int32x4_t x, int32x4_t M, int32x4_t S)
{
    const int32x4_t zero = vdupq_n_s32(0);
    const int32x4_t right = vminq_s32(S, zero); /* -max(-S, 0): VRSHL shifts right by a negative count */
    int32x4_t v = vqrdmulhq_s32(vqshlq_s32(x, vmaxq_s32(S, zero)), M);
    v = vqaddq_s32(v, vshrq_n_s32(vandq_s32(v, right), 31));
    return vrshlq_s32(v, right);
}

/** RDBPOT(v, 15) on four lanes with |v| < 2^31 - 1 (the -1 of a negative lane cannot wrap). */
static inline int32x4_t mve_rdbpot15(int32x4_t v)
{
    return vrshrq_n_s32(vaddq_s32(v, vshrq_n_s32(v, 31)), 15);
}

/** RDBPOT(v, e) on four lanes, neg_e = -e a vector of one count in [-31, -1], |v| < 2^31 - 1. */
static inline int32x4_t mve_rdbpot(int32x4_t v, int32x4_t neg_e)
{
    return vrshlq_s32(vaddq_s32(v, vshrq_n_s32(v, 31)), neg_e);
}

/** x clamped to [-32768, 32767]. */
static inline int32x4_t mve_sat16(int32x4_t x)
{
    return vmaxq_s32(vminq_s32(x, vdupq_n_s32(INT16_MAX)), vdupq_n_s32(INT16_MIN));
}

/** sat16(a + b) of two int32 lanes each, stored as int16 to dst's first `valid` values. */
static inline void mve_store_sat16_sum(int16_t *dst, int32x4_t a, int32x4_t b, mve_pred16_t valid)
{
    const int16x8_t narrow = vqmovnbq_s32(vdupq_n_s16(0), vqaddq_s32(a, b));
    vstrhq_p_s32(dst, vreinterpretq_s32_s16(narrow), valid);
}

/** sigmoid_q15 of four int16 lanes (Q3.12 in, Q0.15 out). a = |3x| <= 98304, so u = a >> 9 <= 192: the table's
 * end is never reached. Negative x: ((1 << 25) - r + 2^9 - 1) >> 10 = 32768 - ((r + 2^9) >> 10). */
static inline int32x4_t mve_sigmoid_q15(int32x4_t x)
{
    const uint32x4_t a = vreinterpretq_u32_s32(vmulq_n_s32(vabsq_s32(x), 3));
    const uint32x4_t u = vshrq_n_u32(a, 9);
    const int32x4_t lo = vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(rnnedge_sigmoid_table_q16, u));
    const int32x4_t hi = vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(rnnedge_sigmoid_table_q16 + 1, u));
    const int32x4_t frac = vreinterpretq_s32_u32(vandq_u32(a, vdupq_n_u32(511)));
    const int32x4_t pos = vrshrq_n_s32(vaddq_s32(vshlq_n_s32(lo, 9), vmulq_s32(frac, vsubq_s32(hi, lo))), 10);
    return vpselq_s32(pos, vsubq_s32(vdupq_n_s32(32768), pos), vcmpgeq_n_s32(x, 0));
}

/** tanh_q15 of four int16 lanes: a = |3x|, u = a >> 8 (<= 384), r = 0xFFFF << 8 from u = 255 on. With
 * t = r - 2^23: x >= 0 gives (t + 2^7) >> 8, x < 0 (2^7 - 1 - t) >> 8, which is its negation. */
static inline int32x4_t mve_tanh_q15(int32x4_t x)
{
    const uint32x4_t a = vreinterpretq_u32_s32(vmulq_n_s32(vabsq_s32(x), 3));
    const uint32x4_t u = vshrq_n_u32(a, 8);
    const uint32x4_t in_table = vminq_u32(u, vdupq_n_u32(254)); /* u + 1 <= 255; u >= 255 is replaced below */
    const int32x4_t lo = vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(rnnedge_sigmoid_table_q16, in_table));
    const int32x4_t hi =
        vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(rnnedge_sigmoid_table_q16 + 1, in_table));
    const int32x4_t frac = vreinterpretq_s32_u32(vandq_u32(a, vdupq_n_u32(255)));
    int32x4_t r = vaddq_s32(vshlq_n_s32(lo, 8), vmulq_s32(frac, vsubq_s32(hi, lo)));
    int32x4_t pos;
    r = vpselq_s32(vdupq_n_s32((int32_t)0xFFFF << 8), r, vcmpcsq_n_u32(u, 255));
    pos = vrshrq_n_s32(vsubq_s32(r, vdupq_n_s32((int32_t)1 << 23)), 8);
    return vpselq_s32(pos, vnegq_s32(pos), vcmpgeq_n_s32(x, 0));
}

/* -- dot products ------------------------------------------------------------------------------------------- */

/** The last n mod 8 products of rows w0..w3 (each pointing at its row's rest) added to a0..a3: one predicated
 * chunk (VCTP): lanes past the row's end read nothing and load zeros, whose products add nothing. */
#define MVE_DOT4_TAIL(rest)                                                                                       \
    do {                                                                                                          \
        const mve_pred16_t p_ = vctp16q((uint32_t)(rest));                                                        \
        const int16x8_t x_ = vldrhq_z_s16(v, p_);                                                                 \
        a0 = vmladavaq_s16(a0, vldrbq_z_s16(w0, p_), x_);                                                         \
        a1 = vmladavaq_s16(a1, vldrbq_z_s16(w1, p_), x_);                                                         \
        a2 = vmladavaq_s16(a2, vldrbq_z_s16(w2, p_), x_);                                                         \
        a3 = vmladavaq_s16(a3, vldrbq_z_s16(w3, p_), x_);                                                         \
    } while (0)

/** W[k] . v for the rows k = 0..3 of w (row-major, n >= 1 per row; rows past `rows` repeat the last) as four
 * lanes. Not inlined: as a function of its own the loop keeps its nine pointers and sums in registers (VMLADAVA
 * writes even registers only), 1 VLDRH + 4 VLDRB + 4 VMLADAVA + the loop's branch per eight inputs; the first
 * chunk sets the sums (VMLADAV) instead of adding to zeros. */
static __attribute__((noinline)) int32x4_t mve_dot4(const int8_t *w, int32_t n, int32_t rows, const int16_t *v)
{
    const int8_t *w0 = w;
    const int8_t *w1 = rows > 1 ? w0 + n : w0;
    const int8_t *w2 = rows > 2 ? w1 + n : w1;
    const int8_t *w3 = rows > 3 ? w2 + n : w2;
    const int16_t *end = v + (n & ~(int32_t)7);
    int32_t a0 = 0;
    int32_t a1 = 0;
    int32_t a2 = 0;
    int32_t a3 = 0;
    int32x4_t acc;
    if (v != end) {
        int16x8_t x = vldrhq_s16(v);
        a0 = vmladavq_s16(vldrbq_s16(w0), x);
        a1 = vmladavq_s16(vldrbq_s16(w1), x);
        a2 = vmladavq_s16(vldrbq_s16(w2), x);
        a3 = vmladavq_s16(vldrbq_s16(w3), x);
        for (v += 8, w0 += 8, w1 += 8, w2 += 8, w3 += 8; v != end; v += 8, w0 += 8, w1 += 8, w2 += 8, w3 += 8) {
            x = vldrhq_s16(v);
            a0 = vmladavaq_s16(a0, vldrbq_s16(w0), x);
            a1 = vmladavaq_s16(a1, vldrbq_s16(w1), x);
            a2 = vmladavaq_s16(a2, vldrbq_s16(w2), x);
            a3 = vmladavaq_s16(a3, vldrbq_s16(w3), x);
        }
    }
    if ((n & 7) != 0) {
        MVE_DOT4_TAIL(n & 7);
    }
    acc = vdupq_n_s32(a0);
    acc = vsetq_lane_s32(a1, acc, 1);
    acc = vsetq_lane_s32(a2, acc, 2);
    acc = vsetq_lane_s32(a3, acc, 3);
    return acc;
}
#undef MVE_DOT4_TAIL

/** yx of gate rows r..r+3 (the valid ones): MBQM(b_x + W_ih . x, Mx, Sx), int32, not saturated. */
static inline int32x4_t mve_input_part(const rnnedge_layer_int8 *layer, int32_t r, int32_t rows, const int16_t *x,
                                       mve_pred16_t valid)
{
    const int32x4_t acc = vaddq_s32(mve_dot4(layer->w_ih + r * layer->n_in, layer->n_in, rows, x),
                                    vldrwq_z_s32(layer->b_x + r, valid));
    return mve_mbqm(acc, vldrwq_z_s32(layer->mult_x + r, valid), vldrbq_z_s32(layer->shift_x + r, valid));
}

/** yh of gate rows r..r+3: MBQM(b_h + W_hh . h, Mh, Sh), b_h a vector (zeros, or a GRU's b_hn). */
static inline int32x4_t mve_recurrent_part(const rnnedge_layer_int8 *layer, int32_t r, int32_t rows, int32x4_t b_h,
                                           const int16_t *h, mve_pred16_t valid)
{
    const int32x4_t acc = vaddq_s32(mve_dot4(layer->w_hh + r * layer->hidden, layer->hidden, rows, h), b_h);
    return mve_mbqm(acc, vldrwq_z_s32(layer->mult_h + r, valid), vldrbq_z_s32(layer->shift_h + r, valid));
}

/** pre[r] = sat16(yx + yh) for gate rows 0..G-1 whose recurrent bias is 0 (gate_sums_int8): Q3.12. */
static void mve_gate_sums_int8(const rnnedge_layer_int8 *layer, const int16_t *x, const int16_t *h, int32_t G,
                               int16_t *pre)
{
    int32_t r;
    for (r = 0; r < G; r += 4) {
        const int32_t rows = G - r < 4 ? G - r : 4;
        const mve_pred16_t valid = vctp32q((uint32_t)rows);
        const int32x4_t yx = mve_input_part(layer, r, rows, x, valid);
        const int32x4_t yh = mve_recurrent_part(layer, r, rows, vdupq_n_s32(0), h, valid);
        mve_store_sat16_sum(pre + r, yx, yh, valid);
    }
}

/* -- cells (rnnedge_int8.c's, with flags 0) ------------------------------------------------------------------- */

static void mve_rnn_step_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *scratch)
{
    const int32_t H = layer->hidden;
    const int relu = layer->cell == RNNEDGE_CELL_RNN_RELU;
    int32_t j;
    mve_gate_sums_int8(layer, x, h, H, scratch);
    for (j = 0; j < H; j += 4) {
        const mve_pred16_t valid = vctp32q((uint32_t)(H - j));
        const int32x4_t pre = vldrhq_z_s32(scratch + j, valid);
        vstrhq_p_s32(h + j, relu ? vmaxq_s32(pre, vdupq_n_s32(0)) : mve_tanh_q15(pre), valid);
    }
}

/** The LSTM cell of rnnedge_lstm_step_int8 on four hidden units: kept = RDBPOT(f c, 15) and added =
 * RDBPOT(i g, 30 + p) are within int16 already (|f c|, |i g| <= 32767 * 32768, shifts >= 15), so only their sum
 * is clamped; h = RDBPOT(o tanh(c), 15) is within int16 likewise. */
static void mve_lstm_step_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *c,
                               int16_t *scratch)
{
    const int32_t H = layer->hidden;
    const int32_t p = layer->cell_power;
    const int32x4_t added_shift = vdupq_n_s32(-(30 + p));
    const int32_t e = p + 12; /* tanh_of_cell_q15: c in Q3.12 is sat16(c * 2^e) or RDBPOT(c, -e) */
    const int32x4_t cell_shift = vdupq_n_s32(e);
    int32_t j;
    mve_gate_sums_int8(layer, x, h, 4 * H, scratch);
    for (j = 0; j < H; j += 4) {
        const mve_pred16_t valid = vctp32q((uint32_t)(H - j));
        const int32x4_t i = mve_sigmoid_q15(vldrhq_z_s32(scratch + j, valid));
        const int32x4_t f = mve_sigmoid_q15(vldrhq_z_s32(scratch + H + j, valid));
        const int32x4_t g = mve_tanh_q15(vldrhq_z_s32(scratch + 2 * H + j, valid));
        const int32x4_t o = mve_sigmoid_q15(vldrhq_z_s32(scratch + 3 * H + j, valid));
        const int32x4_t kept = mve_rdbpot15(vmulq_s32(f, vldrhq_z_s32(c + j, valid)));
        const int32x4_t added = mve_rdbpot(vmulq_s32(i, g), added_shift);
        const int32x4_t cj = mve_sat16(vaddq_s32(kept, added));
        const int32x4_t cq = e >= 0 ? mve_sat16(vshlq_s32(cj, cell_shift)) : mve_rdbpot(cj, cell_shift);
        vstrhq_p_s32(c + j, cj, valid);
        vstrhq_p_s32(h + j, mve_rdbpot15(vmulq_s32(o, mve_tanh_q15(cq))), valid);
    }
}

/** rnnedge_gru_step_int8 (linear_before_reset): r, z rows, then every n row (reading the h on entry) as
 * tanh(sat16(yx_n + RDBPOT(r * yh_n, 15))) into scratch, then h = (1 - z) n + z h. */
static void mve_gru_step_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *scratch)
{
    const int32_t H = layer->hidden;
    int16_t *n = scratch + 2 * H;
    int32_t j;
    mve_gate_sums_int8(layer, x, h, 2 * H, scratch);
    for (j = 0; j < H; j += 4) {
        const int32_t rows = H - j < 4 ? H - j : 4;
        const mve_pred16_t valid = vctp32q((uint32_t)rows);
        const int32x4_t r = mve_sigmoid_q15(vldrhq_z_s32(scratch + j, valid));
        const int32x4_t yx = mve_input_part(layer, 2 * H + j, rows, x, valid);
        const int32x4_t yh = mve_recurrent_part(layer, 2 * H + j, rows, vldrwq_z_s32(layer->b_hn + j, valid), h,
                                                valid);
        const uint32x4_t magnitude = vrmulhq_u32(vreinterpretq_u32_s32(vabsq_s32(yh)),
                                                 vshlq_n_u32(vreinterpretq_u32_s32(r), 17));
        const int32x4_t rh = vreinterpretq_s32_u32(magnitude);
        const int32x4_t pre = mve_sat16(vqaddq_s32(yx, vnegq_m_s32(rh, rh, vcmpltq_n_s32(yh, 0))));
        vstrhq_p_s32(n + j, mve_tanh_q15(pre), valid);
    }
    for (j = 0; j < H; j += 4) { /* gru_blend_int8: (32768 - z) |n| + z |h| <= 2^30 */
        const mve_pred16_t valid = vctp32q((uint32_t)(H - j));
        const int32x4_t z = mve_sigmoid_q15(vldrhq_z_s32(scratch + H + j, valid));
        const int32x4_t blend = vaddq_s32(vmulq_s32(vsubq_s32(vdupq_n_s32(32768), z), vldrhq_z_s32(n + j, valid)),
                                          vmulq_s32(z, vldrhq_z_s32(h + j, valid)));
        vstrhq_p_s32(h + j, mve_sat16(mve_rdbpot15(blend)), valid);
    }
}

/** rnnedge_head_int8: logits[o] = b[o] + W[o] . h, four rows at a time. */
static void mve_head_int8(const int8_t *w, const int32_t *b, int32_t out, int32_t in, const int16_t *h,
                          int32_t *logits)
{
    int32_t o;
    for (o = 0; o < out; o += 4) {
        const int32_t rows = out - o < 4 ? out - o : 4;
        const mve_pred16_t valid = vctp32q((uint32_t)rows);
        vstrwq_p_s32(logits + o, vaddq_s32(mve_dot4(w + o * in, in, rows, h), vldrwq_z_s32(b + o, valid)), valid);
    }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif /* RNNEDGE_MVE */

#endif /* RNNEDGE_MVE_H */
