/*
 * argmax_scaled.h: the exact, integer-only argmax of an int8 model's dequantised logits, shared by main.c and
 * generate.c (static functions: include it in one .c file of your program).
 *
 * logits[o] is the head's int32 accumulator; the model's output is logits[o] * scale[o] (then the head's
 * activation, softmax or sigmoid, which keeps the order), and every output row has its own scale, so the argmax
 * of the integer logits alone is not the class. scaled() splits each float32 scale into its 24-bit mantissa and
 * power of two (memcpy of its bits, no float arithmetic) and compare_scaled() compares logit * mantissa *
 * 2^exponent exactly in int64: a Cortex-M0/M3 build links no soft-float routine. Ties go to the first output,
 * like numpy.argmax. (On an FPU target, logits[o] * scale[o] in float is fine too.)
 */
#ifndef EXAMPLE_ARGMAX_SCALED_H
#define EXAMPLE_ARGMAX_SCALED_H

#include <stdint.h>
#include <string.h>

/* sign(a * 2^ea - b * 2^eb) for |a|, |b| < 2^63, exactly */
static int compare_scaled(int64_t a, int32_t ea, int64_t b, int32_t eb)
{
    int sa = (a > 0) - (a < 0);
    int sb = (b > 0) - (b < 0);
    uint64_t ua;
    uint64_t ub;
    uint64_t q;
    uint64_t r;
    int32_t d;
    int mag;
    if (ea < eb) {
        return -compare_scaled(b, eb, a, ea);
    }
    if (sa != sb || sa == 0) {
        return sa > sb ? 1 : (sa < sb ? -1 : 0);
    }
    ua = a < 0 ? 0u - (uint64_t)a : (uint64_t)a;
    ub = b < 0 ? 0u - (uint64_t)b : (uint64_t)b;
    d = ea - eb; /* compare ua * 2^d with ub: ub = q * 2^d + r */
    q = d < 64 ? ub >> d : 0u;
    r = d < 64 ? ub & ((((uint64_t)1) << d) - 1u) : ub;
    mag = ua > q ? 1 : (ua < q ? -1 : (r != 0u ? -1 : 0));
    return sa * mag;
}

/* logit * scale as (mantissa product, power of two), from the float32's bits (finite scales) */
static int64_t scaled(int32_t logit, float scale, int32_t *exponent)
{
    uint32_t bits;
    uint32_t biased;
    int64_t mantissa;
    memcpy(&bits, &scale, sizeof bits);
    biased = (bits >> 23) & 0xffu;
    mantissa = (int64_t)(bits & 0x7fffffu);
    if (biased != 0u) {
        mantissa += (int64_t)0x800000;
    }
    *exponent = (biased != 0u ? (int32_t)biased : 1) - 150;
    if ((bits >> 31) != 0u) {
        mantissa = -mantissa;
    }
    return (int64_t)logit * mantissa; /* |logit| <= 2^31, mantissa < 2^24 */
}

/* the first o with the largest logits[o] * scale[o] */
static int32_t argmax_scaled(const int32_t *logits, const float *scale, int32_t n)
{
    int32_t best = 0;
    int32_t best_e;
    int64_t best_p = scaled(logits[0], scale[0], &best_e);
    int32_t o;
    for (o = 1; o < n; ++o) {
        int32_t e;
        int64_t p = scaled(logits[o], scale[o], &e);
        if (compare_scaled(p, e, best_p, best_e) > 0) {
            best = o;
            best_p = p;
            best_e = e;
        }
    }
    return best;
}

#endif /* EXAMPLE_ARGMAX_SCALED_H */
