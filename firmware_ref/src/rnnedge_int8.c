/*
 * rnnedge_int8.c: the `int8` precision's step, integers only (no float type appears in this file).
 *
 * Contract: the module docstrings of runtime/kernels_int8.py (the cells, and the ONNX layer extensions' second
 * path: clip, input_forget, peepholes, gru linear_before_reset false, initial_state) and runtime/int8_math.py (each
 * primitive's rounding). Every primitive below is one static function named as in int8_math.py; the runtime
 * additionally has a "right shift only" requantisation path that gives the same integers, which C does not
 * need. Ranges are stated where a value could look close to overflowing; int64_t is used only in
 * saturating_rounding_doubling_high_mul (a 32 x 32 bit product), for the saturating left shift of
 * multiply_by_quantized_multiplier, and where a gate pre-activation adds its requantised int32 terms before its
 * one saturation (docs/int8.md): yx + yh (+ a peephole's yp), and a GRU's r * yh_n.
 *
 * Split by concern into headers this file alone includes: rnnedge_int8_math.h (the primitives and a gate
 * pre-activation's sum of terms), rnnedge_int8_dsp_rows.h (the DSP path's four-row gate stage),
 * rnnedge_int8_ext.h (the extensions' path and the head's hidden dense layers).
 *
 * RNNEDGE_EXTENSIONS 0 (rnnedge.h) compiles the extensions' second path out: a model step then refuses any layer
 * with flags (RNNEDGE_ERR_UNSUPPORTED) and a state reset any layer with RNNEDGE_EXT_INIT.
 */
#include "rnnedge.h"
#include "rnnedge_dsp.h"
#include "rnnedge_mve.h"

/* Right shifts of negative values are implementation-defined in C99; this file assumes arithmetic (floor)
 * shifts, as every compiler it targets does (gcc, clang, arm-none-eabi-gcc). A compiler that shifts
 * logically fails here, at compile time, instead of computing wrong numbers. */
typedef char rnnedge_requires_arithmetic_right_shift
    [((INT32_C(-5) >> 1) == INT32_C(-3) && (INT64_C(-5) >> 1) == INT64_C(-3) && (-1 >> 1) == -1) ? 1 : -1];

#include "rnnedge_int8_math.h"

/* -- dot products and gate pre-activations ------------------------------------------------------------------ */

/** bias + w . v over n: int32, exact (export and the runtime's loader prove |bias| + sum |w| * 2^15 < 2^31 for
 * every row, so no partial sum in any order overflows: the DSP path below may add the products in its own order).
 * Explicit int32 casts: correct where int is 16 bits. Eight products per pass, constant offsets from two pointers,
 * one accumulator, the count tested at the bottom: arm-none-eabi-gcc -Os makes this 8 x (ldrsb, ldrsh, mla) + 2
 * adds + cmp + bne on a Cortex-M3, 3.5 instructions per multiply-accumulate (a plain one-at-a-time loop takes 7);
 * the last n mod 8 one at a time. */
static int32_t dot_int8(int32_t bias, const int8_t *w, const int16_t *v, int32_t n)
{
    int32_t acc = bias;
    int32_t k = n >> 3;
    if (k > 0) {
        do {
            acc += (int32_t)w[0] * (int32_t)v[0];
            acc += (int32_t)w[1] * (int32_t)v[1];
            acc += (int32_t)w[2] * (int32_t)v[2];
            acc += (int32_t)w[3] * (int32_t)v[3];
            acc += (int32_t)w[4] * (int32_t)v[4];
            acc += (int32_t)w[5] * (int32_t)v[5];
            acc += (int32_t)w[6] * (int32_t)v[6];
            acc += (int32_t)w[7] * (int32_t)v[7];
            w += 8;
            v += 8;
        } while (--k != 0);
    }
    for (k = n & 7; k > 0; --k) {
        acc += (int32_t)*w++ * (int32_t)*v++;
    }
    return acc;
}

/** bias + w . v over n: the DSP dot product where v has pairs, else the plain one. */
static int32_t dot_row(int32_t bias, const int8_t *w, const uint64_t *pairs, const int16_t *v, int32_t n)
{
#if RNNEDGE_DSP_DOT
    if (pairs != 0) {
        return dot_int8_pairs(bias, w, pairs, v, n);
    }
#else
    (void)pairs;
#endif
    return dot_int8(bias, w, v, n);
}

/** x's and h's pairs in buf (RNNEDGE_DSP_WORDS words): *xp and *hp, each 0 where it was not packed. */
static void pack_layer_inputs(const rnnedge_layer_int8 *layer, const int16_t *x, const int16_t *h, uint64_t *buf,
                              const uint64_t **xp, const uint64_t **hp)
{
    *xp = pack_pairs(x, layer->n_in, buf, RNNEDGE_DSP_WORDS);
    *hp = pack_pairs(h, layer->hidden, buf + pairs_words(*xp, layer->n_in),
                     RNNEDGE_DSP_WORDS - pairs_words(*xp, layer->n_in));
}

#include "rnnedge_int8_dsp_rows.h"

/** pre[r] = sat16(yx + yh) for rows lo..hi-1 whose recurrent bias is 0: the gate pre-activations in Q3.12, the two
 * int32 terms added exactly (int64: |yx + yh| <= 2^32) and saturated once. h is only read here; the callers write
 * the new h after every row is done. xp, hp: x's and h's pairs (pack_layer_inputs). */
static void gate_sums_int8(const rnnedge_layer_int8 *layer, const int16_t *x, const uint64_t *xp, const int16_t *h,
                           const uint64_t *hp, int32_t lo, int32_t hi, int16_t *pre)
{
    const int32_t n_in = layer->n_in;
    const int32_t H = layer->hidden;
    const int8_t *w_x = layer->w_ih + lo * n_in; /* row r of W_ih and of W_hh, walked row by row */
    const int8_t *w_h = layer->w_hh + lo * H;
    int32_t r = lo;
#if RNNEDGE_DSP_DOT
    if (xp != 0 && hp != 0) { /* four rows, then two, at a time: each activation load serves them all */
        int32_t acc_x[2];
        int32_t acc_h[2];
        const int32_t blocks = (hi - lo) & ~(int32_t)3;
        if (blocks > 0) {
            gate_rows4_int8(layer, lo, lo + blocks, w_x, xp, x, w_h, hp, h, pre);
            r += blocks;
            w_x += blocks * n_in;
            w_h += blocks * H;
        }
        for (; r + 1 < hi; r += 2) {
            dot2_int8_pairs(layer->b_x[r], layer->b_x[r + 1], w_x, xp, x, n_in, acc_x);
            dot2_int8_pairs(0, 0, w_h, hp, h, H, acc_h);
            pre[r] = gate_pre_int8(layer, r, acc_x[0], acc_h[0]);
            pre[r + 1] = gate_pre_int8(layer, r + 1, acc_x[1], acc_h[1]);
            w_x += 2 * n_in;
            w_h += 2 * H;
        }
    }
#endif
    for (; r < hi; ++r) { /* yx before the second dot product: one live value fewer across the call */
        const int32_t yx = multiply_by_quantized_multiplier(dot_row(layer->b_x[r], w_x, xp, x, n_in), layer->mult_x[r],
                                                            (int32_t)layer->shift_x[r]);
        const int32_t yh = multiply_by_quantized_multiplier(dot_row(0, w_h, hp, h, H), layer->mult_h[r],
                                                            (int32_t)layer->shift_h[r]);
        pre[r] = sat16_sum(yx, yh);
        w_x += n_in;
        w_h += H;
    }
}


/** The n rows' pre-activations pre[j] = gru_n_pre_int8 for hidden units 0..H-1, r_pre[j]: the reset gate's
 * pre-activation (Q3.12; r = sigmoid_q15 of it, Q0.15). xp,
 * hp: x's and h's pairs (two rows at a time on the DSP path, as gate_sums_int8). */
static void gru_n_rows_int8(const rnnedge_layer_int8 *layer, const int16_t *r_pre, const int16_t *x,
                            const uint64_t *xp, const int16_t *h, const uint64_t *hp, int16_t *pre)
{
    const int32_t n_in = layer->n_in;
    const int32_t H = layer->hidden;
    const int8_t *w_x = layer->w_ih + 2 * H * n_in; /* the n rows: the third block of both matrices */
    const int8_t *w_h = layer->w_hh + 2 * H * H;
    int32_t j = 0;
#if RNNEDGE_DSP_DOT
    if (xp != 0 && hp != 0) {
        int32_t acc_x[2];
        int32_t acc_h[2];
        j = H & ~(int32_t)3;
        if (j > 0) {
            gru_n_rows4_int8(layer, j, r_pre, w_x, xp, x, w_h, hp, h, pre);
            w_x += j * n_in;
            w_h += j * H;
        }
        for (; j + 1 < H; j += 2) {
            dot2_int8_pairs(layer->b_x[2 * H + j], layer->b_x[2 * H + j + 1], w_x, xp, x, n_in, acc_x);
            dot2_int8_pairs(layer->b_hn[j], layer->b_hn[j + 1], w_h, hp, h, H, acc_h);
            pre[j] = gru_n_pre_int8(layer, j, sigmoid_q15(r_pre[j]), acc_x[0], acc_h[0]);
            pre[j + 1] = gru_n_pre_int8(layer, j + 1, sigmoid_q15(r_pre[j + 1]), acc_x[1], acc_h[1]);
            w_x += 2 * n_in;
            w_h += 2 * H;
        }
    }
#endif
    for (; j < H; ++j) {
        pre[j] = gru_n_pre_int8(layer, j, sigmoid_q15(r_pre[j]), dot_row(layer->b_x[2 * H + j], w_x, xp, x, n_in),
                                dot_row(layer->b_hn[j], w_h, hp, h, H));
        w_x += n_in;
        w_h += H;
    }
}

/** h = (1 - z) n + z h (Q0.15) for hidden unit j (kernels_int8 gru_blend_int8): (32768 - z) |n| + z |h| <= 2^30. */
static int16_t gru_blend_int8(int32_t z, int32_t n, int16_t h)
{
    return sat16(rounding_divide_by_pot_small((Q15_ONE - z) * n + z * (int32_t)h, 15));
}

#include "rnnedge_int8_ext.h"

/* -- cells ---------------------------------------------------------------------------------------------------- */

void rnnedge_rnn_step_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *scratch)
{
    const int32_t H = layer->hidden;
    uint64_t buf[RNNEDGE_DSP_WORDS];
    const uint64_t *xp;
    const uint64_t *hp;
    int32_t j;
#if RNNEDGE_EXTENSIONS
    if ((layer->flags & RNNEDGE_EXT_STEP) != 0) {
        rnn_step_ext_int8(layer, x, h, scratch);
        return;
    }
#endif
#if RNNEDGE_MVE
    mve_rnn_step_int8(layer, x, h, scratch);
    return;
#endif
    pack_layer_inputs(layer, x, h, buf, &xp, &hp);
    gate_sums_int8(layer, x, xp, h, hp, 0, H, scratch);
    for (j = 0; j < H; ++j) {
        if (layer->cell == RNNEDGE_CELL_RNN_RELU) {
            h[j] = scratch[j] > 0 ? scratch[j] : 0;
        } else {
            h[j] = tanh_q15(scratch[j]);
        }
    }
}

void rnnedge_lstm_step_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *c,
                            int16_t *scratch)
{
    const int32_t H = layer->hidden;
    const int32_t p = layer->cell_power;
    uint64_t buf[RNNEDGE_DSP_WORDS];
    const uint64_t *xp;
    const uint64_t *hp;
    int32_t j;
#if RNNEDGE_EXTENSIONS
    if ((layer->flags & RNNEDGE_EXT_STEP) != 0) {
        lstm_step_ext_int8(layer, x, h, c, scratch);
        return;
    }
#endif
#if RNNEDGE_MVE
    mve_lstm_step_int8(layer, x, h, c, scratch);
    return;
#endif
    pack_layer_inputs(layer, x, h, buf, &xp, &hp);
    gate_sums_int8(layer, x, xp, h, hp, 0, 4 * H, scratch);
    for (j = 0; j < H; ++j) {
        /* i, f, o in [0, 32767] (sigmoid), g in [-32768, 32767] (tanh), c int16: every product below is
         * below 2^30 in magnitude, so int32 holds it and the rounding's added half (<= 2^30 for 30 + p = 31):
         * 32767^2 + 2^30 < 2^31 - 1. */
        const int32_t i = sigmoid_q15(scratch[j]);
        const int32_t f = sigmoid_q15(scratch[H + j]);
        const int32_t g = tanh_q15(scratch[2 * H + j]);
        const int32_t o = sigmoid_q15(scratch[3 * H + j]);
        const int16_t kept = sat16(rounding_divide_by_pot_small(f * (int32_t)c[j], 15));
        const int16_t added = sat16(rounding_divide_by_pot_small(i * g, 30 + p)); /* p in [-15, 1]: 15..31 */
        const int16_t cj = sat16((int32_t)kept + (int32_t)added);
        c[j] = cj;
        h[j] = sat16(rounding_divide_by_pot_small(o * (int32_t)tanh_of_cell_q15(cj, p), 15));
    }
}

void rnnedge_gru_step_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *scratch)
{
    const int32_t H = layer->hidden;
    int16_t *n = scratch + 2 * H; /* r, z pre-activations, then n (Q0.15) */
    uint64_t buf[RNNEDGE_DSP_WORDS];
    const uint64_t *xp;
    const uint64_t *hp;
    int32_t j;
#if RNNEDGE_EXTENSIONS
    if ((layer->flags & RNNEDGE_EXT_RESET_BEFORE) != 0) {
        gru_reset_before_int8(layer, x, h, scratch);
        return;
    }
    if ((layer->flags & RNNEDGE_EXT_STEP) != 0) {
        gru_step_ext_int8(layer, x, h, scratch);
        return;
    }
#endif
#if RNNEDGE_MVE
    mve_gru_step_int8(layer, x, h, scratch);
    return;
#endif
    pack_layer_inputs(layer, x, h, buf, &xp, &hp);
    gate_sums_int8(layer, x, xp, h, hp, 0, 2 * H, scratch); /* r, z: recurrent bias 0 */
    gru_n_rows_int8(layer, scratch, x, xp, h, hp, n); /* every n before any h is written: they read the h on entry */
    for (j = 0; j < H; ++j) {
        h[j] = gru_blend_int8(sigmoid_q15(scratch[H + j]), tanh_q15(n[j]), h[j]);
    }
}

/* -- input, head, model ------------------------------------------------------------------------------------- */

void rnnedge_embedding_int8(const int8_t *table, int32_t dim, int32_t token, int16_t *x)
{
    const int8_t *row = table + token * dim;
    int32_t k;
    for (k = 0; k < dim; ++k) {
        x[k] = (int16_t)row[k];
    }
}

void rnnedge_head_int8(const int8_t *w, const int32_t *b, int32_t out, int32_t in, const int16_t *h,
                       int32_t *logits)
{
#if RNNEDGE_MVE
    mve_head_int8(w, b, out, in, h, logits);
#else
    uint64_t buf[RNNEDGE_DSP_WORDS];
    const uint64_t *hp = pack_pairs(h, in, buf, RNNEDGE_DSP_WORDS);
    int32_t o = 0;
#if RNNEDGE_DSP_DOT
    for (; hp != 0 && o + 1 < out; o += 2) { /* two rows at a time, as gate_sums_int8 */
        dot2_int8_pairs(b[o], b[o + 1], w + o * in, hp, h, in, logits + o);
    }
#endif
    for (; o < out; ++o) {
        logits[o] = dot_row(b[o], w + o * in, hp, h, in);
    }
#endif
}


int rnnedge_state_reset_int8(const rnnedge_model_int8 *model, rnnedge_state_int8 *s)
{
    int32_t k;
    int32_t l;
#if RNNEDGE_EXTENSIONS
    int16_t *state;
#endif
    if (model == 0 || s == 0 || s->state == 0 || (model->n_layers > 0 && model->layers == 0)) {
        return RNNEDGE_ERR_NULL;
    }
#if !RNNEDGE_EXTENSIONS
    for (l = 0; l < model->n_layers; ++l) { /* h0 / c0 are extension code: refuse rather than start from zeros */
        if ((model->layers[l].flags & RNNEDGE_EXT_INIT) != 0) {
            return RNNEDGE_ERR_UNSUPPORTED;
        }
    }
#endif
    for (k = 0; k < model->state_len; ++k) {
        s->state[k] = 0;
    }
#if RNNEDGE_EXTENSIONS
    state = s->state; /* each layer's h, then (lstm) c: kernels_int8 initial_state_int8 */
    for (l = 0; l < model->n_layers; ++l) {
        const rnnedge_layer_int8 *layer = &model->layers[l];
        if ((layer->flags & RNNEDGE_EXT_INIT) != 0) {
            copy_or_zero(state, layer->h0, layer->hidden);
            if (layer->cell == RNNEDGE_CELL_LSTM) {
                copy_or_zero(state + layer->hidden, layer->c0, layer->hidden);
            }
        }
        state += RNNEDGE_LAYER_STATE_LEN(layer->cell, layer->hidden);
    }
#endif
    return RNNEDGE_OK;
}

/** RNNEDGE_OK if the int8 step runs a layer's extensions (flags), RNNEDGE_ERR_UNSUPPORTED for a bit it does not
 * implement or one of another cell, an out-of-range clip, RNNEDGE_ERR_NULL for missing peephole constants.
 * Built with RNNEDGE_EXTENSIONS 0: RNNEDGE_ERR_UNSUPPORTED for any flags (INIT too: the step itself would be
 * PyTorch's, but the state it continues must have started from h0 / c0, which this build cannot write). */
static int check_extensions(const rnnedge_layer_int8 *layer)
{
#if !RNNEDGE_EXTENSIONS
    return layer->flags != 0 ? RNNEDGE_ERR_UNSUPPORTED : RNNEDGE_OK;
#else
    const int32_t flags = layer->flags;
    const int lstm = layer->cell == RNNEDGE_CELL_LSTM;
    if ((flags & ~RNNEDGE_EXT_INT8) != 0 ||
        ((flags & (RNNEDGE_EXT_INPUT_FORGET | RNNEDGE_EXT_PEEPHOLES)) != 0 && !lstm) ||
        ((flags & RNNEDGE_EXT_RESET_BEFORE) != 0 && layer->cell != RNNEDGE_CELL_GRU) ||
        ((flags & RNNEDGE_EXT_CLIP) != 0 && (layer->clip_q < 0 || layer->clip_q > INT16_MAX))) {
        return RNNEDGE_ERR_UNSUPPORTED;
    }
    if ((flags & RNNEDGE_EXT_PEEPHOLES) != 0 &&
        (layer->peep == 0 || layer->peep_mult == 0 || layer->peep_shift == 0)) {
        return RNNEDGE_ERR_NULL;
    }
    return RNNEDGE_OK;
#endif
}

/** RNNEDGE_OK if the model, stream and logits can run a step of input kind `kind`, else the error. */
static int check_step(const rnnedge_model_int8 *model, const rnnedge_state_int8 *s, int32_t *logits, int32_t kind)
{
    int32_t l;
    int status;
    if (model == 0 || s == 0 || s->state == 0 || s->scratch == 0 || logits == 0 || model->layers == 0 ||
        model->head_w == 0 || model->head_b == 0) {
        return RNNEDGE_ERR_NULL;
    }
    if (model->input_kind != kind) {
        return RNNEDGE_ERR_INPUT_KIND;
    }
    if (kind == RNNEDGE_INPUT_TOKENS && model->embedding == 0) {
        return RNNEDGE_ERR_NULL;
    }
    for (l = 0; l < model->n_layers; ++l) {
        const rnnedge_layer_int8 *layer = &model->layers[l];
        if (layer->bidirectional) {
            return RNNEDGE_ERR_UNSUPPORTED;
        }
        if (layer->cell < RNNEDGE_CELL_RNN_TANH || layer->cell > RNNEDGE_CELL_GRU) {
            return RNNEDGE_ERR_UNSUPPORTED;
        }
        if (layer->cell == RNNEDGE_CELL_LSTM &&
            (layer->cell_power < RNNEDGE_CELL_POWER_MIN || layer->cell_power > RNNEDGE_CELL_POWER_MAX)) {
            return RNNEDGE_ERR_UNSUPPORTED;
        }
        status = check_extensions(layer);
        if (status != RNNEDGE_OK) {
            return status;
        }
        if (layer->w_ih == 0 || layer->w_hh == 0 || layer->b_x == 0 || layer->mult_x == 0 || layer->shift_x == 0 ||
            layer->mult_h == 0 || layer->shift_h == 0 ||
            (layer->cell == RNNEDGE_CELL_GRU && (layer->flags & RNNEDGE_EXT_RESET_BEFORE) == 0 && layer->b_hn == 0)) {
            return RNNEDGE_ERR_NULL;
        }
    }
    if (model->n_dense < 0 || (!RNNEDGE_EXTENSIONS && model->n_dense > 0)) { /* hidden head layers: extension code */
        return RNNEDGE_ERR_UNSUPPORTED;
    }
    if (model->n_dense > 0 && model->dense == 0) {
        return RNNEDGE_ERR_NULL;
    }
    for (l = 0; l < model->n_dense; ++l) {
        const rnnedge_dense_int8 *d = &model->dense[l];
        if (d->w == 0 || d->b == 0 || d->mult == 0 || d->shift == 0) {
            return RNNEDGE_ERR_NULL;
        }
        if (d->activation < RNNEDGE_HIDDEN_NONE || d->activation > RNNEDGE_HIDDEN_GELU_TANH) {
            return RNNEDGE_ERR_UNSUPPORTED;
        }
    }
    return RNNEDGE_OK;
}

/** Every layer on input x (int16, model->n_in), then the head; scratch: the layers' working memory. */
static void layers_and_head_int8(const rnnedge_model_int8 *model, int16_t *state, const int16_t *x,
                                 int16_t *scratch, int32_t *logits)
{
    int32_t l;
    for (l = 0; l < model->n_layers; ++l) {
        const rnnedge_layer_int8 *layer = &model->layers[l];
        int16_t *h = state;
        if (layer->cell == RNNEDGE_CELL_LSTM) {
            rnnedge_lstm_step_int8(layer, x, h, h + layer->hidden, scratch);
        } else if (layer->cell == RNNEDGE_CELL_GRU) {
            rnnedge_gru_step_int8(layer, x, h, scratch);
        } else {
            rnnedge_rnn_step_int8(layer, x, h, scratch);
        }
        state += RNNEDGE_LAYER_STATE_LEN(layer->cell, layer->hidden);
        x = h; /* the next layer reads this layer's new h */
    }
#if RNNEDGE_EXTENSIONS
    if (model->n_dense > 0) { /* the layers are done: their scratch holds the hidden layers' outputs */
        x = rnnedge_dense_layers_int8(model->dense, model->n_dense, x, scratch);
    }
#endif
    rnnedge_head_int8(model->head_w, model->head_b, model->out, model->head_in, x, logits);
}

int rnnedge_model_step_dense_int8(const rnnedge_model_int8 *model, rnnedge_state_int8 *s, const int16_t *x_q,
                                  int32_t *logits)
{
    const int status = check_step(model, s, logits, RNNEDGE_INPUT_DENSE);
    if (status != RNNEDGE_OK) {
        return status;
    }
    if (x_q == 0) {
        return RNNEDGE_ERR_NULL;
    }
    layers_and_head_int8(model, s->state, x_q, s->scratch, logits);
    return RNNEDGE_OK;
}

int rnnedge_model_step_tokens_int8(const rnnedge_model_int8 *model, rnnedge_state_int8 *s, int32_t token,
                                   int32_t *logits)
{
    const int status = check_step(model, s, logits, RNNEDGE_INPUT_TOKENS);
    if (status != RNNEDGE_OK) {
        return status;
    }
    if (token < 0 || token >= model->vocab) {
        return RNNEDGE_ERR_BAD_TOKEN;
    }
    rnnedge_embedding_int8(model->embedding, model->n_in, token, s->scratch); /* the row: front of scratch */
    layers_and_head_int8(model, s->state, s->scratch, s->scratch + model->n_in, logits);
    return RNNEDGE_OK;
}
