/**
 * @file rnnedge_f32.h
 * @brief The f32 precision's functions (src/rnnedge_f32.c): the float math, normalisation, the head, the state reset,
 * the model and cell steps. Part of rnnedge.h, which includes it: include rnnedge.h.
 */
#ifndef RNNEDGE_F32_H
#define RNNEDGE_F32_H

#ifndef RNNEDGE_H
#error "include rnnedge.h, which includes this header"
#endif

/** e^x in float: x clamped to [-87, 88], x = k ln2 + r (Cody-Waite), e^r by a degree-6 polynomial, times 2^k
 * built in the exponent bits (runtime.kernels_f32.exp_f32). Relative error ~1.2e-7; no libm. Defined for every
 * float: +-infinity and huge values clamp (e^88, e^-87), NaN gives NaN, and no out-of-range float is ever converted
 * to an integer (clean under -fsanitize=float-cast-overflow). */
float rnnedge_exp_f32(float x);
/** 1 / (1 + e^-a) with rnnedge_exp_f32 (runtime.kernels_f32.sigmoid_f32). */
float rnnedge_sigmoid_f32(float a);
/** 2 / (1 + e^-2a) - 1 with rnnedge_exp_f32 (runtime.kernels_f32.tanh_f32). */
float rnnedge_tanh_f32(float a);

#if RNNEDGE_EXTENSIONS
/**
 * One ONNX activation function (runtime.kernels_f32_ext.activate_f32, operation for operation): the RNNEDGE_FN_*
 * table (rnnedge_float_types.h); tanh, sigmoid, scaled tanh and elu with rnnedge_exp_f32; softplus =
 * log1p(rnnedge_exp_f32(a)) for a <= 20 and a itself above (equal there in float), log1p by the library's own
 * float code (a degree-9 odd series of log(m), m in [sqrt(1/2), sqrt(2)), ~2 ulp; no libm). An unknown code
 * returns a unchanged.
 * @param[in] code  RNNEDGE_FN_*
 * @param[in] alpha the function's alpha (affine, leaky/thresholded relu, scaled tanh, hard sigmoid, elu)
 * @param[in] beta  the function's beta (affine, scaled tanh, hard sigmoid)
 * @param[in] a     the pre-activation
 * @return the function's value
 */
float rnnedge_activate_f32(int32_t code, float alpha, float beta, float a);
#endif /* RNNEDGE_EXTENSIONS */

/**
 * Input normalisation (runtime.kernels_f32.normalise_f32): out[k] = (x[k] - mean[k]) / std[k].
 * @param[in]  x    n raw inputs
 * @param[in]  mean n means
 * @param[in]  std  n standard deviations
 * @param[in]  n    number of features
 * @param[out] out  n normalised inputs (may be x itself)
 */
void rnnedge_normalise_f32(const float *x, const float *mean, const float *std, int32_t n, float *out);

/**
 * A head activation in place (runtime.kernels_f32.activate_head_f32): softmax (minus the maximum first),
 * log_softmax, sigmoid, or none; e^x is rnnedge_exp_f32 and log the library's own (the runtime calls numpy's exp
 * and log here: ~1e-7 apart).
 * @param[in,out] y          out values
 * @param[in]     out        number of outputs
 * @param[in]     activation RNNEDGE_ACT_*; an unknown code leaves y as it is
 */
void rnnedge_activate_head_f32(float *y, int32_t out, int32_t activation);

#if RNNEDGE_EXTENSIONS
/**
 * A hidden head layer's activation in place (runtime.kernels_f32.activate_hidden_f32): RNNEDGE_HIDDEN_*; tanh and
 * sigmoid as the gates', gelu's erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7) on rnnedge_exp_f32.
 * @param[in,out] a    n values
 * @param[in]     n    number of values
 * @param[in]     code RNNEDGE_HIDDEN_*; RNNEDGE_HIDDEN_NONE or an unknown code leaves a as it is
 */
void rnnedge_activate_hidden_f32(float *a, int32_t n, int32_t code);

/**
 * The f32 head's hidden dense layers on v (runtime.kernels_f32.dense_layers_f32): layer k's output in
 * work + (the units of layers 0..k-1).
 * @param[in]  dense   n_dense layers
 * @param[in]  n_dense number of layers (> 0)
 * @param[in]  v       dense[0].n_in inputs
 * @param[out] work    the sum of the layers' units, floats
 * @return the last layer's output (inside work)
 */
const float *rnnedge_dense_layers_f32(const rnnedge_dense_f32 *dense, int32_t n_dense, const float *v, float *work);
#endif /* RNNEDGE_EXTENSIONS */

/**
 * Set a float stream's state (f32 model) to the start of a new sequence, as runtime Stream.reset() does: every
 * layer's h (and c) zero, or its ext.h0 (and ext.c0) where not NULL (initial_state).
 * @return RNNEDGE_OK, RNNEDGE_ERR_NULL (model, s, s->state, or the layers of a model with layers, NULL;
 *         nothing written), or RNNEDGE_ERR_UNSUPPORTED (built with RNNEDGE_EXTENSIONS 0, a layer with
 *         RNNEDGE_EXT_INIT, ext.h0 or ext.c0; nothing written)
 */
int rnnedge_state_reset_f32(const rnnedge_model_f32 *model, rnnedge_state_f32 *s);

/**
 * One time step of a dense-input f32 model: normalisation, every layer, then the head.
 * @param[in]     model the model (input_kind RNNEDGE_INPUT_DENSE, every layer forward-only)
 * @param[in,out] s     the stream's state (read and updated) and scratch
 * @param[in]     x     model->n_in raw float inputs (before normalisation)
 * @param[out]    y     model->out outputs, the head's activation applied
 * @return RNNEDGE_OK, RNNEDGE_ERR_NULL, RNNEDGE_ERR_INPUT_KIND, RNNEDGE_ERR_UNSUPPORTED or RNNEDGE_ERR_BAD_VALUE
 *         (a normalised input (x[k] - mean[k]) / std[k] not finite: NaN or infinity in x, or a finite x near
 *         FLT_MAX that overflows, which would make the state NaN); nothing is written on an error. RNNEDGE_ERR_UNSUPPORTED: a bidirectional layer,
 *         an unknown cell, ext.flags outside RNNEDGE_EXT_FLOAT (REVERSE included), an extension of another cell
 *         (RESET_BEFORE not on a GRU, INPUT_FORGET / PEEPHOLES not on an LSTM) or an unknown function code; with
 *         RNNEDGE_EXTENSIONS 0, any ext.flags, ext.h0 or ext.c0;
 *         RNNEDGE_ERR_NULL also for RNNEDGE_EXT_PEEPHOLES without ext.p
 */
int rnnedge_model_step_dense_f32(const rnnedge_model_f32 *model, rnnedge_state_f32 *s, const float *x, float *y);

/**
 * One time step of a token-input f32 model: the embedding row of `token` (read in place), every layer, the head.
 * @return RNNEDGE_OK, RNNEDGE_ERR_NULL, RNNEDGE_ERR_BAD_TOKEN, RNNEDGE_ERR_INPUT_KIND or RNNEDGE_ERR_UNSUPPORTED
 *         (nothing written on an error)
 */
int rnnedge_model_step_tokens_f32(const rnnedge_model_f32 *model, rnnedge_state_f32 *s, int32_t token, float *y);

/**
 * One step of an f32 Elman RNN layer: h = act(b_ih + W_ih x + b_hh + W_hh h), act = tanh or relu by layer->cell;
 * with extensions (layer->ext.flags != 0) act = ext's f of the clipped sum.
 * @param[in]     layer   the layer's constants (G = H rows)
 * @param[in]     x       layer->n_in inputs (must not overlap h or scratch)
 * @param[in,out] h       layer->hidden hidden state
 * @param[out]    scratch RNNEDGE_LAYER_SCRATCH_LEN(cell, H) floats
 */
void rnnedge_rnn_step_f32(const rnnedge_layer_f32 *layer, const float *x, float *h, float *scratch);

/**
 * One step of an f32 LSTM layer (gates i f g o): c = f c + i g, h = o tanh(c); with extensions as rnnedge_ext_f32
 * says (runtime lstm_update_ext_f32).
 * @param[in]     layer   the layer's constants (G = 4H rows)
 * @param[in]     x       layer->n_in inputs (must not overlap h, c or scratch)
 * @param[in,out] h       layer->hidden hidden state
 * @param[in,out] c       layer->hidden cell state
 * @param[out]    scratch 4H floats
 */
void rnnedge_lstm_step_f32(const rnnedge_layer_f32 *layer, const float *x, float *h, float *c, float *scratch);

/**
 * One step of an f32 GRU layer (gates r z n, linear_before_reset): n = tanh(gx_n + r (W_hn h + b_hn)),
 * h = (1 - z) n + z h; with extensions as rnnedge_ext_f32 says (RNNEDGE_EXT_RESET_BEFORE: n = g(clip((b_hn +
 * W_hn (r h)) + gx_n)), runtime recurrent_step_ext_f32).
 * @param[in]     layer   the layer's constants (G = 3H rows)
 * @param[in]     x       layer->n_in inputs (must not overlap h or scratch)
 * @param[in,out] h       layer->hidden hidden state
 * @param[out]    scratch 4H floats
 */
void rnnedge_gru_step_f32(const rnnedge_layer_f32 *layer, const float *x, float *h, float *scratch);

/**
 * The embedding row of a token (f32 tables are read in place, as the runtime does).
 * @param[in] table (vocab, dim) row-major
 * @param[in] dim   embedding width
 * @param[in] token row to read; the caller checks 0 <= token < vocab
 * @return a pointer to the dim floats of row `token`
 */
const float *rnnedge_embedding_f32(const float *table, int32_t dim, int32_t token);

/**
 * The f32 head: y = act(b + W h) (runtime.kernels_f32.head_f32; each row's sum starts at 0, then b is added).
 * @param[in]  w          (out, in) row-major
 * @param[in]  b          out biases
 * @param[in]  out        number of outputs
 * @param[in]  in         input width
 * @param[in]  activation RNNEDGE_ACT_*
 * @param[in]  h          in values (the last layer's h)
 * @param[out] y          out values
 */
void rnnedge_head_f32(const float *w, const float *b, int32_t out, int32_t in, int32_t activation, const float *h,
                      float *y);

#endif /* RNNEDGE_F32_H */
