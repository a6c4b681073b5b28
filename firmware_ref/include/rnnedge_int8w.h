/**
 * @file rnnedge_int8w.h
 * @brief The int8w precision's functions (src/rnnedge_int8w.c): the state reset, the model and cell steps, the
 * embedding row, the head. Part of rnnedge.h, which includes it: include rnnedge.h.
 */
#ifndef RNNEDGE_INT8W_H
#define RNNEDGE_INT8W_H

#ifndef RNNEDGE_H
#error "include rnnedge.h, which includes this header"
#endif

/** The start of a sequence for a float stream of an int8w model, as rnnedge_state_reset_f32.
 * @return RNNEDGE_OK, RNNEDGE_ERR_NULL or RNNEDGE_ERR_UNSUPPORTED (RNNEDGE_EXTENSIONS 0, an initial state) */
int rnnedge_state_reset_int8w(const rnnedge_model_int8w *model, rnnedge_state_f32 *s);

/**
 * One time step of a dense-input int8w model; as rnnedge_model_step_dense_f32.
 * @return RNNEDGE_OK, RNNEDGE_ERR_NULL, RNNEDGE_ERR_INPUT_KIND, RNNEDGE_ERR_UNSUPPORTED or RNNEDGE_ERR_BAD_VALUE
 *         (nothing written on an error)
 */
int rnnedge_model_step_dense_int8w(const rnnedge_model_int8w *model, rnnedge_state_f32 *s, const float *x,
                                   float *y);

/**
 * One time step of a token-input int8w model: the embedding row dequantised into the front of the scratch
 * (scale[token] * q, n_in floats), every layer, the head.
 * @return RNNEDGE_OK, RNNEDGE_ERR_NULL, RNNEDGE_ERR_BAD_TOKEN, RNNEDGE_ERR_INPUT_KIND or RNNEDGE_ERR_UNSUPPORTED
 *         (nothing written on an error)
 */
int rnnedge_model_step_tokens_int8w(const rnnedge_model_int8w *model, rnnedge_state_f32 *s, int32_t token,
                                    float *y);

/** One step of an int8w Elman RNN layer; as rnnedge_rnn_step_f32 (scratch RNNEDGE_LAYER_SCRATCH_LEN floats). */
void rnnedge_rnn_step_int8w(const rnnedge_layer_int8w *layer, const float *x, float *h, float *scratch);
/** One step of an int8w LSTM layer; as rnnedge_lstm_step_f32 (scratch 4H floats). */
void rnnedge_lstm_step_int8w(const rnnedge_layer_int8w *layer, const float *x, float *h, float *c,
                             float *scratch);
/** One step of an int8w GRU layer; as rnnedge_gru_step_f32 (layer->b_hn set unless RNNEDGE_EXT_RESET_BEFORE;
 * scratch 4H floats). */
void rnnedge_gru_step_int8w(const rnnedge_layer_int8w *layer, const float *x, float *h, float *scratch);

/**
 * Dequantise one int8w embedding row: x[k] = scale[token] * q[token][k] (runtime dequantize_row_int8w).
 * @param[in]  table (vocab, dim) row-major int8
 * @param[in]  scale (vocab) row scales
 * @param[in]  dim   embedding width
 * @param[in]  token row to read; the caller checks 0 <= token < vocab
 * @param[out] x     dim floats
 */
void rnnedge_embedding_int8w(const int8_t *table, const float *scale, int32_t dim, int32_t token, float *x);

/**
 * The int8w head: y = act(b + s * (W h)), the row scale on the finished int8-times-float sum.
 * @param[in]  w          (out, in) row-major int8
 * @param[in]  scale      out row scales
 * @param[in]  b          out biases
 * @param[in]  out        number of outputs
 * @param[in]  in         input width
 * @param[in]  activation RNNEDGE_ACT_*
 * @param[in]  h          in values
 * @param[out] y          out values
 */
void rnnedge_head_int8w(const int8_t *w, const float *scale, const float *b, int32_t out, int32_t in,
                        int32_t activation, const float *h, float *y);

#if RNNEDGE_EXTENSIONS
/** The int8w head's hidden dense layers (runtime.kernels_int8w.dense_layers_int8w); as rnnedge_dense_layers_f32. */
const float *rnnedge_dense_layers_int8w(const rnnedge_dense_int8w *dense, int32_t n_dense, const float *v,
                                        float *work);
#endif /* RNNEDGE_EXTENSIONS */

#endif /* RNNEDGE_INT8W_H */
