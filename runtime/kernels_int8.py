"""int8 kernels: the integer-only step of every cell (the `int8` precision), TFLite Micro's 16x8 scheme.

Arithmetic reference: docs/int8.md; primitives and their rounding: runtime/int8_math.py. What rnnedge chose
where TFLM's scheme leaves a choice, restated here in integers (export/quantize_int8.py writes the constants, the
NumPy twin in tests/runtime/int8_twin.py and firmware_ref/ implement the same integers):

- Weights int8, narrow range [-127, 127], zero point 0, **one scale per output row** (per gate row).
- Activations **int16, symmetric** (zero point 0): the layer input x, the hidden state h (= the layer's
  output), the cell state c. This is TFLM's "16x8" variant. An int8 hidden state (TFLM's 8x8 scheme) rounds
  h to 1/255 of its range every step and the error feeds back through the recurrence: on an LSTM(40 -> 128)
  + Linear(12) with random inputs over 2000 steps, rounding only h to int8 (everything else float64)
  already costs 0.0057 max abs logit error, where the issue's target for the whole int8 model is 0.01
  (TFLite's full-int8 reaches 0.029); rounding h to int16 costs 2e-5. int16 costs 2 bytes per hidden unit
  of state and nothing in weight bytes.
- h of a bounded cell (lstm, gru, rnn_tanh) is Q0.15 (scale 2^-15, fixed). rnn_relu's h has a calibrated
  scale s_h, folded into its multipliers. c (lstm) has scale 2^p, p calibrated (-15 <= p <= 1).
- Gate pre-activations int16 Q3.12, gate outputs int16 Q0.15 (int8_math.sigmoid_q15 / tanh_q15).
- **One saturation per pre-activation.** Each requantised term of a gate row (yx, yh, a peephole's yp) stays
  int32 (MBQM saturates to int32 only) and the terms are added exactly, then saturated once to int16. TFLM
  saturates each term to int16 first; that clips a term beyond +-8 (Q3.12) even when the other term would have
  brought the sum back: a raw-scale forecaster with |W_x x + b| = 12.7 and a recurrent term of -5 got a gate of
  sigmoid(3) instead of sigmoid(7.7).
- Dot products accumulate in int32. Export proves, row by row, that no sum can overflow
  (|bias| + sum_k |w[r, k]| * 32768 < 2^31), and runtime/layout.py checks it again at load, so int32
  accumulation is exact here and in C. Past the accumulators nothing needs a proof: every term is int32, so
  yx + yh (+ yp) is below 3 * 2^31 and a GRU's r * yh_n below 2^46 in magnitude, both exact in int64.

Per layer-direction, the integer constants (export/quantize_int8.py; G = gates * H rows, PyTorch gate order):

    ax = b_x + W_x x          (int32, G)  b_x in scale s_in * s_Wx[row]; x the layer input (int16 values)
    ah = b_h + W_h h          (int32, G)  b_h in scale s_h * s_Wh[row]
    yx = MBQM(ax, Mx[row], Sx[row])     (int32)  Mx, Sx: s_in * s_Wx[row] / 2^-12 (relu: / s_h)
    yh = MBQM(ah, Mh[row], Sh[row])     (int32)  Mh, Sh: s_h * s_Wh[row] / 2^-12 (relu: s_Wh[row])

Biases: b_x holds b_ih + b_hh of every row except GRU's n rows, where b_x = b_in and b_h = b_hn (PyTorch's
n = tanh(W_in x + b_in + r * (W_hn h + b_hn))); b_h is 0 elsewhere. RDBPOT = rounding_divide_by_pot. Every
sum inside a sat16 below is exact (int64 here, in the twin and in C). Per hidden unit j:

    rnn_tanh  h = tanh_q15(sat16(yx + yh))
    rnn_relu  h = max(0, sat16(yx + yh))                       (scale s_h)
    lstm      i, f, o = sigmoid_q15(sat16(yx + yh)) of rows j, H + j, 3H + j; g = tanh_q15(...) of row 2H + j
              c = sat16(sat16(RDBPOT(f * c, 15)) + sat16(RDBPOT(i * g, 30 + p)))
              h = sat16(RDBPOT(o * tanh_of_cell_q15(c, p), 15))
    gru       r, z = sigmoid_q15(sat16(yx + yh)) of rows j, H + j
              n = tanh_q15(sat16(yx_n + RDBPOT(r * yh_n, 15)))  of row 2H + j
              h = sat16(RDBPOT((32768 - z) * n + z * h, 15))

The ONNX layer extensions (runtime/spec.py) int8 runs: a layer whose L_FLAGS has F_RESET_BEFORE, F_INPUT_FORGET,
F_PEEPHOLES or F_CLIP takes a second step path (`recurrent_step_ext_int8`); every other layer, reverse and
initial_state included, keeps the path above, unchanged. In integers:

    clip                every gate's pre-activation, once formed (after sat16(yx + yh), an lstm's peephole
                        rows after sat16(yx + yh + yp); gru's n row after its r term), is clamped to [-Q, Q],
                        Q = L_CLIP_Q: the clip in Q3.12 (rnn_relu: in s_h), round(clip / unit), halves up,
                        capped at 32767 (runtime/layout.py)
    input_forget        lstm: f = min(32768 - i, 32767) (Q0.15); the f rows' pre-activations are unused
    peepholes           lstm, TFLM's cell-to-gate weights: iblob[L_OFF_P :] = [P (3H) | M (3) | S (3)], P the
                        int16 vectors [P_i; P_f; P_o] (the file's p: symmetric, one scale s_k per gate vector k),
                        and per gate one (M_k, S_k) for s_k * 2^p / 2^-12 (P times c's 2^p into Q3.12). Per
                        hidden unit j, for k = i, f, o:
                            yp_k = MBQM(P_k[j] * c[j], M_k, S_k)      (int16 * int16: exact in int32; int32)
                            pre_k = sat16(yx + yh + yp_k)              (one saturation of the three terms)
                        i and f read the previous c (the state on entry), o the new c (after the cell update,
                        so o's row is formed last); each pre_k is then clipped (if any) and goes through
                        sigmoid_q15. The g row is sat16(yx + yh) as before (and every row of an lstm without
                        peepholes: P = 0 gives the same integers)
    linear_before_reset false (gru): b_hn is folded into b_x (the file has no b_hh), and with r from its row,
                        rh[j] = RDBPOT(r[j] * h[j], 15)                (int16 values, h's scale)
                        ah_n = W_hn rh                                  (the n columns of W_h^T, no bias)
                        n = tanh_q15(clip(sat16(yx_n + MBQM(ah_n, Mh, Sh))))
                        the step's scratch holds H more int32 for rh (layout.scratch_rows: 2G + H)
    reverse             a layer's one direction runs from the last step to the first (the caller, run() only)
    initial_state       h (and lstm c) start from iblob[L_OFF_INIT :] = [h0 (H) | c0 (H)], int16 values in the
                        layer's s_h and 2^p, instead of zeros: every sequence of run() (sequence_layer_int8)
                        and every stream, on creation and reset() (runtime/model.py)

Input: dense features are normalised and quantised on the way in, the one float step, outside the integer
kernels: x = clamp(rint(((x - mean) / std) / s_x), -32767, 32767) (float32 arithmetic); a step whose normalised
(x - mean) / std is not finite is refused before (BAD_VALUE), as in the float precisions, not clamped. Tokens read a row of
the int8 embedding table, whose one scale is the first layer's s_x. The layer input of layer l > 0 is the
previous layer's h (both directions side by side, one scale). Head: acc = b + W h (int32, W int8 (O, Hin)
per row); the host dequantises y = act(acc * head_scale[o]), the only float after the input (log_softmax too).
A head with hidden dense layers (spec head.hidden) first runs each of them on v (int16 values in s_in, the last
layer's s_h, then the previous hidden layer's s_out), per row r, with (M, S) from the file (export/quantize_int8.py):

    q[r] = sat16(MBQM(b[r] + W[r] . v, M[r], S[r]))     relu, none: into s_out; tanh, sigmoid, gelu: into Q3.12
    v[r] = max(0, q[r]) | q[r] | tanh_q15(q[r]) | sigmoid_q15(q[r]) | gelu_q12(q[r])
           (tanh, sigmoid in Q0.15, s_out = 2^-15; gelu and gelu_tanh both gelu_q12, int8_math, s_out = 2^-12)

and the head reads the last one's v.

Buffers: a stream's integer memory is one int32 array, [acc (B, O) | state (B, S) | scratch]; state and
activation values always lie in int16's range (every write saturates), the firmware stores them as int16.

This module holds the primitives, the cells, the head and the input quantisation; the ONNX extensions' kernels
are runtime/kernels_int8_ext.py, the whole model's step and sequence pass runtime/kernels_int8_model.py.
"""

import numpy as np

from rnnedge.runtime.int8_math import (
    gelu_q12,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_right,
    rounding_divide_by_pot,
    sat16,
    sigmoid_q15,
    tanh_of_cell_q15,
    tanh_q15,
)
from rnnedge.runtime.jit import int_inline, kernel
from rnnedge.runtime.kernels_f32 import (
    _matrix,
    activate_head_f32,
)
from rnnedge.runtime.layout import (
    D_ACTIVATION,
    D_N_IN,
    D_OFF_B,
    D_OFF_OUT,
    D_OFF_S,
    D_OFF_W,
    D_UNITS,
    HID_GELU,
    HID_GELU_TANH,
    HID_RELU,
    HID_SIGMOID,
    HID_TANH,
)

Q15_ONE = 32768
INPUT_MAX = 32767  # quantised inputs lie in [-INPUT_MAX, INPUT_MAX]


@kernel
def gemv_t_int8(acc, w_t, v):
    """acc (N,) int32 += w_t (K, N) int8 ^T @ v (K,) int32 (int16 values), four weight rows per pass, lanes
    across N. Exact in any order: no partial sum can overflow (the export's bound), so int32 adds associate."""
    K, N = w_t.shape
    k = 0
    while k + 4 <= K:
        v0, v1, v2, v3 = np.int32(v[k]), np.int32(v[k + 1]), np.int32(v[k + 2]), np.int32(v[k + 3])
        w0, w1, w2, w3 = w_t[k], w_t[k + 1], w_t[k + 2], w_t[k + 3]
        for i in range(N):
            acc[i] += (np.int32(w0[i]) * v0 + np.int32(w1[i]) * v1
                       + np.int32(w2[i]) * v2 + np.int32(w3[i]) * v3)
        k += 4
    while k < K:
        vk = np.int32(v[k])
        wk = w_t[k]
        for i in range(N):
            acc[i] += np.int32(wk[i]) * vk
        k += 1


@kernel
def gemv_int8(acc, w, v):
    """acc (N,) int32 += w (N, K) int8 @ v (K,) int32: one dot product per row (the head)."""
    for i in range(w.shape[0]):
        row = w[i]
        s = np.int32(0)
        for k in range(v.shape[0]):
            s += np.int32(row[k]) * np.int32(v[k])
        acc[i] += s


@kernel
def input_projection_int8(ax, x, w_ih_t, b_x):
    """Stage 1 of every cell: ax (G,) int32 = b_x + W_x x for x (I,), w_ih_t (I, G) int8, b_x (G,) int32."""
    ax[:] = b_x
    gemv_t_int8(ax, w_ih_t, x)


@int_inline
def requantize_int8(acc, m, s):
    """acc int32 -> int16 sat16(MBQM(acc, m, s)): an accumulator into Q3.12 (or rnn_relu's s_h)."""
    return sat16(multiply_by_quantized_multiplier(acc, m, s))


@int_inline
def gate_term_int8(acc, m, s):
    """acc int32 -> int64 MBQM(acc, m, s), not saturated: one requantised term of a gate pre-activation (yx, yh,
    a peephole's yp), whose sum with the others saturates once (module docstring). MBQM saturates to int32."""
    return np.int64(multiply_by_quantized_multiplier(acc, m, s))


@int_inline
def gate_term_right_int8(acc, m, s):
    """gate_term_int8 for s <= 0 (int8_math.multiply_by_quantized_multiplier_right): the same integer."""
    return np.int64(multiply_by_quantized_multiplier_right(acc, m, s))


@kernel
def gate_sums_int8(ax, ah, rq, lo, hi, left):
    """Rows lo..hi-1, in place: ax[g] = sat16(yx + yh), the gate pre-activation in Q3.12 (int16 values), the two
    int32 terms added exactly in int64 (|yx + yh| <= 2^32) and saturated once. left: some shift of rq is > 0 (the
    layer's L_LEFT_SHIFT); otherwise the shorter, equal form runs."""
    if left:
        for g in range(lo, hi):
            ax[g] = sat16(gate_term_int8(ax[g], rq[0, g], rq[1, g]) + gate_term_int8(ah[g], rq[2, g], rq[3, g]))
    else:
        for g in range(lo, hi):
            ax[g] = sat16(gate_term_right_int8(ax[g], rq[0, g], rq[1, g])
                          + gate_term_right_int8(ah[g], rq[2, g], rq[3, g]))


@int_inline
def peephole_int8(w, c, m, s):
    """MBQM(w * c, m, s) as int64, not saturated: one peephole term yp in Q3.12, w a peephole weight and c the
    cell state, both int16 values (their product exact in int32); (m, s) the gate's multiplier for w's scale
    times c's."""
    return gate_term_int8(np.int64(w) * np.int64(c), m, s)


@int_inline
def peephole_row_int8(ax, ah, rq, g, yp):
    """sat16(yx + yh + yp) of gate row g (an lstm's i, f or o with peepholes) from its accumulators ax[g], ah[g]:
    the three int32 terms added exactly in int64 (|sum| < 3 * 2^31) and saturated once."""
    return sat16(gate_term_int8(ax[g], rq[0, g], rq[1, g]) + gate_term_int8(ah[g], rq[2, g], rq[3, g]) + yp)


@kernel
def sigmoid_rows_int8(a, lo, hi):
    """Rows lo..hi-1 of a, in place: Q3.12 -> sigmoid in Q0.15."""
    for g in range(lo, hi):
        a[g] = sigmoid_q15(a[g])


@kernel
def tanh_rows_int8(a, lo, hi):
    """Rows lo..hi-1 of a, in place: Q3.12 -> tanh in Q0.15."""
    for g in range(lo, hi):
        a[g] = tanh_q15(a[g])


@kernel
def clip_rows_int8(a, lo, hi, q):
    """Rows lo..hi-1 of a, in place: clamped to [-q, q] (a clip in the pre-activation's integers)."""
    for g in range(lo, hi):
        a[g] = min(max(a[g], -q), q)


@kernel
def gru_blend_int8(h, ax):
    """h = (1 - z) n + z h from z (rows H..2H-1) and n (rows 2H..3H-1) of ax, Q0.15."""
    H = h.shape[0]
    for j in range(H):
        z = np.int64(ax[H + j])
        n = np.int64(ax[2 * H + j])
        h[j] = sat16(rounding_divide_by_pot((Q15_ONE - z) * n + z * np.int64(h[j]), 15))


@kernel
def rnn_update_int8(h, ax, ah, rq, relu, left):
    """h (H,) = tanh_q15 or max(0, .) of sat16(yx + yh); rq (4, G) rows Mx, Sx, Mh, Sh."""
    H = h.shape[0]
    gate_sums_int8(ax, ah, rq, 0, H, left)
    if relu:
        for j in range(H):
            h[j] = max(ax[j], np.int32(0))
    else:
        tanh_rows_int8(ax, 0, H)
        h[:] = ax[:H]


@kernel
def lstm_update_int8(h, c, ax, ah, rq, p, left):
    """The LSTM's gates (i f g o) and its cell and hidden update; c (H,) in scale 2^p. Row by row passes:
    the pre-activations, then each gate's activation, then the cell, so every pass is one straight loop."""
    H = h.shape[0]
    gate_sums_int8(ax, ah, rq, 0, 4 * H, left)
    sigmoid_rows_int8(ax, 0, 2 * H)
    tanh_rows_int8(ax, 2 * H, 3 * H)
    sigmoid_rows_int8(ax, 3 * H, 4 * H)
    shift = 30 + p
    for j in range(H):
        i = np.int64(ax[j])
        f = np.int64(ax[H + j])
        g = np.int64(ax[2 * H + j])
        o = np.int64(ax[3 * H + j])
        kept = sat16(rounding_divide_by_pot(f * np.int64(c[j]), 15))
        added = sat16(rounding_divide_by_pot(i * g, shift))
        cj = sat16(np.int64(kept) + np.int64(added))
        c[j] = cj
        h[j] = sat16(rounding_divide_by_pot(o * np.int64(tanh_of_cell_q15(cj, p)), 15))


@kernel
def gru_update_int8(h, ax, ah, rq, left, q):
    """The GRU's gates (r z n, PyTorch's linear_before_reset form) and its blend h = (1 - z) n + z h. q: the clip
    (extension path): every pre-activation, n's after its r term, clamped to [-q, q]; q >= 32768 clips nothing
    and skips the clamps (PyTorch's cell)."""
    H = h.shape[0]
    clip = q < Q15_ONE
    gate_sums_int8(ax, ah, rq, 0, 2 * H, left)
    if clip:
        clip_rows_int8(ax, 0, 2 * H, q)
    sigmoid_rows_int8(ax, 0, 2 * H)
    for j in range(H):  # n = sat16(yx_n + RDBPOT(r * yh_n, 15)): r <= 32767, |yh_n| <= 2^31, |r * yh_n| < 2^46
        k = 2 * H + j
        r = np.int64(ax[j])
        if left:
            yx_n, yh_n = gate_term_int8(ax[k], rq[0, k], rq[1, k]), gate_term_int8(ah[k], rq[2, k], rq[3, k])
        else:
            yx_n = gate_term_right_int8(ax[k], rq[0, k], rq[1, k])
            yh_n = gate_term_right_int8(ah[k], rq[2, k], rq[3, k])
        ax[k] = sat16(yx_n + np.int64(rounding_divide_by_pot(r * yh_n, 15)))
    if clip:
        clip_rows_int8(ax, 2 * H, 3 * H, q)
    tanh_rows_int8(ax, 2 * H, 3 * H)
    gru_blend_int8(h, ax)


@kernel
def head_int8(acc, h, w, b):
    """acc (O,) int32 = b + w (O, Hin) int8 @ h (Hin,): the head's integer logits."""
    acc[:] = b
    gemv_int8(acc, w, h)


@kernel
def dense_int8(out, v, w, b, rq, activation):
    """One hidden head layer, integers only: out (U,) int32 (int16 values) = act(sat16(MBQM(b + w @ v, M, S)))
    per row, w (U, in) int8, v (in,) int32 (int16 values), b (U,) int32, rq (2U,) = [M (U) | S (U)]; act is
    max(0, .) (relu, in s_out), tanh_q15 / sigmoid_q15 (the sum requantised to Q3.12, out in Q0.15), gelu_q12 (gelu
    and gelu_tanh: Q3.12 in and out) or none."""
    U = out.shape[0]
    out[:] = b
    gemv_int8(out, w, v)
    for r in range(U):
        q = requantize_int8(out[r], rq[r], rq[U + r])
        if activation == HID_RELU:
            q = max(q, np.int16(0))
        elif activation == HID_TANH:
            q = tanh_q15(q)
        elif activation == HID_SIGMOID:
            q = sigmoid_q15(q)
        elif activation == HID_GELU or activation == HID_GELU_TANH:
            q = gelu_q12(q)
        out[r] = q


@kernel
def dense_layers_int8(work, v, qblob, iblob, dense):
    """The head's hidden layers on v (int16 values), each output at its D_OFF_OUT in work; returns the last one's;
    as kernels_f32.dense_layers_f32."""
    for k in range(dense.shape[0]):
        row = dense[k]
        U = row[D_UNITS]
        out = work[row[D_OFF_OUT] : row[D_OFF_OUT] + U]
        dense_int8(out, v, _matrix(qblob, row[D_OFF_W], U, row[D_N_IN]), iblob[row[D_OFF_B] : row[D_OFF_B] + U],
                   iblob[row[D_OFF_S] : row[D_OFF_S] + 2 * U], row[D_ACTIVATION])
        v = out
    return v


@kernel
def dequantize_head_int8(y, acc, scale, activation):
    """y (O,) float32 = act(acc * scale): the host's one float step after the integer model."""
    for o in range(y.shape[0]):
        y[o] = np.float32(acc[o]) * scale[o]
    activate_head_f32(y, activation)


@kernel
def quantize_input_int8(xq, x, mean, std, scale):
    """xq (F,) int32 = clamp(rint(((x - mean) / std) / scale), -32767, 32767): float32 in, the int8 model's input."""
    for k in range(xq.shape[0]):
        v = np.rint(((x[k] - mean[k]) / std[k]) / scale)
        xq[k] = np.int32(min(max(v, np.float32(-INPUT_MAX)), np.float32(INPUT_MAX)))


@kernel
def quantize_inputs_int8(xq, X, lengths, mean, std, scale):
    """xq (B, T, F) int32 = quantize_input_int8 of X (B, T, F) float32 for t < lengths[b] (run())."""
    for b in range(X.shape[0]):
        for t in range(lengths[b]):
            quantize_input_int8(xq[b, t], X[b, t], mean, std, scale)
