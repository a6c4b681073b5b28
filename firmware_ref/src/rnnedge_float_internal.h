/*
 * rnnedge_float_internal.h: what rnnedge_int8w.c shares with rnnedge_f32.c (not part of the API). As in the
 * runtime, where kernels_int8w.py calls kernels_f32's update functions: the gate activations and state updates
 * are one code for both float precisions.
 */
#ifndef RNNEDGE_FLOAT_INTERNAL_H
#define RNNEDGE_FLOAT_INTERNAL_H

#include "rnnedge.h"

/** Nonzero when every one of x[0..n) is finite (no NaN, no infinity), judged by the exponent bits. */
int rnnedge_all_finite_f32(const float *x, int32_t n);

/** RNN: h[j] = relu(pre[j]) or tanh(pre[j]), j < H (runtime rnn_update_f32). */
void rnnedge_rnn_update_f32(int32_t relu, int32_t H, float *h, const float *pre);

/** LSTM: gates (4H) pre-activations i f g o; c = f c + i g, h = o tanh(c) (runtime lstm_update_f32). */
void rnnedge_lstm_update_f32(int32_t H, float *h, float *c, const float *gates);

/** GRU: sums (4H) = [r, z pre-activations (gh + gx) | gx_n | gh_n]; n = tanh(gx_n + r gh_n),
 * h = (1 - z) n + z h (runtime gru_update_f32). */
void rnnedge_gru_update_f32(int32_t H, float *h, const float *sums);

#endif /* RNNEDGE_FLOAT_INTERNAL_H */
