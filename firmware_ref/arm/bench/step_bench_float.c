/*
 * step_bench_float.c: step_bench.c for an f32 or int8w model (model_data.h of export/firmware_float.py picks the
 * functions: MODEL_PRECISION_F32 / MODEL_PRECISION_INT8W). Same LCG, same "key: value" lines, same measurement
 * (each step alone with sh_icount_now(), nothing printed inside an interval, the stack high-water mark read after
 * the steps); dense inputs are the LCG's int16 samples scaled to [-4, 4) floats, token ids as in step_bench.c.
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
static uint32_t bench_counts[BENCH_STEPS];
static uint32_t bench_lcg = BENCH_SEED;

#if MODEL_INPUT_KIND == RNNEDGE_INPUT_DENSE
static float bench_x[MODEL_N_IN];
#endif

/* Numerical Recipes' LCG; the high 16 bits are the usable ones */
static uint32_t lcg_next(void)
{
    bench_lcg = bench_lcg * 1664525u + 1013904223u;
    return bench_lcg >> 16;
}

static void sort_counts(uint32_t *a, int32_t n)
{
    int32_t i, j;
    for (i = 1; i < n; ++i) {
        uint32_t v = a[i];
        for (j = i; j > 0 && a[j - 1] > v; --j) {
            a[j] = a[j - 1];
        }
        a[j] = v;
    }
}

static void put_line_u32(const char *key, uint32_t v)
{
    sh_puts(key);
    sh_puts(": ");
    sh_put_u32(v);
    sh_puts("\n");
}

static void put_line_i32(const char *key, int32_t v)
{
    sh_puts(key);
    sh_puts(": ");
    sh_put_i32(v);
    sh_puts("\n");
}

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

    sh_puts("bench: step_bench_float\n");
    sh_puts("cpu: ");
    sh_puts(sh_cpu_name());
    sh_puts("\n");
    put_line_i32("steps", BENCH_STEPS);
    put_line_i32("input_kind", MODEL_INPUT_KIND);
    put_line_i32("state_bytes", MODEL_STATE_BYTES);
    put_line_i32("scratch_bytes", MODEL_SCRATCH_BYTES);
    put_line_i32("ram_bytes", MODEL_RAM_BYTES);
    put_line_i32("const_bytes", MODEL_CONST_BYTES);
    put_line_u32("icount_reset", reset_count);
    if (status != RNNEDGE_OK) {
        put_line_i32("failed_step", failed_step);
        put_line_i32("status", status);
        return 1;
    }
    sort_counts(bench_counts, BENCH_STEPS);
    put_line_u32("icount_per_step_median", bench_counts[BENCH_STEPS / 2]);
    put_line_u32("icount_per_step_min", bench_counts[0]);
    put_line_u32("icount_per_step_max", bench_counts[BENCH_STEPS - 1]);
    put_line_u32("icount_per_step_mean_x100", (uint32_t)((total * 100u) / (uint32_t)BENCH_STEPS));
    sh_puts("icount_total: ");
    sh_put_i64((int64_t)total);
    sh_puts("\n");
    put_line_u32("stack_used", stack_used);
    put_line_u32("stack_size", sh_stack_size());
    sh_puts("status: ok\n");
    return 0;
}
