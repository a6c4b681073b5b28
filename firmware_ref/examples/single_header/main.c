/*
 * main.c: a model run from the single header alone (copy it). rnnedge_model.h is written by the export
 * (export.firmware.write_single_header) and holds the library, the model and the one-call API; nothing else is
 * compiled or included from rnnedge:
 *
 *     cc -std=c99 -Wall -Wextra -Werror -pedantic -O2 main.c -o example      (rnnedge_model.h next to main.c)
 *
 * It streams EXAMPLE_STEPS samples of a made-up input (replace sample() with your sensor or tokenizer) and prints
 * one line per step, "step <t>:" and the model's outputs: int8 models their int32 logits, f32 / int8w models each
 * float's bits as 0x%08x (exact; tests/firmware/test_single_header.py compares them with the runtime).
 * Output: semihosting on the QEMU images (-DEXAMPLE_SEMIHOST, firmware_ref/arm/), stdio elsewhere.
 */
#define RNNEDGE_MODEL_IMPLEMENTATION
#include "rnnedge_model.h"

#include <string.h>

#ifndef EXAMPLE_STEPS
#define EXAMPLE_STEPS 32
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

#ifdef RNNEDGE_MODEL_PRECISION_INT8
typedef int32_t output; /* integer logits */
static void put_output(output v) { put_int(v); }
#else
typedef float output;
static void put_output(output v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
#ifdef EXAMPLE_SEMIHOST
    sh_put_hex32(bits);
#else
    printf("0x%08lx", (unsigned long)bits);
#endif
}
#endif

#if RNNEDGE_MODEL_INPUT_KIND == RNNEDGE_INPUT_DENSE
/* Feature k of step t: a multiple of 1/4 in [-2, 2], exact in float (the test recomputes it). */
static float sample(int32_t t, int32_t k)
{
    return (float)((t * 7 + k * 3) % 17 - 8) * 0.25f;
}
#else
/* The token of step t, below the vocabulary. */
static int32_t sample(int32_t t)
{
    return (t * 7 + 3) % RNNEDGE_MODEL_VOCAB;
}
#endif

int main(void)
{
    output y[RNNEDGE_MODEL_OUT];
#if RNNEDGE_MODEL_INPUT_KIND == RNNEDGE_INPUT_DENSE
    float x[RNNEDGE_MODEL_N_IN];
#ifdef RNNEDGE_MODEL_PRECISION_INT8
    int16_t x_q[RNNEDGE_MODEL_N_IN];
#endif
#endif
    int32_t t, o;
    int status = rnnedge_model_reset();
    for (t = 0; t < EXAMPLE_STEPS && status == RNNEDGE_OK; ++t) {
#if RNNEDGE_MODEL_INPUT_KIND == RNNEDGE_INPUT_DENSE
        int32_t k;
        for (k = 0; k < RNNEDGE_MODEL_N_IN; ++k) {
            x[k] = sample(t, k);
        }
#ifdef RNNEDGE_MODEL_PRECISION_INT8
        status = rnnedge_model_quantize_input(x, x_q); /* the int8 model's one float step */
        if (status == RNNEDGE_OK) {
            status = rnnedge_model_step(x_q, y);
        }
#else
        status = rnnedge_model_step(x, y);
#endif
#else
        status = rnnedge_model_step(sample(t), y);
#endif
        if (status != RNNEDGE_OK) {
            break;
        }
        put_str("step ");
        put_int(t);
        put_str(":");
        for (o = 0; o < RNNEDGE_MODEL_OUT; ++o) {
            put_str(" ");
            put_output(y[o]);
        }
        put_str("\n");
    }
    if (status != RNNEDGE_OK) {
        put_str("error ");
        put_int(status);
        put_str("\n");
        return 1;
    }
    return 0;
}
