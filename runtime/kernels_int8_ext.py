"""int8 kernels of the ONNX layer extensions (L_FLAGS & F_STEP != 0: clip, input_forget, peepholes,
linear_before_reset false, initial state), on runtime/kernels_int8.py's integers (docs/int8.md); PyTorch's cells
keep kernels_int8's plain path, unchanged.
"""

import numpy as np

from rnnedge.runtime.int8_math import (
    rounding_divide_by_pot,
    sat16,
    sigmoid_q15,
    tanh_of_cell_q15,
)
from rnnedge.runtime.jit import kernel
from rnnedge.runtime.kernels_f32 import _matrix
from rnnedge.runtime.kernels_int8 import (
    Q15_ONE,
    clip_rows_int8,
    gate_sums_int8,
    gemv_t_int8,
    gru_blend_int8,
    gru_update_int8,
    peephole_int8,
    peephole_row_int8,
    sigmoid_rows_int8,
    tanh_rows_int8,
)
from rnnedge.runtime.layout import (
    CELL_GRU,
    CELL_LSTM,
    CELL_RNN_RELU,
    F_CLIP,
    F_INIT,
    F_INPUT_FORGET,
    F_PEEPHOLES,
    F_RESET_BEFORE,
    L_CELL,
    L_CLIP_Q,
    L_FLAGS,
    L_HIDDEN,
    L_LEFT_SHIFT,
    L_OFF_BHH,
    L_OFF_INIT,
    L_OFF_P,
    L_OFF_SIH,
    L_OFF_WHH,
    L_PARAM,
)


@kernel
def rnn_update_ext_int8(h, ax, ah, rq, relu, left, q):
    """rnn_update_int8 with the pre-activation clamped to [-q, q] before tanh_q15 or max(0, .)."""
    H = h.shape[0]
    gate_sums_int8(ax, ah, rq, 0, H, left)
    clip_rows_int8(ax, 0, H, q)
    if relu:
        for j in range(H):
            h[j] = max(ax[j], np.int32(0))
    else:
        tanh_rows_int8(ax, 0, H)
        h[:] = ax[:H]


@kernel
def lstm_update_ext_int8(h, c, ax, ah, rq, p, left, q, input_forget, peep):
    """lstm_update_int8 with every pre-activation clamped to [-q, q], with input_forget f = 1 - i in Q0.15,
    min(32768 - i, 32767), and with peepholes: peep = [P (3H) | M (3) | S (3)] int32 (empty: none), i and f
    adding their term of the previous c, o of the new c (module docstring)."""
    H = h.shape[0]
    peepholes = peep.shape[0] > 0
    m_o, s_o = np.int32(0), np.int32(0)
    if peepholes:
        m_i, m_f, m_o = peep[3 * H], peep[3 * H + 1], peep[3 * H + 2]
        s_i, s_f, s_o = peep[3 * H + 3], peep[3 * H + 4], peep[3 * H + 5]
        for j in range(H):
            ax[j] = peephole_row_int8(ax, ah, rq, j, peephole_int8(peep[j], c[j], m_i, s_i))
            ax[H + j] = peephole_row_int8(ax, ah, rq, H + j, peephole_int8(peep[H + j], c[j], m_f, s_f))
        gate_sums_int8(ax, ah, rq, 2 * H, 3 * H, left)
        clip_rows_int8(ax, 0, 3 * H, q)  # o's row waits for the new c: ax, ah keep its accumulators until then
    else:
        gate_sums_int8(ax, ah, rq, 0, 4 * H, left)
        clip_rows_int8(ax, 0, 4 * H, q)
        sigmoid_rows_int8(ax, 3 * H, 4 * H)
    sigmoid_rows_int8(ax, 0, H)
    if input_forget:
        for j in range(H):
            ax[H + j] = min(Q15_ONE - ax[j], np.int32(32767))
    else:
        sigmoid_rows_int8(ax, H, 2 * H)
    tanh_rows_int8(ax, 2 * H, 3 * H)
    shift = 30 + p
    for j in range(H):
        i = np.int64(ax[j])
        f = np.int64(ax[H + j])
        g = np.int64(ax[2 * H + j])
        kept = sat16(rounding_divide_by_pot(f * np.int64(c[j]), 15))
        added = sat16(rounding_divide_by_pot(i * g, shift))
        cj = sat16(np.int64(kept) + np.int64(added))
        c[j] = cj
        if peepholes:
            pre = peephole_row_int8(ax, ah, rq, 3 * H + j, peephole_int8(peep[2 * H + j], cj, m_o, s_o))
            o = np.int64(sigmoid_q15(min(max(np.int32(pre), -q), q)))
        else:
            o = np.int64(ax[3 * H + j])
        h[j] = sat16(rounding_divide_by_pot(o * np.int64(tanh_of_cell_q15(cj, p)), 15))




@kernel
def gru_reset_before_int8(h, ax, ah, rh, w_hh_t, rq, left, q):
    """The GRU of linear_before_reset false (ONNX's default): r, z from W_h h as usual, then rh = RDBPOT(r * h,
    15), ah_n = W_hn rh (no bias: b_hn is in b_x) and n = tanh_q15(clip(sat16(yx_n + yh_n))), yh_n = MBQM(ah_n)
    not saturated (gate_sums_int8). ah (G,) holds the r and z rows' b_h + W_h h on entry; rh (H,) int32 scratch;
    w_hh_t (H, G) int8."""
    H = h.shape[0]
    gate_sums_int8(ax, ah, rq, 0, 2 * H, left)
    clip_rows_int8(ax, 0, 2 * H, q)
    sigmoid_rows_int8(ax, 0, 2 * H)
    for j in range(H):
        rh[j] = rounding_divide_by_pot(np.int64(ax[j]) * np.int64(h[j]), 15)  # |rh| <= |h|
    ah_n = ah[2 * H : 3 * H]
    ah_n[:] = 0
    gemv_t_int8(ah_n, w_hh_t[:, 2 * H :], rh)
    gate_sums_int8(ax, ah, rq, 2 * H, 3 * H, left)
    clip_rows_int8(ax, 2 * H, 3 * H, q)
    tanh_rows_int8(ax, 2 * H, 3 * H)
    gru_blend_int8(h, ax)


@kernel
def recurrent_step_ext_int8(h, c, ah, ax, qblob, iblob, row):
    """Stage 2 for a layer-direction whose step has extensions (L_FLAGS & F_STEP); ah (G,), (G + H) for a
    gru with linear_before_reset false."""
    H = row[L_HIDDEN]
    G = ax.shape[0]
    flags = row[L_FLAGS]
    q = np.int32(row[L_CLIP_Q]) if flags & F_CLIP else np.int32(Q15_ONE)  # 32768: clamps nothing
    w_hh_t = _matrix(qblob, row[L_OFF_WHH], H, G)
    rq = iblob[row[L_OFF_SIH] : row[L_OFF_SIH] + 4 * G].reshape((4, G))
    left = row[L_LEFT_SHIFT] != 0
    acc = ah[:G]
    acc[:] = iblob[row[L_OFF_BHH] : row[L_OFF_BHH] + G]
    if row[L_CELL] == CELL_GRU and flags & F_RESET_BEFORE:
        gemv_t_int8(acc[: 2 * H], w_hh_t[:, : 2 * H], h)
        gru_reset_before_int8(h, ax, acc, ah[G : G + H], w_hh_t, rq, left, q)
        return
    gemv_t_int8(acc, w_hh_t, h)
    if row[L_CELL] == CELL_LSTM:
        peep = iblob[row[L_OFF_P] : row[L_OFF_P] + 3 * H + 6] if flags & F_PEEPHOLES else iblob[:0]
        lstm_update_ext_int8(h, c, ax, acc, rq, row[L_PARAM], left, q, (flags & F_INPUT_FORGET) != 0, peep)
    elif row[L_CELL] == CELL_GRU:
        gru_update_int8(h, ax, acc, rq, left, q)
    else:
        rnn_update_ext_int8(h, ax, acc, rq, row[L_CELL] == CELL_RNN_RELU, left, q)


@kernel
def initial_state_int8(h, c, iblob, row):
    """h, c (H,) = the layer-direction's initial state: h0 (and lstm c0) from iblob at L_OFF_INIT, or zeros."""
    H = row[L_HIDDEN]
    if row[L_FLAGS] & F_INIT:
        h[:] = iblob[row[L_OFF_INIT] : row[L_OFF_INIT] + H]
        if row[L_CELL] == CELL_LSTM:
            c[:] = iblob[row[L_OFF_INIT] + H : row[L_OFF_INIT] + 2 * H]
        else:
            c[:] = 0
    else:
        h[:] = 0
        c[:] = 0
