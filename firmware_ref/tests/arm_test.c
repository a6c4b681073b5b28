/*
 * arm_test.c: host_test.c for the Cortex-M images (QEMU mps2-an385 / mps2-an386, firmware_ref/arm/).
 *
 * Replays a generated vectors_data.h through the int8 library on the target and compares bit for bit: after
 * every step the whole state (int16) and the integer logits (int32) must equal the vectors exactly. No stdio:
 * output goes through arm/semihost.h. Built by arm/arm.mk's `arm-int8-<board>` images (LIB_INT8_SRCS +
 * MODEL_DIR/model_data.c + this file). Dense models step on the vectors' quantised inputs (vec_input_q), so
 * the image stays integer-only (the float input helper is compared on the host by host_test.c).
 *
 * Output, one line each:
 *
 *     arm_test: <cpu> cpuid=<hex>, <steps> steps of <artifact>
 *     mismatch: step <t>, <tensor>[<position>] (<name>): actual <a>, expected <e>     (every mismatch)
 *     icount_per_step: <n>            mean emulated instructions of one model step (total / steps)
 *     icount_step_stats: min <a> median <b> max <c> total <d> steps <n>
 *     stack_used: <bytes> of <bytes>
 *     int8: <steps> steps, <n> mismatches
 *
 * Each step is measured alone (sh_icount_now() just before and after rnnedge_model_step_*_int8; checking and
 * printing happen outside the interval); one measurement has a resolution of 40 instructions and includes
 * ~20 instructions of the counter call (arm/README.md "Instruction counts"). Exit status: 0 with no
 * mismatch, 1 on any mismatch, 2 if the vectors belong to another weight file.
 */
#include <stdint.h>

#include "rnnedge.h"
#include "model_data.h"
#include "semihost.h"
#include "vectors_data.h"

static int16_t state[MODEL_STATE_LEN];
static int16_t scratch[MODEL_SCRATCH_LEN];
static uint32_t step_icount[VEC_STEPS];
static int32_t mismatches;

static int same_string(const char *a, const char *b)
{
    while (*a != '\0' && *a == *b) {
        ++a;
        ++b;
    }
    return *a == *b;
}

static void put_mismatch_head(int32_t t, const char *tensor, int32_t k)
{
    sh_puts("mismatch: step ");
    sh_put_i32(t);
    sh_puts(", ");
    sh_puts(tensor);
    sh_puts("[");
    sh_put_i32(k);
    sh_puts("]");
}

static void put_actual_expected(int32_t actual, int32_t expected)
{
    sh_puts(": actual ");
    sh_put_i32(actual);
    sh_puts(", expected ");
    sh_put_i32(expected);
    sh_puts("\n");
}

/* insertion sort of a copy, for the median (64-ish values) */
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
    rnnedge_state_int8 s;
    int32_t logits[MODEL_OUT];
    int32_t t;
    int32_t k;
    int32_t done = 0;
    s.state = state;
    s.scratch = scratch;

    sh_puts("arm_test: ");
    sh_puts(sh_cpu_name());
    sh_puts(" cpuid=");
    sh_put_hex32(sh_cpuid());
    sh_puts(", ");
    sh_put_i32(VEC_STEPS);
    sh_puts(" steps of ");
    sh_puts(MODEL_ARTIFACT);
    sh_puts("\n");
    if (!same_string(MODEL_ARTIFACT_SHA256, VEC_ARTIFACT_SHA256) || MODEL_STATE_LEN != VEC_STATE_LEN ||
        MODEL_OUT != VEC_OUT || MODEL_N_IN != VEC_N_IN) {
        sh_puts("error: the vectors were made with " VEC_ARTIFACT " (sha256 " VEC_ARTIFACT_SHA256
                "), the model data is " MODEL_ARTIFACT " (sha256 " MODEL_ARTIFACT_SHA256 ")\n");
        return 2;
    }
    if (rnnedge_state_reset_int8(&model, &s) != RNNEDGE_OK) {
        sh_puts("mismatch: status of reset\n");
        ++mismatches;
    }
    for (t = 0; t < VEC_STEPS; ++t) {
        int status;
        uint32_t t0;
        uint32_t t1;
        t0 = sh_icount_now();
#if VEC_INPUT_DENSE
        status = rnnedge_model_step_dense_int8(&model, &s, vec_input_q[t], logits);
#else
        status = rnnedge_model_step_tokens_int8(&model, &s, vec_tokens[t], logits);
#endif
        t1 = sh_icount_now();
        step_icount[t] = t1 - t0;
        if (status != RNNEDGE_OK) {
            sh_puts("mismatch: step ");
            sh_put_i32(t);
            sh_puts(", status");
            put_actual_expected(status, RNNEDGE_OK);
            ++mismatches;
            break;
        }
        ++done;
        for (k = 0; k < MODEL_STATE_LEN; ++k) {
            if (state[k] != vec_state[t][k]) {
                put_mismatch_head(t, "state", k);
                sh_puts(" (");
                sh_puts(vec_state_names[k]);
                sh_puts(")");
                put_actual_expected(state[k], vec_state[t][k]);
                ++mismatches;
            }
        }
        for (k = 0; k < MODEL_OUT; ++k) {
            if (logits[k] != vec_logits[t][k]) {
                put_mismatch_head(t, "logits_q", k);
                put_actual_expected(logits[k], vec_logits[t][k]);
                ++mismatches;
            }
        }
    }
    report_icount(done);
    sh_puts("stack_used: ");
    sh_put_u32(sh_stack_used());
    sh_puts(" of ");
    sh_put_u32(sh_stack_size());
    sh_puts("\nint8: ");
    sh_put_i32(VEC_STEPS);
    sh_puts(" steps, ");
    sh_put_i32(mismatches);
    sh_puts(" mismatches\n");
    return mismatches == 0 ? 0 : 1;
}
