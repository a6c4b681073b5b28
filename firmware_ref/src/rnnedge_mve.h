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
 * accumulator), and the low-overhead loop's LE: 10 instructions per 32 multiply-accumulates (an asm block, see
 * mve_rows4). The sums are exact in int32 in any order (export proves |bias| + sum |w| * 2^15 < 2^31 per row; see
 * dot_int8), so the integers equal the plain path's. The first n mod 8 inputs are one predicated chunk (VCTP):
 * lanes past the row's end read nothing and count zero.
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
 *   sat16(a + b)           VQADD (int32 saturation leaves the int16 clamp unchanged), then VQMOVNB (+ VMOVLB back)
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

/** x clamped to [-32768, 32767]: VQMOVNB narrows with saturation into the even halfwords, VMOVLB widens them back
 * (no constant vectors: the eight Q registers are the kernels' scarcest resource). */
static inline int32x4_t mve_sat16(int32x4_t x)
{
    return vmovlbq_s16(vqmovnbq_s32(vreinterpretq_s16_s32(x), x));
}

/** sat16(a + b) of two int32 lanes each, stored as int16 to dst's first `valid` values (all four when full). */
static inline __attribute__((always_inline)) void mve_store_sat16_sum(int16_t *dst, int32x4_t a, int32x4_t b,
                                                                      mve_pred16_t valid, int full)
{
    const int32x4_t narrow = vreinterpretq_s32_s16(vqmovnbq_s32(vreinterpretq_s16_s32(a), vqaddq_s32(a, b)));
    if (full) {
        vstrhq_s32(dst, narrow);
    } else {
        vstrhq_p_s32(dst, narrow, valid);
    }
}

/** Four int16 at p widened to int32 lanes; a partial group reads only its `valid` lanes (zeros elsewhere). */
static inline __attribute__((always_inline)) int32x4_t mve_load16(const int16_t *p, mve_pred16_t valid, int full)
{
    return full ? vldrhq_s32(p) : vldrhq_z_s32(p, valid);
}

/** Four int32 lanes stored as int16 (their low halves) to p; a partial group writes only its `valid` lanes. */
static inline __attribute__((always_inline)) void mve_store16(int16_t *p, int32x4_t v, mve_pred16_t valid, int full)
{
    if (full) {
        vstrhq_s32(p, v);
    } else {
        vstrhq_p_s32(p, v, valid);
    }
}

/** Four int32 at p; a partial group reads only its `valid` lanes. */
static inline __attribute__((always_inline)) int32x4_t mve_load32(const int32_t *p, mve_pred16_t valid, int full)
{
    return full ? vldrwq_s32(p) : vldrwq_z_s32(p, valid);
}

/** Four int8 at p widened to int32 lanes; a partial group reads only its `valid` lanes. */
static inline __attribute__((always_inline)) int32x4_t mve_load8(const int8_t *p, mve_pred16_t valid, int full)
{
    return full ? vldrbq_s32(p) : vldrbq_z_s32(p, valid);
}

/** sigmoid_q15 of four int16 lanes (Q3.12 in, Q0.15 out). a = |3x| <= 98304, so u = a >> 9 <= 192: the table's
 * end is never reached. Negative x: ((1 << 25) - r + 2^9 - 1) >> 10 = 32768 - ((r + 2^9) >> 10). */
static inline int32x4_t mve_sigmoid_q15(int32x4_t x)
{
    const uint32x4_t a = vreinterpretq_u32_s32(vmulq_n_s32(vabsq_s32(x), 3));
    const uint32x4_t u = vshrq_n_u32(a, 9);
    const int32x4_t lo = vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(rnnedge_sigmoid_table_q16, u));
    const int32x4_t hi = vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(rnnedge_sigmoid_table_q16 + 1, u));
    const int32x4_t frac = vreinterpretq_s32_u32(vshrq_n_u32(vshlq_n_u32(a, 23), 23)); /* a & 511 */
    const int32x4_t pos = vrshrq_n_s32(vaddq_s32(vshlq_n_s32(lo, 9), vmulq_s32(frac, vsubq_s32(hi, lo))), 10);
    return vpselq_s32(pos, vnegq_s32(vsubq_n_s32(pos, 32768)), vcmpgeq_n_s32(x, 0));
}

/** tanh_q15 of four int16 lanes: a = |3x|, u = a >> 8 (<= 384), r = 0xFFFF << 8 from u = 255 on. With
 * t = r - 2^23: x >= 0 gives (t + 2^7) >> 8, x < 0 (2^7 - 1 - t) >> 8, which is its negation. */
static inline int32x4_t mve_tanh_q15(int32x4_t x)
{
    const uint32x4_t a = vreinterpretq_u32_s32(vmulq_n_s32(vabsq_s32(x), 3));
    const uint32x4_t u = vshrq_n_u32(a, 8);
    const uint32x4_t in_table = vsubq_u32(u, vqsubq_n_u32(u, 254)); /* min(u, 254): entries u and u + 1 exist */
    const int32x4_t lo = vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(rnnedge_sigmoid_table_q16, in_table));
    const int32x4_t hi =
        vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(rnnedge_sigmoid_table_q16 + 1, in_table));
    const int32x4_t frac = vreinterpretq_s32_u32(vshrq_n_u32(vshlq_n_u32(a, 24), 24)); /* a & 255 */
    int32x4_t r = vaddq_s32(vshlq_n_s32(lo, 8), vmulq_s32(frac, vsubq_s32(hi, lo)));
    int32x4_t pos;
    r = vdupq_m_n_s32(r, (int32_t)0xFFFF << 8, vcmpcsq_n_u32(u, 255));
    pos = vrshrq_n_s32(vsubq_n_s32(r, (int32_t)1 << 23), 8);
    return vnegq_m_s32(pos, pos, vcmpltq_n_s32(x, 0));
}

/* -- dot products ------------------------------------------------------------------------------------------- */

/** W[k] . v for the four rows k of w0..w3 (each row n >= 1 long) as four lanes. The first n mod 8 inputs are one
 * predicated chunk (VCTP): lanes past it read nothing and load zeros, whose products add nothing. Then per eight
 * inputs 1 VLDRH, 4 VLDRB.S16, 4 VMLADAVA.S16 and the low-overhead loop's LE. That loop is the one asm block of the
 * file: VLDRB.S16 takes its base in r0-r7 and VMLADAVA writes even registers only, and gcc (-Os and -O2 alike)
 * either spilled a row pointer inside the loop or spent five instructions on its trip count; the asm pins the
 * four sums to r8, r10, r12, r6, the five pointers to low registers and the count to LR. */
static inline __attribute__((always_inline)) int32x4_t mve_rows4(const int8_t *w0, const int8_t *w1,
                                                                 const int8_t *w2, const int8_t *w3, int32_t n,
                                                                 const int16_t *v)
{
    const int32_t rest = n & 7;
    int32_t a0 = 0; /* the sums, set by the predicated chunk or starting at zero */
    int32_t a1 = 0;
    int32_t a2 = 0;
    int32_t a3 = 0;
    int32_t k;
    int32x4_t acc;
    if (rest != 0) {
        const mve_pred16_t p = vctp16q((uint32_t)rest);
        const int16x8_t x = vldrhq_z_s16(v, p);
        a0 = vmladavq_s16(vldrbq_z_s16(w0, p), x);
        a1 = vmladavq_s16(vldrbq_z_s16(w1, p), x);
        a2 = vmladavq_s16(vldrbq_z_s16(w2, p), x);
        a3 = vmladavq_s16(vldrbq_z_s16(w3, p), x);
        v += rest;
        w0 += rest;
        w1 += rest;
        w2 += rest;
        w3 += rest;
    }
    k = n >> 3;
    if (k > 0) { /* gcc computes the trip count in five instructions; DLS takes it as it is */
        register int32_t s0 __asm__("r8") = a0;
        register int32_t s1 __asm__("r10") = a1;
        register int32_t s2 __asm__("r12") = a2;
        register int32_t s3 __asm__("r6") = a3;
        register int32_t count __asm__("lr") = k;
        __asm__("dls lr, lr\n"
                "1:\n\t"
                "vldrh.16 q0, [%[v]], #16\n\t"
                "vldrb.s16 q1, [%[w0]], #8\n\t"
                "vmladava.s16 %[s0], q1, q0\n\t"
                "vldrb.s16 q2, [%[w1]], #8\n\t"
                "vmladava.s16 %[s1], q2, q0\n\t"
                "vldrb.s16 q1, [%[w2]], #8\n\t"
                "vmladava.s16 %[s2], q1, q0\n\t"
                "vldrb.s16 q2, [%[w3]], #8\n\t"
                "vmladava.s16 %[s3], q2, q0\n\t"
                "le lr, 1b"
                : [v] "+r"(v), [w0] "+l"(w0), [w1] "+l"(w1), [w2] "+l"(w2), [w3] "+l"(w3), [s0] "+r"(s0),
                  [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3), "+r"(count)
                :
                : "d0", "d1", "d2", "d3", "d4", "d5", "memory");
        a0 = s0;
        a1 = s1;
        a2 = s2;
        a3 = s3;
    }
    acc = vdupq_n_s32(a0);
    acc = vsetq_lane_s32(a1, acc, 1);
    acc = vsetq_lane_s32(a2, acc, 2);
    acc = vsetq_lane_s32(a3, acc, 3);
    return acc;
}

/** mve_rows4 of the four rows of w (row-major, n per row). Not inlined: as a function of its own the loop keeps
 * every pointer and sum in a register (inlined into the gate loop, gcc spills them). */
static __attribute__((noinline)) int32x4_t mve_dot4(const int8_t *w, int32_t n, const int16_t *v)
{
    return mve_rows4(w, w + n, w + 2 * n, w + 3 * n, n, v);
}

/** mve_dot4 of the last `rows` (1..3) rows of a matrix: the spare lanes repeat the last row (read, not stored). */
static __attribute__((noinline)) int32x4_t mve_dot4_part(const int8_t *w, int32_t n, int32_t rows,
                                                         const int16_t *v)
{
    const int8_t *w1 = rows > 1 ? w + n : w;
    const int8_t *w2 = rows > 2 ? w1 + n : w1;
    return mve_rows4(w, w1, w2, w2, n, v);
}

/** Gate rows r..r+3's dot products (rows = 4: full; else the last `rows` of the matrix). */
static inline __attribute__((always_inline)) int32x4_t mve_rows_dot(const int8_t *w, int32_t n, int32_t rows,
                                                                    const int16_t *v, int full)
{
    return full ? mve_dot4(w, n, v) : mve_dot4_part(w, n, rows, v);
}

/** yx of gate rows r..r+3: MBQM(b_x + W_ih . x, Mx, Sx), int32, not saturated. */
static inline __attribute__((always_inline)) int32x4_t mve_input_part(const rnnedge_layer_int8 *layer, int32_t r,
                                                                      int32_t rows, const int16_t *x,
                                                                      mve_pred16_t valid, int full)
{
    const int32x4_t acc = vaddq_s32(mve_rows_dot(layer->w_ih + r * layer->n_in, layer->n_in, rows, x, full),
                                    mve_load32(layer->b_x + r, valid, full));
    return mve_mbqm(acc, mve_load32(layer->mult_x + r, valid, full), mve_load8(layer->shift_x + r, valid, full));
}

/** yh of gate rows r..r+3: MBQM(acc_h, Mh, Sh) for acc_h = b_h + W_hh . h, int32, not saturated. */
static inline __attribute__((always_inline)) int32x4_t mve_recurrent_part(const rnnedge_layer_int8 *layer, int32_t r,
                                                                          int32x4_t acc_h, mve_pred16_t valid,
                                                                          int full)
{
    return mve_mbqm(acc_h, mve_load32(layer->mult_h + r, valid, full), mve_load8(layer->shift_h + r, valid, full));
}

/** pre[r..r+3] = sat16(yx + yh), recurrent bias 0. */
static inline __attribute__((always_inline)) void mve_gate_group(const rnnedge_layer_int8 *layer, const int16_t *x,
                                                                 const int16_t *h, int32_t r, int32_t rows,
                                                                 int16_t *pre, int full)
{
    const mve_pred16_t valid = vctp32q((uint32_t)rows);
    const int32x4_t yx = mve_input_part(layer, r, rows, x, valid, full);
    const int32x4_t acc_h = mve_rows_dot(layer->w_hh + r * layer->hidden, layer->hidden, rows, h, full);
    mve_store_sat16_sum(pre + r, yx, mve_recurrent_part(layer, r, acc_h, valid, full), valid, full);
}

/** pre[r] = sat16(yx + yh) for gate rows 0..G-1 whose recurrent bias is 0 (gate_sums_int8): Q3.12. */
static void mve_gate_sums_int8(const rnnedge_layer_int8 *layer, const int16_t *x, const int16_t *h, int32_t G,
                               int16_t *pre)
{
    int32_t r;
    for (r = 0; r + 4 <= G; r += 4) {
        mve_gate_group(layer, x, h, r, 4, pre, 1);
    }
    if (r < G) {
        mve_gate_group(layer, x, h, r, G - r, pre, 0);
    }
}

/* -- cells (rnnedge_int8.c's, with flags 0): four hidden units per pass, the last pass predicated ------------- */

/** h[j..j+3] from the pre-activations: max(0, pre) or tanh_q15(pre). */
static inline __attribute__((always_inline)) void mve_rnn_units(int16_t *h, const int16_t *scratch, int32_t j,
                                                                int32_t units, int relu, int full)
{
    const mve_pred16_t valid = vctp32q((uint32_t)units);
    const int32x4_t pre = mve_load16(scratch + j, valid, full);
    mve_store16(h + j, relu ? vmaxq_s32(pre, vdupq_n_s32(0)) : mve_tanh_q15(pre), valid, full);
}

static void mve_rnn_step_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *scratch)
{
    const int32_t H = layer->hidden;
    const int relu = layer->cell == RNNEDGE_CELL_RNN_RELU;
    int32_t j;
    mve_gate_sums_int8(layer, x, h, H, scratch);
    for (j = 0; j + 4 <= H; j += 4) {
        mve_rnn_units(h, scratch, j, 4, relu, 1);
    }
    if (j < H) {
        mve_rnn_units(h, scratch, j, H - j, relu, 0);
    }
}

/** The LSTM cell of rnnedge_lstm_step_int8 on hidden units j..j+3: kept = RDBPOT(f c, 15) and added =
 * RDBPOT(i g, 30 + p) are within int16 already (|f c|, |i g| <= 32767 * 32768, shifts >= 15), so only their sum
 * is clamped; h = RDBPOT(o tanh(c), 15) is within int16 likewise. e = p + 12: tanh_of_cell_q15's c in Q3.12 is
 * sat16(c * 2^e) for e >= 0, else RDBPOT(c, -e) (neg_e = -(30 + p) and e as vectors). */
static inline __attribute__((always_inline)) void mve_lstm_units(int16_t *h, int16_t *c, const int16_t *scratch,
                                                                 int32_t H, int32_t j, int32_t units,
                                                                 int32x4_t added_shift, int32_t e, int full)
{
    const mve_pred16_t valid = vctp32q((uint32_t)units);
    const int32x4_t i = mve_sigmoid_q15(mve_load16(scratch + j, valid, full));
    const int32x4_t f = mve_sigmoid_q15(mve_load16(scratch + H + j, valid, full));
    const int32x4_t g = mve_tanh_q15(mve_load16(scratch + 2 * H + j, valid, full));
    const int32x4_t kept = mve_rdbpot15(vmulq_s32(f, mve_load16(c + j, valid, full)));
    const int32x4_t cj = mve_sat16(vaddq_s32(kept, mve_rdbpot(vmulq_s32(i, g), added_shift)));
    const int32x4_t cq = e >= 0 ? mve_sat16(vshlq_s32(cj, vdupq_n_s32(e))) : mve_rdbpot(cj, vdupq_n_s32(e));
    const int32x4_t o = mve_sigmoid_q15(mve_load16(scratch + 3 * H + j, valid, full));
    mve_store16(c + j, cj, valid, full);
    mve_store16(h + j, mve_rdbpot15(vmulq_s32(o, mve_tanh_q15(cq))), valid, full);
}

static void mve_lstm_step_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *c,
                               int16_t *scratch)
{
    const int32_t H = layer->hidden;
    const int32x4_t added_shift = vdupq_n_s32(-(30 + layer->cell_power));
    const int32_t e = layer->cell_power + 12;
    int32_t j;
    mve_gate_sums_int8(layer, x, h, 4 * H, scratch);
    for (j = 0; j + 4 <= H; j += 4) {
        mve_lstm_units(h, c, scratch, H, j, 4, added_shift, e, 1);
    }
    if (j < H) {
        mve_lstm_units(h, c, scratch, H, j, H - j, added_shift, e, 0);
    }
}

/** A GRU's n rows for hidden units j..j+3 (linear_before_reset): tanh(sat16(yx_n + RDBPOT(r * yh_n, 15))) into
 * n[j..j+3], r = sigmoid of the reset gate's pre-activation, yh_n = MBQM(b_hn + W_hn . h). */
static inline __attribute__((always_inline)) void mve_gru_n_units(const rnnedge_layer_int8 *layer, const int16_t *x,
                                                                  const int16_t *h, const int16_t *scratch,
                                                                  int32_t j, int32_t units, int16_t *n, int full)
{
    const int32_t H = layer->hidden;
    const mve_pred16_t valid = vctp32q((uint32_t)units);
    const int32x4_t yx = mve_input_part(layer, 2 * H + j, units, x, valid, full);
    const int32x4_t acc_h = vaddq_s32(mve_rows_dot(layer->w_hh + (2 * H + j) * H, H, units, h, full),
                                      mve_load32(layer->b_hn + j, valid, full));
    const int32x4_t yh = mve_recurrent_part(layer, 2 * H + j, acc_h, valid, full);
    const int32x4_t r = mve_sigmoid_q15(mve_load16(scratch + j, valid, full));
    const int32x4_t rh = vreinterpretq_s32_u32(vrmulhq_u32(vreinterpretq_u32_s32(vabsq_s32(yh)),
                                                           vshlq_n_u32(vreinterpretq_u32_s32(r), 17)));
    const int32x4_t pre = mve_sat16(vqaddq_s32(yx, vnegq_m_s32(rh, rh, vcmpltq_n_s32(yh, 0))));
    mve_store16(n + j, mve_tanh_q15(pre), valid, full);
}

/** gru_blend_int8 on hidden units j..j+3: h = RDBPOT((32768 - z) n + z h, 15), (32768 - z) |n| + z |h| <= 2^30. */
static inline __attribute__((always_inline)) void mve_gru_blend_units(int16_t *h, const int16_t *scratch, int32_t H,
                                                                      int32_t j, int32_t units, int full)
{
    const mve_pred16_t valid = vctp32q((uint32_t)units);
    const int32x4_t z = mve_sigmoid_q15(mve_load16(scratch + H + j, valid, full));
    const int32x4_t keep = vnegq_s32(vsubq_n_s32(z, 32768)); /* 32768 - z */
    const int32x4_t blend = vaddq_s32(vmulq_s32(keep, mve_load16(scratch + 2 * H + j, valid, full)),
                                      vmulq_s32(z, mve_load16(h + j, valid, full)));
    mve_store16(h + j, mve_sat16(mve_rdbpot15(blend)), valid, full);
}

/** rnnedge_gru_step_int8 (linear_before_reset): r, z rows, then every n (reading the h on entry) into scratch,
 * then h = (1 - z) n + z h. */
static void mve_gru_step_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *scratch)
{
    const int32_t H = layer->hidden;
    int16_t *n = scratch + 2 * H;
    int32_t j;
    mve_gate_sums_int8(layer, x, h, 2 * H, scratch);
    for (j = 0; j + 4 <= H; j += 4) {
        mve_gru_n_units(layer, x, h, scratch, j, 4, n, 1);
    }
    if (j < H) {
        mve_gru_n_units(layer, x, h, scratch, j, H - j, n, 0);
    }
    for (j = 0; j + 4 <= H; j += 4) {
        mve_gru_blend_units(h, scratch, H, j, 4, 1);
    }
    if (j < H) {
        mve_gru_blend_units(h, scratch, H, j, H - j, 0);
    }
}

/** rnnedge_head_int8: logits[o] = b[o] + W[o] . h, four rows at a time. */
static void mve_head_int8(const int8_t *w, const int32_t *b, int32_t out, int32_t in, const int16_t *h,
                          int32_t *logits)
{
    int32_t o;
    for (o = 0; o + 4 <= out; o += 4) {
        vstrwq_s32(logits + o, vaddq_s32(mve_dot4(w + o * in, in, h), vldrwq_s32(b + o)));
    }
    if (o < out) {
        const mve_pred16_t valid = vctp32q((uint32_t)(out - o));
        vstrwq_p_s32(logits + o, vaddq_s32(mve_dot4_part(w + o * in, in, out - o, h), vldrwq_z_s32(b + o, valid)),
                     valid);
    }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif /* RNNEDGE_MVE */

#endif /* RNNEDGE_MVE_H */
