"""float32 kernels of the ONNX layer extensions (runtime/spec.py: linear_before_reset false, input_forget,
peepholes, clip, other activation functions, initial state), taken when a layer's L_FLAGS has an F_STEP bit
(`lstm_update_ext_f32`, `gru_rz_ext_f32` / `gru_update_ext_f32`, `rnn_update_ext_f32`, shared with int8w like the
plain updates of runtime/kernels_f32.py); PyTorch's cells keep the plain path, unchanged. The functions: tanh and
sigmoid as kernels_f32's; affine, leaky/thresholded relu, hard sigmoid and softsign exactly; scaled tanh, elu and
softplus from the same exp (softplus = log1p(e^x), and x itself above 20, where they agree in float32).
"""

import numpy as np

from rnnedge.runtime.jit import fast_kernel, kernel
from rnnedge.runtime.kernels_f32 import (
    _ONE,
    _TWO,
    _ZERO,
    _matrix,
    exp_f32,
    gemv_t_acc_f32,
    sigmoid_f32,
    tanh_f32,
)
from rnnedge.runtime.layout import (
    CELL_GRU,
    CELL_LSTM,
    F_INIT,
    F_INPUT_FORGET,
    F_PEEPHOLES,
    F_RESET_BEFORE,
    FN_AFFINE,
    FN_ELU,
    FN_HARDSIGMOID,
    FN_LEAKYRELU,
    FN_RELU,
    FN_SCALEDTANH,
    FN_SIGMOID,
    FN_SOFTPLUS,
    FN_SOFTSIGN,
    FN_TANH,
    FN_THRESHOLDEDRELU,
    L_CELL,
    L_FLAGS,
    L_HIDDEN,
    L_OFF_BHH,
    L_OFF_EXT,
    L_OFF_INIT,
    L_OFF_P,
    L_OFF_WHH,
)

_SOFTPLUS_LINEAR = np.float32(20.0)  # above it log1p(e^x) == x in float32


@fast_kernel
def activate_f32(a, code, alpha, beta):
    """a (n,) in place: one ONNX activation function (layout.FN_* code) with its alpha and beta."""
    if code == FN_SIGMOID:
        sigmoid_f32(a)
    elif code == FN_TANH:
        tanh_f32(a)
    elif code == FN_RELU:
        for i in range(a.shape[0]):
            a[i] = max(a[i], _ZERO)
    elif code == FN_AFFINE:
        for i in range(a.shape[0]):
            a[i] = alpha * a[i] + beta
    elif code == FN_LEAKYRELU:
        for i in range(a.shape[0]):
            if a[i] < _ZERO:
                a[i] = alpha * a[i]
    elif code == FN_THRESHOLDEDRELU:
        for i in range(a.shape[0]):
            if a[i] <= alpha:
                a[i] = _ZERO
    elif code == FN_SCALEDTANH:
        for i in range(a.shape[0]):
            a[i] = alpha * (_TWO / (_ONE + exp_f32(-_TWO * beta * a[i])) - _ONE)
    elif code == FN_HARDSIGMOID:
        for i in range(a.shape[0]):
            a[i] = min(max(alpha * a[i] + beta, _ZERO), _ONE)
    elif code == FN_ELU:
        for i in range(a.shape[0]):
            if a[i] < _ZERO:
                a[i] = alpha * (exp_f32(a[i]) - _ONE)
    elif code == FN_SOFTSIGN:
        for i in range(a.shape[0]):
            a[i] = a[i] / (_ONE + abs(a[i]))
    elif code == FN_SOFTPLUS:
        for i in range(a.shape[0]):
            if a[i] <= _SOFTPLUS_LINEAR:
                a[i] = np.log1p(exp_f32(a[i]))


@kernel
def function_f32(a, ext, k):
    """a in place: the layer-direction's k-th activation function, from its L_OFF_EXT block ext."""
    activate_f32(a, np.int64(ext[1 + 3 * k]), ext[2 + 3 * k], ext[3 + 3 * k])


@fast_kernel
def clip_f32(a, clip):
    """a (n,) in place: clamped to [-clip, clip] when clip > 0 (ONNX's clip of a pre-activation)."""
    if clip > _ZERO:
        for i in range(a.shape[0]):
            a[i] = min(max(a[i], -clip), clip)


@kernel
def rnn_update_ext_f32(h, pre, ext):
    """The RNN's update with the extensions: h (H,) = f(clip(pre (H,))), f the layer's function."""
    clip_f32(pre, ext[0])
    function_f32(pre, ext, 0)
    h[:] = pre


@kernel
def lstm_update_ext_f32(h, c, gates, ext, p, flags):
    """The LSTM's update with the extensions: gates (4H,) pre-activations (i f g o), spent; p (3H,) peepholes
    [p_i; p_f; p_o] (read with F_PEEPHOLES). i, f see c_prev, o sees c_new; each pre-activation is clipped, then
    i, f, o take function 0, the cell input function 1, c function 2; input_forget sets f = 1 - i."""
    H = h.shape[0]
    peep = (flags & F_PEEPHOLES) != 0
    if peep:
        for j in range(H):
            gates[j] += p[j] * c[j]
            gates[H + j] += p[H + j] * c[j]
    clip_f32(gates[: 3 * H], ext[0])
    function_f32(gates[:H], ext, 0)
    if flags & F_INPUT_FORGET:
        for j in range(H):
            gates[H + j] = _ONE - gates[j]
    else:
        function_f32(gates[H : 2 * H], ext, 0)
    function_f32(gates[2 * H : 3 * H], ext, 1)
    for j in range(H):
        c[j] = gates[H + j] * c[j] + gates[j] * gates[2 * H + j]
    o = gates[3 * H :]
    if peep:
        for j in range(H):
            o[j] += p[2 * H + j] * c[j]
    clip_f32(o, ext[0])
    function_f32(o, ext, 0)
    out = gates[:H]  # reuse buffer: the input gate is spent
    out[:] = c
    function_f32(out, ext, 2)
    for j in range(H):
        h[j] = o[j] * out[j]


@kernel
def gru_update_ext_f32(h, gh, gx, ext, reset_before):
    """The GRU's update with the extensions: gh (3H,) holds the recurrent sums (r, z rows; the n rows are
    W_hn h + b_hn, or with reset_before W_hn (r * h) + b_hn, already formed by the caller from r in gh[:H]
    when reset_before), spent. r and z are formed here unless reset_before (the caller formed them first)."""
    H = h.shape[0]
    rz = gh[: 2 * H]
    if not reset_before:
        gru_rz_ext_f32(rz, gx, ext)
    n = gh[2 * H :]
    if reset_before:
        for j in range(H):
            n[j] += gx[2 * H + j]
    else:
        for j in range(H):
            n[j] = gx[2 * H + j] + rz[j] * n[j]
    clip_f32(n, ext[0])
    function_f32(n, ext, 1)
    for j in range(H):
        z = rz[H + j]
        h[j] = (_ONE - z) * n[j] + z * h[j]


@kernel
def gru_rz_ext_f32(rz, gx, ext):
    """rz (2H,) in place: r, z = f(clip(recurrent sums + gx[:2H]))."""
    for j in range(rz.shape[0]):
        rz[j] += gx[j]
    clip_f32(rz, ext[0])
    function_f32(rz, ext, 0)


@kernel
def recurrent_step_ext_f32(h, c, scratch, gx, blob, row):
    """Stage 2 for a layer-direction whose step has extensions (L_FLAGS & F_STEP); scratch (G (+ H for
    reset_before),)."""
    H = row[L_HIDDEN]
    gates = gx.shape[0]
    flags = row[L_FLAGS]
    w_hh_t = _matrix(blob, row[L_OFF_WHH], H, gates)
    b_hh = blob[row[L_OFF_BHH] : row[L_OFF_BHH] + gates]
    n_fn = 3 if row[L_CELL] == CELL_LSTM else 2 if row[L_CELL] == CELL_GRU else 1
    ext = blob[row[L_OFF_EXT] : row[L_OFF_EXT] + 1 + 3 * n_fn]
    acc = scratch[:gates]
    if row[L_CELL] == CELL_GRU and (flags & F_RESET_BEFORE) != 0:
        rz = acc[: 2 * H]
        rz[:] = b_hh[: 2 * H]
        gemv_t_acc_f32(rz, w_hh_t[:, : 2 * H], h)
        gru_rz_ext_f32(rz, gx, ext)
        rh = scratch[gates : gates + H]
        for j in range(H):
            rh[j] = rz[j] * h[j]
        n = acc[2 * H :]
        n[:] = b_hh[2 * H :]
        gemv_t_acc_f32(n, w_hh_t[:, 2 * H :], rh)
        gru_update_ext_f32(h, acc, gx, ext, True)
        return
    for j in range(gates):
        acc[j] = gx[j] + b_hh[j] if row[L_CELL] != CELL_GRU else b_hh[j]
    gemv_t_acc_f32(acc, w_hh_t, h)
    if row[L_CELL] == CELL_LSTM:
        lstm_update_ext_f32(h, c, acc, ext, blob[row[L_OFF_P] : row[L_OFF_P] + 3 * H], flags)
    elif row[L_CELL] == CELL_GRU:
        gru_update_ext_f32(h, acc, gx, ext, False)
    else:
        rnn_update_ext_f32(h, acc, ext)


@kernel
def initial_state_f32(h, c, blob, row):
    """h, c (H,) = the layer-direction's initial state: h0 (and lstm c0) from the layout, or zeros."""
    H = row[L_HIDDEN]
    if row[L_FLAGS] & F_INIT:
        h[:] = blob[row[L_OFF_INIT] : row[L_OFF_INIT] + H]
        if row[L_CELL] == CELL_LSTM:
            c[:] = blob[row[L_OFF_INIT] + H : row[L_OFF_INIT] + 2 * H]
        else:
            c[:] = 0.0
    else:
        h[:] = 0.0
        c[:] = 0.0
