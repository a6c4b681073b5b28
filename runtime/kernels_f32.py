"""float32 kernels: one function per cell, output arguments first, every buffer with its shape.

Weight layout chosen for the kernel: each matrix is stored transposed, W^T (inputs, rows), so a
mat-vec is a sum of scaled weight rows and its inner loop runs across output rows (vector lanes)
without reordering any sum. Gates stay in PyTorch's order (lstm i f g o, gru r z n).

Activations use one vectorisable exp: Cody-Waite range reduction x = k ln2 + r, a degree-6 polynomial
for e^r on |r| <= ln2/2 (relative error ~1.2e-7) and 2^k built in the exponent bits. sigmoid and tanh
derive from it; their absolute error stays below 2.5e-7.

The whole model's step is one call, so a stream pays the numba dispatch once per
step, with four arguments: the stream's one float32 buffer (output, state, scratch), the input, the
weights (one float32 blob) and one int64 table of offsets and sizes (runtime/layout.py). The step returns a status:
OK, BAD_VALUE (NaN or infinity in x, or in its normalised value (x - mean) / std: a finite x near float32's limit
overflows there) or BAD_TOKEN (id out of range). It checks the input before touching the state, so a refused step
loses nothing. Dense and token inputs have one entry each (`model_step_dense_f32`, `model_step_tokens_f32`).

The ONNX layer extensions (runtime/spec.py: linear_before_reset false, input_forget, peepholes, clip, other
activation functions, initial state) run on a second path, taken when a layer's L_FLAGS has an F_STEP bit
(`lstm_update_ext_f32`, `gru_gates_ext_f32` / `gru_blend_ext_f32`, `rnn_update_ext_f32`, shared with int8w like
the plain updates); PyTorch's cells keep the plain path above, unchanged. The functions: tanh and sigmoid as
above; affine, leaky/thresholded relu, hard sigmoid and softsign exactly; scaled tanh, elu and softplus from the
same exp (softplus = log1p(e^x), and x itself above 20, where they agree in float32).
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from rnnedge.runtime.jit import fast_inline, fast_kernel, kernel
from rnnedge.runtime.layout import (
    ACT_LOG_SOFTMAX,
    ACT_SIGMOID,
    ACT_SOFTMAX,
    CELL_GRU,
    CELL_LSTM,
    CELL_RNN_RELU,
    D_ACTIVATION,
    D_COLUMNS,
    D_N_IN,
    D_OFF_B,
    D_OFF_OUT,
    D_OFF_W,
    D_UNITS,
    F_INIT,
    F_INPUT_FORGET,
    F_PEEPHOLES,
    F_RESET_BEFORE,
    F_STEP,
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
    HID_GELU,
    HID_GELU_TANH,
    HID_RELU,
    HID_SIGMOID,
    HID_TANH,
    L_CELL,
    L_COLUMNS,
    L_FLAGS,
    L_HIDDEN,
    L_N_IN,
    L_OFF_BHH,
    L_OFF_BIH,
    L_OFF_C,
    L_OFF_EXT,
    L_OFF_H,
    L_OFF_INIT,
    L_OFF_P,
    L_OFF_WHH,
    L_OFF_WIH,
    M_ACTIVATION,
    M_FIELDS,
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

OK, BAD_VALUE, BAD_TOKEN = 0, 1, 2

_ONE = np.float32(1.0)
_TWO = np.float32(2.0)
_HALF = np.float32(0.5)
_EXP_LO = np.float32(-87.0)
_EXP_HI = np.float32(88.0)
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # ln 2 split so k * _LN2_HI is exact for |k| < 2^8
_LN2_LO = np.float32(-2.12194440e-4)
_C2, _C3, _C4 = np.float32(1 / 2), np.float32(1 / 6), np.float32(1 / 24)
_C5, _C6 = np.float32(1 / 120), np.float32(1 / 720)
_ZERO = np.float32(0.0)


@intrinsic
def _f32_from_bits(typingctx, bits):
    """The float32 whose bits are the low 32 bits of an integer (a no-op that LLVM vectorises)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = builder.trunc(args[0], ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


@fast_inline
def exp_f32(x):
    """e^x for float32 x; clamps x to [-87, 88], where e^x is a normal float32. Any input is safe: infinities
    clamp, and a NaN (which passes the clamp) takes k from 0, so the int32 conversion never sees an out-of-range
    value; r carries the NaN to the result (firmware_ref's rnnedge_exp_f32, line for line)."""
    x = min(max(x, _EXP_LO), _EXP_HI)
    t = x * _LOG2E + _HALF
    k = np.floor(_ZERO if np.isnan(t) else t)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = _ONE + r * (_ONE + r * (_C2 + r * (_C3 + r * (_C4 + r * (_C5 + r * _C6)))))
    return p * _f32_from_bits((np.int32(k) + 127) << 23)


@fast_kernel
def sigmoid_f32(a):
    """a (n,): in place, a = 1 / (1 + e^-a)."""
    for i in range(a.shape[0]):
        a[i] = _ONE / (_ONE + exp_f32(-a[i]))


@fast_kernel
def tanh_f32(a):
    """a (n,): in place, a = tanh(a) = 2 / (1 + e^-2a) - 1."""
    for i in range(a.shape[0]):
        a[i] = _TWO / (_ONE + exp_f32(-_TWO * a[i])) - _ONE


@fast_kernel
def gemv_t_acc_f32(out, w_t, v):
    """out (N,) += w_t (K, N)^T @ v (K,): four weight rows per pass, lanes across N."""
    K, N = w_t.shape
    k = 0
    while k + 4 <= K:
        v0, v1, v2, v3 = v[k], v[k + 1], v[k + 2], v[k + 3]
        w0, w1, w2, w3 = w_t[k], w_t[k + 1], w_t[k + 2], w_t[k + 3]
        for i in range(N):
            out[i] += w0[i] * v0 + w1[i] * v1 + w2[i] * v2 + w3[i] * v3
        k += 4
    while k < K:
        vk = v[k]
        wk = w_t[k]
        for i in range(N):
            out[i] += wk[i] * vk
        k += 1


@fast_kernel
def gemv_acc_f32(out, w, v):
    """out (N,) += w (N, K) @ v (K,): one dot product per row, for few long rows (the head)."""
    for i in range(w.shape[0]):
        row = w[i]
        acc = np.float32(0.0)
        for k in range(v.shape[0]):
            acc += row[k] * v[k]
        out[i] += acc


@kernel
def input_projection_f32(gx, x, w_ih_t, b_ih):
    """Stage 1 of every cell: gx (G,) = W_ih x + b_ih for x (I,), w_ih_t (I, G), b_ih (G,).

    A step computes it here; model.run computes it for every step of a layer before its recurrence.
    """
    gx[:] = b_ih
    gemv_t_acc_f32(gx, w_ih_t, x)


@kernel
def rnn_step_f32(h, pre, gx, w_hh_t, b_hh, relu):
    """One plain RNN step: h = act(gx + W_hh h + b_hh), act = relu or tanh; gx = W_ih x + b_ih.

    h (H,) hidden, in/out; pre (H,) scratch; gx (H,) input projection; w_hh_t (H, H); b_hh (H,).
    """
    H = h.shape[0]
    for j in range(H):
        pre[j] = gx[j] + b_hh[j]
    gemv_t_acc_f32(pre, w_hh_t, h)
    rnn_update_f32(h, pre, relu)


@kernel
def rnn_update_f32(h, pre, relu):
    """The RNN's activation, shared by every precision: h (H,) = act(pre (H,)); pre is spent."""
    if relu:
        for j in range(h.shape[0]):
            h[j] = max(pre[j], np.float32(0.0))
    else:
        tanh_f32(pre)
        h[:] = pre


@kernel
def lstm_step_f32(h, c, gates, gx, w_hh_t, b_hh):
    """One LSTM step (gate order i f g o): gates = gx + W_hh h + b_hh; c = f c + i g; h = o tanh(c).

    h (H,) hidden, in/out; c (H,) cell, in/out; gates (4H,) scratch; gx (4H,) input projection;
    w_hh_t (H, 4H); b_hh (4H,).
    """
    H = h.shape[0]
    for j in range(4 * H):
        gates[j] = gx[j] + b_hh[j]
    gemv_t_acc_f32(gates, w_hh_t, h)
    lstm_update_f32(h, c, gates)


@kernel
def lstm_update_f32(h, c, gates):
    """The LSTM's gates and state update, shared by every precision: h, c (H,) in/out; gates (4H,)
    pre-activations (i f g o), spent."""
    H = h.shape[0]
    sigmoid_f32(gates[: 2 * H])
    tanh_f32(gates[2 * H : 3 * H])
    sigmoid_f32(gates[3 * H :])
    for j in range(H):
        c[j] = gates[H + j] * c[j] + gates[j] * gates[2 * H + j]
    tanh_c = gates[:H]  # reuse buffer: the input gate is spent
    tanh_c[:] = c
    tanh_f32(tanh_c)
    for j in range(H):
        h[j] = gates[3 * H + j] * tanh_c[j]


@kernel
def gru_step_f32(h, gh, gx, w_hh_t, b_hh):
    """One GRU step, PyTorch's form (gate order r z n): n = tanh(gx_n + r * (W_hn h + b_hn)).

    h (H,) hidden, in/out; gh (3H,) scratch; gx (3H,) input projection (read only);
    w_hh_t (H, 3H); b_hh (3H,).
    """
    gh[:] = b_hh
    gemv_t_acc_f32(gh, w_hh_t, h)
    gru_update_f32(h, gh, gx)


@kernel
def gru_update_f32(h, gh, gx):
    """The GRU's gates and state update, shared by every precision: h (H,) in/out; gh (3H,) = W_hh h + b_hh,
    spent; gx (3H,) = W_ih x + b_ih."""
    H = h.shape[0]
    rz = gh[: 2 * H]  # reuse buffer: r, z overwrite their recurrent parts
    for j in range(2 * H):
        rz[j] += gx[j]
    sigmoid_f32(rz)
    n = gh[2 * H :]  # reuse buffer: n overwrites W_hn h + b_hn
    for j in range(H):
        n[j] = gx[2 * H + j] + rz[j] * n[j]
    tanh_f32(n)
    for j in range(H):
        z = rz[H + j]
        h[j] = (_ONE - z) * n[j] + z * h[j]


@kernel
def normalise_f32(out, x, mean, std):
    """out (F,) = (x - mean) / std for x, mean, std (F,): the raw sensor values to the model's scale."""
    for j in range(x.shape[0]):
        out[j] = (x[j] - mean[j]) / std[j]


@kernel
def normalised_finite_f32(x, mean, std):
    """True when normalise_f32 of every row of x (B, F) is finite. A NaN or an infinity in x fails, and so does a
    finite x whose normalised value overflows float32 (x = 3e38 with std < 1): either would make the state NaN."""
    for b in range(x.shape[0]):
        for j in range(x.shape[1]):
            if not np.isfinite((x[b, j] - mean[j]) / std[j]):
                return False
    return True


@kernel
def sequences_finite_f32(X, mean, std, lengths):
    """True when normalise_f32 of every step of X (B, T, F) within lengths (B,) is finite: run()'s check, one
    compiled pass instead of numpy's temporaries (the steps past a length are never read)."""
    for b in range(X.shape[0]):
        for t in range(lengths[b]):
            for j in range(X.shape[2]):
                if not np.isfinite((X[b, t, j] - mean[j]) / std[j]):
                    return False
    return True


@kernel
def head_f32(y, h, w, b, activation):
    """y (O,) = act(w (O, Hin) @ h (Hin,) + b (O,)), act = none, softmax, log_softmax or sigmoid."""
    y[:] = b
    gemv_acc_f32(y, w, h)
    activate_head_f32(y, activation)


@kernel
def activate_head_f32(y, activation):
    """y (O,) in place: act(y), act = none, softmax, log_softmax or sigmoid; shared by every precision.
    log_softmax is (y - max) - log(sum e^(y - max)): the sum is >= 1, so its log never sees an underflow."""
    if activation == ACT_SOFTMAX:
        top = y.max()
        total = np.float32(0.0)
        for o in range(y.shape[0]):
            y[o] = np.exp(y[o] - top)
            total += y[o]
        for o in range(y.shape[0]):
            y[o] /= total
    elif activation == ACT_LOG_SOFTMAX:
        top = y.max()
        total = np.float32(0.0)
        for o in range(y.shape[0]):
            total += np.exp(y[o] - top)
        log_total = np.log(total)
        for o in range(y.shape[0]):
            y[o] = (y[o] - top) - log_total
    elif activation == ACT_SIGMOID:
        for o in range(y.shape[0]):
            y[o] = _ONE / (_ONE + np.exp(-y[o]))


# -- the head's hidden dense layers (spec head.hidden, layout `dense`) -------------------------------------------------
# erf by Abramowitz & Stegun 7.1.26: 1 - t (a1 + t (a2 + ...)) e^-x^2, t = 1 / (1 + p |x|), odd in x; |error| <= 1.5e-7
_ERF_P = np.float32(0.3275911)
_ERF_A1, _ERF_A2, _ERF_A3 = np.float32(0.254829592), np.float32(-0.284496736), np.float32(1.421413741)
_ERF_A4, _ERF_A5 = np.float32(-1.453152027), np.float32(1.061405429)
_RSQRT2 = np.float32(0.7071067811865476)
_GELU_TANH_K = np.float32(0.7978845608028654)  # sqrt(2 / pi)
_GELU_TANH_C = np.float32(0.044715)


@fast_inline
def erf_f32(x):
    """erf(x) for float32 x (A&S 7.1.26 with exp_f32)."""
    z = abs(x)
    t = _ONE / (_ONE + _ERF_P * z)
    poly = t * (_ERF_A1 + t * (_ERF_A2 + t * (_ERF_A3 + t * (_ERF_A4 + t * _ERF_A5))))
    e = _ONE - poly * exp_f32(-z * z)
    return e if x >= _ZERO else -e


@fast_kernel
def activate_hidden_f32(a, code):
    """a (U,) in place: a hidden head layer's activation (layout.HID_* code); HID_NONE leaves a as it is.
    gelu is x/2 (1 + erf(x / sqrt 2)), gelu_tanh x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), PyTorch's two."""
    if code == HID_RELU:
        for i in range(a.shape[0]):
            a[i] = max(a[i], _ZERO)
    elif code == HID_TANH:
        tanh_f32(a)
    elif code == HID_SIGMOID:
        sigmoid_f32(a)
    elif code == HID_GELU:
        for i in range(a.shape[0]):
            a[i] = _HALF * a[i] * (_ONE + erf_f32(a[i] * _RSQRT2))
    elif code == HID_GELU_TANH:
        for i in range(a.shape[0]):
            x = a[i]
            u = _GELU_TANH_K * (x + _GELU_TANH_C * x * x * x)
            a[i] = _HALF * x * (_ONE + (_TWO / (_ONE + exp_f32(-_TWO * u)) - _ONE))


@kernel
def dense_f32(out, v, w, b, activation):
    """out (U,) = act(w (U, in) @ v (in,) + b (U,)): one hidden head layer, summed as the head is."""
    out[:] = b
    gemv_acc_f32(out, w, v)
    activate_hidden_f32(out, activation)


@kernel
def dense_layers_f32(work, v, blob, dense):
    """The head's hidden layers on v (in_0,), each output at its D_OFF_OUT in work; returns the last one's."""
    for k in range(dense.shape[0]):
        row = dense[k]
        U = row[D_UNITS]
        out = work[row[D_OFF_OUT] : row[D_OFF_OUT] + U]
        dense_f32(out, v, _matrix(blob, row[D_OFF_W], U, row[D_N_IN]), blob[row[D_OFF_B] : row[D_OFF_B] + U],
                  row[D_ACTIVATION])
        v = out
    return v


@kernel
def split_table(table):
    """The `model`, `layers` and `dense` views of a layout's one int64 table (runtime/layout.py)."""
    model = table[:M_FIELDS]
    n_rows = 2 * model[M_N_LAYERS]
    end = M_FIELDS + n_rows * L_COLUMNS
    return model, table[M_FIELDS:end].reshape((n_rows, L_COLUMNS)), table[end:].reshape((model[M_N_DENSE], D_COLUMNS))


# -- the ONNX extensions (L_FLAGS & F_STEP) --------------------------------------------------------------------------
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


@kernel
def _matrix(blob, off, rows, cols):
    return blob[off : off + rows * cols].reshape((rows, cols))


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
def gate_rows(row):
    """Rows of W_ih: hidden units times the cell's gates."""
    return (4 if row[L_CELL] == CELL_LSTM else 3 if row[L_CELL] == CELL_GRU else 1) * row[L_HIDDEN]


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
    """Views of a stream's one float32 buffer: y (B, O) output, state (B, S), scratch (N,)."""
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
