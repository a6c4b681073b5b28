/*
 * rnnedge_float_internal.h: what rnnedge_int8w.c shares with rnnedge_f32.c (not part of the API). As in the
 * runtime, where kernels_int8w.py calls kernels_f32's update functions: the gate activations and state updates
 * (PyTorch's cells and the ONNX extensions alike) are one code for both float precisions.
 */
#ifndef RNNEDGE_FLOAT_INTERNAL_H
#define RNNEDGE_FLOAT_INTERNAL_H

#include "rnnedge.h"

/** Nonzero when every normalised input (x[k] - mean[k]) / std[k], k < n, is finite, judged by the exponent bits
 * (runtime normalised_finite_f32): a NaN or infinity in x fails, and so does a finite x whose normalised value
 * overflows (x = 3e38 with std < 1), which would make the state NaN. Writes nothing. */
int rnnedge_normalised_finite_f32(const float *x, const float *mean, const float *std, int32_t n);

/** RNN: h[j] = relu(pre[j]) or tanh(pre[j]), j < H (runtime rnn_update_f32). */
void rnnedge_rnn_update_f32(int32_t relu, int32_t H, float *h, const float *pre);

/** LSTM: gates (4H) pre-activations i f g o; c = f c + i g, h = o tanh(c) (runtime lstm_update_f32). */
void rnnedge_lstm_update_f32(int32_t H, float *h, float *c, const float *gates);

/** GRU: sums (4H) = [r, z pre-activations (gh + gx) | gx_n | gh_n]; n = tanh(gx_n + r gh_n),
 * h = (1 - z) n + z h (runtime gru_update_f32). */
void rnnedge_gru_update_f32(int32_t H, float *h, const float *sums);

/* -- the ONNX layer extensions (layer->ext.flags != 0): runtime/kernels_f32.py's *_ext_f32 ------------------- */

/** Nonzero when a layer starts from an initial state: RNNEDGE_EXT_INIT, or h0 or c0 set (the reset reads them
 * whenever set). With RNNEDGE_EXTENSIONS 0 the resets and the steps refuse such a layer. */
#define rnnedge_ext_has_init(ext) (((ext)->flags & RNNEDGE_EXT_INIT) != 0 || (ext)->h0 != 0 || (ext)->c0 != 0)

/** RNNEDGE_OK when a layer's ext can run in a float step (flags 0: PyTorch's cell), else RNNEDGE_ERR_UNSUPPORTED
 * (flags outside RNNEDGE_EXT_FLOAT, an extension of another cell, an unknown function code) or RNNEDGE_ERR_NULL
 * (peepholes without p). Built with RNNEDGE_EXTENSIONS 0: RNNEDGE_ERR_UNSUPPORTED for any flags, h0 or c0. */
int rnnedge_check_ext_f32(const rnnedge_ext_f32 *ext, int32_t cell);

/** A layer's start-of-sequence state: h (and lstm c, right after it) from ext->h0 / ext->c0, zeros where NULL
 * (RNNEDGE_EXTENSIONS 0: zeros; the callers refuse a layer with an initial state first). */
void rnnedge_reset_layer_f32(const rnnedge_ext_f32 *ext, int32_t cell, int32_t H, float *state);

#if RNNEDGE_EXTENSIONS

/** clamp(a, -clip, clip) with RNNEDGE_EXT_CLIP and clip > 0, else a (runtime clip_f32). */
float rnnedge_ext_clip_f32(const rnnedge_ext_f32 *ext, float a);

/** The layer's k-th function of a (ext->fn[k] with RNNEDGE_EXT_ACTIVATIONS, else the cell's own; function_f32). */
float rnnedge_ext_function_f32(const rnnedge_ext_f32 *ext, int32_t cell, int32_t k, float a);

/** RNN with extensions: h[j] = f(clip(pre[j])) (runtime rnn_update_ext_f32). */
void rnnedge_rnn_update_ext_f32(const rnnedge_ext_f32 *ext, int32_t cell, int32_t H, float *h, const float *pre);

/** LSTM with extensions: gates (4H) pre-activations i f g o (without peephole terms); peepholes, clip, input
 * forget and the functions applied per unit in runtime lstm_update_ext_f32's order. */
void rnnedge_lstm_update_ext_f32(const rnnedge_ext_f32 *ext, int32_t H, float *h, float *c, const float *gates);

/** GRU (reset after, PyTorch's form) with extensions: sums as rnnedge_gru_update_f32's; r, z = f(clip(.)),
 * n = g(clip(gx_n + r gh_n)), h = (1 - z) n + z h (runtime gru_update_ext_f32). */
void rnnedge_gru_update_ext_f32(const rnnedge_ext_f32 *ext, int32_t H, float *h, const float *sums);

/** GRU r and z with extensions, in place: rz[j] = f(clip(rz[j])), j < 2H (runtime gru_rz_ext_f32 after its sum). */
void rnnedge_gru_rz_ext_f32(const rnnedge_ext_f32 *ext, int32_t H, float *rz);

/** The last stage of a RNNEDGE_EXT_RESET_BEFORE GRU unit: n = g(clip(n_pre)), returns (1 - z) n + z h_prev. */
float rnnedge_gru_blend_ext_f32(const rnnedge_ext_f32 *ext, float n_pre, float z, float h_prev);
#endif /* RNNEDGE_EXTENSIONS */

#endif /* RNNEDGE_FLOAT_INTERNAL_H */
