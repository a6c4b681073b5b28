"""int8w kernels: int8 weight matrices with one float32 scale per output row; activations and state float32.

The same stages, names and arguments as runtime/kernels_f32.py, with `_int8w` for `_f32`. Weights stay int8 in
memory (4x fewer weight bytes to hold and to stream per step than f32); a mat-vec sums int8 weights times
float32 values in float32, lane by lane across output rows, and applies each row's scale once at the end:

    gx[i] = b[i] + scale[i] * sum_k Wq^T[k, i] * v[k]

so a row scale multiplies a finished sum, never a weight. Activations, the gate updates and the head's
softmax / sigmoid are the f32 kernels themselves (kernels_f32.lstm_update_f32, ...), not copies; so are the
ONNX extensions' updates (kernels_f32_ext.lstm_update_ext_f32, ...), taken when a layer's L_FLAGS has an F_STEP bit.

A step takes five arguments: the stream's float32 buffer, the input, the int8 blob `qblob` (every matrix), the
float32 blob (scales, biases, normalisation) and the int64 table (runtime/layout.py). Token inputs dequantise
their embedding row (scale * q, n_in floats) into the front of the scratch; run() does the same in NumPy,
with the same float32 product, so a step equals run() bit for bit.
"""

import numpy as np

from rnnedge.runtime.jit import fast_kernel, kernel
from rnnedge.runtime.kernels_f32 import (
    BAD_TOKEN,
    BAD_VALUE,
    OK,
    _matrix,
    activate_head_f32,
    activate_hidden_f32,
    gate_rows,
    gru_update_f32,
    lstm_update_f32,
    normalise_f32,
    normalised_finite_f32,
    rnn_update_f32,
    split_table,
)
from rnnedge.runtime.kernels_f32_ext import (
    gru_rz_ext_f32,
    gru_update_ext_f32,
    initial_state_f32,
    lstm_update_ext_f32,
    rnn_update_ext_f32,
)
from rnnedge.runtime.kernels_f32_model import stream_buffers
from rnnedge.runtime.layout import (
    CELL_GRU,
    CELL_LSTM,
    CELL_RNN_RELU,
    D_ACTIVATION,
    D_N_IN,
    D_OFF_B,
    D_OFF_OUT,
    D_OFF_S,
    D_OFF_W,
    D_UNITS,
    F_RESET_BEFORE,
    F_STEP,
    L_CELL,
    L_FLAGS,
    L_HIDDEN,
    L_N_IN,
    L_OFF_BHH,
    L_OFF_BIH,
    L_OFF_C,
    L_OFF_EXT,
    L_OFF_H,
    L_OFF_P,
    L_OFF_SHH,
    L_OFF_SIH,
    L_OFF_WHH,
    L_OFF_WIH,
    M_ACTIVATION,
    M_HEAD_IN,
    M_N_DENSE,
    M_N_IN,
    M_N_LAYERS,
    M_OFF_HEAD_B,
    M_OFF_HEAD_S,
    M_OFF_HEAD_W,
    M_OFF_IN_A,
    M_OFF_IN_B,
    M_OFF_IN_S,
    M_OUT,
    M_VOCAB,
)


@fast_kernel
def gemv_t_int8w(acc, wq_t, v):
    """acc (N,) = wq_t (K, N)^T @ v (K,), int8 weights times float32 values, unscaled: four rows per pass."""
    K, N = wq_t.shape
    acc[:] = 0.0
    k = 0
    while k + 4 <= K:
        v0, v1, v2, v3 = v[k], v[k + 1], v[k + 2], v[k + 3]
        w0, w1, w2, w3 = wq_t[k], wq_t[k + 1], wq_t[k + 2], wq_t[k + 3]
        for i in range(N):
            acc[i] += (np.float32(w0[i]) * v0 + np.float32(w1[i]) * v1
                       + np.float32(w2[i]) * v2 + np.float32(w3[i]) * v3)
        k += 4
    while k < K:
        vk = v[k]
        wk = wq_t[k]
        for i in range(N):
            acc[i] += np.float32(wk[i]) * vk
        k += 1


@fast_kernel
def scale_add_int8w(out, base, scale, acc):
    """out (N,) = base (N,) + scale (N,) * acc (N,): each output row's scale on its finished sum."""
    for i in range(out.shape[0]):
        out[i] = base[i] + scale[i] * acc[i]


@fast_kernel
def gemv_acc_int8w(out, wq, scale, v):
    """out (N,) += scale (N,) * (wq (N, K) @ v (K,)): one dot product per row, for few long rows (the head)."""
    for i in range(wq.shape[0]):
        row = wq[i]
        acc = np.float32(0.0)
        for k in range(v.shape[0]):
            acc += np.float32(row[k]) * v[k]
        out[i] += scale[i] * acc


@kernel
def dequantize_row_int8w(out, q, scale):
    """out (K,) = scale * q (K,) int8: one embedding row, as float32."""
    for k in range(out.shape[0]):
        out[k] = scale * np.float32(q[k])


@kernel
def input_projection_int8w(gx, x, wq_ih_t, s_ih, b_ih):
    """Stage 1 of every cell: gx (G,) = b_ih + s_ih * (Wq_ih x) for x (I,), wq_ih_t (I, G) int8, s_ih, b_ih (G,)."""
    gemv_t_int8w(gx, wq_ih_t, x)
    scale_add_int8w(gx, b_ih, s_ih, gx)


@kernel
def rnn_step_int8w(h, pre, gx, wq_hh_t, s_hh, b_hh, relu):
    """One plain RNN step: h = act(gx + b_hh + s_hh * (Wq_hh h)); as rnn_step_f32, w_hh int8 (H, H)."""
    gemv_t_int8w(pre, wq_hh_t, h)
    for j in range(h.shape[0]):
        pre[j] = gx[j] + b_hh[j] + s_hh[j] * pre[j]
    rnn_update_f32(h, pre, relu)


@kernel
def lstm_step_int8w(h, c, gates, gx, wq_hh_t, s_hh, b_hh):
    """One LSTM step (i f g o): gates = gx + b_hh + s_hh * (Wq_hh h); as lstm_step_f32, w_hh int8 (H, 4H)."""
    gemv_t_int8w(gates, wq_hh_t, h)
    for j in range(gates.shape[0]):
        gates[j] = gx[j] + b_hh[j] + s_hh[j] * gates[j]
    lstm_update_f32(h, c, gates)


@kernel
def gru_step_int8w(h, gh, gx, wq_hh_t, s_hh, b_hh):
    """One GRU step (r z n): gh = b_hh + s_hh * (Wq_hh h); as gru_step_f32, w_hh int8 (H, 3H)."""
    gemv_t_int8w(gh, wq_hh_t, h)
    scale_add_int8w(gh, b_hh, s_hh, gh)
    gru_update_f32(h, gh, gx)


@kernel
def head_int8w(y, h, wq, s, b, activation):
    """y (O,) = act(b (O,) + s (O,) * (wq (O, Hin) int8 @ h (Hin,))), act = none, softmax or sigmoid."""
    y[:] = b
    gemv_acc_int8w(y, wq, s, h)
    activate_head_f32(y, activation)


@kernel
def recurrent_step_ext_int8w(h, c, scratch, gx, qblob, blob, row):
    """Stage 2 for a layer-direction whose step has extensions (L_FLAGS & F_STEP); as
    kernels_f32_ext.recurrent_step_ext_f32 with int8 w_hh. The folded quantised file has b_hh zero except a
    reset-after gru's n rows."""
    H = row[L_HIDDEN]
    gates = gx.shape[0]
    flags = row[L_FLAGS]
    wq_hh_t = _matrix(qblob, row[L_OFF_WHH], H, gates)
    s_hh = blob[row[L_OFF_SHH] : row[L_OFF_SHH] + gates]
    b_hh = blob[row[L_OFF_BHH] : row[L_OFF_BHH] + gates]
    n_fn = 3 if row[L_CELL] == CELL_LSTM else 2 if row[L_CELL] == CELL_GRU else 1
    ext = blob[row[L_OFF_EXT] : row[L_OFF_EXT] + 1 + 3 * n_fn]
    acc = scratch[:gates]
    if row[L_CELL] == CELL_GRU and (flags & F_RESET_BEFORE) != 0:
        rz = acc[: 2 * H]
        gemv_t_int8w(rz, wq_hh_t[:, : 2 * H], h)
        scale_add_int8w(rz, b_hh[: 2 * H], s_hh[: 2 * H], rz)
        gru_rz_ext_f32(rz, gx, ext)
        rh = scratch[gates : gates + H]
        for j in range(H):
            rh[j] = rz[j] * h[j]
        n = acc[2 * H :]
        gemv_t_int8w(n, wq_hh_t[:, 2 * H :], rh)
        scale_add_int8w(n, b_hh[2 * H :], s_hh[2 * H :], n)
        gru_update_ext_f32(h, acc, gx, ext, True)
        return
    gemv_t_int8w(acc, wq_hh_t, h)
    if row[L_CELL] == CELL_GRU:
        scale_add_int8w(acc, b_hh, s_hh, acc)
        gru_update_ext_f32(h, acc, gx, ext, False)
        return
    for j in range(gates):
        acc[j] = gx[j] + b_hh[j] + s_hh[j] * acc[j]
    if row[L_CELL] == CELL_LSTM:
        lstm_update_ext_f32(h, c, acc, ext, blob[row[L_OFF_P] : row[L_OFF_P] + 3 * H], flags)
    else:
        rnn_update_ext_f32(h, acc, ext)


@kernel
def recurrent_step_int8w(h, c, scratch, gx, qblob, blob, row):
    """Stage 2: one layer-direction's recurrent update from its input projection gx (G,); as recurrent_step_f32."""
    if row[L_FLAGS] & F_STEP:
        recurrent_step_ext_int8w(h, c, scratch, gx, qblob, blob, row)
        return
    H = row[L_HIDDEN]
    gates = gx.shape[0]
    wq_hh_t = _matrix(qblob, row[L_OFF_WHH], H, gates)
    s_hh = blob[row[L_OFF_SHH] : row[L_OFF_SHH] + gates]
    b_hh = blob[row[L_OFF_BHH] : row[L_OFF_BHH] + gates]
    scratch = scratch[:gates]
    if row[L_CELL] == CELL_LSTM:
        lstm_step_int8w(h, c, scratch, gx, wq_hh_t, s_hh, b_hh)
    elif row[L_CELL] == CELL_GRU:
        gru_step_int8w(h, scratch, gx, wq_hh_t, s_hh, b_hh)
    else:
        rnn_step_int8w(h, scratch, gx, wq_hh_t, s_hh, b_hh, row[L_CELL] == CELL_RNN_RELU)


@kernel
def cell_step_int8w(h, c, scratch, x, qblob, blob, row):
    """One layer-direction step: input projection, then recurrent update. scratch (layout.scratch_rows)."""
    gates = gate_rows(row)
    gx = scratch[:gates]
    input_projection_int8w(gx, x, _matrix(qblob, row[L_OFF_WIH], row[L_N_IN], gates),
                           blob[row[L_OFF_SIH] : row[L_OFF_SIH] + gates],
                           blob[row[L_OFF_BIH] : row[L_OFF_BIH] + gates])
    recurrent_step_int8w(h, c, scratch[gates:], gx, qblob, blob, row)


@kernel
def dense_int8w(out, v, wq, s, b, activation):
    """out (U,) = act(b (U,) + s (U,) * (wq (U, in) int8 @ v (in,))): one hidden head layer, as the head."""
    out[:] = b
    gemv_acc_int8w(out, wq, s, v)
    activate_hidden_f32(out, activation)


@kernel
def dense_layers_int8w(work, v, qblob, blob, dense):
    """The head's hidden layers on v; as kernels_f32.dense_layers_f32, int8 weights with row scales."""
    for k in range(dense.shape[0]):
        row = dense[k]
        U = row[D_UNITS]
        out = work[row[D_OFF_OUT] : row[D_OFF_OUT] + U]
        dense_int8w(out, v, _matrix(qblob, row[D_OFF_W], U, row[D_N_IN]), blob[row[D_OFF_S] : row[D_OFF_S] + U],
                    blob[row[D_OFF_B] : row[D_OFF_B] + U], row[D_ACTIVATION])
        v = out
    return v


@kernel
def layers_and_head_int8w(y, state, work, inp, qblob, blob, layers, dense, model):
    """Every layer, then the head (its hidden layers, if any, in work), for one stream: y (O,); state (S,)
    in/out; work (N,) scratch; inp (I,)."""
    for l in range(model[M_N_LAYERS]):
        row = layers[2 * l]
        H = row[L_HIDDEN]
        h = state[row[L_OFF_H] : row[L_OFF_H] + H]
        c = state[row[L_OFF_C] : row[L_OFF_C] + H]
        cell_step_int8w(h, c, work, inp, qblob, blob, row)
        inp = h
    if model[M_N_DENSE] > 0:
        inp = dense_layers_int8w(work, inp, qblob, blob, dense)
    out = model[M_OUT]
    head_int8w(y, inp, _matrix(qblob, model[M_OFF_HEAD_W], out, model[M_HEAD_IN]),
               blob[model[M_OFF_HEAD_S] : model[M_OFF_HEAD_S] + out],
               blob[model[M_OFF_HEAD_B] : model[M_OFF_HEAD_B] + out], model[M_ACTIVATION])


@kernel
def model_step_dense_int8w(buf, x, qblob, blob, table):
    """One time step of a forward-only dense-input model for B streams; as model_step_dense_f32, with the
    int8 matrices in qblob (Q,) and scales, biases, normalisation in blob (W,) float32."""
    model, layers, dense = split_table(table)
    n_in = model[M_N_IN]
    mean = blob[model[M_OFF_IN_A] : model[M_OFF_IN_A] + n_in]
    std = blob[model[M_OFF_IN_B] : model[M_OFF_IN_B] + n_in]
    if not normalised_finite_f32(x, mean, std):
        return BAD_VALUE
    y, state, scratch = stream_buffers(buf, x.shape[0], model)
    v = scratch[:n_in]
    for b in range(x.shape[0]):
        normalise_f32(v, x[b], mean, std)
        layers_and_head_int8w(y[b], state[b], scratch[n_in:], v, qblob, blob, layers, dense, model)
    return OK


@kernel
def model_step_tokens_int8w(buf, x, qblob, blob, table):
    """One time step of a forward-only token-input model; as model_step_tokens_f32. The int8 embedding row is
    dequantised into the front of the scratch (n_in floats)."""
    model, layers, dense = split_table(table)
    for t in x:
        if t < 0 or t >= model[M_VOCAB]:
            return BAD_TOKEN
    y, state, scratch = stream_buffers(buf, x.shape[0], model)
    n_in = model[M_N_IN]
    v = scratch[:n_in]
    for b in range(x.shape[0]):
        start = model[M_OFF_IN_A] + x[b] * n_in
        dequantize_row_int8w(v, qblob[start : start + n_in], blob[model[M_OFF_IN_S] + x[b]])
        layers_and_head_int8w(y[b], state[b], scratch[n_in:], v, qblob, blob, layers, dense, model)
    return OK


@kernel
def input_projections_int8w(gx, inp, lengths, wq_ih_t, s_ih, b_ih):
    """Stage 1 for whole sequences: gx[b, t] = b_ih + s_ih * (Wq_ih inp[b, t]) for t < lengths[b]; the same
    kernel and order as a step, so run() equals step() bit for bit."""
    for b in range(inp.shape[0]):
        for t in range(lengths[b]):
            input_projection_int8w(gx[b, t], inp[b, t], wq_ih_t, s_ih, b_ih)


@kernel
def sequence_layer_int8w(out, gx, lengths, qblob, blob, row, reverse, col):
    """One layer-direction over whole sequences; as sequence_layer_f32."""
    H = row[L_HIDDEN]
    h = np.zeros(H, dtype=np.float32)
    c = np.zeros(H, dtype=np.float32)
    scratch = np.zeros(gx.shape[2] + H, dtype=np.float32)
    for b in range(gx.shape[0]):
        initial_state_f32(h, c, blob, row)
        n = lengths[b]
        for s in range(n):
            t = n - 1 - s if reverse else s
            recurrent_step_int8w(h, c, scratch, gx[b, t], qblob, blob, row)
            out[b, t, col : col + H] = h


@kernel
def denses_int8w(out, feats, wq, s, b, activation):
    """out (N, U) = one hidden head layer on each row of feats (N, in); the step's dense_int8w, row by row."""
    for n in range(feats.shape[0]):
        dense_int8w(out[n], feats[n], wq, s, b, activation)


@kernel
def heads_int8w(y, feats, wq, s, b, activation):
    """y (N, O) = head of each row of feats (N, Hin); wq (O, Hin) int8, s (O,) its row scales."""
    for n in range(feats.shape[0]):
        head_int8w(y[n], feats[n], wq, s, b, activation)
