/*
 * step_bench.c: instructions per step of a generated int8 model (model_data.h) under QEMU (-icount shift=0).
 *
 * Runs BENCH_STEPS steps of the model on deterministic inputs (a 32-bit LCG: int16 samples in
 * [-BENCH_INPUT_MAX, BENCH_INPUT_MAX] for a dense model, token ids in [0, vocab) for a token model), measures
 * each step alone with sh_icount_now() (resolution 40 instructions, see ../README.md), and then prints one
 * "key: value" line per number (export/footprint.py parses them):
 *
 *     bench: step_bench            cpu: cortex-m3           steps: N
 *     state_bytes / scratch_bytes / ram_bytes / const_bytes     the generated MODEL_* macros
 *     icount_per_step_median / _min / _max                      per-step counts (multiples of 40)
 *     icount_per_step_mean_x100                                 100 x the mean (sum over N steps * 100 / N)
 *     icount_total                                              the sum over the N measured steps
 *     icount_reset                                              rnnedge_state_reset_int8 once
 *     stack_used / stack_size                                   high-water mark after the steps (bytes)
 *     logits_checksum                                           a hash of every step's logits (same on both cores)
 *     status: ok                                                or the first failing step's status (exit 1)
 *
 * Nothing is printed inside a measured interval; the input of a step is produced before its interval starts.
 * The stack high-water mark is read after the steps and before any printing. The LCG and the report are
 * bench_report.inc's, shared with step_bench_float.c.
 */
#include <stdint.h>

#include "model_data.h"
#include "rnnedge.h"
#include "semihost.h"

#ifndef BENCH_STEPS
#define BENCH_STEPS 64
#endif
#ifndef BENCH_SEED
#define BENCH_SEED 20240501u
#endif
#ifndef BENCH_INPUT_MAX
#define BENCH_INPUT_MAX 16384 /* dense inputs: half the int16 range, so the input clamp is not the common case */
#endif

#if BENCH_STEPS < 1
#error "BENCH_STEPS must be at least 1"
#endif

static int16_t bench_state[MODEL_STATE_LEN];
static int16_t bench_scratch[MODEL_SCRATCH_LEN];
static int32_t bench_logits[MODEL_OUT];

#if MODEL_INPUT_KIND == RNNEDGE_INPUT_DENSE
static int16_t bench_x[MODEL_N_IN];
#endif

#include "bench_report.inc"

/* FNV-1a over the logits' bytes: a compact fingerprint of what the steps computed */
static uint32_t hash_logits(uint32_t h)
{
    int32_t o;
    int b;
    for (o = 0; o < MODEL_OUT; ++o) {
        uint32_t v = (uint32_t)bench_logits[o];
        for (b = 0; b < 4; ++b) {
            h = (h ^ (v & 0xffu)) * 16777619u;
            v >>= 8;
        }
    }
    return h;
}

int main(void)
{
    rnnedge_state_int8 s;
    int32_t t;
    int status = RNNEDGE_OK;
    int32_t failed_step = -1;
    uint32_t t0, t1, reset_count, stack_used;
    uint64_t total = 0;
    uint32_t checksum = 2166136261u;

    s.state = bench_state;
    s.scratch = bench_scratch;
    t0 = sh_icount_now();
    status = rnnedge_state_reset_int8(&model, &s);
    t1 = sh_icount_now();
    reset_count = t1 - t0;

    for (t = 0; t < BENCH_STEPS && status == RNNEDGE_OK; ++t) {
#if MODEL_INPUT_KIND == RNNEDGE_INPUT_DENSE
        int32_t k;
        for (k = 0; k < MODEL_N_IN; ++k) {
            bench_x[k] = (int16_t)((int32_t)(lcg_next() % (2u * BENCH_INPUT_MAX + 1u)) - BENCH_INPUT_MAX);
        }
        t0 = sh_icount_now();
        status = rnnedge_model_step_dense_int8(&model, &s, bench_x, bench_logits);
        t1 = sh_icount_now();
#else
        int32_t token = (int32_t)(lcg_next() % (uint32_t)MODEL_VOCAB);
        t0 = sh_icount_now();
        status = rnnedge_model_step_tokens_int8(&model, &s, token, bench_logits);
        t1 = sh_icount_now();
#endif
        bench_counts[t] = t1 - t0;
        total += bench_counts[t];
        checksum = hash_logits(checksum);
        if (status != RNNEDGE_OK) {
            failed_step = t;
        }
    }
    stack_used = sh_stack_used(); /* before any printing: the steps' deepest call chain */

    if (bench_report("step_bench", status, failed_step, reset_count, total, stack_used) != 0) {
        return 1;
    }
    sh_puts("logits_checksum: ");
    sh_put_hex32(checksum);
    sh_puts("\nstatus: ok\n");
    return 0;
}
