/*
 * generate.c: text generation on a device with an exported int8 token model (copy it): stream a prompt of token
 * ids through the model, then generate GENERATE_N tokens, each fed back in as the next input. The same loop as
 * the Python runtime's Model.generate / Sampler (runtime/model.py), with integers only:
 *
 *   greedy (GENERATE_TOP_K 1, the default): the next token is argmax_scaled() of the int32 logits
 *       (argmax_scaled.h, shared with main.c): the exact argmax of logits[o] * model_head_scale[o], so it is
 *       the runtime's model.generate(prompt_ids, n, top_k=1) token for token.
 *   top-k (GENERATE_TOP_K k > 1): the k largest scaled logits (exact comparisons; ties to the lower id), then a
 *       draw among them with integer weights w ~ 2^16 * exp((z - z_max) / T) (a Q8 fixed-point difference,
 *       times 369/256 ~ log2(e), divided by T; 2^-frac by the chord 1 - frac/2; see sample_top_k()) and a
 *       xorshift32 generator seeded with GENERATE_SEED. Deterministic, and close to but not the same draw as
 *       the runtime's (numpy PCG64, float64 exp).
 *
 * Configuration (-D flags; arm.mk passes ARM_GENERATE_FLAGS):
 *   GENERATE_N                tokens to generate (default 16)
 *   GENERATE_TOP_K            1 = greedy (default); k in [2, 64]: top-k sampling
 *   GENERATE_TEMPERATURE_Q8   top-k temperature T in Q8 (256 = 1.0, the default; below 256: bolder choices)
 *   GENERATE_SEED             top-k generator seed (default 1; 0 is replaced by 1, xorshift's fixed point)
 *   GENERATE_PROMPT_FILE      a header with N_PROMPT and `static const int32_t prompt_tokens[N_PROMPT]`
 *                             (ids in [0, MODEL_VOCAB)), and optionally GENERATE_CHARS, a string literal of
 *                             MODEL_VOCAB characters (the spec's input.chars) to print the text too; without it
 *                             the prompt is the built-in one below. (model_data.h carries no character table.)
 *
 * Output: "prompt: <ids>", then one line "gen <i>: <id>" per generated token (and "text: ..." with
 * GENERATE_CHARS); returns 0, or 1 after "error <status>" if a step is refused (e.g. a prompt id outside
 * [0, MODEL_VOCAB)). Semihosting on the QEMU images (EXAMPLE_SEMIHOST), stdio elsewhere; swap put_str(),
 * put_int() and put_char() for your UART.
 */
#include <stdint.h>

#include "rnnedge.h"
#include "model_data.h"
#include "argmax_scaled.h" /* argmax_scaled(), scaled(), compare_scaled() */

#if MODEL_INPUT_KIND != RNNEDGE_INPUT_TOKENS
#error "generate.c needs a token-input model (model_data.h: MODEL_INPUT_KIND RNNEDGE_INPUT_TOKENS)"
#endif
#if MODEL_OUT != MODEL_VOCAB
#error "generate.c needs a head that predicts the next token (MODEL_OUT == MODEL_VOCAB)"
#endif

#ifndef GENERATE_N
#define GENERATE_N 16
#endif
#ifndef GENERATE_TOP_K
#define GENERATE_TOP_K 1
#endif
#if GENERATE_TOP_K < 1 || GENERATE_TOP_K > 64
#error "GENERATE_TOP_K must be in [1, 64]"
#endif
#ifndef GENERATE_TEMPERATURE_Q8
#define GENERATE_TEMPERATURE_Q8 256
#endif
#if GENERATE_TEMPERATURE_Q8 < 1
#error "GENERATE_TEMPERATURE_Q8 must be positive"
#endif
#ifndef GENERATE_SEED
#define GENERATE_SEED 1
#endif

#ifdef GENERATE_PROMPT_FILE
#include GENERATE_PROMPT_FILE /* -DGENERATE_PROMPT_FILE='"path/to/prompt.h"' */
#else
/* the built-in prompt: four token ids (taken modulo the vocabulary so that any model accepts them) */
#define N_PROMPT 4
static const int32_t prompt_tokens[N_PROMPT] = {1 % MODEL_VOCAB, 2 % MODEL_VOCAB, 3 % MODEL_VOCAB,
                                                5 % MODEL_VOCAB};
#endif

#ifdef EXAMPLE_SEMIHOST
#include "semihost.h"
static void put_str(const char *s) { sh_puts(s); }
static void put_int(int32_t v) { sh_put_i32(v); }
#ifdef GENERATE_CHARS
static void put_char(char c) { sh_putc(c); }
#endif
#else
#include <stdio.h>
static void put_str(const char *s) { fputs(s, stdout); }
static void put_int(int32_t v) { printf("%ld", (long)v); }
#ifdef GENERATE_CHARS
static void put_char(char c) { putchar(c); }
#endif
#endif

/* The stream's memory: state (kept between steps; all zeros = start of a sequence) and scratch. */
static int16_t state[MODEL_STATE_LEN];
static int16_t scratch[MODEL_SCRATCH_LEN];

#define Q8_LIMIT ((int64_t)1 << 30)

/* floor(p * 2^(e + 8)) clamped to [-2^30, 2^30]: a scaled logit in Q8 (the clamp is far outside real logits) */
static int32_t to_q8(int64_t p, int32_t e)
{
    int32_t sh = e + 8;
    int64_t v;
    if (sh >= 0) {
        if (sh > 30 || p > (Q8_LIMIT >> sh) || p < -(Q8_LIMIT >> sh)) {
            v = p > 0 ? Q8_LIMIT : (p < 0 ? -Q8_LIMIT : 0);
        } else {
            v = p * ((int64_t)1 << sh);
        }
    } else {
        v = sh <= -63 ? (p < 0 ? -1 : 0) : p >> -sh; /* arithmetic shift: floor */
    }
    return (int32_t)(v > Q8_LIMIT ? Q8_LIMIT : (v < -Q8_LIMIT ? -Q8_LIMIT : v));
}

/* xorshift32 (Marsaglia): the state must not be 0 */
static uint32_t rng_state = GENERATE_SEED != 0 ? (uint32_t)GENERATE_SEED : 1u;

static uint32_t xorshift32(void)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return x;
}

/*
 * Top-k sampling with integers only.
 * 1. The k largest z[o] = logits[o] * model_head_scale[o], in descending order (exact comparisons; equal values
 *    keep the lower id first, and only k are kept).
 * 2. d = (z_best - z) in Q8 (to_q8; d >= 0), then x = d * 369 / T_q8: (z_best - z) / T * log2(e) in Q8.
 * 3. weight = 2^16 * 2^(-x / 256): 2^-(x >> 8) by a shift, 2^-(frac / 256) by the chord 1 - frac / 512
 *    (within 6 % of the exact power); 0 from 2^-17 down. The best token always weighs 2^16.
 * 4. u = (r * total) >> 32 for r from xorshift32 (uniform in [0, total)); the token is the first whose
 *    cumulative weight exceeds u.
 */
static int32_t sample_top_k(const int32_t *logits)
{
    int32_t ids[GENERATE_TOP_K];
    int64_t ps[GENERATE_TOP_K];
    int32_t es[GENERATE_TOP_K];
    uint32_t weights[GENERATE_TOP_K];
    int32_t count = 0;
    int32_t o;
    int32_t i;
    int32_t best_q8;
    uint32_t total = 0;
    uint32_t u;
    for (o = 0; o < MODEL_OUT; ++o) {
        int32_t e;
        int64_t p = scaled(logits[o], model_head_scale[o], &e);
        int32_t pos = count;
        while (pos > 0 && compare_scaled(p, e, ps[pos - 1], es[pos - 1]) > 0) {
            --pos;
        }
        if (pos < GENERATE_TOP_K) {
            int32_t j = count < GENERATE_TOP_K ? count : GENERATE_TOP_K - 1;
            for (; j > pos; --j) {
                ids[j] = ids[j - 1];
                ps[j] = ps[j - 1];
                es[j] = es[j - 1];
            }
            ids[pos] = o;
            ps[pos] = p;
            es[pos] = e;
            if (count < GENERATE_TOP_K) {
                ++count;
            }
        }
    }
    best_q8 = to_q8(ps[0], es[0]);
    for (i = 0; i < count; ++i) {
        int32_t d = best_q8 - to_q8(ps[i], es[i]); /* in [0, 2^31) */
        uint32_t x;
        uint32_t n;
        uint32_t frac;
        if (d > (1 << 20)) {
            d = 1 << 20; /* weight 0 anyway; keeps d * 369 in int32 */
        }
        x = (uint32_t)(d * 369) / (uint32_t)GENERATE_TEMPERATURE_Q8;
        n = x >> 8;
        frac = x & 255u;
        weights[i] = n >= 17u ? 0u : ((128u * (512u - frac)) >> n);
        total += weights[i];
    }
    u = (uint32_t)(((uint64_t)xorshift32() * total) >> 32);
    for (i = 0; i < count - 1; ++i) {
        if (weights[i] > u) {
            break;
        }
        u -= weights[i];
    }
    return ids[i];
}

static int step(rnnedge_state_int8 *s, int32_t token, int32_t *logits)
{
    int status = rnnedge_model_step_tokens_int8(&model, s, token, logits);
    if (status != RNNEDGE_OK) {
        put_str("error ");
        put_int(status);
        put_str("\n");
    }
    return status;
}

int main(void)
{
    rnnedge_state_int8 s;
    int32_t logits[MODEL_OUT];
    int32_t t;
#ifdef GENERATE_CHARS
    static const char chars[] = GENERATE_CHARS;
    static int32_t generated[GENERATE_N > 0 ? GENERATE_N : 1];
#endif
    s.state = state;
    s.scratch = scratch;
    rnnedge_state_reset_int8(&model, &s);
    put_str("prompt:");
    for (t = 0; t < N_PROMPT; ++t) {
        put_str(" ");
        put_int(prompt_tokens[t]);
    }
    put_str("\n");
    for (t = 0; t < N_PROMPT; ++t) { /* the prompt: the logits of its last token predict the first new one */
        if (step(&s, prompt_tokens[t], logits) != RNNEDGE_OK) {
            return 1;
        }
    }
    for (t = 0; t < GENERATE_N; ++t) {
        int32_t token = GENERATE_TOP_K > 1 ? sample_top_k(logits)
                                           : argmax_scaled(logits, model_head_scale, MODEL_OUT);
        put_str("gen ");
        put_int(t);
        put_str(": ");
        put_int(token);
        put_str("\n");
#ifdef GENERATE_CHARS
        generated[t] = token;
#endif
        if (step(&s, token, logits) != RNNEDGE_OK) { /* feed it back: the next token's logits */
            return 1;
        }
    }
#ifdef GENERATE_CHARS
    put_str("text: ");
    for (t = 0; t < N_PROMPT; ++t) {
        put_char(chars[prompt_tokens[t]]);
    }
    put_str("|");
    for (t = 0; t < GENERATE_N; ++t) {
        put_char(chars[generated[t]]);
    }
    put_str("\n");
#endif
    return 0;
}
