/*
 * arm_test_float.c: host_test_float.c for the Cortex-M4F image (QEMU mps2-an386, firmware_ref/arm/).
 *
 * Replays a generated f32 or int8w vectors_data.h through the float library (src/rnnedge_f32.c,
 * src/rnnedge_int8w.c) on the target: after every step t the whole float state and the outputs must agree with the
 * vectors as on the host: |actual - expected| <= ARM_ATOL + ARM_RTOL * scale(t), scale(t) the largest |expected|
 * value of step t's state and output, ARM_ATOL = ARM_RTOL = 1e-5 (export/vectors.py's ATOL and RTOL and its
 * "Agreement rules", which say why the relative part is relative to the step, not to each value). The model_data.h
 * of an f32 or int8w weight file picks the functions (MODEL_PRECISION_F32 / MODEL_PRECISION_INT8W). Built by
 * arm/arm.mk's `arm-float-an386` image (LIB_FLOAT_SRCS + MODEL_DIR/model_data.c + this file, FLOAT_FLAGS,
 * hard-float FPv4-SP; the startup enables the FPU). Dense models step on the vectors' raw inputs (vec_input).
 *
 * No stdio: output goes through arm/semihost.h, which prints integers only. A float is printed as its value
 * rounded to the nearest multiple of 1e-9 (ties away from zero), computed exactly from its bits with 64-bit
 * integers, as a decimal with 9 fraction digits: "-0.012300000". Magnitudes of 2^33 or more print as "huge",
 * NaN and infinities as "nan", "inf", "-inf". Output, one line each:
 *
 *     arm_test_float: <cpu> cpuid=<hex>, <precision> <steps> steps of <artifact>
 *     mismatch: step <t>, <tensor>[<position>] (<name>): actual <a>, expected <e>     (every mismatch)
 *     icount_per_step: <n>            mean emulated instructions of one model step (total / steps)
 *     icount_step_stats: min <a> median <b> max <c> total <d> steps <n>
 *     stack_used: <bytes> of <bytes>
 *     <precision>: <steps> steps, <n> mismatches, max |diff| <d>
 *
 * <tensor> is `state` (with the state position's name) or `output`; step -1 is the state after reset, which
 * must be zeros, or a layer's ext.h0 / ext.c0 (initial_state). |diff| is |actual - expected| in float, over the values within the tolerance. Each step is
 * measured alone (sh_icount_now() just before and after rnnedge_model_step_*; comparing and printing happen
 * outside the interval; resolution 40 instructions, see arm/README.md "Instruction counts"). Exit status: 0 with
 * no mismatch, 1 on any mismatch, 2 if the vectors belong to another weight file or precision.
 */
#include <stdint.h>
#include <string.h>

#include "rnnedge.h"
#include "model_data.h"
#include "semihost.h"
#include "vectors_data.h"

#if defined(MODEL_PRECISION_F32)
#define STATE_RESET rnnedge_state_reset_f32
#define STEP_DENSE rnnedge_model_step_dense_f32
#define STEP_TOKENS rnnedge_model_step_tokens_f32
#elif defined(MODEL_PRECISION_INT8W)
#define STATE_RESET rnnedge_state_reset_int8w
#define STEP_DENSE rnnedge_model_step_dense_int8w
#define STEP_TOKENS rnnedge_model_step_tokens_int8w
#else
#error "model_data.h is not an f32 or int8w model (int8 models: tests/arm_test.c)"
#endif

#ifndef ARM_ATOL
#define ARM_ATOL 1e-5f
#endif
#ifndef ARM_RTOL
#define ARM_RTOL 1e-5f
#endif

static float state[MODEL_STATE_LEN];
static float scratch[MODEL_SCRATCH_LEN];
static uint32_t step_icount[VEC_STEPS];
static int32_t mismatches;
static float max_diff;

/** The value a reset must write at state position k: the layer's ext.h0 / ext.c0 there when set, else 0. */
static float initial_value(int32_t k)
{
    int32_t l;
    int32_t at = 0;
    for (l = 0; l < MODEL_N_LAYERS; ++l) {
        const int32_t H = model.layers[l].hidden;
        const rnnedge_ext_f32 *ext = &model.layers[l].ext;
        if (k < at + H) {
            return ext->h0 != 0 ? ext->h0[k - at] : 0.0f;
        }
        at += H;
        if (model.layers[l].cell == RNNEDGE_CELL_LSTM) {
            if (k < at + H) {
                return ext->c0 != 0 ? ext->c0[k - at] : 0.0f;
            }
            at += H;
        }
    }
    return 0.0f;
}

static int same_string(const char *a, const char *b)
{
    while (*a != '\0' && *a == *b) {
        ++a;
        ++b;
    }
    return *a == *b;
}

static uint32_t float_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/** x as a decimal with 9 fraction digits: x rounded to a multiple of 1e-9, exactly, from its bits. */
static void put_float(float x)
{
    uint32_t bits = float_bits(x);
    int32_t biased = (int32_t)((bits >> 23) & 0xFFu);
    uint64_t mant = bits & 0x7FFFFFu;
    int32_t e; /* |x| = mant * 2^e */
    uint64_t nano;
    char frac[10];
    int32_t k;
    if ((bits >> 31) != 0u) {
        sh_putc('-');
    }
    if (biased == 0xFF) {
        sh_puts(mant != 0u ? "nan" : "inf");
        return;
    }
    if (biased == 0) {
        e = -149; /* subnormal */
    } else {
        mant |= 0x800000u;
        e = biased - 150;
    }
    if (e >= 10) { /* |x| >= 2^33: mant * 1e9 * 2^e would not fit in 63 bits */
        sh_puts("huge");
        return;
    }
    nano = mant * 1000000000u; /* < 2^54 */
    if (e >= 0) {
        nano <<= e;
    } else if (e > -64) {
        uint64_t half = (uint64_t)1 << (-e - 1);
        nano = (nano + half) >> -e;
    } else {
        nano = 0u;
    }
    for (k = 8; k >= 0; --k) {
        frac[k] = (char)('0' + (int)(nano % 10u));
        nano /= 10u;
    }
    frac[9] = '\0';
    sh_put_i64((int64_t)nano);
    sh_putc('.');
    sh_puts(frac);
}

/** scale(t) of the agreement rule: the largest |expected| value of step t's state and output. */
static float step_scale(int32_t t)
{
    float largest = 0.0f;
    int32_t k;
    for (k = 0; k < MODEL_STATE_LEN; ++k) {
        const float v = vec_state[t][k] < 0.0f ? -vec_state[t][k] : vec_state[t][k];
        largest = v > largest ? v : largest;
    }
    for (k = 0; k < MODEL_OUT; ++k) {
        const float v = vec_output[t][k] < 0.0f ? -vec_output[t][k] : vec_output[t][k];
        largest = v > largest ? v : largest;
    }
    return largest;
}

/** Compare one value of step t; print a mismatch line unless |actual - expected| <= ARM_ATOL + ARM_RTOL * scale
 * (scale: step_scale(t); a NaN on either side never agrees). */
static void compare(int32_t t, const char *tensor, int32_t k, const char *name, float actual, float expected,
                    float scale)
{
    float d = actual - expected;
    d = d < 0.0f ? -d : d;
    if (d <= ARM_ATOL + ARM_RTOL * scale) {
        max_diff = d > max_diff ? d : max_diff;
        return;
    }
    sh_puts("mismatch: step ");
    sh_put_i32(t);
    sh_puts(", ");
    sh_puts(tensor);
    sh_puts("[");
    sh_put_i32(k);
    sh_puts("]");
    if (name[0] != '\0') {
        sh_puts(" (");
        sh_puts(name);
        sh_puts(")");
    }
    sh_puts(": actual ");
    put_float(actual);
    sh_puts(", expected ");
    put_float(expected);
    sh_puts("\n");
    ++mismatches;
}

/* insertion sort of a copy, for the median */
static uint32_t median(const uint32_t *v, int32_t n)
{
    static uint32_t sorted[VEC_STEPS];
    int32_t i;
    int32_t j;
    for (i = 0; i < n; ++i) {
        uint32_t x = v[i];
        for (j = i; j > 0 && sorted[j - 1] > x; --j) {
            sorted[j] = sorted[j - 1];
        }
        sorted[j] = x;
    }
    return n > 0 ? sorted[n / 2] : 0u;
}

static void report_icount(int32_t steps)
{
    uint32_t lo = 0xffffffffu;
    uint32_t hi = 0u;
    uint32_t total = 0u;
    int32_t t;
    for (t = 0; t < steps; ++t) {
        lo = step_icount[t] < lo ? step_icount[t] : lo;
        hi = step_icount[t] > hi ? step_icount[t] : hi;
        total += step_icount[t];
    }
    if (steps == 0) {
        lo = 0u;
    }
    sh_puts("icount_per_step: ");
    sh_put_u32(steps > 0 ? (total + (uint32_t)steps / 2u) / (uint32_t)steps : 0u);
    sh_puts("\nicount_step_stats: min ");
    sh_put_u32(lo);
    sh_puts(" median ");
    sh_put_u32(median(step_icount, steps));
    sh_puts(" max ");
    sh_put_u32(hi);
    sh_puts(" total ");
    sh_put_u32(total);
    sh_puts(" steps ");
    sh_put_i32(steps);
    sh_puts("\n");
}

int main(void)
{
    rnnedge_state_f32 s;
    float y[MODEL_OUT];
    int32_t t;
    int32_t k;
    int32_t done = 0;
    s.state = state;
    s.scratch = scratch;

    sh_puts("arm_test_float: ");
    sh_puts(sh_cpu_name());
    sh_puts(" cpuid=");
    sh_put_hex32(sh_cpuid());
    sh_puts(", " MODEL_PRECISION " ");
    sh_put_i32(VEC_STEPS);
    sh_puts(" steps of " MODEL_ARTIFACT "\n");
    if (!same_string(MODEL_ARTIFACT_SHA256, VEC_ARTIFACT_SHA256) || !same_string(MODEL_PRECISION, VEC_PRECISION) ||
        MODEL_STATE_LEN != VEC_STATE_LEN || MODEL_OUT != VEC_OUT || MODEL_N_IN != VEC_N_IN) {
        sh_puts("error: the vectors were made with " VEC_ARTIFACT " (" VEC_PRECISION ", sha256 " VEC_ARTIFACT_SHA256
                "), the model data is " MODEL_ARTIFACT " (" MODEL_PRECISION ", sha256 " MODEL_ARTIFACT_SHA256 ")\n");
        return 2;
    }
    for (k = 0; k < MODEL_STATE_LEN; ++k) {
        state[k] = 1.0f; /* reset must overwrite it: zeros, or a layer's h0 / c0 */
    }
    for (k = 0; k < MODEL_OUT; ++k) {
        y[k] = 0.0f;
    }
    if (STATE_RESET(&model, &s) != RNNEDGE_OK) {
        sh_puts("mismatch: status of reset: not RNNEDGE_OK\n");
        ++mismatches;
    }
    for (k = 0; k < MODEL_STATE_LEN; ++k) {
        compare(-1, "state", k, vec_state_names[k], state[k], initial_value(k), 0.0f); /* copied: atol alone */
    }
    for (t = 0; t < VEC_STEPS; ++t) {
        int status;
        uint32_t t0;
        uint32_t t1;
        t0 = sh_icount_now();
#if VEC_INPUT_DENSE
        status = STEP_DENSE(&model, &s, vec_input[t], y);
#else
        status = STEP_TOKENS(&model, &s, vec_tokens[t], y);
#endif
        t1 = sh_icount_now();
        step_icount[t] = t1 - t0;
        if (status != RNNEDGE_OK) {
            sh_puts("mismatch: step ");
            sh_put_i32(t);
            sh_puts(", status: actual ");
            sh_put_i32(status);
            sh_puts(", expected 0\n");
            ++mismatches;
            break;
        }
        ++done;
        for (k = 0; k < MODEL_STATE_LEN; ++k) {
            compare(t, "state", k, vec_state_names[k], state[k], vec_state[t][k], step_scale(t));
        }
        for (k = 0; k < MODEL_OUT; ++k) {
            compare(t, "output", k, "", y[k], vec_output[t][k], step_scale(t));
        }
    }
    report_icount(done);
    sh_puts("stack_used: ");
    sh_put_u32(sh_stack_used());
    sh_puts(" of ");
    sh_put_u32(sh_stack_size());
    sh_puts("\n" MODEL_PRECISION ": ");
    sh_put_i32(VEC_STEPS);
    sh_puts(" steps, ");
    sh_put_i32(mismatches);
    sh_puts(" mismatches, max |diff| ");
    put_float(max_diff);
    sh_puts("\n");
    return mismatches == 0 ? 0 : 1;
}
