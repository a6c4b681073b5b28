/*
 * rnnedge_f32_math.h: the float math of the f32 step (runtime/kernels_f32.py, kernels_f32_ext.py), no libm: e^x,
 * sigmoid and tanh on it, log and log1p (static), ONNX's activation functions, and the finite check of a normalised
 * input. Included by src/rnnedge_f32.c only (after rnnedge.h and rnnedge_float_internal.h), as part of that file:
 * split out by concern, not a public header.
 */
#ifndef RNNEDGE_F32_MATH_H
#define RNNEDGE_F32_MATH_H

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

#endif /* RNNEDGE_F32_MATH_H */
