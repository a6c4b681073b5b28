/*
 * host_test.c: replays golden vectors (export/vectors.py) through the C library and compares bit for bit.
 *
 * Built with the library, a generated model_data.c / model_data.h and a generated vectors_data.h
 * (export/firmware.py); see the Makefile's `host` target. For every step: the quantised input (dense models,
 * via rnnedge_quantize_input_f32), the whole state (int16) and the integer logits (int32) must equal the
 * vectors exactly. Every mismatch is printed as
 *
 *     mismatch: step <t>, <tensor>[<position>] (<name>): actual <a>, expected <e>
 *
 * then one summary line "int8: <steps> steps, <n> mismatches"; the exit status is 0 only with no mismatch.
 * The API's error paths (NULL pointers, bad token id, wrong input kind, a bidirectional layer; a dense input that is
 * NaN, or finite with a normalised value (x - mean) / std that overflows) are checked too.
 */
#include <float.h>
#include <stdio.h>
#include <string.h>

#include "rnnedge.h"
#include "model_data.h"
#include "vectors_data.h"

static int16_t state[MODEL_STATE_LEN];
static int16_t scratch[MODEL_SCRATCH_LEN];
static long mismatches;

static void expect_status(const char *what, int actual, int expected)
{
    if (actual != expected) {
        printf("mismatch: status of %s: actual %d, expected %d\n", what, actual, expected);
        ++mismatches;
    }
}

/** The error paths: each must return its code and leave the state alone (as reset left it: zeros, or h0 / c0). */
static void check_errors(rnnedge_state_int8 *s, int32_t *logits)
{
    rnnedge_layer_int8 layers[MODEL_N_LAYERS];
    rnnedge_model_int8 bidirectional = model;
    rnnedge_state_int8 no_scratch = *s;
    int16_t x[MODEL_N_IN];
    int16_t reset_state[MODEL_STATE_LEN];
    int k;
    memset(x, 0, sizeof x);
    memcpy(reset_state, s->state, sizeof reset_state);
    memcpy(layers, model.layers, sizeof layers);
    layers[MODEL_N_LAYERS - 1].bidirectional = 1;
    bidirectional.layers = layers;
    no_scratch.scratch = 0;
    expect_status("reset(NULL model)", rnnedge_state_reset_int8(0, s), RNNEDGE_ERR_NULL);
#if VEC_INPUT_DENSE
    expect_status("dense step, NULL model", rnnedge_model_step_dense_int8(0, s, x, logits), RNNEDGE_ERR_NULL);
    expect_status("dense step, NULL input", rnnedge_model_step_dense_int8(&model, s, 0, logits), RNNEDGE_ERR_NULL);
    expect_status("dense step, NULL logits", rnnedge_model_step_dense_int8(&model, s, x, 0), RNNEDGE_ERR_NULL);
    expect_status("dense step, NULL scratch", rnnedge_model_step_dense_int8(&model, &no_scratch, x, logits),
                  RNNEDGE_ERR_NULL);
    expect_status("tokens step on a dense model", rnnedge_model_step_tokens_int8(&model, s, 0, logits),
                  RNNEDGE_ERR_INPUT_KIND);
    expect_status("dense step, bidirectional layer", rnnedge_model_step_dense_int8(&bidirectional, s, x, logits),
                  RNNEDGE_ERR_UNSUPPORTED);
    {
        float raw[MODEL_N_IN];
        float small_std[MODEL_N_IN];
        float far_mean[MODEL_N_IN];
        float nan_value = 0.0f;
        for (k = 0; k < MODEL_N_IN; ++k) {
            raw[k] = 0.0f;
        }
        nan_value = nan_value / nan_value;
        raw[MODEL_N_IN - 1] = nan_value;
        expect_status("quantize NaN input",
                      rnnedge_quantize_input_f32(raw, model_input_mean, model_input_std, MODEL_INPUT_SCALE,
                                                 MODEL_N_IN, x),
                      RNNEDGE_ERR_BAD_VALUE);
        /* finite, but (x - mean) / std overflows: refused (not clamped), as the float precisions refuse it */
        for (k = 0; k < MODEL_N_IN; ++k) {
            small_std[k] = 0.25f;
            far_mean[k] = -3e38f;
            x[k] = 7;
        }
        raw[MODEL_N_IN - 1] = 3e38f;
        expect_status("quantize 3e38 / std 0.25",
                      rnnedge_quantize_input_f32(raw, model_input_mean, small_std, MODEL_INPUT_SCALE, MODEL_N_IN, x),
                      RNNEDGE_ERR_BAD_VALUE);
        raw[MODEL_N_IN - 1] = -FLT_MAX;
        expect_status("quantize -FLT_MAX / std 0.25",
                      rnnedge_quantize_input_f32(raw, model_input_mean, small_std, MODEL_INPUT_SCALE, MODEL_N_IN, x),
                      RNNEDGE_ERR_BAD_VALUE);
        raw[MODEL_N_IN - 1] = 3e38f;
        expect_status("quantize 3e38 - mean -3e38",
                      rnnedge_quantize_input_f32(raw, far_mean, model_input_std, MODEL_INPUT_SCALE, MODEL_N_IN, x),
                      RNNEDGE_ERR_BAD_VALUE);
        for (k = 0; k < MODEL_N_IN; ++k) {
            if (x[k] != 7) {
                printf("mismatch: a refused quantize wrote x_q[%d] = %d\n", k, (int)x[k]);
                ++mismatches;
            }
        }
    }
#else
    expect_status("tokens step, NULL model", rnnedge_model_step_tokens_int8(0, s, 0, logits), RNNEDGE_ERR_NULL);
    expect_status("tokens step, NULL logits", rnnedge_model_step_tokens_int8(&model, s, 0, 0), RNNEDGE_ERR_NULL);
    expect_status("tokens step, NULL scratch", rnnedge_model_step_tokens_int8(&model, &no_scratch, 0, logits),
                  RNNEDGE_ERR_NULL);
    expect_status("tokens step, token -1", rnnedge_model_step_tokens_int8(&model, s, -1, logits),
                  RNNEDGE_ERR_BAD_TOKEN);
    expect_status("tokens step, token vocab", rnnedge_model_step_tokens_int8(&model, s, MODEL_VOCAB, logits),
                  RNNEDGE_ERR_BAD_TOKEN);
    expect_status("dense step on a token model", rnnedge_model_step_dense_int8(&model, s, x, logits),
                  RNNEDGE_ERR_INPUT_KIND);
    expect_status("tokens step, bidirectional layer",
                  rnnedge_model_step_tokens_int8(&bidirectional, s, 0, logits), RNNEDGE_ERR_UNSUPPORTED);
#endif
    for (k = 0; k < MODEL_STATE_LEN; ++k) {
        if (s->state[k] != reset_state[k]) {
            printf("mismatch: a refused step wrote state[%d] = %d\n", k, (int)s->state[k]);
            ++mismatches;
        }
    }
}

int main(void)
{
    rnnedge_state_int8 s;
    int32_t logits[MODEL_OUT];
    int t;
    int k;
    s.state = state;
    s.scratch = scratch;
    if (strcmp(MODEL_ARTIFACT_SHA256, VEC_ARTIFACT_SHA256) != 0 || MODEL_STATE_LEN != VEC_STATE_LEN ||
        MODEL_OUT != VEC_OUT || MODEL_N_IN != VEC_N_IN) {
        printf("error: the vectors were made with %s (sha256 %s), the model data is %s (sha256 %s)\n",
               VEC_ARTIFACT, VEC_ARTIFACT_SHA256, MODEL_ARTIFACT, MODEL_ARTIFACT_SHA256);
        return 2;
    }
    expect_status("reset", rnnedge_state_reset_int8(&model, &s), RNNEDGE_OK);
    check_errors(&s, logits);
    for (t = 0; t < VEC_STEPS; ++t) {
        int status;
#if VEC_INPUT_DENSE
        int16_t x_q[MODEL_N_IN];
        status = rnnedge_quantize_input_f32(vec_input[t], model_input_mean, model_input_std, MODEL_INPUT_SCALE,
                                            MODEL_N_IN, x_q);
        expect_status("rnnedge_quantize_input_f32", status, RNNEDGE_OK);
        for (k = 0; k < MODEL_N_IN; ++k) {
            if (x_q[k] != vec_input_q[t][k]) {
                printf("mismatch: step %d, input_q[%d]: actual %d, expected %d\n", t, k, (int)x_q[k],
                       (int)vec_input_q[t][k]);
                ++mismatches;
            }
        }
        status = rnnedge_model_step_dense_int8(&model, &s, x_q, logits);
#else
        status = rnnedge_model_step_tokens_int8(&model, &s, vec_tokens[t], logits);
#endif
        if (status != RNNEDGE_OK) {
            printf("mismatch: step %d, status: actual %d, expected %d\n", t, status, RNNEDGE_OK);
            ++mismatches;
            break;
        }
        for (k = 0; k < MODEL_STATE_LEN; ++k) {
            if (state[k] != vec_state[t][k]) {
                printf("mismatch: step %d, state[%d] (%s): actual %d, expected %d\n", t, k, vec_state_names[k],
                       (int)state[k], (int)vec_state[t][k]);
                ++mismatches;
            }
        }
        for (k = 0; k < MODEL_OUT; ++k) {
            if (logits[k] != vec_logits[t][k]) {
                printf("mismatch: step %d, logits_q[%d]: actual %ld, expected %ld\n", t, k, (long)logits[k],
                       (long)vec_logits[t][k]);
                ++mismatches;
            }
        }
    }
    printf("int8: %d steps, %ld mismatches\n", VEC_STEPS, mismatches);
    return mismatches == 0 ? 0 : 1;
}
