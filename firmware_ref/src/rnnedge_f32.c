/*
 * rnnedge_f32.c: the `f32` precision's step, one C function per kernel of runtime/kernels_f32.py.
 *
 * Float32 arithmetic only (no double: the file builds with -Wdouble-promotion), no libm: e^x is the runtime's
 * exp_f32, written out below. Weights are in PyTorch's row-major layout W (rows, cols); the runtime keeps W^T
 * but computes every output row's value with the same operations in the same order:
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
 */
#include "rnnedge.h"
#include "rnnedge_float_internal.h"

/* runtime/kernels_f32.py's float32 constants, as exact hexadecimal literals */
#define EXP_LO (-87.0f)
#define EXP_HI 88.0f
#define LOG2E 0x1.715476p+0f   /* float32(1.4426950408889634) */
#define LN2_HI 0x1.63p-1f      /* 0.693359375: k * LN2_HI is exact for |k| < 2^8 */
#define LN2_LO -0x1.bd0106p-13f /* float32(-2.12194440e-4) */
#define C2 0x1.p-1f            /* 1/2 */
#define C3 0x1.555556p-3f      /* float32(1/6) */
#define C4 0x1.555556p-5f      /* float32(1/24) */
#define C5 0x1.111112p-7f      /* float32(1/120) */
#define C6 0x1.6c16c2p-10f     /* float32(1/720) */

typedef union {
    uint32_t u;
    float f;
} float_bits; /* reading the member not last written is defined in C99 (TC3, 6.5.2.3 footnote 82) */

typedef char rnnedge_requires_32_bit_float[sizeof(float) == 4 ? 1 : -1];

/* Safe for any float: infinities and huge values clamp; a NaN passes the clamps (every comparison with it is
 * false), so t is taken as 0 for it: the int32 conversion only ever sees [-125.0, 127.5] (converting an
 * out-of-range float is undefined behaviour) and r carries the NaN to the result. runtime exp_f32, line for line. */
float rnnedge_exp_f32(float x)
{
    float t;
    float kf;
    float r;
    float p;
    int32_t k;
    float_bits two_k;
    x = x < EXP_LO ? EXP_LO : x;
    x = x > EXP_HI ? EXP_HI : x;
    t = x * LOG2E + 0.5f;
    t = t != t ? 0.0f : t; /* NaN; now in [-125.0, 127.5]: floor by truncation, corrected below 0 */
    k = (int32_t)t;
    if ((float)k > t) {
        k -= 1;
    }
    kf = (float)k;
    r = (x - kf * LN2_HI) - kf * LN2_LO;
    p = 1.0f + r * (1.0f + r * (C2 + r * (C3 + r * (C4 + r * (C5 + r * C6)))));
    two_k.u = (uint32_t)(k + 127) << 23; /* k in [-125, 127]: a normal float's biased exponent */
    return p * two_k.f;
}

float rnnedge_sigmoid_f32(float a)
{
    return 1.0f / (1.0f + rnnedge_exp_f32(-a));
}

float rnnedge_tanh_f32(float a)
{
    return 2.0f / (1.0f + rnnedge_exp_f32(-2.0f * a)) - 1.0f;
}

/* log(u) for a normal u >= 1 (a log_softmax head's sum; softplus): u = m 2^e with m in [sqrt(1/2), sqrt(2)),
 * log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716, by its odd series to s^9 (truncation below 1e-9
 * relative), e ln2 in two parts as exp does. */
#define SQRT2 0x1.6a09e6p+0f /* float32(sqrt(2)) */
#define L3 0x1.555556p-1f    /* float32(2/3) */
#define L5 0x1.99999ap-2f    /* float32(2/5) */
#define L7 0x1.24924ap-2f    /* float32(2/7) */
#define L9 0x1.c71c72p-3f    /* float32(2/9) */

static float log_f32(float u)
{
    float_bits b;
    int32_t e;
    float m;
    float s;
    float s2;
    float ef;
    b.f = u;
    e = (int32_t)((b.u >> 23) & 0xFFu) - 127;
    b.u = (b.u & 0x007FFFFFu) | 0x3F800000u; /* m in [1, 2) */
    m = b.f;
    if (m > SQRT2) {
        m *= 0.5f;
        e += 1;
    }
    s = (m - 1.0f) / (m + 1.0f); /* m - 1 is exact (Sterbenz) */
    s2 = s * s;
    ef = (float)e;
    return ef * LN2_HI + (ef * LN2_LO + s * (2.0f + s2 * (L3 + s2 * (L5 + s2 * (L7 + s2 * L9)))));
}

#if RNNEDGE_EXTENSIONS
/* log(1 + y) for y >= 0 (softplus: y = e^a): log(u) (y / (u - 1)), u = 1 + y, which cancels u's rounding error;
 * y itself when 1 + y rounds to 1. A few ulps from the exact value, no libm. */
static float log1p_f32(float y)
{
    const float u = 1.0f + y;
    if (u == 1.0f) {
        return y;
    }
    return log_f32(u) * (y / (u - 1.0f));
}

#define SOFTPLUS_LINEAR 20.0f /* above it log1p(e^x) == x in float32 (runtime _SOFTPLUS_LINEAR) */

float rnnedge_activate_f32(int32_t code, float alpha, float beta, float a)
{
    switch (code) {
    case RNNEDGE_FN_RELU:
        return a > 0.0f ? a : 0.0f;
    case RNNEDGE_FN_TANH:
        return rnnedge_tanh_f32(a);
    case RNNEDGE_FN_SIGMOID:
        return rnnedge_sigmoid_f32(a);
    case RNNEDGE_FN_AFFINE:
        return alpha * a + beta;
    case RNNEDGE_FN_LEAKYRELU:
        return a < 0.0f ? alpha * a : a;
    case RNNEDGE_FN_THRESHOLDEDRELU:
        return a > alpha ? a : 0.0f;
    case RNNEDGE_FN_SCALEDTANH:
        return alpha * (2.0f / (1.0f + rnnedge_exp_f32(-2.0f * beta * a)) - 1.0f);
    case RNNEDGE_FN_HARDSIGMOID: {
        const float v = alpha * a + beta;
        const float lo = v > 0.0f ? v : 0.0f;
        return lo < 1.0f ? lo : 1.0f;
    }
    case RNNEDGE_FN_ELU:
        return a < 0.0f ? alpha * (rnnedge_exp_f32(a) - 1.0f) : a;
    case RNNEDGE_FN_SOFTSIGN:
        return a / (1.0f + (a < 0.0f ? -a : a));
    case RNNEDGE_FN_SOFTPLUS:
        return a <= SOFTPLUS_LINEAR ? log1p_f32(rnnedge_exp_f32(a)) : a;
    default:
        return a;
    }
}
#endif /* RNNEDGE_EXTENSIONS */

int rnnedge_normalised_finite_f32(const float *x, const float *mean, const float *std, int32_t n)
{
    int32_t k;
    for (k = 0; k < n; ++k) {
        float_bits b;
        b.f = (x[k] - mean[k]) / std[k];
        if ((b.u & 0x7F800000u) == 0x7F800000u) { /* exponent all ones: infinity or NaN */
            return 0;
        }
    }
    return 1;
}

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
/** acc + w . v over n: one fused multiply-add per product, in index order (the file's comment). */
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

/* -- input, head, model --------------------------------------------------------------------------------------- */

void rnnedge_normalise_f32(const float *x, const float *mean, const float *std, int32_t n, float *out)
{
    int32_t k;
    for (k = 0; k < n; ++k) {
        out[k] = (x[k] - mean[k]) / std[k];
    }
}

const float *rnnedge_embedding_f32(const float *table, int32_t dim, int32_t token)
{
    return table + token * dim;
}

void rnnedge_activate_head_f32(float *y, int32_t out, int32_t activation)
{
    int32_t o;
    if (activation == RNNEDGE_ACT_SOFTMAX) {
        float top = y[0];
        float total = 0.0f;
        for (o = 1; o < out; ++o) {
            top = y[o] > top ? y[o] : top;
        }
        for (o = 0; o < out; ++o) {
            y[o] = rnnedge_exp_f32(y[o] - top);
            total += y[o];
        }
        for (o = 0; o < out; ++o) {
            y[o] /= total;
        }
    } else if (activation == RNNEDGE_ACT_LOG_SOFTMAX) { /* (y - max) - log(sum e^(y - max)); the sum is >= 1 */
        float top = y[0];
        float total = 0.0f;
        float log_total;
        for (o = 1; o < out; ++o) {
            top = y[o] > top ? y[o] : top;
        }
        for (o = 0; o < out; ++o) {
            total += rnnedge_exp_f32(y[o] - top);
        }
        log_total = log_f32(total);
        for (o = 0; o < out; ++o) {
            y[o] = (y[o] - top) - log_total;
        }
    } else if (activation == RNNEDGE_ACT_SIGMOID) {
        for (o = 0; o < out; ++o) {
            y[o] = rnnedge_sigmoid_f32(y[o]);
        }
    }
}

#if RNNEDGE_EXTENSIONS
/* erf by Abramowitz & Stegun 7.1.26 (runtime erf_f32): 1 - t (a1 + t (a2 + ...)) e^-x^2, t = 1 / (1 + p |x|) */
#define ERF_P 0x1.4f740ap-2f  /* float32(0.3275911) */
#define ERF_A1 0x1.04f20cp-2f /* float32(0.254829592) */
#define ERF_A2 -0x1.23531cp-2f /* float32(-0.284496736) */
#define ERF_A3 0x1.6be1c6p+0f /* float32(1.421413741) */
#define ERF_A4 -0x1.7401c6p+0f /* float32(-1.453152027) */
#define ERF_A5 0x1.0fb844p+0f /* float32(1.061405429) */
#define RSQRT2 0x1.6a09e6p-1f /* float32(1 / sqrt(2)) */
#define GELU_TANH_K 0x1.988454p-1f /* float32(sqrt(2 / pi)) */
#define GELU_TANH_C 0x1.6e4e26p-5f /* float32(0.044715) */

static float erf_f32(float x)
{
    const float z = x < 0.0f ? -x : x;
    const float t = 1.0f / (1.0f + ERF_P * z);
    const float poly = t * (ERF_A1 + t * (ERF_A2 + t * (ERF_A3 + t * (ERF_A4 + t * ERF_A5))));
    const float e = 1.0f - poly * rnnedge_exp_f32(-z * z);
    return x >= 0.0f ? e : -e;
}

void rnnedge_activate_hidden_f32(float *a, int32_t n, int32_t code)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const float x = a[i];
        if (code == RNNEDGE_HIDDEN_RELU) {
            a[i] = x > 0.0f ? x : 0.0f;
        } else if (code == RNNEDGE_HIDDEN_TANH) {
            a[i] = rnnedge_tanh_f32(x);
        } else if (code == RNNEDGE_HIDDEN_SIGMOID) {
            a[i] = rnnedge_sigmoid_f32(x);
        } else if (code == RNNEDGE_HIDDEN_GELU) {
            a[i] = 0.5f * x * (1.0f + erf_f32(x * RSQRT2));
        } else if (code == RNNEDGE_HIDDEN_GELU_TANH) {
            a[i] = 0.5f * x * (1.0f + rnnedge_tanh_f32(GELU_TANH_K * (x + GELU_TANH_C * x * x * x)));
        }
    }
}

const float *rnnedge_dense_layers_f32(const rnnedge_dense_f32 *dense, int32_t n_dense, const float *v, float *work)
{
    int32_t k;
    for (k = 0; k < n_dense; ++k) {
        const rnnedge_dense_f32 *d = &dense[k];
        rnnedge_head_f32(d->w, d->b, d->units, d->n_in, RNNEDGE_ACT_NONE, v, work);
        rnnedge_activate_hidden_f32(work, d->units, d->activation);
        v = work;
        work += d->units;
    }
    return v;
}
#endif /* RNNEDGE_EXTENSIONS */

void rnnedge_head_f32(const float *w, const float *b, int32_t out, int32_t in, int32_t activation, const float *h,
                      float *y)
{
    int32_t o;
    for (o = 0; o < out; ++o) {
        const float *row = w + o * in;
        float acc = 0.0f;
        int32_t k;
        for (k = 0; k < in; ++k) {
            acc += row[k] * h[k];
        }
        y[o] = b[o] + acc;
    }
    rnnedge_activate_head_f32(y, out, activation);
}

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
