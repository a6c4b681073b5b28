/**
 * @file rnnedge_float_types.h
 * @brief The float precisions' (f32, int8w) constants and structs: head and hidden-layer activations, ONNX function
 * codes, the layer extensions, the layer and model structs and the float stream. Part of rnnedge.h, which includes
 * it: include rnnedge.h.
 */
#ifndef RNNEDGE_FLOAT_TYPES_H
#define RNNEDGE_FLOAT_TYPES_H

#ifndef RNNEDGE_H
#error "include rnnedge.h, which includes this header"
#endif

/* ================================================================================================================
 * The float precisions: f32 (float weights) and int8w (int8 weights, one float scale per output row), both with
 * float activations and state (src/rnnedge_f32.c, src/rnnedge_int8w.c). They mirror runtime/kernels_f32.py and
 * runtime/kernels_int8w.py operation for operation: the same exp (Cody-Waite range reduction, the degree-6
 * polynomial, 2^k built in the exponent bits; no libm), sigmoid(a) = 1 / (1 + e^-a), tanh(a) = 2 / (1 + e^-2a) - 1,
 * the same sums (four products at a time, then the next four), PyTorch's gate order, GRU's linear_before_reset.
 * A C step agrees with the runtime within 1e-5 absolute (export/vectors.py's rule for f32/int8w): the runtime
 * lets LLVM reorder sums and fuse multiply-adds, C99 mode (-std=c99 implies -ffp-contract=off) does neither.
 * Assumes float arithmetic in float (FLT_EVAL_METHOD 0: SSE, ARM VFP, soft-float).
 *
 * Memory: as for int8, nothing is allocated and there is no global mutable state. A stream's memory is an
 * rnnedge_state_f32 (float state and float scratch, caller-owned), sized by the generated MODEL_STATE_LEN /
 * MODEL_SCRATCH_LEN. The state layout is the int8 one: every layer's h, then (LSTM) its c, packed.
 *
 * ONNX layer extensions (runtime/spec.py): a layer's `ext` (rnnedge_ext_f32) selects them, as runtime/layout.py's
 * L_FLAGS does. ext.flags == 0 (the zero initialiser: sources generated before extensions existed) is PyTorch's
 * cell on the unchanged fast path; otherwise each cell's step takes the extension path, which mirrors
 * runtime/kernels_f32.py's lstm_update_ext_f32 / gru_update_ext_f32 / rnn_update_ext_f32 (shared by int8w, as
 * there). The float steps implement every extension that can stream (RNNEDGE_EXT_FLOAT): all but
 * RNNEDGE_EXT_REVERSE, which makes a model step return RNNEDGE_ERR_UNSUPPORTED.
 * ============================================================================================================== */

/** @name Head activations (runtime/layout.py ACT_*) */
/**@{*/
#define RNNEDGE_ACT_NONE 0
#define RNNEDGE_ACT_SOFTMAX 1
#define RNNEDGE_ACT_SIGMOID 2
#define RNNEDGE_ACT_LOG_SOFTMAX 3 /**< log of the softmax: (y - max) - log(sum e^(y - max)) */
/**@}*/

/** @name A hidden head layer's activation (runtime/layout.py HID_*; runtime/spec.py HIDDEN_ACTIVATIONS) */
/**@{*/
#define RNNEDGE_HIDDEN_NONE 0
#define RNNEDGE_HIDDEN_RELU 1
#define RNNEDGE_HIDDEN_TANH 2
#define RNNEDGE_HIDDEN_SIGMOID 3
#define RNNEDGE_HIDDEN_GELU 4      /**< x/2 (1 + erf(x / sqrt 2)), PyTorch's nn.GELU() */
#define RNNEDGE_HIDDEN_GELU_TANH 5 /**< x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), nn.GELU(approximate="tanh") */
/**@}*/

/**
 * One hidden dense layer of an f32 model's head (spec head.hidden[k], tensors head.hidden.{k}.*): out = act(b + W v),
 * each row's sum from 0, then b added, as the head's. The model's hidden layers run in order between the last
 * recurrent layer and the head; each output sits in the scratch (the layers' part, free once they have stepped).
 */
typedef struct {
    int32_t n_in;       /**< input width: the last layer's H, or the previous hidden layer's units */
    int32_t units;      /**< U */
    int32_t activation; /**< RNNEDGE_HIDDEN_* */
    const float *w;     /**< (U, n_in) row-major */
    const float *b;     /**< (U) */
} rnnedge_dense_f32;

/** One hidden dense layer of an int8w model's head: out = act(b + scale * (W v)), the row scale on the finished
 * int8-times-float sum, as rnnedge_head_int8w's. */
typedef struct {
    int32_t n_in;       /**< input width */
    int32_t units;      /**< U */
    int32_t activation; /**< RNNEDGE_HIDDEN_* */
    const int8_t *w;    /**< (U, n_in) row-major int8 */
    const float *scale; /**< (U) row scales of w */
    const float *b;     /**< (U) */
} rnnedge_dense_int8w;

/** @name ONNX activation function codes (runtime/layout.py FN_*; runtime/spec.py ACTIVATION_FNS) */
/**@{*/
#define RNNEDGE_FN_RELU 0            /**< max(x, 0) */
#define RNNEDGE_FN_TANH 1            /**< tanh(x) (rnnedge_tanh_f32) */
#define RNNEDGE_FN_SIGMOID 2         /**< 1 / (1 + e^-x) (rnnedge_sigmoid_f32) */
#define RNNEDGE_FN_AFFINE 3          /**< alpha x + beta */
#define RNNEDGE_FN_LEAKYRELU 4       /**< x >= 0 ? x : alpha x */
#define RNNEDGE_FN_THRESHOLDEDRELU 5 /**< x > alpha ? x : 0 (ONNX Runtime's strict >) */
#define RNNEDGE_FN_SCALEDTANH 6      /**< alpha tanh(beta x), tanh as 2 / (1 + e^(-2 beta x)) - 1 */
#define RNNEDGE_FN_HARDSIGMOID 7     /**< min(max(alpha x + beta, 0), 1) */
#define RNNEDGE_FN_ELU 8             /**< x >= 0 ? x : alpha (e^x - 1) */
#define RNNEDGE_FN_SOFTSIGN 9        /**< x / (1 + |x|) */
#define RNNEDGE_FN_SOFTPLUS 10       /**< log(1 + e^x), x itself above 20 */
#define RNNEDGE_FN_COUNT 11
/**@}*/

/** The extension bits the f32 and int8w steps implement: every one that can stream (all but REVERSE). */
#define RNNEDGE_EXT_FLOAT                                                                                          \
    (RNNEDGE_EXT_RESET_BEFORE | RNNEDGE_EXT_INPUT_FORGET | RNNEDGE_EXT_PEEPHOLES | RNNEDGE_EXT_CLIP |             \
     RNNEDGE_EXT_ACTIVATIONS | RNNEDGE_EXT_INIT)

/** One activation function of a float layer: an RNNEDGE_FN_* code with ONNX's alpha and beta (0 when unused). */
typedef struct {
    int32_t code; /**< RNNEDGE_FN_* */
    float alpha;  /**< ONNX activation_alpha (spec "alpha") */
    float beta;   /**< ONNX activation_beta (spec "beta") */
} rnnedge_fn_f32;

/**
 * A float layer's ONNX extensions (runtime/spec.py; runtime/layout.py L_FLAGS, the L_OFF_EXT block, L_OFF_P,
 * L_OFF_INIT), the last field of rnnedge_layer_f32 and rnnedge_layer_int8w. All zero / NULL is PyTorch's cell.
 *
 *   RNNEDGE_EXT_RESET_BEFORE  gru: n = g(clip(W_in x + b_in + W_hn (r * h) + b_hn)) (ONNX linear_before_reset 0)
 *   RNNEDGE_EXT_INPUT_FORGET  lstm: f = 1 - i (the f rows' sums are formed but unused)
 *   RNNEDGE_EXT_PEEPHOLES     lstm: i, f pre-activations + p_i c_prev, p_f c_prev; o's + p_o c_new
 *   RNNEDGE_EXT_CLIP          every gate pre-activation (with its peephole term; a GRU's n after its r term)
 *                             clamped to [-clip, clip] before its function; the cell state is not clipped
 *   RNNEDGE_EXT_ACTIVATIONS   fn[] instead of the cell's own functions
 *   RNNEDGE_EXT_INIT          h0 (and c0) set: rnnedge_state_reset_f32 / _int8w start the layer from them
 *   RNNEDGE_EXT_REVERSE       refused (RNNEDGE_ERR_UNSUPPORTED): a reverse layer cannot stream
 */
typedef struct {
    int32_t flags;        /**< RNNEDGE_EXT_* bits (runtime/layout.py F_*); 0: PyTorch's cell (fast path) */
    float clip;           /**< RNNEDGE_EXT_CLIP: the clip threshold, > 0 (ONNX clip) */
    rnnedge_fn_f32 fn[3]; /**< RNNEDGE_EXT_ACTIVATIONS: the cell's functions in ONNX order: rnn [f]; lstm [f (i, f,
                               o), g (cell input), h (of c)]; gru [f (r, z), g (n)]. Without the flag: the cell's
                               own (rnn_tanh tanh, rnn_relu relu, lstm sigmoid tanh tanh, gru sigmoid tanh) */
    const float *p;       /**< RNNEDGE_EXT_PEEPHOLES: lstm (3H) [p_i; p_f; p_o]; NULL otherwise */
    const float *h0;      /**< (H) the h a stream starts from (rnnedge_state_reset_*), whenever not NULL; NULL:
                               zeros (generated sources set it with RNNEDGE_EXT_INIT) */
    const float *c0;      /**< lstm: (H) the c a stream starts from, whenever not NULL; NULL: zeros */
} rnnedge_ext_f32;

/** One f32 layer-direction (artifact tensors `layers.{l}.fwd.*`, PyTorch layout). G = gates * hidden. */
typedef struct {
    int32_t cell;          /**< RNNEDGE_CELL_* */
    int32_t bidirectional; /**< nonzero: the layer has a backward direction, which a stream cannot run */
    int32_t n_in;          /**< input width I */
    int32_t hidden;        /**< H */
    const float *w_ih;     /**< (G, I) row-major */
    const float *w_hh;     /**< (G, H) row-major */
    const float *b_ih;     /**< (G) */
    const float *b_hh;     /**< (G) */
    rnnedge_ext_f32 ext;   /**< ONNX layer extensions; all zero: PyTorch's cell */
} rnnedge_layer_f32;

/** A whole f32 model (forward-only layers, a head on the last layer's h). */
typedef struct {
    int32_t input_kind;              /**< RNNEDGE_INPUT_DENSE or RNNEDGE_INPUT_TOKENS */
    int32_t n_in;                    /**< input width: features, or the embedding width */
    int32_t vocab;                   /**< tokens: vocabulary size; 0 for dense */
    const float *embedding;          /**< tokens: (vocab, n_in) row-major; NULL for dense */
    const float *input_mean;         /**< dense: n_in means (spec input.mean); NULL for tokens */
    const float *input_std;          /**< dense: n_in standard deviations (spec input.std); NULL for tokens */
    int32_t n_layers;                /**< number of layers */
    const rnnedge_layer_f32 *layers; /**< n_layers layer constants, first to last */
    int32_t n_dense;                 /**< the head's hidden dense layers (0: a single linear head) */
    const rnnedge_dense_f32 *dense;  /**< n_dense hidden layers, first to last; NULL when n_dense is 0 */
    int32_t out;                     /**< head outputs O */
    int32_t head_in;                 /**< head input width (the last layer's H, or the last hidden layer's U) */
    const float *head_w;             /**< (O, head_in) row-major */
    const float *head_b;             /**< (O) */
    int32_t activation;              /**< RNNEDGE_ACT_* */
    int32_t state_len;               /**< floats of state: sum of RNNEDGE_LAYER_STATE_LEN */
    int32_t scratch_len;             /**< floats of scratch a model step needs (rnnedge_state_f32) */
} rnnedge_model_f32;

/**
 * One int8w layer-direction (artifact tensors `layers.{l}.fwd.*` of a model.int8w.safetensors). G = gates * H.
 * Per gate row r: gx[r] = b_ih[r] + s_ih[r] * (W_ih[r] . x), gh[r] = b_h[r] + s_hh[r] * (W_hh[r] . h), the sums
 * in float over int8 weights, each row's scale applied to the finished sum; b_h[r] = b_hn[r - 2H] on a GRU's n
 * rows and 0 everywhere else (the file folds every other recurrent bias into b_ih: spec.recurrent_bias_rows).
 * A GRU with RNNEDGE_EXT_RESET_BEFORE has no b_hn (its file folds it into b_ih too): b_hn is NULL, b_h all 0.
 */
typedef struct {
    int32_t cell;          /**< RNNEDGE_CELL_* */
    int32_t bidirectional; /**< nonzero: the layer has a backward direction, which a stream cannot run */
    int32_t n_in;          /**< input width I */
    int32_t hidden;        /**< H */
    const int8_t *w_ih;    /**< (G, I) row-major, int8 */
    const float *s_ih;     /**< (G) row scales of w_ih */
    const int8_t *w_hh;    /**< (G, H) row-major, int8 */
    const float *s_hh;     /**< (G) row scales of w_hh */
    const float *b_ih;     /**< (G) the folded bias */
    const float *b_hn;     /**< (H) a GRU's b_hn; NULL for other cells and a GRU with RNNEDGE_EXT_RESET_BEFORE */
    rnnedge_ext_f32 ext;   /**< ONNX layer extensions, as rnnedge_layer_f32's; all zero: PyTorch's cell */
} rnnedge_layer_int8w;

/** A whole int8w model (forward-only layers, a head on the last layer's h). */
typedef struct {
    int32_t input_kind;                /**< RNNEDGE_INPUT_DENSE or RNNEDGE_INPUT_TOKENS */
    int32_t n_in;                      /**< input width: features, or the embedding width */
    int32_t vocab;                     /**< tokens: vocabulary size; 0 for dense */
    const int8_t *embedding;           /**< tokens: (vocab, n_in) row-major int8; NULL for dense */
    const float *embedding_scale;      /**< tokens: (vocab) one scale per row; NULL for dense */
    const float *input_mean;           /**< dense: n_in means (spec input.mean); NULL for tokens */
    const float *input_std;            /**< dense: n_in standard deviations (spec input.std); NULL for tokens */
    int32_t n_layers;                  /**< number of layers */
    const rnnedge_layer_int8w *layers; /**< n_layers layer constants, first to last */
    int32_t n_dense;                   /**< the head's hidden dense layers (0: a single linear head) */
    const rnnedge_dense_int8w *dense;  /**< n_dense hidden layers, first to last; NULL when n_dense is 0 */
    int32_t out;                       /**< head outputs O */
    int32_t head_in;                   /**< head input width (the last layer's H, or the last hidden layer's U) */
    const int8_t *head_w;              /**< (O, head_in) row-major int8 */
    const float *head_scale;           /**< (O) row scales of head_w */
    const float *head_b;               /**< (O) */
    int32_t activation;                /**< RNNEDGE_ACT_* */
    int32_t state_len;                 /**< floats of state: sum of RNNEDGE_LAYER_STATE_LEN */
    int32_t scratch_len;               /**< floats of scratch a model step needs (rnnedge_state_f32) */
} rnnedge_model_int8w;

/**
 * A float stream's memory (f32 and int8w), owned by the caller: two plain float arrays.
 *
 * state: model->state_len floats, layers in order, each layer's h then (lstm) c, packed (export/vectors.py's
 *        `state`). The start of a sequence is what rnnedge_state_reset_f32 / _int8w write: zeros, or a layer's
 *        ext.h0 (and ext.c0) where set.
 * scratch: model->scratch_len floats, overwritten by every step, never read across steps: the widest layer's
 *          RNNEDGE_LAYER_SCRATCH_LEN (G gate sums, + H for a GRU, whose n rows keep the input and recurrent
 *          parts apart; a RNNEDGE_EXT_RESET_BEFORE GRU uses 3H of its 4H: r, z, then r * h), plus n_in in front
 *          for a dense model (the normalised input) and an int8w token model (the dequantised embedding row);
 *          f32 token models read the embedding row in place. With hidden head layers, the part after that front
 *          is at least the sum of their units: it holds their outputs once the layers have stepped.
 */
typedef struct {
    float *state;   /**< [in,out] model->state_len floats */
    float *scratch; /**< [out] model->scratch_len floats of working memory */
} rnnedge_state_f32;

#endif /* RNNEDGE_FLOAT_TYPES_H */
