/*
 * rnnedge_input_f32.c: the one float step before the int8 model, for targets with an FPU (or a soft-float
 * library): raw features -> the int16 quantised input. Kept apart from rnnedge_int8.c so an integer-only build
 * (a Cortex-M0/M3 whose sensor pipeline already delivers quantised values) links no float routine.
 *
 * runtime.kernels_int8.quantize_input_int8: clamp(rint(((x - mean) / std) / scale), -32767, 32767), float32
 * arithmetic, rint rounding half to even. Needs no libm: rounding is done by hand after the clamp (rint and the
 * clamp commute, 32767 being an integer). Assumes float arithmetic in float (FLT_EVAL_METHOD 0: SSE, ARM VFP,
 * soft-float); an x87 build with excess precision could differ in the last bit of a quotient.
 */
#include "rnnedge.h"

#define INPUT_MAX 32767.0f

/** v rounded to the nearest integer, ties to even; |v| <= 32767, so the conversions below are exact. */
static float round_half_even(float v)
{
    const int32_t t = (int32_t)v; /* toward zero */
    const float frac = v - (float)t;
    int32_t r = t;
    if (frac > 0.5f || (frac == 0.5f && (t & 1) != 0)) {
        r = t + 1;
    } else if (frac < -0.5f || (frac == -0.5f && (t & 1) != 0)) {
        r = t - 1;
    }
    return (float)r;
}

/** Nonzero for NaN and +-infinity. */
static int not_finite(float v)
{
    return v != v || (v - v) != (v - v);
}

int rnnedge_quantize_input_f32(const float *x, const float *mean, const float *std, float scale, int32_t n,
                               int16_t *x_q)
{
    int32_t k;
    if (x == 0 || mean == 0 || std == 0 || x_q == 0) {
        return RNNEDGE_ERR_NULL;
    }
    for (k = 0; k < n; ++k) { /* the clamp below would hide an overflowed value: refused, as the float steps do */
        if (not_finite((x[k] - mean[k]) / std[k])) {
            return RNNEDGE_ERR_BAD_VALUE;
        }
    }
    for (k = 0; k < n; ++k) {
        float v = ((x[k] - mean[k]) / std[k]) / scale;
        v = v > INPUT_MAX ? INPUT_MAX : v < -INPUT_MAX ? -INPUT_MAX : v;
        x_q[k] = (int16_t)round_half_even(v);
    }
    return RNNEDGE_OK;
}
