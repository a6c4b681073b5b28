/*
 * host_test_float.c: replays f32 or int8w golden vectors (export/vectors.py) through the C library.
 *
 * Built with the float library (src/rnnedge_f32.c, src/rnnedge_int8w.c), a generated model_data.c /
 * model_data.h of an f32 or int8w weight file (its MODEL_PRECISION_F32 or MODEL_PRECISION_INT8W picks the
 * functions) and a generated vectors_data.h; see the Makefile's `host-float` target. For every step the whole
 * float state and the outputs must lie within HOST_ATOL (default 1e-5, export/vectors.py's ATOL) of the
 * vectors, absolute. Every mismatch is printed as
 *
 *     mismatch: step <t>, <tensor>[<position>] (<name>): actual <a>, expected <e>
 *
 * (%.9g, which round-trips a float), then "<precision>: <steps> steps, <n> mismatches, max |diff| <d>"; the
 * exit status is 0 only with no mismatch (2 if the vectors belong to another weight file). Half way through
 * the sequence, with a live state, every error path (NULL pointers, wrong input kind, a bidirectional layer,
 * a reverse layer (RNNEDGE_EXT_REVERSE), an unknown cell; tokens: ids -1 and vocab; dense: NaN, +inf and -inf
 * inputs, and finite inputs whose normalised value (x - mean) / std overflows: 3e38 and -FLT_MAX with a std of 0.25,
 * 3e38 with a mean of -3e38) must return its status and leave state, scratch and outputs byte for byte as they were
 * ("refusals: <n> checked"). Before the first step, the state after reset must be zeros, or a layer's ext.h0 /
 * ext.c0. After the replay, rnnedge_exp_f32 / sigmoid / tanh get NaN, infinities and huge values ("exp: <n> inputs
 * checked"), and a dense model takes a few steps of huge finite inputs (normalised +-1e20, far past every clamp of
 * exp) that must leave a finite state and output: the sanitizer builds (make host-float-sanitize, gcc and clang)
 * run these through -fsanitize=float-cast-overflow.
 *
 * Agreement rule (export/vectors.py "Agreement rules", check_vectors): a value of step t agrees when
 * |actual - expected| <= HOST_ATOL + HOST_RTOL * scale(t), scale(t) the largest |expected| value of step t's state
 * and output, HOST_ATOL = HOST_RTOL = 1e-5 (vectors.ATOL, vectors.RTOL). The relative part follows states that grow
 * large: an rnn_relu state of a few hundred carries float32 rounding past 1e-5 from sums taken in another order,
 * correct yet past any absolute 1e-5; it is relative to the step's largest value, not to each value's own, because
 * a sum's rounding is a few ulps of its terms (a unit near 0 can be the sum of terms near 1,000).
 */
#include <float.h>
#include <stdio.h>
#include <string.h>

#include "rnnedge.h"
#include "model_data.h"
#include "vectors_data.h"

#if defined(MODEL_PRECISION_F32)
typedef rnnedge_model_f32 model_type;
typedef rnnedge_layer_f32 layer_type;
#define STATE_RESET rnnedge_state_reset_f32
#define STEP_DENSE rnnedge_model_step_dense_f32
#define STEP_TOKENS rnnedge_model_step_tokens_f32
#elif defined(MODEL_PRECISION_INT8W)
typedef rnnedge_model_int8w model_type;
typedef rnnedge_layer_int8w layer_type;
#define STATE_RESET rnnedge_state_reset_int8w
#define STEP_DENSE rnnedge_model_step_dense_int8w
#define STEP_TOKENS rnnedge_model_step_tokens_int8w
#else
#error "model_data.h is not an f32 or int8w model (int8 models: tests/host_test.c)"
#endif

#ifndef HOST_ATOL
#define HOST_ATOL 1e-5f
#endif
#ifndef HOST_RTOL
#define HOST_RTOL 1e-5f
#endif

static float state[MODEL_STATE_LEN];
static float scratch[MODEL_SCRATCH_LEN];
static long mismatches;
static long refusals;
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

static void expect_status(const char *what, int actual, int expected)
{
    ++refusals;
    if (actual != expected) {
        printf("mismatch: status of %s: actual %d, expected %d\n", what, actual, expected);
        ++mismatches;
    }
}

/** The float with these bits: NaN and infinities without a division by zero or libm. */
static float from_bits(uint32_t bits)
{
    union {
        uint32_t u;
        float f;
    } b;
    b.u = bits;
    return b.f;
}

/** scale(t) of the agreement rule: the largest |expected| value of step t's state and output. */
static float step_scale(int t)
{
    float largest = 0.0f;
    int k;
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

/** Compare one value of step t; print a mismatch line unless |actual - expected| <= HOST_ATOL + HOST_RTOL * scale
 * (scale: step_scale(t); a NaN on either side never agrees). */
static void compare(int t, const char *tensor, int k, const char *name, float actual, float expected, float scale)
{
    float d = actual - expected;
    d = d < 0.0f ? -d : d;
    if (d <= HOST_ATOL + HOST_RTOL * scale) {
        max_diff = d > max_diff ? d : max_diff;
        return;
    }
    printf("mismatch: step %d, %s[%d]%s%s%s: actual %.9g, expected %.9g\n", t, tensor, k, name[0] ? " (" : "",
           name, name[0] ? ")" : "", (double)actual, (double)expected);
    ++mismatches;
}

/** Every error path, on a live state: each must return its code and write nothing. */
static void check_refusals(rnnedge_state_f32 *s, float *y)
{
    static float state_before[MODEL_STATE_LEN], scratch_before[MODEL_SCRATCH_LEN];
    float y_before[MODEL_OUT];
    layer_type layers[MODEL_N_LAYERS];
    model_type bidirectional = model;
    model_type unknown_cell = model;
    layer_type cells[MODEL_N_LAYERS];
    model_type reverse = model;
    layer_type reversed[MODEL_N_LAYERS];
    rnnedge_state_f32 no_scratch = *s;
    float x[MODEL_N_IN];
#if VEC_INPUT_DENSE
    float small_std[MODEL_N_IN];
    float far_mean[MODEL_N_IN];
    model_type narrow = model;
    model_type shifted = model;
#endif
    int k;
    for (k = 0; k < MODEL_N_IN; ++k) {
        x[k] = 0.0f;
    }
    memcpy(layers, model.layers, sizeof layers);
    memcpy(cells, model.layers, sizeof cells);
    memcpy(reversed, model.layers, sizeof reversed);
    reversed[0].ext.flags |= RNNEDGE_EXT_REVERSE; /* cannot stream */
    reverse.layers = reversed;
    layers[MODEL_N_LAYERS - 1].bidirectional = 1;
    cells[0].cell = 7;
    bidirectional.layers = layers;
    unknown_cell.layers = cells;
    no_scratch.scratch = 0;
    memcpy(state_before, s->state, sizeof state_before);
    memcpy(scratch_before, s->scratch, sizeof scratch_before);
    memcpy(y_before, y, sizeof y_before);
    expect_status("reset(NULL model)", STATE_RESET(0, s), RNNEDGE_ERR_NULL);
    expect_status("reset(NULL stream)", STATE_RESET(&model, 0), RNNEDGE_ERR_NULL);
#if VEC_INPUT_DENSE
    expect_status("dense step, NULL model", STEP_DENSE(0, s, x, y), RNNEDGE_ERR_NULL);
    expect_status("dense step, NULL input", STEP_DENSE(&model, s, 0, y), RNNEDGE_ERR_NULL);
    expect_status("dense step, NULL output", STEP_DENSE(&model, s, x, 0), RNNEDGE_ERR_NULL);
    expect_status("dense step, NULL scratch", STEP_DENSE(&model, &no_scratch, x, y), RNNEDGE_ERR_NULL);
    expect_status("tokens step on a dense model", STEP_TOKENS(&model, s, 0, y), RNNEDGE_ERR_INPUT_KIND);
    expect_status("dense step, bidirectional layer", STEP_DENSE(&bidirectional, s, x, y), RNNEDGE_ERR_UNSUPPORTED);
    expect_status("dense step, unknown cell", STEP_DENSE(&unknown_cell, s, x, y), RNNEDGE_ERR_UNSUPPORTED);
    expect_status("dense step, reverse layer", STEP_DENSE(&reverse, s, x, y), RNNEDGE_ERR_UNSUPPORTED);
    x[MODEL_N_IN - 1] = from_bits(0x7FC00000u); /* NaN */
    expect_status("dense step, NaN input", STEP_DENSE(&model, s, x, y), RNNEDGE_ERR_BAD_VALUE);
    x[MODEL_N_IN - 1] = 0.0f;
    x[0] = from_bits(0x7F800000u); /* +inf */
    expect_status("dense step, +inf input", STEP_DENSE(&model, s, x, y), RNNEDGE_ERR_BAD_VALUE);
    x[0] = from_bits(0xFF800000u); /* -inf */
    expect_status("dense step, -inf input", STEP_DENSE(&model, s, x, y), RNNEDGE_ERR_BAD_VALUE);
    for (k = 0; k < MODEL_N_IN; ++k) {
        small_std[k] = 0.25f;
        far_mean[k] = -3e38f;
    }
    narrow.input_std = small_std;
    shifted.input_mean = far_mean;
    x[0] = 3e38f; /* finite; / 0.25 overflows */
    expect_status("dense step, 3e38 / std 0.25", STEP_DENSE(&narrow, s, x, y), RNNEDGE_ERR_BAD_VALUE);
    x[0] = 0.0f;
    x[MODEL_N_IN - 1] = -FLT_MAX;
    expect_status("dense step, -FLT_MAX / std 0.25", STEP_DENSE(&narrow, s, x, y), RNNEDGE_ERR_BAD_VALUE);
    x[MODEL_N_IN - 1] = 3e38f; /* 3e38 - (-3e38) overflows */
    expect_status("dense step, 3e38 - mean -3e38", STEP_DENSE(&shifted, s, x, y), RNNEDGE_ERR_BAD_VALUE);
#else
    expect_status("tokens step, NULL model", STEP_TOKENS(0, s, 0, y), RNNEDGE_ERR_NULL);
    expect_status("tokens step, NULL output", STEP_TOKENS(&model, s, 0, 0), RNNEDGE_ERR_NULL);
    expect_status("tokens step, NULL scratch", STEP_TOKENS(&model, &no_scratch, 0, y), RNNEDGE_ERR_NULL);
    expect_status("tokens step, token -1", STEP_TOKENS(&model, s, -1, y), RNNEDGE_ERR_BAD_TOKEN);
    expect_status("tokens step, token vocab", STEP_TOKENS(&model, s, MODEL_VOCAB, y), RNNEDGE_ERR_BAD_TOKEN);
    expect_status("dense step on a token model", STEP_DENSE(&model, s, x, y), RNNEDGE_ERR_INPUT_KIND);
    expect_status("tokens step, bidirectional layer", STEP_TOKENS(&bidirectional, s, 0, y),
                  RNNEDGE_ERR_UNSUPPORTED);
    expect_status("tokens step, unknown cell", STEP_TOKENS(&unknown_cell, s, 0, y), RNNEDGE_ERR_UNSUPPORTED);
    expect_status("tokens step, reverse layer", STEP_TOKENS(&reverse, s, 0, y), RNNEDGE_ERR_UNSUPPORTED);
#endif
    if (memcmp(state_before, s->state, sizeof state_before) != 0 ||
        memcmp(scratch_before, s->scratch, sizeof scratch_before) != 0 || memcmp(y_before, y, sizeof y_before) != 0) {
        printf("mismatch: a refused step wrote to the state, the scratch or the output\n");
        ++mismatches;
    }
}

static long exp_checked;

static void expect_exp(const char *what, float x, float actual, float expected)
{
    ++exp_checked;
    if (!(actual == expected || (actual != actual && expected != expected))) {
        printf("mismatch: %s(%.9g): actual %.9g, expected %.9g\n", what, (double)x, (double)actual,
               (double)expected);
        ++mismatches;
    }
}

/** rnnedge_exp_f32, sigmoid and tanh on inputs a model step never passes but a caller might: NaN gives NaN,
 * infinities and huge values give the clamp's values; no undefined behaviour on the way (the sanitizer builds). */
static void check_exp_any_input(void)
{
    const float nan_value = from_bits(0x7FC00000u);
    const float high[] = {from_bits(0x7F800000u), FLT_MAX, 3e38f, 1e10f, 88.0f};
    const float low[] = {from_bits(0xFF800000u), -FLT_MAX, -3e38f, -1e10f, -88.0f};
    const float e_high = rnnedge_exp_f32(88.0f);
    const float e_low = rnnedge_exp_f32(-87.0f);
    size_t i;
    for (i = 0; i < sizeof high / sizeof high[0]; ++i) {
        expect_exp("exp", high[i], rnnedge_exp_f32(high[i]), e_high);
        expect_exp("exp", low[i], rnnedge_exp_f32(low[i]), e_low);
        expect_exp("tanh", high[i], rnnedge_tanh_f32(high[i]), 1.0f);
        expect_exp("tanh", low[i], rnnedge_tanh_f32(low[i]), -1.0f);
        expect_exp("sigmoid", high[i], rnnedge_sigmoid_f32(high[i]), 1.0f);
        expect_exp("sigmoid", low[i], rnnedge_sigmoid_f32(low[i]), 1.0f / (1.0f + e_high));
    }
    expect_exp("exp", nan_value, rnnedge_exp_f32(nan_value), nan_value);
    expect_exp("exp", -nan_value, rnnedge_exp_f32(-nan_value), nan_value);
    expect_exp("sigmoid", nan_value, rnnedge_sigmoid_f32(nan_value), nan_value);
    expect_exp("tanh", nan_value, rnnedge_tanh_f32(nan_value), nan_value);
    printf("exp: %ld inputs checked\n", exp_checked);
}

#if VEC_INPUT_DENSE
/** Nonzero unless v is NaN or an infinity (either makes v - v NaN). */
static int is_finite(float v)
{
    return v - v == 0.0f;
}

/** A fresh stream takes 8 steps of huge finite inputs, normalised to +-1e20 (every gate's exp input far past its
 * clamp): each is accepted and leaves the state and the output finite. */
static void check_huge_inputs(void)
{
    static float huge_state[MODEL_STATE_LEN], huge_scratch[MODEL_SCRATCH_LEN];
    rnnedge_state_f32 s;
    float x[MODEL_N_IN];
    float y[MODEL_OUT];
    int t;
    int k;
    s.state = huge_state;
    s.scratch = huge_scratch;
    STATE_RESET(&model, &s);
    for (t = 0; t < 8; ++t) {
        for (k = 0; k < MODEL_N_IN; ++k) {
            x[k] = model.input_mean[k] + ((t + k) % 2 ? 1e20f : -1e20f) * model.input_std[k];
        }
        if (STEP_DENSE(&model, &s, x, y) != RNNEDGE_OK) {
            printf("mismatch: huge input step %d: not RNNEDGE_OK\n", t);
            ++mismatches;
            return;
        }
        for (k = 0; k < MODEL_STATE_LEN; ++k) {
            if (!is_finite(huge_state[k])) {
                printf("mismatch: huge input step %d: state[%d] = %.9g\n", t, k, (double)huge_state[k]);
                ++mismatches;
            }
        }
        for (k = 0; k < MODEL_OUT; ++k) {
            if (!is_finite(y[k])) {
                printf("mismatch: huge input step %d: output[%d] = %.9g\n", t, k, (double)y[k]);
                ++mismatches;
            }
        }
    }
    printf("huge inputs: 8 steps checked\n");
}
#endif

int main(void)
{
    rnnedge_state_f32 s;
    float y[MODEL_OUT];
    int t;
    int k;
    s.state = state;
    s.scratch = scratch;
    if (strcmp(MODEL_ARTIFACT_SHA256, VEC_ARTIFACT_SHA256) != 0 || strcmp(MODEL_PRECISION, VEC_PRECISION) != 0 ||
        MODEL_STATE_LEN != VEC_STATE_LEN || MODEL_OUT != VEC_OUT || MODEL_N_IN != VEC_N_IN) {
        printf("error: the vectors were made with %s (%s, sha256 %s), the model data is %s (%s, sha256 %s)\n",
               VEC_ARTIFACT, VEC_PRECISION, VEC_ARTIFACT_SHA256, MODEL_ARTIFACT, MODEL_PRECISION,
               MODEL_ARTIFACT_SHA256);
        return 2;
    }
    for (k = 0; k < MODEL_STATE_LEN; ++k) {
        state[k] = 1.0f; /* reset must overwrite it: zeros, or a layer's h0 / c0 */
    }
    for (k = 0; k < MODEL_OUT; ++k) {
        y[k] = 0.0f;
    }
    if (STATE_RESET(&model, &s) != RNNEDGE_OK) {
        printf("mismatch: status of reset: not RNNEDGE_OK\n");
        ++mismatches;
    }
    for (k = 0; k < MODEL_STATE_LEN; ++k) {
        compare(-1, "state", k, vec_state_names[k], state[k], initial_value(k), 0.0f); /* copied: atol alone */
    }
    for (t = 0; t < VEC_STEPS; ++t) {
        int status;
        if (t == VEC_STEPS / 2) {
            check_refusals(&s, y);
        }
#if VEC_INPUT_DENSE
        status = STEP_DENSE(&model, &s, vec_input[t], y);
#else
        status = STEP_TOKENS(&model, &s, vec_tokens[t], y);
#endif
        if (status != RNNEDGE_OK) {
            printf("mismatch: step %d, status: actual %d, expected %d\n", t, status, RNNEDGE_OK);
            ++mismatches;
            break;
        }
        for (k = 0; k < MODEL_STATE_LEN; ++k) {
            compare(t, "state", k, vec_state_names[k], state[k], vec_state[t][k], step_scale(t));
        }
        for (k = 0; k < MODEL_OUT; ++k) {
            compare(t, "output", k, "", y[k], vec_output[t][k], step_scale(t));
        }
    }
    check_exp_any_input();
#if VEC_INPUT_DENSE
    check_huge_inputs();
#endif
    printf("refusals: %ld checked\n", refusals);
    printf("%s: %d steps, %ld mismatches, max |diff| %.3g\n", MODEL_PRECISION, VEC_STEPS, mismatches,
           (double)max_diff);
    return mismatches == 0 ? 0 : 1;
}
