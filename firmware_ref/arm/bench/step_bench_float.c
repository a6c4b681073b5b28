/*
 * step_bench_float.c: step_bench.c for an f32 or int8w model (model_data.h of export/firmware_float.py picks the
 * functions: MODEL_PRECISION_F32 / MODEL_PRECISION_INT8W). Same LCG, same "key: value" lines, same measurement
 * (each step alone with sh_icount_now(), nothing printed inside an interval, the stack high-water mark read after
 * the steps); dense inputs are the LCG's int16 samples scaled to [-4, 4) floats, token ids as in step_bench.c.
 * The LCG and the report lines are bench_report.inc's.
 * Built and run by benchmarks/cost_measure.py (the cost table and the cost model's fit).
 */
#include <stdint.h>

#include "model_data.h"
#include "rnnedge.h"
#include "semihost.h"

#if defined(MODEL_PRECISION_F32)
#define STATE_RESET rnnedge_state_reset_f32
#define STEP_DENSE rnnedge_model_step_dense_f32
#define STEP_TOKENS rnnedge_model_step_tokens_f32
#elif defined(MODEL_PRECISION_INT8W)
#define STATE_RESET rnnedge_state_reset_int8w
#define STEP_DENSE rnnedge_model_step_dense_int8w
#define STEP_TOKENS rnnedge_model_step_tokens_int8w
#else
#error "model_data.h is not an f32 or int8w model (int8 models: step_bench.c)"
#endif

#ifndef BENCH_STEPS
#define BENCH_STEPS 64
#endif
#ifndef BENCH_SEED
#define BENCH_SEED 20240501u
#endif

#if BENCH_STEPS < 1
#error "BENCH_STEPS must be at least 1"
#endif

static float bench_state[MODEL_STATE_LEN];
static float bench_scratch[MODEL_SCRATCH_LEN];
static float bench_y[MODEL_OUT];

#if MODEL_INPUT_KIND == RNNEDGE_INPUT_DENSE
static float bench_x[MODEL_N_IN];
#endif

#include "bench_report.inc"

int main(void)
{
    rnnedge_state_f32 s;
    int32_t t;
    int status;
    int32_t failed_step = -1;
    uint32_t t0, t1, reset_count, stack_used;
    uint64_t total = 0;

    s.state = bench_state;
    s.scratch = bench_scratch;
    t0 = sh_icount_now();
    status = STATE_RESET(&model, &s);
    t1 = sh_icount_now();
    reset_count = t1 - t0;

    for (t = 0; t < BENCH_STEPS && status == RNNEDGE_OK; ++t) {
#if MODEL_INPUT_KIND == RNNEDGE_INPUT_DENSE
        int32_t k;
        for (k = 0; k < MODEL_N_IN; ++k) {
            bench_x[k] = (float)((int32_t)lcg_next() - 32768) * (1.0f / 8192.0f);
        }
        t0 = sh_icount_now();
        status = STEP_DENSE(&model, &s, bench_x, bench_y);
        t1 = sh_icount_now();
#else
        int32_t token = (int32_t)(lcg_next() % (uint32_t)MODEL_VOCAB);
        t0 = sh_icount_now();
        status = STEP_TOKENS(&model, &s, token, bench_y);
        t1 = sh_icount_now();
#endif
        bench_counts[t] = t1 - t0;
        total += bench_counts[t];
        if (status != RNNEDGE_OK) {
            failed_step = t;
        }
    }
    stack_used = sh_stack_used(); /* before any printing: the steps' deepest call chain */

    if (bench_report("step_bench_float", status, failed_step, reset_count, total, stack_used) != 0) {
        return 1;
    }
    sh_puts("status: ok\n");
    return 0;
}
