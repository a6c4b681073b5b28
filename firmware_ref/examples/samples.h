/*
 * samples.h: the example's input stream. This default replays the inputs of the golden vectors that the export
 * writes next to model_data.h (vectors_data.h); replace this file with your own samples, e.g.
 *
 *     #define N_SAMPLES 3
 *     static const int16_t samples[N_SAMPLES][MODEL_N_IN] = {{...}, {...}, {...}};   (dense models: x_q)
 *     static const int32_t sample_tokens[N_SAMPLES] = {5, 17, 2};                    (token models: ids)
 *
 * Dense samples are the quantised inputs x_q = clamp(rint(((x - mean) / std) / MODEL_INPUT_SCALE),
 * -32767, 32767) (rnnedge_quantize_input_f32 on an FPU target, or your sensor pipeline in fixed point).
 */
#ifndef EXAMPLE_SAMPLES_H
#define EXAMPLE_SAMPLES_H

#include "model_data.h"
#include "vectors_data.h"

#define N_SAMPLES VEC_STEPS
#if MODEL_INPUT_KIND == RNNEDGE_INPUT_DENSE
#define samples vec_input_q
#else
#define sample_tokens vec_tokens
#endif

#endif /* EXAMPLE_SAMPLES_H */
