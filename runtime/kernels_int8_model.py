"""The whole int8 model: one step of every layer and the head (`model_step_dense_int8`,
`model_step_tokens_int8`) and the whole-sequence pass of a model that cannot stream, built from
runtime/kernels_int8.py's cell kernels and runtime/kernels_int8_ext.py's extensions (the integers of docs/int8.md).
"""

import numpy as np

from rnnedge.runtime.jit import kernel
from rnnedge.runtime.kernels_f32 import (
    BAD_TOKEN,
    BAD_VALUE,
    OK,
    _matrix,
    gate_rows,
    normalised_finite_f32,
    split_table,
)
from rnnedge.runtime.kernels_f32_model import stream_buffers
from rnnedge.runtime.kernels_int8 import (
    Q15_ONE,
    dense_int8,
    dense_layers_int8,
    dequantize_head_int8,
    gemv_t_int8,
    gru_update_int8,
    head_int8,
    input_projection_int8,
    lstm_update_int8,
    quantize_input_int8,
    rnn_update_int8,
)
from rnnedge.runtime.kernels_int8_ext import initial_state_int8, recurrent_step_ext_int8
from rnnedge.runtime.layout import (
    CELL_GRU,
    CELL_LSTM,
    CELL_RNN_RELU,
    F_STEP,
    L_CELL,
    L_FLAGS,
    L_HIDDEN,
    L_LEFT_SHIFT,
    L_N_IN,
    L_OFF_BHH,
    L_OFF_BIH,
    L_OFF_C,
    L_OFF_H,
    L_OFF_SIH,
    L_OFF_WHH,
    L_OFF_WIH,
    L_PARAM,
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


@kernel
def recurrent_step_int8(h, c, ah, ax, qblob, iblob, row):
    """Stage 2: one layer-direction's recurrent update from its input projection ax (G,) int32.

    h, c (H,) int32 state (int16 values), in/out (c only for LSTM); ah int32 scratch, (G,) or (G + H) for a gru
    with linear_before_reset false (layout.scratch_rows). Layers with step extensions take
    recurrent_step_ext_int8.
    """
    if row[L_FLAGS] & F_STEP:
        recurrent_step_ext_int8(h, c, ah, ax, qblob, iblob, row)
        return
    H = row[L_HIDDEN]
    G = ax.shape[0]
    acc = ah[:G]
    acc[:] = iblob[row[L_OFF_BHH] : row[L_OFF_BHH] + G]
    gemv_t_int8(acc, _matrix(qblob, row[L_OFF_WHH], H, G), h)
    rq = iblob[row[L_OFF_SIH] : row[L_OFF_SIH] + 4 * G].reshape((4, G))
    left = row[L_LEFT_SHIFT] != 0
    if row[L_CELL] == CELL_LSTM:
        lstm_update_int8(h, c, ax, acc, rq, row[L_PARAM], left)
    elif row[L_CELL] == CELL_GRU:
        gru_update_int8(h, ax, acc, rq, left, np.int32(Q15_ONE))
    else:
        rnn_update_int8(h, ax, acc, rq, row[L_CELL] == CELL_RNN_RELU, left)


@kernel
def cell_step_int8(h, c, scratch, x, qblob, iblob, row):
    """One layer-direction step: input projection, then recurrent update. scratch (2G,) int32, (2G + H) for a
    gru with linear_before_reset false."""
    G = gate_rows(row)
    ax = scratch[:G]
    input_projection_int8(ax, x, _matrix(qblob, row[L_OFF_WIH], row[L_N_IN], G),
                          iblob[row[L_OFF_BIH] : row[L_OFF_BIH] + G])
    recurrent_step_int8(h, c, scratch[G:], ax, qblob, iblob, row)


@kernel
def denses_int8(out, feats, w, b, rq, activation):
    """out (N, U) = one hidden head layer on each row of feats (N, in) int32; the step's dense_int8, row by row."""
    for n in range(feats.shape[0]):
        dense_int8(out[n], feats[n], w, b, rq, activation)


@kernel
def layers_and_head_int8(acc, state, work, inp, qblob, iblob, layers, dense, model):
    """Every layer, then the head (its hidden layers, if any, in work), for one stream, integers only: acc (O,)
    int32 logits; state (S,) in/out; work (2G,) scratch; inp (I,) int32 quantised input."""
    for l in range(model[M_N_LAYERS]):
        row = layers[2 * l]
        H = row[L_HIDDEN]
        h = state[row[L_OFF_H] : row[L_OFF_H] + H]
        c = state[row[L_OFF_C] : row[L_OFF_C] + H]
        cell_step_int8(h, c, work, inp, qblob, iblob, row)
        inp = h
    if model[M_N_DENSE] > 0:
        inp = dense_layers_int8(work, inp, qblob, iblob, dense)
    out = model[M_OUT]
    head_int8(acc, inp, _matrix(qblob, model[M_OFF_HEAD_W], out, model[M_HEAD_IN]),
              iblob[model[M_OFF_HEAD_B] : model[M_OFF_HEAD_B] + out])


@kernel
def model_step_dense_int8(y, ibuf, x, qblob, iblob, blob, table):
    """One time step of a forward-only dense-input int8 model for B streams.

    y (B, O) float32 dequantised output; ibuf the stream's int32 buffer (kernels_f32_model.stream_buffers: acc
    (B, O) integer logits, state (B, S), scratch); x (B, F) raw float32 input, quantised into the front of the
    scratch; qblob int8 matrices, iblob int32 biases and multipliers, blob float32 normalisation and scales; table
    (runtime/layout.py).
    Returns OK, or BAD_VALUE having written nothing: x or its normalised value (x - mean) / std not finite
    (kernels_f32.normalised_finite_f32). The quantiser's clamp would hide such a value where the float precisions'
    state would turn NaN; one rule refuses it in all three.
    """
    model, layers, dense = split_table(table)
    n_in = model[M_N_IN]
    mean = blob[model[M_OFF_IN_A] : model[M_OFF_IN_A] + n_in]
    std = blob[model[M_OFF_IN_B] : model[M_OFF_IN_B] + n_in]
    if not normalised_finite_f32(x, mean, std):
        return BAD_VALUE
    acc, state, scratch = stream_buffers(ibuf, x.shape[0], model)
    scale = blob[model[M_OFF_IN_S]]
    out_scale = blob[model[M_OFF_HEAD_S] : model[M_OFF_HEAD_S] + model[M_OUT]]
    xq = scratch[:n_in]
    for b in range(x.shape[0]):
        quantize_input_int8(xq, x[b], mean, std, scale)
        layers_and_head_int8(acc[b], state[b], scratch[n_in:], xq, qblob, iblob, layers, dense, model)
        dequantize_head_int8(y[b], acc[b], out_scale, model[M_ACTIVATION])
    return OK


@kernel
def model_step_tokens_int8(y, ibuf, x, qblob, iblob, blob, table):
    """One time step of a forward-only token-input int8 model; as model_step_dense_int8, x (B,) int64 ids
    (BAD_TOKEN, nothing written, when one is outside [0, vocab)). The int8 embedding row is widened into
    the front of the scratch."""
    model, layers, dense = split_table(table)
    for t in x:
        if t < 0 or t >= model[M_VOCAB]:
            return BAD_TOKEN
    acc, state, scratch = stream_buffers(ibuf, x.shape[0], model)
    n_in = model[M_N_IN]
    out_scale = blob[model[M_OFF_HEAD_S] : model[M_OFF_HEAD_S] + model[M_OUT]]
    xq = scratch[:n_in]
    for b in range(x.shape[0]):
        start = model[M_OFF_IN_A] + x[b] * n_in
        for k in range(n_in):
            xq[k] = np.int32(qblob[start + k])
        layers_and_head_int8(acc[b], state[b], scratch[n_in:], xq, qblob, iblob, layers, dense, model)
        dequantize_head_int8(y[b], acc[b], out_scale, model[M_ACTIVATION])
    return OK


@kernel
def input_projections_int8(ax, inp, lengths, w_ih_t, b_x):
    """Stage 1 for whole sequences: ax[b, t] = b_x + W_x inp[b, t] for t < lengths[b]; integers, so run()
    equals step() exactly."""
    for b in range(inp.shape[0]):
        for t in range(lengths[b]):
            input_projection_int8(ax[b, t], inp[b, t], w_ih_t, b_x)


@kernel
def sequence_layer_int8(out, ax, lengths, qblob, iblob, row, reverse, col):
    """One layer-direction over whole sequences: out[b, t, col:col+H] = h_t (int32, int16 values) for
    t < lengths[b]; reverse runs t from lengths[b]-1 down to 0 (a bidirectional layer's backward half, or a
    reverse layer). Every sequence starts from the layer-direction's initial state (initial_state_int8)."""
    H = row[L_HIDDEN]
    h = np.zeros(H, dtype=np.int32)
    c = np.zeros(H, dtype=np.int32)
    ah = np.zeros(ax.shape[2] + H, dtype=np.int32)  # G, and H for a gru's r * h (linear_before_reset false)
    for b in range(ax.shape[0]):
        initial_state_int8(h, c, iblob, row)
        n = lengths[b]
        for s in range(n):
            t = n - 1 - s if reverse else s
            recurrent_step_int8(h, c, ah, ax[b, t], qblob, iblob, row)
            out[b, t, col : col + H] = h


@kernel
def heads_int8(y, acc, feats, w, b, scale, activation):
    """y (N, O) float32 and acc (N, O) int32: the head of each row of feats (N, Hin) int32."""
    for n in range(feats.shape[0]):
        head_int8(acc[n], feats[n], w, b)
        dequantize_head_int8(y[n], acc[n], scale, activation)
