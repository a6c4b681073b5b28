/*
 * rnnedge_f32.c: the `f32` precision's step, one C function per kernel of runtime/kernels_f32.py.
 *
 * Float32 arithmetic only (no double: the file builds with -Wdouble-promotion), no libm: e^x is the runtime's
 * exp_f32, written out in rnnedge_f32_math.h. Weights are in PyTorch's row-major layout W (rows, cols); the
 * runtime keeps W^T but computes every output row's value with the same operations in the same order:
 *
 *     gx[r]  = b_ih[r] + W_ih[r] . x            (input_projection_f32)
 *     pre[r] = (gx[r] + b_hh[r]) + W_hh[r] . h  (rnn/lstm; a GRU keeps b_hh[r] + W_hh[r] . h apart)
 *
 * where "acc + W[r] . v" adds four products at a time, acc = acc + (((w0 v0 + w1 v1) + w2 v2) + w3 v3), then
 * the remaining products one by one (gemv_t_acc_f32). The runtime allows LLVM to reassociate and contract
 * (FMA) these sums; C99 mode does not, so results agree within a few ulps, well inside 1e-5.
 * On a Cortex-M core whose FPU fuses multiply-adds (Cortex-M4F, M7, M33, M55: __ARM_FEATURE_FMA) the dot product is
 * instead one fused multiply-add per product into acc, eight per pass, walking both rows by pointer: acc = fma(w0,
 * v0, acc), ... (RNNEDGE_FMA, default 1 there; -DRNNEDGE_FMA=0 keeps the order above). It rounds once per product
 * where the order above rounds twice, and takes 3.5 instructions per product instead of ~4.6.
 *
 * The ONNX layer extensions that change a step (layer->ext.flags & RNNEDGE_EXT_STEP) take a second path per cell,
 * as the runtime's recurrent_step_ext_f32 does; other layers run the PyTorch cells' code unchanged. The activation
 * functions are runtime.kernels_f32_ext.activate_f32's; softplus needs log1p, computed here without libm (log1p_f32).
 * RNNEDGE_EXTENSIONS 0 (rnnedge.h) compiles the extension path and the activation functions out: a model step then
 * refuses any layer with ext.flags, ext.h0 or ext.c0 set, a state reset any layer with an initial state.
 *
 * The file is one translation unit in four parts, split by concern: the float math (rnnedge_f32_math.h), the
 * cells (rnnedge_f32_cells.h), input and head (rnnedge_f32_head.h), included below in that order, then the
 * model's state reset and step, here.
 */
#include "rnnedge.h"
#include "rnnedge_float_internal.h"

#include "rnnedge_f32_math.h"  /* exp, sigmoid, tanh, log; ONNX's functions */
#include "rnnedge_f32_cells.h" /* sums, gate updates, the extensions, the cell steps */
#include "rnnedge_f32_head.h"  /* normalisation, embedding, head activations, hidden layers, head */

/* -- model ---------------------------------------------------------------------------------------------------- */

int rnnedge_state_reset_f32(const rnnedge_model_f32 *model, rnnedge_state_f32 *s)
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
        const rnnedge_layer_f32 *layer = &model->layers[l];
        rnnedge_reset_layer_f32(&layer->ext, layer->cell, layer->hidden, state);
        state += RNNEDGE_LAYER_STATE_LEN(layer->cell, layer->hidden);
    }
    return RNNEDGE_OK;
}

/** RNNEDGE_OK if the model, stream and y can run a step of input kind `kind`, else the error. */
static int check_step(const rnnedge_model_f32 *model, const rnnedge_state_f32 *s, const float *y, int32_t kind)
{
    int32_t l;
    int status;
    if (model == 0 || s == 0 || s->state == 0 || s->scratch == 0 || y == 0 || model->layers == 0 ||
        model->head_w == 0 || model->head_b == 0) {
        return RNNEDGE_ERR_NULL;
    }
    if (model->input_kind != kind) {
        return RNNEDGE_ERR_INPUT_KIND;
    }
    if (kind == RNNEDGE_INPUT_TOKENS ? model->embedding == 0 : (model->input_mean == 0 || model->input_std == 0)) {
        return RNNEDGE_ERR_NULL;
    }
    for (l = 0; l < model->n_layers; ++l) {
        const rnnedge_layer_f32 *layer = &model->layers[l];
        if (layer->bidirectional || layer->cell < RNNEDGE_CELL_RNN_TANH || layer->cell > RNNEDGE_CELL_GRU) {
            return RNNEDGE_ERR_UNSUPPORTED;
        }
        if (layer->w_ih == 0 || layer->w_hh == 0 || layer->b_ih == 0 || layer->b_hh == 0) {
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
        const rnnedge_dense_f32 *d = &model->dense[l];
        if (d->w == 0 || d->b == 0) {
            return RNNEDGE_ERR_NULL;
        }
        if (d->activation < RNNEDGE_HIDDEN_NONE || d->activation > RNNEDGE_HIDDEN_GELU_TANH) {
            return RNNEDGE_ERR_UNSUPPORTED;
        }
    }
    return RNNEDGE_OK;
}

/** Every layer on input x (model->n_in floats), then the head (layers_and_head_f32). */
static void layers_and_head_f32(const rnnedge_model_f32 *model, float *state, const float *x, float *scratch,
                                float *y)
{
    int32_t l;
    for (l = 0; l < model->n_layers; ++l) {
        const rnnedge_layer_f32 *layer = &model->layers[l];
        float *h = state;
        if (layer->cell == RNNEDGE_CELL_LSTM) {
            rnnedge_lstm_step_f32(layer, x, h, h + layer->hidden, scratch);
        } else if (layer->cell == RNNEDGE_CELL_GRU) {
            rnnedge_gru_step_f32(layer, x, h, scratch);
        } else {
            rnnedge_rnn_step_f32(layer, x, h, scratch);
        }
        state += RNNEDGE_LAYER_STATE_LEN(layer->cell, layer->hidden);
        x = h; /* the next layer reads this layer's new h */
    }
#if RNNEDGE_EXTENSIONS
    if (model->n_dense > 0) { /* the layers are done: their scratch holds the hidden layers' outputs */
        x = rnnedge_dense_layers_f32(model->dense, model->n_dense, x, scratch);
    }
#endif
    rnnedge_head_f32(model->head_w, model->head_b, model->out, model->head_in, model->activation, x, y);
}

int rnnedge_model_step_dense_f32(const rnnedge_model_f32 *model, rnnedge_state_f32 *s, const float *x, float *y)
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
    layers_and_head_f32(model, s->state, s->scratch, s->scratch + model->n_in, y);
    return RNNEDGE_OK;
}

int rnnedge_model_step_tokens_f32(const rnnedge_model_f32 *model, rnnedge_state_f32 *s, int32_t token, float *y)
{
    const int status = check_step(model, s, y, RNNEDGE_INPUT_TOKENS);
    if (status != RNNEDGE_OK) {
        return status;
    }
    if (token < 0 || token >= model->vocab) {
        return RNNEDGE_ERR_BAD_TOKEN;
    }
    layers_and_head_f32(model, s->state, rnnedge_embedding_f32(model->embedding, model->n_in, token), s->scratch,
                        y);
    return RNNEDGE_OK;
}
