/*
 * rnnedge_f32_cells.h: the per-cell step of the f32 precision: the dot products (RNNEDGE_FMA) and gate sums, the gate
 * updates rnnedge_int8w.c shares (rnnedge_float_internal.h), the ONNX layer extensions' check, reset and updates, and
 * the cell steps rnnedge_{rnn,lstm,gru}_step_f32. Included by src/rnnedge_f32.c only (after rnnedge_f32_math.h), as
 * part of that file: split out by concern, not a public header.
 */
#ifndef RNNEDGE_F32_CELLS_H
#define RNNEDGE_F32_CELLS_H

/* -- sums, shared updates ------------------------------------------------------------------------------------ */

/* __builtin_fmaf becomes one VFMA.F32 there (gcc, clang); elsewhere it could be a libm call, which the library avoids */
#ifndef RNNEDGE_FMA
#if defined(__GNUC__) && defined(__ARM_FEATURE_FMA) && defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'
#define RNNEDGE_FMA 1
#else
#define RNNEDGE_FMA 0
#endif
#endif

#if RNNEDGE_FMA
/** acc + w . v over n: one fused multiply-add per product, in index order (rnnedge_f32.c's comment). */
static float dot_acc_f32(float acc, const float *w, const float *v, int32_t n)
{
    const float *end = w + (n & ~(int32_t)7);
    while (w != end) {
        acc = __builtin_fmaf(w[0], v[0], acc);
        acc = __builtin_fmaf(w[1], v[1], acc);
        acc = __builtin_fmaf(w[2], v[2], acc);
        acc = __builtin_fmaf(w[3], v[3], acc);
        acc = __builtin_fmaf(w[4], v[4], acc);
        acc = __builtin_fmaf(w[5], v[5], acc);
        acc = __builtin_fmaf(w[6], v[6], acc);
        acc = __builtin_fmaf(w[7], v[7], acc);
        w += 8;
        v += 8;
    }
    end = w + (n & 7);
    while (w != end) {
        acc = __builtin_fmaf(*w++, *v++, acc);
    }
    return acc;
}
#else
/** acc + w . v over n, four products per pass then one at a time (gemv_t_acc_f32's order per output row). */
static float dot_acc_f32(float acc, const float *w, const float *v, int32_t n)
{
    int32_t k = 0;
    for (; k + 4 <= n; k += 4) {
        acc += w[k] * v[k] + w[k + 1] * v[k + 1] + w[k + 2] * v[k + 2] + w[k + 3] * v[k + 3];
    }
    for (; k < n; ++k) {
        acc += w[k] * v[k];
    }
    return acc;
}
#endif

/** gx of gate row r: b_ih[r] + W_ih[r] . x. */
static float input_part_f32(const rnnedge_layer_f32 *layer, int32_t r, const float *x)
{
    return dot_acc_f32(layer->b_ih[r], layer->w_ih + r * layer->n_in, x, layer->n_in);
}

/** (gx + b_hh[r]) + W_hh[r] . h for rows lo..hi-1 (rnn and lstm pre-activations). h is only read. */
static void gate_sums_f32(const rnnedge_layer_f32 *layer, const float *x, const float *h, int32_t lo, int32_t hi,
                          float *pre)
{
    int32_t r;
    for (r = lo; r < hi; ++r) {
        pre[r] = dot_acc_f32(input_part_f32(layer, r, x) + layer->b_hh[r], layer->w_hh + r * layer->hidden, h,
                             layer->hidden);
    }
}

void rnnedge_rnn_update_f32(int32_t relu, int32_t H, float *h, const float *pre)
{
    int32_t j;
    for (j = 0; j < H; ++j) {
        if (relu) {
            h[j] = pre[j] > 0.0f ? pre[j] : 0.0f; /* max(pre, 0) */
        } else {
            h[j] = rnnedge_tanh_f32(pre[j]);
        }
    }
}

void rnnedge_lstm_update_f32(int32_t H, float *h, float *c, const float *gates)
{
    int32_t j;
    for (j = 0; j < H; ++j) {
        const float i = rnnedge_sigmoid_f32(gates[j]);
        const float f = rnnedge_sigmoid_f32(gates[H + j]);
        const float g = rnnedge_tanh_f32(gates[2 * H + j]);
        const float o = rnnedge_sigmoid_f32(gates[3 * H + j]);
        const float cj = f * c[j] + i * g;
        c[j] = cj;
        h[j] = o * rnnedge_tanh_f32(cj);
    }
}

void rnnedge_gru_update_f32(int32_t H, float *h, const float *sums)
{
    int32_t j;
    for (j = 0; j < H; ++j) {
        const float r = rnnedge_sigmoid_f32(sums[j]);
        const float z = rnnedge_sigmoid_f32(sums[H + j]);
        const float n = rnnedge_tanh_f32(sums[2 * H + j] + r * sums[3 * H + j]);
        h[j] = (1.0f - z) * n + z * h[j];
    }
}

/* -- the ONNX layer extensions ------------------------------------------------------------------------------- */

#if !RNNEDGE_EXTENSIONS
int rnnedge_check_ext_f32(const rnnedge_ext_f32 *ext, int32_t cell)
{
    (void)cell;
    return ext->flags != 0 || rnnedge_ext_has_init(ext) ? RNNEDGE_ERR_UNSUPPORTED : RNNEDGE_OK;
}

void rnnedge_reset_layer_f32(const rnnedge_ext_f32 *ext, int32_t cell, int32_t H, float *state)
{
    const int32_t n = RNNEDGE_LAYER_STATE_LEN(cell, H);
    int32_t j;
    (void)ext; /* the callers refused a layer with an initial state */
    for (j = 0; j < n; ++j) {
        state[j] = 0.0f;
    }
}
#else
/* The functions a cell uses without RNNEDGE_EXT_ACTIVATIONS (spec.DEFAULT_FUNCTIONS), by cell code. */
static const int32_t default_functions[4][3] = {
    {RNNEDGE_FN_TANH, RNNEDGE_FN_TANH, RNNEDGE_FN_TANH},    /* rnn_tanh: f */
    {RNNEDGE_FN_RELU, RNNEDGE_FN_RELU, RNNEDGE_FN_RELU},    /* rnn_relu: f */
    {RNNEDGE_FN_SIGMOID, RNNEDGE_FN_TANH, RNNEDGE_FN_TANH}, /* lstm: f, g, h */
    {RNNEDGE_FN_SIGMOID, RNNEDGE_FN_TANH, RNNEDGE_FN_TANH}, /* gru: f, g */
};

int rnnedge_check_ext_f32(const rnnedge_ext_f32 *ext, int32_t cell)
{
    const int32_t flags = ext->flags;
    if (flags == 0) {
        return RNNEDGE_OK; /* PyTorch's cell (h0 / c0 may still be set: only the reset reads them) */
    }
    if ((flags & ~RNNEDGE_EXT_FLOAT) != 0) {
        return RNNEDGE_ERR_UNSUPPORTED; /* RNNEDGE_EXT_REVERSE (cannot stream) or an unknown bit */
    }
    if (((flags & RNNEDGE_EXT_RESET_BEFORE) != 0 && cell != RNNEDGE_CELL_GRU) ||
        ((flags & (RNNEDGE_EXT_INPUT_FORGET | RNNEDGE_EXT_PEEPHOLES)) != 0 && cell != RNNEDGE_CELL_LSTM)) {
        return RNNEDGE_ERR_UNSUPPORTED;
    }
    if ((flags & RNNEDGE_EXT_ACTIVATIONS) != 0) {
        const int32_t n = cell == RNNEDGE_CELL_LSTM ? 3 : cell == RNNEDGE_CELL_GRU ? 2 : 1;
        int32_t k;
        for (k = 0; k < n; ++k) {
            if (ext->fn[k].code < 0 || ext->fn[k].code >= RNNEDGE_FN_COUNT) {
                return RNNEDGE_ERR_UNSUPPORTED;
            }
        }
    }
    if ((flags & RNNEDGE_EXT_PEEPHOLES) != 0 && ext->p == 0) {
        return RNNEDGE_ERR_NULL;
    }
    return RNNEDGE_OK;
}

void rnnedge_reset_layer_f32(const rnnedge_ext_f32 *ext, int32_t cell, int32_t H, float *state)
{
    int32_t j;
    for (j = 0; j < H; ++j) {
        state[j] = ext->h0 != 0 ? ext->h0[j] : 0.0f;
    }
    if (cell == RNNEDGE_CELL_LSTM) {
        for (j = 0; j < H; ++j) {
            state[H + j] = ext->c0 != 0 ? ext->c0[j] : 0.0f;
        }
    }
}

float rnnedge_ext_clip_f32(const rnnedge_ext_f32 *ext, float a)
{
    if ((ext->flags & RNNEDGE_EXT_CLIP) != 0 && ext->clip > 0.0f) {
        const float lo = a > -ext->clip ? a : -ext->clip; /* min(max(a, -clip), clip) */
        return lo < ext->clip ? lo : ext->clip;
    }
    return a;
}

float rnnedge_ext_function_f32(const rnnedge_ext_f32 *ext, int32_t cell, int32_t k, float a)
{
    if ((ext->flags & RNNEDGE_EXT_ACTIVATIONS) != 0) {
        return rnnedge_activate_f32(ext->fn[k].code, ext->fn[k].alpha, ext->fn[k].beta, a);
    }
    return rnnedge_activate_f32(default_functions[cell][k], 0.0f, 0.0f, a);
}

void rnnedge_rnn_update_ext_f32(const rnnedge_ext_f32 *ext, int32_t cell, int32_t H, float *h, const float *pre)
{
    int32_t j;
    for (j = 0; j < H; ++j) {
        h[j] = rnnedge_ext_function_f32(ext, cell, 0, rnnedge_ext_clip_f32(ext, pre[j]));
    }
}

void rnnedge_lstm_update_ext_f32(const rnnedge_ext_f32 *ext, int32_t H, float *h, float *c, const float *gates)
{
    const int32_t peep = (ext->flags & RNNEDGE_EXT_PEEPHOLES) != 0;
    const int32_t cell = RNNEDGE_CELL_LSTM;
    int32_t j;
    for (j = 0; j < H; ++j) {
        float pi = gates[j];
        float pf = gates[H + j];
        float po = gates[3 * H + j];
        float i;
        float f;
        float g;
        float cj;
        if (peep) { /* i and f see c_prev */
            pi += ext->p[j] * c[j];
            pf += ext->p[H + j] * c[j];
        }
        i = rnnedge_ext_function_f32(ext, cell, 0, rnnedge_ext_clip_f32(ext, pi));
        if ((ext->flags & RNNEDGE_EXT_INPUT_FORGET) != 0) {
            f = 1.0f - i;
        } else {
            f = rnnedge_ext_function_f32(ext, cell, 0, rnnedge_ext_clip_f32(ext, pf));
        }
        g = rnnedge_ext_function_f32(ext, cell, 1, rnnedge_ext_clip_f32(ext, gates[2 * H + j]));
        cj = f * c[j] + i * g;
        c[j] = cj;
        if (peep) { /* o sees c_new */
            po += ext->p[2 * H + j] * cj;
        }
        h[j] = rnnedge_ext_function_f32(ext, cell, 0, rnnedge_ext_clip_f32(ext, po)) *
               rnnedge_ext_function_f32(ext, cell, 2, cj);
    }
}

void rnnedge_gru_rz_ext_f32(const rnnedge_ext_f32 *ext, int32_t H, float *rz)
{
    int32_t j;
    for (j = 0; j < 2 * H; ++j) {
        rz[j] = rnnedge_ext_function_f32(ext, RNNEDGE_CELL_GRU, 0, rnnedge_ext_clip_f32(ext, rz[j]));
    }
}

float rnnedge_gru_blend_ext_f32(const rnnedge_ext_f32 *ext, float n_pre, float z, float h_prev)
{
    const float n = rnnedge_ext_function_f32(ext, RNNEDGE_CELL_GRU, 1, rnnedge_ext_clip_f32(ext, n_pre));
    return (1.0f - z) * n + z * h_prev;
}

void rnnedge_gru_update_ext_f32(const rnnedge_ext_f32 *ext, int32_t H, float *h, const float *sums)
{
    int32_t j;
    for (j = 0; j < H; ++j) {
        const float r = rnnedge_ext_function_f32(ext, RNNEDGE_CELL_GRU, 0, rnnedge_ext_clip_f32(ext, sums[j]));
        const float z = rnnedge_ext_function_f32(ext, RNNEDGE_CELL_GRU, 0, rnnedge_ext_clip_f32(ext, sums[H + j]));
        h[j] = rnnedge_gru_blend_ext_f32(ext, sums[2 * H + j] + r * sums[3 * H + j], z, h[j]);
    }
}
#endif /* RNNEDGE_EXTENSIONS */

/* -- cells ---------------------------------------------------------------------------------------------------- */

void rnnedge_rnn_step_f32(const rnnedge_layer_f32 *layer, const float *x, float *h, float *scratch)
{
    gate_sums_f32(layer, x, h, 0, layer->hidden, scratch);
#if RNNEDGE_EXTENSIONS
    if ((layer->ext.flags & RNNEDGE_EXT_STEP) != 0) {
        rnnedge_rnn_update_ext_f32(&layer->ext, layer->cell, layer->hidden, h, scratch);
        return;
    }
#endif
    rnnedge_rnn_update_f32(layer->cell == RNNEDGE_CELL_RNN_RELU, layer->hidden, h, scratch);
}

void rnnedge_lstm_step_f32(const rnnedge_layer_f32 *layer, const float *x, float *h, float *c, float *scratch)
{
    gate_sums_f32(layer, x, h, 0, 4 * layer->hidden, scratch);
#if RNNEDGE_EXTENSIONS
    if ((layer->ext.flags & RNNEDGE_EXT_STEP) != 0) {
        rnnedge_lstm_update_ext_f32(&layer->ext, layer->hidden, h, c, scratch);
        return;
    }
#endif
    rnnedge_lstm_update_f32(layer->hidden, h, c, scratch);
}

#if RNNEDGE_EXTENSIONS
/** A RNNEDGE_EXT_RESET_BEFORE GRU step (runtime recurrent_step_ext_f32's reset_before branch): scratch [0, 2H) r, z;
 * [2H, 3H) r * h; then per unit n = g(clip((b_hn + W_hn (r h)) + gx_n)) and h = (1 - z) n + z h. */
static void gru_step_reset_before_f32(const rnnedge_layer_f32 *layer, const float *x, float *h, float *scratch)
{
    const int32_t H = layer->hidden;
    float *rh = scratch + 2 * H;
    int32_t r;
    for (r = 0; r < 2 * H; ++r) { /* (b_hh + W_hh h) + gx */
        scratch[r] = dot_acc_f32(layer->b_hh[r], layer->w_hh + r * H, h, H) + input_part_f32(layer, r, x);
    }
    rnnedge_gru_rz_ext_f32(&layer->ext, H, scratch);
    for (r = 0; r < H; ++r) {
        rh[r] = scratch[r] * h[r];
    }
    for (r = 0; r < H; ++r) { /* h[r] is read only here: r h is already in rh */
        const int32_t row = 2 * H + r;
        const float n_pre = dot_acc_f32(layer->b_hh[row], layer->w_hh + row * H, rh, H) + input_part_f32(layer, row, x);
        h[r] = rnnedge_gru_blend_ext_f32(&layer->ext, n_pre, scratch[H + r], h[r]);
    }
}
#endif /* RNNEDGE_EXTENSIONS */

void rnnedge_gru_step_f32(const rnnedge_layer_f32 *layer, const float *x, float *h, float *scratch)
{
    const int32_t H = layer->hidden;
    int32_t r;
#if RNNEDGE_EXTENSIONS
    if ((layer->ext.flags & RNNEDGE_EXT_RESET_BEFORE) != 0) {
        gru_step_reset_before_f32(layer, x, h, scratch);
        return;
    }
#endif
    for (r = 0; r < 3 * H; ++r) {
        const float gx = input_part_f32(layer, r, x);
        const float gh = dot_acc_f32(layer->b_hh[r], layer->w_hh + r * H, h, H); /* gh = b_hh + W_hh h */
        if (r < 2 * H) {
            scratch[r] = gh + gx; /* r, z: gh += gx */
        } else {
            scratch[r] = gx;      /* n: the two parts stay apart */
            scratch[H + r] = gh;
        }
    }
#if RNNEDGE_EXTENSIONS
    if ((layer->ext.flags & RNNEDGE_EXT_STEP) != 0) {
        rnnedge_gru_update_ext_f32(&layer->ext, H, h, scratch);
        return;
    }
#endif
    rnnedge_gru_update_f32(H, h, scratch);
}

#endif /* RNNEDGE_F32_CELLS_H */
