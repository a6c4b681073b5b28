"""float32 kernels: one function per cell, output arguments first, every buffer with its shape.

Weight layout chosen for the kernel: each matrix is stored transposed, W^T (inputs, rows), so a
mat-vec is a sum of scaled weight rows and its inner loop runs across output rows (vector lanes)
without reordering any sum. Gates stay in PyTorch's order (lstm i f g o, gru r z n).

Activations use one vectorisable exp: Cody-Waite range reduction x = k ln2 + r, a degree-6 polynomial
for e^r on |r| <= ln2/2 (relative error ~1.2e-7) and 2^k built in the exponent bits. sigmoid and tanh
derive from it; their absolute error stays below 2.5e-7.

The whole model's step and sequence pass built from these are runtime/kernels_f32_model.py; the ONNX layer
extensions' kernels (a second path, taken when a layer's L_FLAGS has an F_STEP bit) runtime/kernels_f32_ext.py.
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
    D_ACTIVATION,
    D_COLUMNS,
    D_N_IN,
    D_OFF_B,
    D_OFF_OUT,
    D_OFF_W,
    D_UNITS,
    HID_GELU,
    HID_GELU_TANH,
    HID_RELU,
    HID_SIGMOID,
    HID_TANH,
    L_CELL,
    L_COLUMNS,
    L_HIDDEN,
    M_FIELDS,
    M_N_DENSE,
    M_N_LAYERS,
)

OK, BAD_VALUE, BAD_TOKEN = 0, 1, 2
# a specialised step's (runtime/fused.py) x whose shape is not its stream's, refused before anything is read or
# written: the step checks it against the batch its stream buffer's last element holds (Stream), so Python checks
# only x's ndim before the call (stream_call.py)
BAD_SHAPE = 3

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
            finite = True  # a step's features in one loop without a branch, which vectorises
            for j in range(X.shape[2]):
                finite &= np.isfinite((X[b, t, j] - mean[j]) / std[j])
            if not finite:
                return False
    return True


@kernel
def head_f32(y, h, w, b, activation):
    """y (O,) = act(w (O, Hin) @ h (Hin,) + b (O,)), act = none, softmax, log_softmax or sigmoid."""
    y[:] = b
    gemv_acc_f32(y, w, h)
    activate_head_f32(y, activation)


@kernel
def _largest(y):
    """The largest value of a non-empty y, in firmware_ref's loop (rnnedge_activate_head_f32): where y holds a NaN
    the softmax comes out NaN whichever value this returns, as with y.max()."""
    top = y[0]
    for o in range(1, y.shape[0]):
        top = max(top, y[o])
    return top


@kernel
def activate_head_f32(y, activation):
    """y (O,) in place: act(y), act = none, softmax, log_softmax or sigmoid; shared by every precision.
    log_softmax is (y - max) - log(sum e^(y - max)): the sum is >= 1, so its log never sees an underflow.
    Allocates nothing, so the NRT-free entries (runtime/jit.py) can call it (numba's y.max() cannot be compiled
    there)."""
    if activation == ACT_SOFTMAX:
        top = _largest(y)
        total = np.float32(0.0)
        for o in range(y.shape[0]):
            y[o] = np.exp(y[o] - top)
            total += y[o]
        for o in range(y.shape[0]):
            y[o] /= total
    elif activation == ACT_LOG_SOFTMAX:
        top = _largest(y)
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


@kernel
def _matrix(blob, off, rows, cols):
    return blob[off : off + rows * cols].reshape((rows, cols))


@kernel
def gate_rows(row):
    """Rows of W_ih: hidden units times the cell's gates."""
    return (4 if row[L_CELL] == CELL_LSTM else 3 if row[L_CELL] == CELL_GRU else 1) * row[L_HIDDEN]
