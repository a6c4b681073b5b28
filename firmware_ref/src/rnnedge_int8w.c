/*
 * rnnedge_int8w.c: the `int8w` precision's step, one C function per kernel of runtime/kernels_int8w.py.
 *
 * int8 weights with one float scale per output row; activations, state and every sum in float. A row's sum
 * runs over float(w) * v, four products per pass then one at a time (gemv_t_int8w), and the row's scale
 * multiplies the finished sum, never a weight:
 *
 *     gx[r]  = b_ih[r] + s_ih[r] * (W_ih[r] . x)           (input_projection_int8w)
 *     pre[r] = gx[r] + s_hh[r] * (W_hh[r] . h)             (rnn, lstm: the file folds b_hh into b_ih)
 *     gh[r]  = b_h[r] + s_hh[r] * (W_hh[r] . h)            (gru; b_h = b_hn on the n rows, else 0)
 *
 * The runtime adds its zero rows of b_hh explicitly; adding 0.0f changes no value, so they are left out here.
 * Gate activations and state updates are rnnedge_f32.c's (as kernels_int8w.py uses kernels_f32's), the ONNX
 * extensions' included (layer->ext.flags & RNNEDGE_EXT_STEP; runtime recurrent_step_ext_int8w). A GRU with
 * RNNEDGE_EXT_RESET_BEFORE has no recurrent bias at all: b_hn is folded into b_ih. RNNEDGE_EXTENSIONS 0 compiles
 * the extension paths out, as in rnnedge_f32.c (a model step refuses a layer that needs them).
 */
#include "rnnedge.h"
#include "rnnedge_float_internal.h"

/** w . v over n for int8 w, unscaled, from 0: four products per pass, then one at a time (gemv_t_int8w). */
static float dot_int8w(const int8_t *w, const float *v, int32_t n)
{
    float acc = 0.0f;
    int32_t k = 0;
    for (; k + 4 <= n; k += 4) {
        acc += (float)w[k] * v[k] + (float)w[k + 1] * v[k + 1] + (float)w[k + 2] * v[k + 2] +
               (float)w[k + 3] * v[k + 3];
    }
    for (; k < n; ++k) {
        acc += (float)w[k] * v[k];
    }
    return acc;
}

/** gx of gate row r: b_ih[r] + s_ih[r] * (W_ih[r] . x). */
static float input_part_int8w(const rnnedge_layer_int8w *layer, int32_t r, const float *x)
{
    return layer->b_ih[r] + layer->s_ih[r] * dot_int8w(layer->w_ih + r * layer->n_in, x, layer->n_in);
}

/** s_hh[r] * (W_hh[r] . h): the recurrent part of gate row r, without bias. */
static float recurrent_part_int8w(const rnnedge_layer_int8w *layer, int32_t r, const float *h)
{
    return layer->s_hh[r] * dot_int8w(layer->w_hh + r * layer->hidden, h, layer->hidden);
}

/** pre[r] = gx[r] + s_hh[r] * (W_hh[r] . h) for rows lo..hi-1 (rnn, lstm). h is only read. */
static void gate_sums_int8w(const rnnedge_layer_int8w *layer, const float *x, const float *h, int32_t lo,
                            int32_t hi, float *pre)
{
    int32_t r;
    for (r = lo; r < hi; ++r) {
        pre[r] = input_part_int8w(layer, r, x) + recurrent_part_int8w(layer, r, h);
    }
}

/* -- cells ---------------------------------------------------------------------------------------------------- */

void rnnedge_rnn_step_int8w(const rnnedge_layer_int8w *layer, const float *x, float *h, float *scratch)
{
    gate_sums_int8w(layer, x, h, 0, layer->hidden, scratch);
#if RNNEDGE_EXTENSIONS
    if ((layer->ext.flags & RNNEDGE_EXT_STEP) != 0) {
        rnnedge_rnn_update_ext_f32(&layer->ext, layer->cell, layer->hidden, h, scratch);
        return;
    }
#endif
    rnnedge_rnn_update_f32(layer->cell == RNNEDGE_CELL_RNN_RELU, layer->hidden, h, scratch);
}

void rnnedge_lstm_step_int8w(const rnnedge_layer_int8w *layer, const float *x, float *h, float *c, float *scratch)
{
    gate_sums_int8w(layer, x, h, 0, 4 * layer->hidden, scratch);
#if RNNEDGE_EXTENSIONS
    if ((layer->ext.flags & RNNEDGE_EXT_STEP) != 0) {
        rnnedge_lstm_update_ext_f32(&layer->ext, layer->hidden, h, c, scratch);
        return;
    }
#endif
    rnnedge_lstm_update_f32(layer->hidden, h, c, scratch);
}

#if RNNEDGE_EXTENSIONS
/** A RNNEDGE_EXT_RESET_BEFORE GRU step (recurrent_step_ext_int8w's reset_before branch): scratch [0, 2H) r, z;
 * [2H, 3H) r * h; per unit n = g(clip(s_hh (W_hn . r h) + gx_n)) (no b_hn: folded into b_ih), h = (1 - z) n + z h. */
static void gru_step_reset_before_int8w(const rnnedge_layer_int8w *layer, const float *x, float *h, float *scratch)
{
    const int32_t H = layer->hidden;
    float *rh = scratch + 2 * H;
    int32_t r;
    for (r = 0; r < 2 * H; ++r) {
        scratch[r] = recurrent_part_int8w(layer, r, h) + input_part_int8w(layer, r, x);
    }
    rnnedge_gru_rz_ext_f32(&layer->ext, H, scratch);
    for (r = 0; r < H; ++r) {
        rh[r] = scratch[r] * h[r];
    }
    for (r = 0; r < H; ++r) { /* h[r] is read only here: r h is already in rh */
        const int32_t row = 2 * H + r;
        const float n_pre = recurrent_part_int8w(layer, row, rh) + input_part_int8w(layer, row, x);
        h[r] = rnnedge_gru_blend_ext_f32(&layer->ext, n_pre, scratch[H + r], h[r]);
    }
}
#endif /* RNNEDGE_EXTENSIONS */

void rnnedge_gru_step_int8w(const rnnedge_layer_int8w *layer, const float *x, float *h, float *scratch)
{
    const int32_t H = layer->hidden;
    int32_t r;
#if RNNEDGE_EXTENSIONS
    if ((layer->ext.flags & RNNEDGE_EXT_RESET_BEFORE) != 0) {
        gru_step_reset_before_int8w(layer, x, h, scratch);
        return;
    }
#endif
    for (r = 0; r < 3 * H; ++r) {
        const float gx = input_part_int8w(layer, r, x);
        const float gh = recurrent_part_int8w(layer, r, h);
        if (r < 2 * H) {
            scratch[r] = gh + gx; /* r, z: b_h is 0 */
        } else {
            scratch[r] = gx; /* n: the two parts stay apart */
            scratch[H + r] = layer->b_hn[r - 2 * H] + gh;
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

/* -- input, head, model --------------------------------------------------------------------------------------- */

void rnnedge_embedding_int8w(const int8_t *table, const float *scale, int32_t dim, int32_t token, float *x)
{
    const int8_t *row = table + token * dim;
    const float s = scale[token];
    int32_t k;
    for (k = 0; k < dim; ++k) {
        x[k] = s * (float)row[k];
    }
}

void rnnedge_head_int8w(const int8_t *w, const float *scale, const float *b, int32_t out, int32_t in,
                        int32_t activation, const float *h, float *y)
{
    int32_t o;
    for (o = 0; o < out; ++o) {
        const int8_t *row = w + o * in;
        float acc = 0.0f;
        int32_t k;
        for (k = 0; k < in; ++k) { /* one product at a time (gemv_acc_int8w) */
            acc += (float)row[k] * h[k];
        }
        y[o] = b[o] + scale[o] * acc;
    }
    rnnedge_activate_head_f32(y, out, activation);
}

#if RNNEDGE_EXTENSIONS
const float *rnnedge_dense_layers_int8w(const rnnedge_dense_int8w *dense, int32_t n_dense, const float *v,
                                        float *work)
{
    int32_t k;
    for (k = 0; k < n_dense; ++k) {
        const rnnedge_dense_int8w *d = &dense[k];
        rnnedge_head_int8w(d->w, d->scale, d->b, d->units, d->n_in, RNNEDGE_ACT_NONE, v, work);
        rnnedge_activate_hidden_f32(work, d->units, d->activation);
        v = work;
        work += d->units;
    }
    return v;
}
#endif /* RNNEDGE_EXTENSIONS */

int rnnedge_state_reset_int8w(const rnnedge_model_int8w *model, rnnedge_state_f32 *s)
{
    int32_t l;
    float *state;
    if (model == 0 || s == 0 || s->state == 0 || (model->n_layers > 0 && model->layers == 0)) {
        return RNNEDGE_ERR_NULL;
    }
#if !RNNEDGE_EXTENSIONS
    for (l = 0; l < model->n_layers; ++l) { /* h0 / c0 are extension code: refuse rather than start from zeros */
        if (rnnedge_ext_has_init(&model->layers[l].ext)) {
            return RNNEDGE_ERR_UNSUPPORTED;
        }
    }
#endif
    state = s->state;
    for (l = 0; l < model->n_layers; ++l) { /* h0 / c0 where set, else zeros (runtime Stream.reset) */
        const rnnedge_layer_int8w *layer = &model->layers[l];
        rnnedge_reset_layer_f32(&layer->ext, layer->cell, layer->hidden, state);
        state += RNNEDGE_LAYER_STATE_LEN(layer->cell, layer->hidden);
    }
    return RNNEDGE_OK;
}

/** RNNEDGE_OK if the model, stream and y can run a step of input kind `kind`, else the error. */
static int check_step(const rnnedge_model_int8w *model, const rnnedge_state_f32 *s, const float *y, int32_t kind)
{
    int32_t l;
    int status;
    if (model == 0 || s == 0 || s->state == 0 || s->scratch == 0 || y == 0 || model->layers == 0 ||
        model->head_w == 0 || model->head_scale == 0 || model->head_b == 0) {
        return RNNEDGE_ERR_NULL;
    }
    if (model->input_kind != kind) {
        return RNNEDGE_ERR_INPUT_KIND;
    }
    if (kind == RNNEDGE_INPUT_TOKENS ? (model->embedding == 0 || model->embedding_scale == 0)
                                     : (model->input_mean == 0 || model->input_std == 0)) {
        return RNNEDGE_ERR_NULL;
    }
    for (l = 0; l < model->n_layers; ++l) {
        const rnnedge_layer_int8w *layer = &model->layers[l];
        if (layer->bidirectional || layer->cell < RNNEDGE_CELL_RNN_TANH || layer->cell > RNNEDGE_CELL_GRU) {
            return RNNEDGE_ERR_UNSUPPORTED;
        }
        if (layer->w_ih == 0 || layer->s_ih == 0 || layer->w_hh == 0 || layer->s_hh == 0 || layer->b_ih == 0 ||
            (layer->cell == RNNEDGE_CELL_GRU && layer->b_hn == 0 &&
             (layer->ext.flags & RNNEDGE_EXT_RESET_BEFORE) == 0)) {
            return RNNEDGE_ERR_NULL;
        }
        status = rnnedge_check_ext_f32(&layer->ext, layer->cell);
        if (status != RNNEDGE_OK) {
            return status;
        }
    }
    if (model->n_dense < 0 || (!RNNEDGE_EXTENSIONS && model->n_dense > 0)) { /* hidden head layers: extension code */
        return RNNEDGE_ERR_UNSUPPORTED;
    }
    if (model->n_dense > 0 && model->dense == 0) {
        return RNNEDGE_ERR_NULL;
    }
    for (l = 0; l < model->n_dense; ++l) {
        const rnnedge_dense_int8w *d = &model->dense[l];
        if (d->w == 0 || d->scale == 0 || d->b == 0) {
            return RNNEDGE_ERR_NULL;
        }
        if (d->activation < RNNEDGE_HIDDEN_NONE || d->activation > RNNEDGE_HIDDEN_GELU_TANH) {
            return RNNEDGE_ERR_UNSUPPORTED;
        }
    }
    return RNNEDGE_OK;
}

/** Every layer on input x (model->n_in floats), then the head (layers_and_head_int8w). */
static void layers_and_head_int8w(const rnnedge_model_int8w *model, float *state, const float *x, float *scratch,
                                  float *y)
{
    int32_t l;
    for (l = 0; l < model->n_layers; ++l) {
        const rnnedge_layer_int8w *layer = &model->layers[l];
        float *h = state;
        if (layer->cell == RNNEDGE_CELL_LSTM) {
            rnnedge_lstm_step_int8w(layer, x, h, h + layer->hidden, scratch);
        } else if (layer->cell == RNNEDGE_CELL_GRU) {
            rnnedge_gru_step_int8w(layer, x, h, scratch);
        } else {
            rnnedge_rnn_step_int8w(layer, x, h, scratch);
        }
        state += RNNEDGE_LAYER_STATE_LEN(layer->cell, layer->hidden);
        x = h; /* the next layer reads this layer's new h */
    }
#if RNNEDGE_EXTENSIONS
    if (model->n_dense > 0) { /* the layers are done: their scratch holds the hidden layers' outputs */
        x = rnnedge_dense_layers_int8w(model->dense, model->n_dense, x, scratch);
    }
#endif
    rnnedge_head_int8w(model->head_w, model->head_scale, model->head_b, model->out, model->head_in,
                       model->activation, x, y);
}

int rnnedge_model_step_dense_int8w(const rnnedge_model_int8w *model, rnnedge_state_f32 *s, const float *x,
                                   float *y)
{
    const int status = check_step(model, s, y, RNNEDGE_INPUT_DENSE);
    if (status != RNNEDGE_OK) {
        return status;
    }
    if (x == 0) {
        return RNNEDGE_ERR_NULL;
    }
    if (!rnnedge_normalised_finite_f32(x, model->input_mean, model->input_std, model->n_in)) {
        return RNNEDGE_ERR_BAD_VALUE;
    }
    rnnedge_normalise_f32(x, model->input_mean, model->input_std, model->n_in, s->scratch);
    layers_and_head_int8w(model, s->state, s->scratch, s->scratch + model->n_in, y);
    return RNNEDGE_OK;
}

int rnnedge_model_step_tokens_int8w(const rnnedge_model_int8w *model, rnnedge_state_f32 *s, int32_t token,
                                    float *y)
{
    const int status = check_step(model, s, y, RNNEDGE_INPUT_TOKENS);
    if (status != RNNEDGE_OK) {
        return status;
    }
    if (token < 0 || token >= model->vocab) {
        return RNNEDGE_ERR_BAD_TOKEN;
    }
    rnnedge_embedding_int8w(model->embedding, model->embedding_scale, model->n_in, token, s->scratch);
    layers_and_head_int8w(model, s->state, s->scratch, s->scratch + model->n_in, y);
    return RNNEDGE_OK;
}
