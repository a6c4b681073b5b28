/*
 * rnnedge_f32_head.h: the f32 step's input and head: normalisation, the embedding row, the head's activation (log_f32
 * from rnnedge_f32_math.h), the hidden head layers (erf, gelu) and rnnedge_head_f32. Included by src/rnnedge_f32.c
 * only (after rnnedge_f32_cells.h), as part of that file: split out by concern, not a public header.
 */
#ifndef RNNEDGE_F32_HEAD_H
#define RNNEDGE_F32_HEAD_H

/* -- input, head ---------------------------------------------------------------------------------------------- */

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

#endif /* RNNEDGE_F32_HEAD_H */
