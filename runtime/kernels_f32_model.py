"""The whole float32 model: one step of every layer and the head (`model_step_dense_f32`, `model_step_tokens_f32`),
and the whole-sequence pass of a model that cannot stream, built from runtime/kernels_f32.py's cell kernels and
runtime/kernels_f32_ext.py's extensions.

The whole model's step is one call, so a stream pays the numba dispatch once per step, with four arguments: the
stream's one float32 buffer (output, state, scratch), the input, the weights (one float32 blob) and one int64 table
of offsets and sizes (runtime/layout.py). The step returns a status: OK, BAD_VALUE (NaN or infinity in x, or in its
normalised value (x - mean) / std: a finite x near float32's limit overflows there) or BAD_TOKEN (id out of range).
It checks the input before touching the state, so a refused step loses nothing. Dense and token inputs have one
entry each.
"""

import numpy as np

from rnnedge.runtime.jit import kernel
from rnnedge.runtime.kernels_f32 import (
    BAD_TOKEN,
    BAD_VALUE,
    OK,
    _matrix,
    dense_f32,
    dense_layers_f32,
    gate_rows,
    gru_step_f32,
    head_f32,
    input_projection_f32,
    lstm_step_f32,
    normalise_f32,
    normalised_finite_f32,
    rnn_step_f32,
    split_table,
)
from rnnedge.runtime.kernels_f32_ext import initial_state_f32, recurrent_step_ext_f32
from rnnedge.runtime.layout import (
    CELL_GRU,
    CELL_LSTM,
    CELL_RNN_RELU,
    F_STEP,
    L_CELL,
    L_FLAGS,
    L_HIDDEN,
    L_N_IN,
    L_OFF_BHH,
    L_OFF_BIH,
    L_OFF_C,
    L_OFF_H,
    L_OFF_WHH,
    L_OFF_WIH,
    M_ACTIVATION,
    M_HEAD_IN,
    M_N_DENSE,
    M_N_IN,
    M_N_LAYERS,
    M_OFF_HEAD_B,
    M_OFF_HEAD_W,
    M_OFF_IN_A,
    M_OFF_IN_B,
    M_OUT,
    M_STATE,
    M_VOCAB,
)


@kernel
def recurrent_step_f32(h, c, scratch, gx, blob, row):
    """Stage 2: one layer-direction's recurrent update from its input projection gx (G,).

    h, c (H,) state, in/out (c unused but by LSTM); scratch (G,), (G + H) for a gru with linear_before_reset
    false; row the layer's line of `layers`.
    """
    if row[L_FLAGS] & F_STEP:
        recurrent_step_ext_f32(h, c, scratch, gx, blob, row)
        return
    H = row[L_HIDDEN]
    gates = gx.shape[0]
    w_hh_t = _matrix(blob, row[L_OFF_WHH], H, gates)
    b_hh = blob[row[L_OFF_BHH] : row[L_OFF_BHH] + gates]
    scratch = scratch[:gates]
    if row[L_CELL] == CELL_LSTM:
        lstm_step_f32(h, c, scratch, gx, w_hh_t, b_hh)
    elif row[L_CELL] == CELL_GRU:
        gru_step_f32(h, scratch, gx, w_hh_t, b_hh)
    else:
        rnn_step_f32(h, scratch, gx, w_hh_t, b_hh, row[L_CELL] == CELL_RNN_RELU)


@kernel
def cell_step_f32(h, c, scratch, x, blob, row):
    """One layer-direction step: input projection, then recurrent update. scratch (layout.scratch_rows)."""
    gates = gate_rows(row)
    gx = scratch[:gates]
    input_projection_f32(gx, x, _matrix(blob, row[L_OFF_WIH], row[L_N_IN], gates),
                         blob[row[L_OFF_BIH] : row[L_OFF_BIH] + gates])
    recurrent_step_f32(h, c, scratch[gates:], gx, blob, row)


@kernel
def layers_and_head_f32(y, state, work, inp, blob, layers, dense, model):
    """Every layer, then the head (its hidden layers, if any, in work), for one stream: y (O,); state (S,)
    in/out; work (N,) scratch; inp (I,)."""
    for l in range(model[M_N_LAYERS]):
        row = layers[2 * l]
        H = row[L_HIDDEN]
        h = state[row[L_OFF_H] : row[L_OFF_H] + H]
        c = state[row[L_OFF_C] : row[L_OFF_C] + H]
        cell_step_f32(h, c, work, inp, blob, row)
        inp = h
    if model[M_N_DENSE] > 0:
        inp = dense_layers_f32(work, inp, blob, dense)
    head_f32(y, inp, _matrix(blob, model[M_OFF_HEAD_W], model[M_OUT], model[M_HEAD_IN]),
             blob[model[M_OFF_HEAD_B] : model[M_OFF_HEAD_B] + model[M_OUT]], model[M_ACTIVATION])


@kernel
def stream_buffers(buf, batch, model):
    """Views of a stream's one buffer: y (B, O) output, state (B, S), scratch (N,); float32, or int32 for int8 (its
    integer logits, int16 state values and scratch)."""
    n_y = batch * model[M_OUT]
    n_state = batch * model[M_STATE]
    y = buf[:n_y].reshape((batch, model[M_OUT]))
    state = buf[n_y : n_y + n_state].reshape((batch, model[M_STATE]))
    return y, state, buf[n_y + n_state :]


@kernel
def model_step_dense_f32(buf, x, blob, table):
    """One time step of a forward-only dense-input model for B independent streams.

    buf: the stream's y (B, O), state (B, S) every layer's h (and c), scratch (N,) (see stream_buffers);
    x (B, F) raw float32 input; blob (W,) weights; table: `model` then `layers` (runtime/layout.py).
    Returns OK, or BAD_VALUE (x or its normalised value not finite: normalised_finite_f32) having written nothing.
    """
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
        layers_and_head_f32(y[b], state[b], scratch[n_in:], v, blob, layers, dense, model)
    return OK


@kernel
def model_step_tokens_f32(buf, x, blob, table):
    """One time step of a forward-only token-input model for B independent streams.

    As model_step_dense_f32, with x (B,) int64 token ids: BAD_TOKEN (and nothing written) when an id is
    outside [0, vocab). The embedding row is read in place, no copy.
    """
    model, layers, dense = split_table(table)
    for t in x:
        if t < 0 or t >= model[M_VOCAB]:
            return BAD_TOKEN
    y, state, scratch = stream_buffers(buf, x.shape[0], model)
    n_in = model[M_N_IN]
    for b in range(x.shape[0]):
        start = model[M_OFF_IN_A] + x[b] * n_in
        layers_and_head_f32(y[b], state[b], scratch, blob[start : start + n_in], blob, layers, dense, model)
    return OK


@kernel
def input_projections_f32(gx, inp, lengths, w_ih_t, b_ih):
    """Stage 1 for whole sequences: gx[b, t] = W_ih inp[b, t] + b_ih for t < lengths[b].

    gx (B, T, G); inp (B, T, I); the same kernel and order as a step, so run() equals step() bit for bit.
    """
    for b in range(inp.shape[0]):
        for t in range(lengths[b]):
            input_projection_f32(gx[b, t], inp[b, t], w_ih_t, b_ih)


@kernel
def sequence_layer_f32(out, gx, lengths, blob, row, reverse, col):
    """One layer-direction over whole sequences: out[b, t, col:col+H] = h_t for t < lengths[b].

    out (B, T, W) layer output, written in place; gx (B, T, G) input projections of every step;
    lengths (B,) int64; row the layer-direction's line of `layers`; reverse runs t from lengths[b]-1 to 0.
    Each sequence starts from the initial state (initial_state_f32).
    """
    H = row[L_HIDDEN]
    h = np.zeros(H, dtype=np.float32)
    c = np.zeros(H, dtype=np.float32)
    scratch = np.zeros(gx.shape[2] + H, dtype=np.float32)
    for b in range(gx.shape[0]):
        initial_state_f32(h, c, blob, row)
        n = lengths[b]
        for s in range(n):
            t = n - 1 - s if reverse else s
            recurrent_step_f32(h, c, scratch, gx[b, t], blob, row)
            out[b, t, col : col + H] = h


@kernel
def denses_f32(out, feats, w, b, activation):
    """out (N, U) = one hidden head layer on each row of feats (N, in); the step's dense_f32, row by row."""
    for n in range(feats.shape[0]):
        dense_f32(out[n], feats[n], w, b, activation)


@kernel
def heads_f32(y, feats, w, b, activation):
    """y (N, O) = head of each row of feats (N, Hin); w (O, Hin)."""
    for n in range(feats.shape[0]):
        head_f32(y[n], feats[n], w, b, activation)
