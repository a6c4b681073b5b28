/*
 * main.c: the minimal program that runs an exported int8 model on a stream of samples (copy it).
 *
 * model_data.h / model_data.c come from the export (`rnnedge-export ... --precision int8` writes them to
 * <out>/firmware/int8/); samples.h provides the input stream (the default one in this folder replays the
 * golden vectors' inputs; replace it with your sensor or tokenizer). For every sample: one model step, then
 * the class, printed as one line "step <t>: class <c>".
 *
 * The class is the argmax of the dequantised logits logits[o] * model_head_scale[o] (the head's activation,
 * softmax or sigmoid, is monotonic and does not change it). The integer logits alone are not enough: every
 * output row has its own scale. argmax_scaled() compares the products exactly with integer arithmetic (it reads
 * the float32 scales' bits), so a Cortex-M0/M3 build links no soft-float routine.
 *
 * Output: semihosting on the QEMU images (arm/arm.mk defines EXAMPLE_SEMIHOST), stdio elsewhere; swap put_str()
 * and put_int() for your UART.
 */
#include <stdint.h>
#include <string.h>

#include "rnnedge.h"
#include "model_data.h"
/* N_SAMPLES and samples[N_SAMPLES][MODEL_N_IN] (int16, dense) or sample_tokens[N_SAMPLES] (token ids) */
#ifdef EXAMPLE_SAMPLES_FILE
#include EXAMPLE_SAMPLES_FILE /* another samples header: -DEXAMPLE_SAMPLES_FILE='"path/to/file.h"' */
#else
#include "samples.h"
#endif

#ifdef EXAMPLE_SEMIHOST
#include "semihost.h"
static void put_str(const char *s) { sh_puts(s); }
static void put_int(int32_t v) { sh_put_i32(v); }
#else
#include <stdio.h>
static void put_str(const char *s) { fputs(s, stdout); }
static void put_int(int32_t v) { printf("%ld", (long)v); }
#endif

/* The stream's memory: state (kept between steps; all zeros = start of a sequence) and scratch. */
static int16_t state[MODEL_STATE_LEN];
static int16_t scratch[MODEL_SCRATCH_LEN];

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

int main(void)
{
    rnnedge_state_int8 s;
    int32_t logits[MODEL_OUT];
    int32_t t;
    s.state = state;
    s.scratch = scratch;
    rnnedge_state_reset_int8(&model, &s);
    for (t = 0; t < N_SAMPLES; ++t) {
#if MODEL_INPUT_KIND == RNNEDGE_INPUT_DENSE
        int status = rnnedge_model_step_dense_int8(&model, &s, samples[t], logits);
#else
        int status = rnnedge_model_step_tokens_int8(&model, &s, sample_tokens[t], logits);
#endif
        if (status != RNNEDGE_OK) {
            put_str("step ");
            put_int(t);
            put_str(": error ");
            put_int(status);
            put_str("\n");
            return 1;
        }
        put_str("step ");
        put_int(t);
        put_str(": class ");
        put_int(argmax_scaled(logits, model_head_scale, MODEL_OUT));
        put_str("\n");
    }
    return 0;
}
