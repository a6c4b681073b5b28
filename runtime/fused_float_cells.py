"""The per-element arithmetic of a float step, as source text: a cell's gates and state update and the head
(fused_float_source.py writes the products around them, fused_float_layers.py and fused_float_limbs.py reuse them).

Each is kernels_f32's arithmetic, element for element (lstm_update_f32 / gru_update_f32 / rnn_update_f32,
activate_hidden_f32, head_f32 and activate_head_f32), written for the sizes and offsets of one model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rnnedge.runtime import fused_float_ext
from rnnedge.runtime.fused_float_ext import Extensions
from rnnedge.runtime.fused_float_fma import padded
from rnnedge.runtime.layout import (
    ACT_LOG_SOFTMAX,
    ACT_SIGMOID,
    ACT_SOFTMAX,
    CELL_GRU,
    CELL_LSTM,
    CELL_RNN_RELU,
    CELL_RNN_TANH,
    D_N_IN,
    D_OFF_B,
    D_OFF_S,
    D_OFF_W,
    HID_GELU,
    HID_GELU_TANH,
    HID_NONE,
    HID_RELU,
    HID_SIGMOID,
    HID_TANH,
    L_CELL,
    L_HIDDEN,
    L_OFF_C,
    L_OFF_H,
    M_ACTIVATION,
    M_HEAD_IN,
    M_OFF_HEAD_B,
    M_OFF_HEAD_S,
    M_OFF_HEAD_W,
    M_OUT,
)

if TYPE_CHECKING:
    from rnnedge.runtime.fused_float_source import Lines


FEW_ROWS = 16  # units below which update() forms the gates in passes over 2H / 4H rows


def update(out: Lines, row, gx, gh, st: str = "st", h: int | None = None, c: int | None = None,
           scratch=None, padded_reads: bool = False, ext: Extensions | None = None) -> None:
    """The cell's gates and state update for one stream (`st` its state row, h and c where the layer's h and c
    start in it: by default the layout's offsets), gx(off) / gh(off) the pre-activation parts of gate row off + j:
    kernels_f32's lstm_update_f32 / gru_update_f32 / rnn_update_f32 per element. scratch(off), where given, names a
    float32 slot of gate row off + j that may be overwritten once gx(off) and gh(off) have been read.

    An LSTM or GRU unit is two exponentials deep (a sigmoid, then the tanh of what it gave): in one loop over j,
    out-of-order execution overlaps too few units to hide that latency. So the update is two loops over j, each
    one exponential deep: the LSTM's i, f, g -> c, then o and h = o tanh(c); the GRU's r -> r gh_n + gx_n into
    scratch(2H), then z, n -> h (without a scratch slot the GRU keeps one loop). Every element is computed by the
    same expressions as in one loop, stored as the float32 it is (kws f32 at batch 64: the gate stage 0.55 -> 0.45
    us a stream-step on Zen 3); an LSTM's c may still come out 1 ulp from the one-loop code's, where LLVM fuses the
    other product of f c + i g into a multiply-add. The step and run() run this same code, so they agree.

    Below FEW_ROWS units, LLVM unrolls each loop over j in full before its loop vectoriser runs and the unrolled
    exponentials stay scalar. With a scratch slot the gates then go as one sigmoid pass over the LSTM's 4H rows (g's
    tanh as 2 sigmoid(2 x) - 1: 2 / d = 2 (1 / d) exactly) or the GRU's r and z (2H), and the LSTM's tanh(c) as a
    pass over 2H rows (c in g's slots, o's kept), the rest loops of one exponential or none: the same expressions,
    the outputs within float32 rounding of the loops' (1.5e-7 at most over 40 steps of 5 streams at H = 4-12, where
    LLVM fuses a multiply-add in one form and not in the other). f32 at B = 64 on Zen 4 (alternating processes, ns a
    stream-step): lstm4 80 -> 46-54, lstm8 150 -> 57-64, lstm12 224 -> 75-81, gru8 102 -> 68-84, gru12 136 -> 63;
    int8w lstm8 150-157 -> 60-67, gru12 170 -> 110. From 16 units on, the loops are as fast or faster (gru16 46
    against 61 in passes, gru100 0.75 against 0.82 us). A tanh RNN below 16 units, where gx(off) and gh(off) may be
    read past H up to the next 16 rows (padded_reads: the sums' own padded rows, no bias or scale past the blob),
    forms its tanh in one pass of 16 rows into the scratch, then copies H of them into h: the same expression; an
    LSTM's first pass then runs over its 4H rows to blocks of 16 (rows past 4H are the sums' padding), so no
    exponential is left to a scalar remainder (lstm5x2-in8-out1 f32 at B = 64: 123-124 -> 110-111 ns a stream-step).
    From 16 streams on, f32's LSTM below 11 units and GRU below 16 form their gates 16 streams at a time in the
    vector lanes instead (fused_float_lanes.py); this code then takes the streams past a multiple of 16.

    ext (fused_float_ext.extensions of the layer): its clip, functions, peepholes and input_forget, in loops over j
    (fused_float_ext.update)."""
    cell, H = int(row[L_CELL]), int(row[L_HIDDEN])
    h = int(row[L_OFF_H]) if h is None else h
    c = int(row[L_OFF_C]) if c is None else c
    if ext is not None:
        fused_float_ext.update(out, cell, H, gx, gh, st, h, c, ext)
        return
    few = scratch is not None and H < FEW_ROWS  # gate passes over 2H / 4H rows (docstring)
    if cell == CELL_LSTM and few:  # gate order i f g o (the first pass over the padded rows where they may be read)
        out(f"    for j in range({padded(4 * H) if padded_reads else 4 * H}):",
            f"        k_ = TWO if {2 * H} <= j < {3 * H} else ONE",
            f"        {scratch(0)} = k_ * (ONE / (ONE + exp_f32(-(k_ * ({gx(0)} + {gh(0)}))))) - (k_ - ONE)",
            f"    for j in range({H}):",
            f"        c_ = {scratch(H)} * {st}[{c} + j] + {scratch(0)} * {scratch(2 * H)}",
            f"        {st}[{c} + j] = c_",
            f"        {scratch(2 * H)} = c_",  # g's slot, read above: c for the pass below
            f"    for j in range({2 * H}):",  # tanh(c) in g's slots, o's kept: one pass of 2H rows
            f"        v_ = {scratch(2 * H)}",
            "        t_ = TWO / (ONE + exp_f32(-TWO * v_)) - ONE",
            f"        {scratch(2 * H)} = t_ if j < {H} else v_",
            f"    for j in range({H}):",
            f"        {st}[{h} + j] = {scratch(3 * H)} * {scratch(2 * H)}")
        return
    if cell == CELL_GRU and few:  # gate order r z n
        out(f"    for j in range({2 * H}):",
            f"        {scratch(0)} = ONE / (ONE + exp_f32(-({gh(0)} + {gx(0)})))",
            f"    for j in range({H}):",
            f"        {scratch(2 * H)} = TWO / (ONE + exp_f32(-TWO * ({gx(2 * H)} + {scratch(0)} * {gh(2 * H)})))"
            " - ONE",
            f"    for j in range({H}):",
            f"        z_ = {scratch(H)}",
            f"        {st}[{h} + j] = (ONE - z_) * {scratch(2 * H)} + z_ * {st}[{h} + j]")
        return
    if cell == CELL_RNN_TANH and few and padded_reads:  # the exponentials as one 16-lane pass (docstring)
        out(f"    for j in range({padded(H)}):",
            f"        {scratch(0)} = TWO / (ONE + exp_f32(-TWO * ({gx(0)} + {gh(0)}))) - ONE",
            f"    for j in range({H}):",
            f"        {st}[{h} + j] = {scratch(0)}")
        return
    out(f"    for j in range({H}):")
    if cell == CELL_LSTM:  # gate order i f g o
        out(f"        i_ = ONE / (ONE + exp_f32(-({gx(0)} + {gh(0)})))",
            f"        f_ = ONE / (ONE + exp_f32(-({gx(H)} + {gh(H)})))",
            f"        g_ = TWO / (ONE + exp_f32(-TWO * ({gx(2 * H)} + {gh(2 * H)}))) - ONE",
            f"        {st}[{c} + j] = f_ * {st}[{c} + j] + i_ * g_",
            f"    for j in range({H}):",
            f"        o_ = ONE / (ONE + exp_f32(-({gx(3 * H)} + {gh(3 * H)})))",
            f"        {st}[{h} + j] = o_ * (TWO / (ONE + exp_f32(-TWO * {st}[{c} + j])) - ONE)")
    elif cell == CELL_GRU:
        out(f"        r_ = ONE / (ONE + exp_f32(-({gh(0)} + {gx(0)})))",
            f"        z_ = ONE / (ONE + exp_f32(-({gh(H)} + {gx(H)})))",
            f"        n_ = TWO / (ONE + exp_f32(-TWO * ({gx(2 * H)} + r_ * {gh(2 * H)}))) - ONE",
            f"        {st}[{h} + j] = (ONE - z_) * n_ + z_ * {st}[{h} + j]")
    elif cell == CELL_RNN_RELU:
        out(f"        {st}[{h} + j] = max({gx(0)} + {gh(0)}, ZERO)")
    else:
        out(f"        {st}[{h} + j] = TWO / (ONE + exp_f32(-TWO * ({gx(0)} + {gh(0)}))) - ONE")


def gru_reset_gate(out: Lines, row, gx, gh, rh, st: str = "st", h: int | None = None,
                   ext: Extensions | None = None) -> None:
    """A GRU with linear_before_reset false, one stream, before its W_hn product: rh(j) = r_j h_j, r the reset
    gate (kernels_f32_ext's gru_rz_ext_f32 and the r * h the generic step forms, its default sigmoid, or ext's
    clip and function: fused_float_ext.reset_gate); h where the layer's h starts in st (the layout's offset by
    default)."""
    H, h = int(row[L_HIDDEN]), int(row[L_OFF_H]) if h is None else h
    if ext is not None:
        fused_float_ext.reset_gate(out, H, gx, gh, rh, st, h, ext)
        return
    out(f"    for j in range({H}):",
        f"        r_ = ONE / (ONE + exp_f32(-({gh(0)} + {gx(0)})))",
        f"        {rh(0)} = r_ * {st}[{h} + j]")


def gru_reset_before(out: Lines, row, gx, gh, gn, st: str = "st", h: int | None = None,
                     ext: Extensions | None = None) -> None:
    """The rest of that GRU's update for one stream: gn(off) b_hn + W_hn (r h) of gate row off + j (the n rows),
    gh(off) the recurrent sums of the z rows: z, n = tanh(gn + gx), h = (1 - z) n + z h (kernels_f32_ext's
    gru_update_ext_f32 with reset_before, its default activations, or ext's: fused_float_ext.reset_before)."""
    H, h = int(row[L_HIDDEN]), int(row[L_OFF_H]) if h is None else h
    if ext is not None:
        fused_float_ext.reset_before(out, H, gx, gh, gn, st, h, ext)
        return
    out(f"    for j in range({H}):",
        f"        z_ = ONE / (ONE + exp_f32(-({gh(H)} + {gx(H)})))",
        f"        n_ = TWO / (ONE + exp_f32(-TWO * ({gn(2 * H)} + {gx(2 * H)}))) - ONE",
        f"        {st}[{h} + j] = (ONE - z_) * n_ + z_ * {st}[{h} + j]")


def rows_times(out: Lines, dst: str, n_out: int, n_in: int, woff: int, boff: int, soff: int | None, q8: bool,
               src: str, stride: int | str, convert: str | None = None) -> None:
    """buf[dst + b n_out + o] = bias[o] (+ scale[o] *) sum_k W[o, k] v_b[k]: W (n_out, n_in) row-major, one dot
    product per row and stream (few long rows: the head and its hidden layers), each summed in one fixed order by
    fused_float_fma.DOT, so the step, run() and every process give the same numbers. convert (int8w's step_wide:
    the name of a float32 scratch of n_in or more in buf): each int8 row is converted there once, exactly, for
    all the streams (DOT converts as it loads otherwise: once per stream), the same sums."""
    total = f"w[{boff} + o] + w[{soff} + o] * acc" if q8 else f"w[{boff} + o] + acc"
    out(f"for o in range({n_out}):")
    if q8 and convert is not None:
        out(f"    cr, qr = buf[{convert}:], q[{woff} + o * {n_in}:]  # views: the conversion vectorises",
            f"    for k in range({n_in}):",
            "        cr[k] = np.float32(qr[k])",
            "    for b in range(B):",
            f"        acc = row_dot(buf, {convert}, buf, {src} + b * {stride}, {n_in})")
    else:
        out("    for b in range(B):",
            f"        acc = row_dot({'q' if q8 else 'w'}, {woff} + o * {n_in}, buf, {src} + b * {stride}, {n_in})")
    out(f"        buf[{dst} + b * {n_out} + o] = {total}")


def dense(out: Lines, dst: str, U: int, d, q8: bool, src: str, stride: int | str,
          convert: str | None = None) -> None:
    """A hidden head layer's linear part for B streams: rows at src, stride apart -> dst (B, U); convert as
    rows_times'."""
    out(f"# hidden head layer: {int(d[D_N_IN])} -> {U}")
    rows_times(out, dst, U, int(d[D_N_IN]), int(d[D_OFF_W]), int(d[D_OFF_B]),
                int(d[D_OFF_S]) if q8 else None,
                q8, src, stride, convert)


HIDDEN = {  # kernels_f32.activate_hidden_f32, one element a_
    HID_RELU: "max(a_, ZERO)",
    HID_TANH: "TWO / (ONE + exp_f32(-TWO * a_)) - ONE",
    HID_SIGMOID: "ONE / (ONE + exp_f32(-a_))",
    HID_GELU: "HALF * a_ * (ONE + erf_f32(a_ * _RSQRT2))",
    HID_GELU_TANH: "HALF * a_ * (ONE + (TWO / (ONE + exp_f32(-TWO * (_GELU_TANH_K * (a_ + _GELU_TANH_C * a_ * a_ * "
                   "a_)))) - ONE))",
}


def hidden_activation(out: Lines, dst: str, U: int, code: int) -> None:
    """kernels_f32.activate_hidden_f32 over dst (B, U) in place, through a view: indexed as buf[dst + i], an offset
    numba cannot prove non-negative, each index takes a wraparound select and LLVM leaves the loop scalar (a gelu
    head layer at B = 256: 0.078 us per stream-step, ~18 cycles an element; 10x less through the view, the same
    values)."""
    if code == HID_NONE:
        return
    out(f"hv_ = buf[{dst}:]  # a view: the loop vectorises",
        f"for i in range(B * {U}):",
        "    a_ = hv_[i]",
        f"    hv_[i] = {HIDDEN[code]}")


def head(out: Lines, m, q8: bool, src: str, stride: int | str, convert: str | None = None) -> None:
    """The final linear layer into y (B, O), then kernels_f32.activate_head_f32's activation per stream; convert
    as rows_times'."""
    O, n_in = int(m[M_OUT]), int(m[M_HEAD_IN])
    out("# head")
    rows_times(out, "0", O, n_in, int(m[M_OFF_HEAD_W]), int(m[M_OFF_HEAD_B]),
                int(m[M_OFF_HEAD_S]) if q8 else None, q8, src, stride, convert)
    act = int(m[M_ACTIVATION])
    if act == ACT_SIGMOID:
        out(f"for i in range(B * {O}):", "    buf[i] = ONE / (ONE + np.exp(-buf[i]))")
    elif act in (ACT_SOFTMAX, ACT_LOG_SOFTMAX):
        out("for b in range(B):",
            f"    y0 = b * {O}",
            "    top = buf[y0]",
            f"    for o in range(1, {O}):",
            "        top = max(top, buf[y0 + o])",
            "    total = ZERO")
        if act == ACT_SOFTMAX:
            out(f"    for o in range({O}):",
                "        e_ = np.exp(buf[y0 + o] - top)",
                "        buf[y0 + o] = e_",
                "        total = add_in_order(total, e_)",
                f"    for o in range({O}):",
                "        buf[y0 + o] /= total")
        else:
            out(f"    for o in range({O}):",
                "        total = add_in_order(total, np.exp(buf[y0 + o] - top))",
                "    log_total = np.log(total)",
                f"    for o in range({O}):",
                "        buf[y0 + o] = (buf[y0 + o] - top) - log_total")
