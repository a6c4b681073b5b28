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
 * output row has its own scale. argmax_scaled() (argmax_scaled.h, shared with generate.c) compares the products
 * exactly with integer arithmetic (it reads the float32 scales' bits), so a Cortex-M0/M3 build links no soft-float
 * routine.
 *
 * Output: semihosting on the QEMU images (arm/arm.mk defines EXAMPLE_SEMIHOST), stdio elsewhere; swap put_str()
 * and put_int() for your UART.
 */
#include <stdint.h>
#include <string.h>

#include "rnnedge.h"
#include "model_data.h"
#include "argmax_scaled.h" /* argmax_scaled(): the exact integer argmax of logits[o] * scale[o] */
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
