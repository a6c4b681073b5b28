/*
 * rnnedge_int8_dsp_rows.h: the DSP path's gate stage (RNNEDGE_DSP_DOT), every four-row block of a layer in one
 * call: per block both dot products of the rows (dot4_int8_pairs, rnnedge_dsp.h: each activation pair word loaded
 * once for the four rows) and their requantisation (mbqm_dsp, inlined), compiled at -O2 so that the
 * requantisation's pointers stay in registers. Included by src/rnnedge_int8.c only, after rnnedge_int8_math.h
 * (sat16_sum, gru_n_pre_int8), as part of that file: split out by concern, not a public header. The integers are
 * the plain path's (gate_sums_int8, gru_n_rows_int8).
 */
#ifndef RNNEDGE_INT8_DSP_ROWS_H
#define RNNEDGE_INT8_DSP_ROWS_H

#if RNNEDGE_DSP_DOT

/* The four rows' requantisation unrolled (gcc): their sums then stay in registers instead of a stack array. */
#if defined(__GNUC__) && !defined(__clang__)
#define ROWS4_UNROLLED _Pragma("GCC unroll 4")
#else
#define ROWS4_UNROLLED
#endif

/** Gate row r's pre-activation sat16(yx + yh) from its two dot products (b_x[r] + W_ih[r] . x, W_hh[r] . h): the
 * gate pre-activation in Q3.12, the two int32 terms added exactly (int64: |yx + yh| <= 2^32) and saturated once. */
static int16_t gate_pre_int8(const rnnedge_layer_int8 *layer, int32_t r, int32_t acc_x, int32_t acc_h)
{
    const int32_t yx = mbqm_dsp(acc_x, layer->mult_x[r], (int32_t)layer->shift_x[r]);
    const int32_t yh = mbqm_dsp(acc_h, layer->mult_h[r], (int32_t)layer->shift_h[r]);
    return sat16_sum(yx, yh);
}

/** pre[r] = gate_pre_int8 of rows r = lo..hi-1, hi - lo a multiple of four (w_x, w_h: row lo of W_ih and W_hh):
 * per four rows both dot products and their requantisation, inlined into one function at -O2 (gcc -Os spills the
 * requantisation's pointers when it inlines it into the row loop: ~60 instructions per row) that walks every
 * four-row block of the range (one call per layer: a call per block cost ~90 instructions of entry, exit and
 * reloading the layer's fields). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("O2")
__attribute__((noinline))
#endif
static void gate_rows4_int8(const rnnedge_layer_int8 *layer, int32_t lo, int32_t hi, const int8_t *w_x,
                            const uint64_t *xp, const int16_t *x, const int8_t *w_h, const uint64_t *hp,
                            const int16_t *h, int16_t *pre)
{
    const int32_t n_in = layer->n_in;
    const int32_t H = layer->hidden;
    const int32_t *b_x = layer->b_x;
    const int32_t *mult_x = layer->mult_x;
    const int32_t *mult_h = layer->mult_h;
    const int8_t *shift_x = layer->shift_x;
    const int8_t *shift_h = layer->shift_h;
    int32_t r;
    for (r = lo; r < hi; r += 4) {
        int32_t acc_x[4];
        int32_t acc_h[4] = {0, 0, 0, 0};
        int32_t k;
        for (k = 0; k < 4; ++k) {
            acc_x[k] = b_x[r + k];
        }
        dot4_int8_pairs(w_x, xp, x, n_in, acc_x);
        dot4_int8_pairs(w_h, hp, h, H, acc_h);
        ROWS4_UNROLLED
        for (k = 0; k < 4; ++k) {
            pre[r + k] = sat16_sum(mbqm_dsp(acc_x[k], mult_x[r + k], (int32_t)shift_x[r + k]),
                                   mbqm_dsp(acc_h[k], mult_h[r + k], (int32_t)shift_h[r + k]));
        }
        w_x += 4 * n_in;
        w_h += 4 * H;
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

/** pre[j] = gru_n_pre_int8 of hidden units j = 0..hi-1, hi a multiple of four (w_x, w_h: the n rows of W_ih and
 * W_hh; r_pre: the reset gate's pre-activations): the dot products and the requantisation of every four-row block in
 * one function at -O2, as gate_rows4_int8. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("O2")
__attribute__((noinline))
#endif
static void gru_n_rows4_int8(const rnnedge_layer_int8 *layer, int32_t hi, const int16_t *r_pre, const int8_t *w_x,
                             const uint64_t *xp, const int16_t *x, const int8_t *w_h, const uint64_t *hp,
                             const int16_t *h, int16_t *pre)
{
    const int32_t n_in = layer->n_in;
    const int32_t H = layer->hidden;
    const int32_t *b_x = layer->b_x + 2 * H;
    const int32_t *b_hn = layer->b_hn;
    int32_t j;
    for (j = 0; j < hi; j += 4) {
        int32_t acc_x[4];
        int32_t acc_h[4];
        int32_t k;
        for (k = 0; k < 4; ++k) {
            acc_x[k] = b_x[j + k];
            acc_h[k] = b_hn[j + k];
        }
        dot4_int8_pairs(w_x, xp, x, n_in, acc_x);
        dot4_int8_pairs(w_h, hp, h, H, acc_h);
        ROWS4_UNROLLED
        for (k = 0; k < 4; ++k) {
            pre[j + k] = gru_n_pre_int8(layer, j + k, sigmoid_q15(r_pre[j + k]), acc_x[k], acc_h[k]);
        }
        w_x += 4 * n_in;
        w_h += 4 * H;
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#undef ROWS4_UNROLLED
#endif /* RNNEDGE_DSP_DOT */

#endif /* RNNEDGE_INT8_DSP_ROWS_H */
