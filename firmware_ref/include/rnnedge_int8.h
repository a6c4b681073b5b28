/**
 * @file rnnedge_int8.h
 * @brief The int8 precision (integers only; src/rnnedge_int8.c): its model structs and step functions, and the float
 * input helper (src/rnnedge_input_f32.c). Part of rnnedge.h, which includes it: include rnnedge.h.
 */
#ifndef RNNEDGE_INT8_H
#define RNNEDGE_INT8_H

#ifndef RNNEDGE_H
#error "include rnnedge.h, which includes this header"
#endif

/**
 * One int8 layer-direction's constants (runtime/file_tensors.py int8_tensors, `layers.{l}.fwd.*`). G = gates * hidden.
 *
 * Per gate row r: yx = MBQM(b_x[r] + W_ih[r] . x, mult_x[r], shift_x[r]),
 *                 yh = MBQM(b_h[r] + W_hh[r] . h, mult_h[r], shift_h[r]),
 * int32 each, with b_h[r] = b_hn[r - 2H] on a GRU's n rows and 0 everywhere else; a pre-activation adds its terms
 * exactly and saturates once, sat16(yx + yh) (docs/int8.md).
 *
 * The ONNX layer extensions (runtime/kernels_int8.py's docstring, integer for integer) are the fields after
 * cell_power; a layer that leaves them out (all 0 / NULL, as in sources generated before they existed) is
 * PyTorch's cell. flags != 0 selects the extension path of each cell's step:
 *   RNNEDGE_EXT_CLIP          every pre-activation, once formed (after sat16(yx + yh + peephole term); a GRU's n
 *                             row after its r term), is clamped to [-clip_q, clip_q] before its function
 *   RNNEDGE_EXT_INPUT_FORGET  lstm: f = min(32768 - i, 32767); the f rows' pre-activations are not computed
 *   RNNEDGE_EXT_PEEPHOLES     lstm: pre_k = sat16(yx + yh + MBQM(p_k[j] * c[j], peep_mult[k], peep_shift[k]))
 *                             for k = i, f (c on entry) and o (the new c)
 *   RNNEDGE_EXT_RESET_BEFORE  gru: rh = RDBPOT(r * h, 15), n = tanh(clip(sat16(yx_n + MBQM(W_hn . rh, Mh, Sh)))),
 *                             no recurrent bias (b_hn is folded into b_x; b_hn is NULL)
 *   RNNEDGE_EXT_INIT          rnnedge_state_reset_int8 sets h to h0 (and an LSTM's c to c0), not zeros
 */
typedef struct {
    int32_t cell;           /**< RNNEDGE_CELL_* */
    int32_t bidirectional;  /**< nonzero: the layer has a backward direction, which a stream cannot run */
    int32_t n_in;           /**< input width I */
    int32_t hidden;         /**< H */
    const int8_t *w_ih;     /**< (G, I) row-major, int8 in [-127, 127] */
    const int8_t *w_hh;     /**< (G, H) row-major */
    const int32_t *b_x;     /**< (G): the folded input-side bias, in the scale of W_ih[r] . x */
    const int32_t *b_hn;    /**< (H): a GRU's b_hn (in the scale of W_hh[r] . h); NULL for other cells */
    const int32_t *mult_x;  /**< (G): Mx, quantised multipliers in [2^30, 2^31) or 0 */
    const int8_t *shift_x;  /**< (G): Sx in [-31, 30] */
    const int32_t *mult_h;  /**< (G): Mh */
    const int8_t *shift_h;  /**< (G): Sh */
    int32_t cell_power;     /**< LSTM: p, the cell state's scale 2^p, in [-15, 1]; 0 for other cells */
    int32_t flags;          /**< RNNEDGE_EXT_* bits (runtime/layout.py L_FLAGS); 0: PyTorch's cell */
    int32_t clip_q;         /**< RNNEDGE_EXT_CLIP: the clip in the pre-activation's integers (Q3.12; rnn_relu:
                                 s_h), in [0, 32767] (runtime/layout.py L_CLIP_Q) */
    const int16_t *h0;      /**< RNNEDGE_EXT_INIT: (H) the initial h, in h's scale; NULL: zeros */
    const int16_t *c0;      /**< RNNEDGE_EXT_INIT, lstm: (H) the initial c, in 2^cell_power; NULL: zeros */
    const int16_t *peep;    /**< RNNEDGE_EXT_PEEPHOLES: (3H) [p_i; p_f; p_o]; NULL otherwise */
    const int32_t *peep_mult; /**< RNNEDGE_EXT_PEEPHOLES: (3) the multiplier M_k of p_k * c into Q3.12 */
    const int8_t *peep_shift; /**< RNNEDGE_EXT_PEEPHOLES: (3) its shift S_k */
} rnnedge_layer_int8;

/**
 * One hidden dense layer of an int8 model's head (spec head.hidden[k], tensors head.hidden.{k}.*; the arithmetic is
 * runtime/kernels_int8.py's docstring): per row r, q = sat16(MBQM(b[r] + W[r] . v, mult[r], shift[r])), then
 * max(0, q) (RNNEDGE_HIDDEN_RELU), q (NONE), the gate tables tanh_q15(q) / sigmoid_q15(q) (TANH, SIGMOID: q is
 * Q3.12, the output Q0.15), or gelu_q12(q) = q * sigmoid(2u) (GELU and GELU_TANH alike: q and the output Q3.12).
 */
typedef struct {
    int32_t n_in;         /**< input width: the last layer's H, or the previous hidden layer's units */
    int32_t units;        /**< U */
    int32_t activation;   /**< RNNEDGE_HIDDEN_RELU, _NONE, _TANH, _SIGMOID, _GELU or _GELU_TANH */
    const int8_t *w;      /**< (U, n_in) row-major int8 */
    const int32_t *b;     /**< (U) int32 biases */
    const int32_t *mult;  /**< (U) the multiplier M of each row */
    const int8_t *shift;  /**< (U) its shift S */
} rnnedge_dense_int8;

/** A whole int8 model (forward-only layers, a head on the last layer's h). */
typedef struct {
    int32_t input_kind;               /**< RNNEDGE_INPUT_DENSE or RNNEDGE_INPUT_TOKENS */
    int32_t n_in;                     /**< input width: features, or the embedding width */
    int32_t vocab;                    /**< tokens: vocabulary size; 0 for dense */
    const int8_t *embedding;          /**< tokens: (vocab, n_in) row-major int8 table; NULL for dense */
    int32_t n_layers;                 /**< number of layers */
    const rnnedge_layer_int8 *layers; /**< n_layers layer constants, first to last */
    int32_t n_dense;                  /**< the head's hidden dense layers (0: a single linear head) */
    const rnnedge_dense_int8 *dense;  /**< n_dense hidden layers, first to last; NULL when n_dense is 0 */
    int32_t out;                      /**< head outputs O */
    int32_t head_in;                  /**< head input width (the last layer's H, or the last hidden layer's U) */
    const int8_t *head_w;             /**< (O, head_in) row-major */
    const int32_t *head_b;            /**< (O) */
    int32_t state_len;                /**< int16 elements of state: sum of RNNEDGE_LAYER_STATE_LEN */
    int32_t scratch_len;              /**< int16 elements of scratch a model step needs */
} rnnedge_model_int8;

/**
 * A stream's memory, owned by the caller: two plain int16 arrays.
 *
 * state: model->state_len values, layers in order, each layer's h then (lstm) c, packed: the layout of
 *        export/vectors.py's `state`. The start of a sequence is what rnnedge_state_reset_int8 writes: zeros, or
 *        a layer's h0 (and c0) when it has them (RNNEDGE_EXT_INIT).
 * scratch: model->scratch_len values, overwritten by every step, never read across steps (with hidden head
 *          layers, at least the sum of their units after a token model's embedding row: their outputs).
 */
typedef struct {
    int16_t *state;    /**< [in,out] model->state_len int16 */
    int16_t *scratch;  /**< [out] model->scratch_len int16 working memory */
} rnnedge_state_int8;

/**
 * Set a stream's state to the start of a new sequence: every layer's h (and c) zero, or its h0 (and c0) for a
 * layer that has them (RNNEDGE_EXT_INIT; a NULL h0 or c0 is zeros), as runtime Stream.reset() does.
 * @param[in]  model the model
 * @param[out] s     the stream; s->state is written
 * @return RNNEDGE_OK, RNNEDGE_ERR_NULL (model, s, s->state, or model->layers of a model with layers, NULL;
 *         nothing written), or RNNEDGE_ERR_UNSUPPORTED (built with RNNEDGE_EXTENSIONS 0, a layer with
 *         RNNEDGE_EXT_INIT; nothing written)
 */
int rnnedge_state_reset_int8(const rnnedge_model_int8 *model, rnnedge_state_int8 *s);

/**
 * One time step of a dense-input int8 model: every layer, then the head.
 * @param[in]     model  the model (input_kind RNNEDGE_INPUT_DENSE, every layer forward-only)
 * @param[in,out] s      the stream's state (read and updated) and scratch
 * @param[in]     x_q    model->n_in quantised inputs, clamp(rint(((x - mean) / std) / s_x), -32767, 32767)
 *                       (rnnedge_quantize_input_f32 computes them on an FPU target)
 * @param[out]    logits model->out int32 head accumulators b + W h; dequantise as logits[o] * head_scale[o],
 *                       then apply the head's activation where floats are at hand (softmax, log_softmax or
 *                       sigmoid: the int8 step itself returns the integer logits for every activation)
 * @return RNNEDGE_OK, RNNEDGE_ERR_NULL, RNNEDGE_ERR_INPUT_KIND or RNNEDGE_ERR_UNSUPPORTED (a bidirectional
 *         layer, or flags outside RNNEDGE_EXT_INT8, or any flags with RNNEDGE_EXTENSIONS 0; nothing written on an
 *         error)
 */
int rnnedge_model_step_dense_int8(const rnnedge_model_int8 *model, rnnedge_state_int8 *s, const int16_t *x_q,
                                  int32_t *logits);

/**
 * One time step of a token-input int8 model: the embedding row of `token`, every layer, then the head.
 * @param[in]     model  the model (input_kind RNNEDGE_INPUT_TOKENS, every layer forward-only)
 * @param[in,out] s      the stream's state (read and updated) and scratch (its first n_in values hold the
 *                       widened embedding row during the step)
 * @param[in]     token  the token id, in [0, model->vocab)
 * @param[out]    logits model->out int32 head accumulators
 * @return RNNEDGE_OK, RNNEDGE_ERR_NULL, RNNEDGE_ERR_BAD_TOKEN, RNNEDGE_ERR_INPUT_KIND or
 *         RNNEDGE_ERR_UNSUPPORTED (nothing written on an error)
 */
int rnnedge_model_step_tokens_int8(const rnnedge_model_int8 *model, rnnedge_state_int8 *s, int32_t token,
                                   int32_t *logits);

/**
 * One step of an Elman RNN layer (rnn_tanh or rnn_relu by layer->cell): h = act(sat16(yx + yh)), with
 * RNNEDGE_EXT_CLIP act(clamp(sat16(yx + yh), -clip_q, clip_q)).
 * @param[in]     layer   the layer's constants (G = H rows)
 * @param[in]     x       layer->n_in int16 inputs (must not overlap h)
 * @param[in,out] h       layer->hidden int16 hidden state: Q0.15 (tanh) or the calibrated scale s_h (relu)
 * @param[out]    scratch RNNEDGE_LAYER_SCRATCH_LEN(cell, H) int16 working memory
 */
void rnnedge_rnn_step_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *scratch);

/**
 * One step of an LSTM layer (gates i f g o): c = f c + i g (scale 2^p), h = o tanh(c) (Q0.15); with
 * RNNEDGE_EXT_CLIP, _INPUT_FORGET and _PEEPHOLES as rnnedge_layer_int8 says.
 * @param[in]     layer   the layer's constants (G = 4H rows)
 * @param[in]     x       layer->n_in int16 inputs (must not overlap h or c)
 * @param[in,out] h       layer->hidden int16 hidden state, Q0.15
 * @param[in,out] c       layer->hidden int16 cell state, scale 2^layer->cell_power
 * @param[out]    scratch 4H int16 working memory
 */
void rnnedge_lstm_step_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *c,
                            int16_t *scratch);

/**
 * One step of a GRU layer (gates r z n, PyTorch's linear_before_reset): h = (1 - z) n + z h; with
 * RNNEDGE_EXT_RESET_BEFORE ONNX's default form (r applied to h before W_hn), with RNNEDGE_EXT_CLIP clipped.
 * @param[in]     layer   the layer's constants (G = 3H rows, b_hn set unless RNNEDGE_EXT_RESET_BEFORE)
 * @param[in]     x       layer->n_in int16 inputs (must not overlap h)
 * @param[in,out] h       layer->hidden int16 hidden state, Q0.15
 * @param[out]    scratch 4H int16 working memory
 */
void rnnedge_gru_step_int8(const rnnedge_layer_int8 *layer, const int16_t *x, int16_t *h, int16_t *scratch);

/**
 * Widen one row of an int8 embedding table into the int16 layer input.
 * @param[in]  table (vocab, dim) row-major int8
 * @param[in]  dim   embedding width
 * @param[in]  token row to read; the caller checks 0 <= token < vocab
 * @param[out] x     dim int16 values
 */
void rnnedge_embedding_int8(const int8_t *table, int32_t dim, int32_t token, int16_t *x);

/**
 * The head's integer logits: logits = b + W h (int32; exact, export bounds every sum below 2^31).
 * @param[in]  w      (out, in) row-major int8
 * @param[in]  b      out int32 biases
 * @param[in]  out    number of outputs
 * @param[in]  in     input width
 * @param[in]  h      in int16 values (the last layer's h)
 * @param[out] logits out int32 values
 */
void rnnedge_head_int8(const int8_t *w, const int32_t *b, int32_t out, int32_t in, const int16_t *h,
                       int32_t *logits);

#if RNNEDGE_EXTENSIONS
/**
 * The int8 head's hidden dense layers on v (runtime.kernels_int8.dense_layers_int8): layer k's output in
 * work + (the units of layers 0..k-1).
 * @param[in]  dense   n_dense layers (activations RELU, NONE, TANH or SIGMOID)
 * @param[in]  n_dense number of layers (> 0)
 * @param[in]  v       dense[0].n_in int16 values (the last layer's h)
 * @param[out] work    the sum of the layers' units, int16
 * @return the last layer's output (inside work)
 */
const int16_t *rnnedge_dense_layers_int8(const rnnedge_dense_int8 *dense, int32_t n_dense, const int16_t *v,
                                         int16_t *work);
#endif /* RNNEDGE_EXTENSIONS */

/**
 * The one float step before the integer model, for FPU targets (src/rnnedge_input_f32.c, kept apart from
 * the integer code): x_q[k] = clamp(rint(((x[k] - mean[k]) / std[k]) / scale), -32767, 32767) in float32
 * arithmetic, rint rounding half to even (runtime.kernels_int8.quantize_input_int8). Needs no libm.
 * @param[in]  x     n raw float inputs
 * @param[in]  mean  n normalisation means (spec input.mean)
 * @param[in]  std   n normalisation standard deviations (spec input.std)
 * @param[in]  scale s_x, the quantised input's scale (the artifact's input.scale)
 * @param[in]  n     number of features
 * @param[out] x_q   n quantised inputs
 * @return RNNEDGE_OK, RNNEDGE_ERR_NULL, or RNNEDGE_ERR_BAD_VALUE ((x[k] - mean[k]) / std[k] not finite for some k:
 *         NaN or infinity in x, or a finite x that overflows; refused, not clamped; nothing written)
 */
int rnnedge_quantize_input_f32(const float *x, const float *mean, const float *std, float scale, int32_t n,
                               int16_t *x_q);

/** The 256-entry sigmoid table, unsigned Q0.16: min(65535, round(65536 * sigmoid(k / 24))) (int8_math). */
extern const uint16_t rnnedge_sigmoid_table_q16[256];

#endif /* RNNEDGE_INT8_H */
