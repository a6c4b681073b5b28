/*
 * rnnedge_int8_ext.h: the int8 step's second path, for the ONNX layer extensions (layer->flags & RNNEDGE_EXT_STEP:
 * clip, input_forget, peepholes, gru linear_before_reset false; kernels_int8 *_ext_int8, gru_reset_before_int8)
 * and the head's hidden dense layers. Its rows are formed one at a time. Included by src/rnnedge_int8.c only, after
 * the gate stages it reuses (gate_sums_int8, gru_n_rows_int8, gru_blend_int8), as part of that file: split out by
 * concern, not a public header. Empty with RNNEDGE_EXTENSIONS 0.
 */
#ifndef RNNEDGE_INT8_EXT_H
#define RNNEDGE_INT8_EXT_H

#if RNNEDGE_EXTENSIONS

/** yx of gate row r: MBQM(b_x[r] + W_ih[r] . x, Mx[r], Sx[r]), int32, not saturated (kernels_int8 gate_term_int8):
 * the pre-activation saturates once, after its terms are added. */
static int32_t input_part(const rnnedge_layer_int8 *layer, int32_t r, const int16_t *x)
{
    const int32_t acc = dot_int8(layer->b_x[r], layer->w_ih + r * layer->n_in, x, layer->n_in);
    return multiply_by_quantized_multiplier(acc, layer->mult_x[r], (int32_t)layer->shift_x[r]);
}

/** yh of gate row r: MBQM(b_h + W_hh[r] . h, Mh[r], Sh[r]), int32, not saturated. */
static int32_t recurrent_part(const rnnedge_layer_int8 *layer, int32_t r, int32_t b_h, const int16_t *h)
{
    const int32_t acc = dot_int8(b_h, layer->w_hh + r * layer->hidden, h, layer->hidden);
    return multiply_by_quantized_multiplier(acc, layer->mult_h[r], (int32_t)layer->shift_h[r]);
}

/** The layer's clip in its pre-activation's integers: clip_q with RNNEDGE_EXT_CLIP, else 32768, which clamps no
 * int16 (kernels_int8 recurrent_step_ext_int8). */
static int32_t clip_threshold(const rnnedge_layer_int8 *layer)
{
    return (layer->flags & RNNEDGE_EXT_CLIP) != 0 ? layer->clip_q : Q15_ONE;
}

/** An int16 pre-activation clamped to [-q, q], 0 <= q <= 32768 (kernels_int8 clip_rows_int8). */
static int16_t clip_int8(int16_t x, int32_t q)
{
    int32_t v = x;
    if (v > q) {
        v = q;
    }
    if (v < -q) {
        v = -q;
    }
    return (int16_t)v;
}

/** Gate row r's pre-activation on the extension path: clip(sat16(yx + yh + term), q), yx + yh with a recurrent
 * bias of 0 (every row but a linear_before_reset GRU's n rows) over the recurrent input v (h, or a GRU's r * h);
 * term: a peephole term yp (int32, not saturated), or 0. One saturation of the three int32 terms, added exactly
 * in int64: |sum| < 3 * 2^31. */
static int16_t gate_pre_ext(const rnnedge_layer_int8 *layer, int32_t r, const int16_t *x, const int16_t *v,
                            int32_t term, int32_t q)
{
    const int64_t sum = (int64_t)input_part(layer, r, x) + (int64_t)recurrent_part(layer, r, 0, v) + (int64_t)term;
    return clip_int8(sat16_wide(sum), q);
}

/** Gate k's (0 i, 1 f, 2 o) peephole term for hidden unit j: yp = MBQM(p_k[j] * c, M_k, S_k) in Q3.12, not
 * saturated (kernels_int8 peephole_int8). p and c int16: |p * c| <= 2^30, exact in int32. */
static int32_t peephole_int8(const rnnedge_layer_int8 *layer, int32_t k, int32_t j, int16_t c)
{
    const int32_t product = (int32_t)layer->peep[k * layer->hidden + j] * (int32_t)c;
    return multiply_by_quantized_multiplier(product, layer->peep_mult[k], (int32_t)layer->peep_shift[k]);
}

/** rnnedge_rnn_step_int8 with the pre-activation clipped (kernels_int8 rnn_update_ext_int8). */
static void rnn_step_ext_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *scratch)
{
    const int32_t H = layer->hidden;
    const int32_t q = clip_threshold(layer);
    uint64_t buf[RNNEDGE_DSP_WORDS];
    const uint64_t *xp;
    const uint64_t *hp;
    int32_t j;
    pack_layer_inputs(layer, x, h, buf, &xp, &hp);
    gate_sums_int8(layer, x, xp, h, hp, 0, H, scratch);
    for (j = 0; j < H; ++j) {
        const int16_t pre = clip_int8(scratch[j], q);
        if (layer->cell == RNNEDGE_CELL_RNN_RELU) {
            h[j] = pre > 0 ? pre : 0;
        } else {
            h[j] = tanh_q15(pre);
        }
    }
}

/** rnnedge_lstm_step_int8 with clip, input_forget and peepholes (kernels_int8 lstm_update_ext_int8). Every gate
 * reads h on entry, so h is written last. i and f read c on entry; with peepholes, o reads the new c, so its row
 * is formed after the cell update (which writes c) and before h is written. scratch: the gates, Q0.15. */
static void lstm_step_ext_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *c,
                               int16_t *scratch)
{
    const int32_t H = layer->hidden;
    const int32_t p = layer->cell_power;
    const int32_t q = clip_threshold(layer);
    const int peepholes = (layer->flags & RNNEDGE_EXT_PEEPHOLES) != 0;
    const int input_forget = (layer->flags & RNNEDGE_EXT_INPUT_FORGET) != 0;
    int32_t j;
    for (j = 0; j < H; ++j) {
        const int16_t i = sigmoid_q15(gate_pre_ext(layer, j, x, h, peepholes ? peephole_int8(layer, 0, j, c[j]) : 0,
                                                   q));
        scratch[j] = i;
        if (input_forget) {
            scratch[H + j] = (int16_t)(Q15_ONE - (int32_t)i < INT16_MAX ? Q15_ONE - (int32_t)i : INT16_MAX);
        } else {
            scratch[H + j] = sigmoid_q15(
                gate_pre_ext(layer, H + j, x, h, peepholes ? peephole_int8(layer, 1, j, c[j]) : 0, q));
        }
        scratch[2 * H + j] = tanh_q15(gate_pre_ext(layer, 2 * H + j, x, h, 0, q));
        if (!peepholes) {
            scratch[3 * H + j] = sigmoid_q15(gate_pre_ext(layer, 3 * H + j, x, h, 0, q));
        }
    }
    for (j = 0; j < H; ++j) { /* the cell, as rnnedge_lstm_step_int8 */
        const int32_t i = scratch[j];
        const int32_t f = scratch[H + j];
        const int32_t g = scratch[2 * H + j];
        const int16_t kept = sat16(rounding_divide_by_pot(f * (int32_t)c[j], 15));
        const int16_t added = sat16(rounding_divide_by_pot(i * g, 30 + p));
        c[j] = sat16((int32_t)kept + (int32_t)added);
    }
    if (peepholes) {
        for (j = 0; j < H; ++j) {
            scratch[3 * H + j] = sigmoid_q15(
                gate_pre_ext(layer, 3 * H + j, x, h, peephole_int8(layer, 2, j, c[j]), q));
        }
    }
    for (j = 0; j < H; ++j) {
        const int32_t o = scratch[3 * H + j];
        h[j] = sat16(rounding_divide_by_pot(o * (int32_t)tanh_of_cell_q15(c[j], p), 15));
    }
}

/** rnnedge_gru_step_int8 (linear_before_reset) with every pre-activation clipped, n's after its r term
 * (kernels_int8 gru_update_int8 with a clip). scratch: r, z (their clipped pre-activations), then n. */
static void gru_step_ext_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *scratch)
{
    const int32_t H = layer->hidden;
    const int32_t q = clip_threshold(layer);
    int16_t *n = scratch + 2 * H;
    int32_t j;
    for (j = 0; j < 2 * H; ++j) { /* r, z pre-activations, clipped */
        scratch[j] = gate_pre_ext(layer, j, x, h, 0, q);
    }
    gru_n_rows_int8(layer, scratch, x, 0, h, 0, n); /* every n before any h is written: they read the h on entry */
    for (j = 0; j < H; ++j) {
        n[j] = tanh_q15(clip_int8(n[j], q));
    }
    for (j = 0; j < H; ++j) {
        h[j] = gru_blend_int8(sigmoid_q15(scratch[H + j]), n[j], h[j]);
    }
}

/** The GRU of linear_before_reset false (ONNX's default; kernels_int8 gru_reset_before_int8): r, z from h as
 * usual, rh = RDBPOT(r * h, 15), then n = tanh_q15(clip(sat16(yx_n + MBQM(W_hn . rh, Mh, Sh)))), no
 * recurrent bias (b_hn is folded into b_x). scratch: r, z (Q0.15), n, then rh: the 4H every GRU's scratch
 * holds. */
static void gru_reset_before_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *scratch)
{
    const int32_t H = layer->hidden;
    const int32_t q = clip_threshold(layer);
    int16_t *n = scratch + 2 * H;
    int16_t *rh = scratch + 3 * H;
    int32_t j;
    for (j = 0; j < 2 * H; ++j) { /* r, z */
        scratch[j] = sigmoid_q15(gate_pre_ext(layer, j, x, h, 0, q));
    }
    for (j = 0; j < H; ++j) { /* r in [0, 32767]: |rh| <= |h|, an int16 */
        rh[j] = (int16_t)rounding_divide_by_pot((int32_t)scratch[j] * (int32_t)h[j], 15);
    }
    for (j = 0; j < H; ++j) {
        n[j] = tanh_q15(gate_pre_ext(layer, 2 * H + j, x, rh, 0, q));
    }
    for (j = 0; j < H; ++j) {
        h[j] = gru_blend_int8(scratch[H + j], n[j], h[j]);
    }
}

/* -- the head's hidden dense layers ------------------------------------------------------------------ */

/** An int32 accumulator -> int16 sat16(MBQM(acc, M, S)): a hidden head layer's output (kernels_int8
 * requantize_int8). */
static int16_t requantize_int8(int32_t acc, int32_t M, int32_t S)
{
    return sat16(multiply_by_quantized_multiplier(acc, M, S));
}

#define GELU_C 46887   /* round(0.044715 * 2^20) */
#define GELU_K 1673285 /* round(2 sqrt(2 / pi) * 2^20) */

/** int16 Q3.12 -> int16 gelu(x) = x * sigmoid(2u) in Q3.12, u = sqrt(2/pi) (x + 0.044715 x^3) (int8_math's
 * docstring; gelu and gelu_tanh alike). |GELU_C x^3| < 2^61, |GELU_K inner| < 2^38: int64, floor shifts. */
static int16_t gelu_q12(int16_t x)
{
    const int64_t x64 = (int64_t)x;
    const int64_t inner = x64 + ((GELU_C * x64 * x64 * x64 + ((int64_t)1 << 43)) >> 44);
    const int32_t s = (int32_t)sigmoid_q15(sat16((int32_t)((GELU_K * inner + ((int64_t)1 << 19)) >> 20)));
    return (int16_t)(((int32_t)x * s + ((int32_t)1 << 14)) >> 15);
}

const int16_t *rnnedge_dense_layers_int8(const rnnedge_dense_int8 *dense, int32_t n_dense, const int16_t *v,
                                         int16_t *work)
{
    int32_t k;
    for (k = 0; k < n_dense; ++k) {
        const rnnedge_dense_int8 *d = &dense[k];
        uint64_t buf[RNNEDGE_DSP_WORDS];
        const uint64_t *vp = pack_pairs(v, d->n_in, buf, RNNEDGE_DSP_WORDS);
        int32_t r;
        for (r = 0; r < d->units; ++r) {
            int16_t q = requantize_int8(dot_row(d->b[r], d->w + r * d->n_in, vp, v, d->n_in), d->mult[r],
                                        d->shift[r]);
            if (d->activation == RNNEDGE_HIDDEN_RELU) {
                q = q < 0 ? (int16_t)0 : q;
            } else if (d->activation == RNNEDGE_HIDDEN_TANH) {
                q = tanh_q15(q);
            } else if (d->activation == RNNEDGE_HIDDEN_SIGMOID) {
                q = sigmoid_q15(q);
            } else if (d->activation == RNNEDGE_HIDDEN_GELU || d->activation == RNNEDGE_HIDDEN_GELU_TANH) {
                q = gelu_q12(q);
            }
            work[r] = q;
        }
        v = work;
        work += d->units;
    }
    return v;
}

/** n int16 values: a copy of src, or zeros when src is NULL. */
static void copy_or_zero(int16_t *dst, const int16_t *src, int32_t n)
{
    int32_t k;
    for (k = 0; k < n; ++k) {
        dst[k] = src != 0 ? src[k] : 0;
    }
}

#endif /* RNNEDGE_EXTENSIONS */

#endif /* RNNEDGE_INT8_EXT_H */
