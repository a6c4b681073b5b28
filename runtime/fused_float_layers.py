"""The source of one recurrent layer-direction's two stages, f32 and int8w (fused_float_sequence.py assembles them):

    proj(buf, src, src_stride, rows, dst, <W_ih offsets>, w)    dst (rows, GP) = b_ih + W_ih v_r
    recur(buf, gx, gx_stride, st, st_stride, B, scr, <W_hh offsets>, w)
        one time step of B streams: b_hh + W_hh h, the gates (gx the step's input projections) and the state update

run() calls proj once on all T steps' rows of a layer-direction (the weights read once for the whole sequence),
then recur T times. The weights' offsets in the layout's arrays are arguments, not literals: the directions of a
layer (and layers of one shape) share one function. Sizes are literals. GP: the gate rows padded to blocks of
16 (fused_float_fma.padded). Like inputs() and head() here, they are inlined into `sequence`, each at one call
site, so each is compiled once (what an empty cache spends its time on).

Both products on fused_float_fma's register-blocked FMA (STREAMS rows x BLOCKS blocks of 16 gate rows per call,
the blocks outer: a block of W^T is read once for all rows). int8w: on a float32 copy of the layer-direction's
int8 W^T in the run's buffer (`buf`, offsets wih / whh there; each int8 is exact as a float32), the row scale
applied to the finished sum (b + s * sum, kernels_int8w's arithmetic).
"""

from __future__ import annotations

from rnnedge.runtime import layout as L
from rnnedge.runtime.fused_float_fma import BLOCKS, LANES, STREAMS, blocks, padded

_GATES = {L.CELL_LSTM: 4, L.CELL_GRU: 3}  # rows per hidden unit; the plain RNNs have 1


def gate_rows(row) -> int:
    return _GATES.get(int(row[L.L_CELL]), 1) * int(row[L.L_HIDDEN])


class Lines:
    def __init__(self, depth: int = 1):
        self.lines: list[str] = []
        self.depth = depth

    def __call__(self, *lines: str) -> None:
        self.lines += ["    " * self.depth + line for line in lines]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def proj_offsets(row, q8: bool) -> tuple[int, ...]:
    """The offsets a proj function takes, in its argument order: W_ih^T, b_ih (int8w: and the row scales)."""
    return tuple(int(row[c]) for c in ((L.L_OFF_WIH, L.L_OFF_BIH, L.L_OFF_SIH) if q8 else (L.L_OFF_WIH, L.L_OFF_BIH)))


def recur_offsets(row, q8: bool) -> tuple[int, ...]:
    """The offsets a recur function takes: W_hh^T, b_hh (int8w: and the row scales)."""
    return tuple(int(row[c]) for c in ((L.L_OFF_WHH, L.L_OFF_BHH, L.L_OFF_SHH) if q8 else (L.L_OFF_WHH, L.L_OFF_BHH)))


def recur_scratch(rows) -> int:
    """Per stream: the scratch recur needs, the recurrent sums (GP)."""
    return max(padded(gate_rows(row)) for row in rows)


def _fma_calls(out: Lines, weights: str, acc: str, acc_stride: int, woff: str, N: int, K: int, src: str, stride: str,
               rows: str) -> None:
    """buf[acc + r acc_stride + i] += sum_k W^T[k, i] v_r[k] for r < rows: a group of BLOCKS blocks of W^T at a
    time (then the remaining blocks as one shorter group), every row of inputs through it, STREAMS at a time, then
    the remaining rows one by one. No branch on the rows: LLVM would copy a loop's body per case (compile time)."""
    nb = blocks(N)
    full = nb - nb % BLOCKS

    def through_rows(indent: str, count: int, lane: str) -> None:
        for first, last, step, streams in (("0", "r0", f", {STREAMS}", STREAMS), ("r0", rows, "", 1)):
            out(f"{indent}for r in range({first}, {last}{step}):",
                f"{indent}    fma_{streams}_{count}(buf, {acc} + r * {acc_stride} + {lane}, {acc_stride}, {weights}, "
                f"{woff} + {lane}, {N}, {src} + r * {stride}, {stride}, {K})")

    out(f"r0 = {rows} - {rows} % {STREAMS}")
    if full:
        out(f"for g in range(0, {full * LANES}, {BLOCKS * LANES}):")
        through_rows("    ", BLOCKS, "g")
    if nb > full:
        through_rows("", nb - full, str(full * LANES))


def proj(name: str, row, q8: bool) -> str:
    G, K, GP = gate_rows(row), int(row[L.L_N_IN]), padded(gate_rows(row))
    out = Lines()
    out("for r in range(rows):",
        f"    for j in range({G}):",
        f"        buf[dst + r * {GP} + j] = {'ZERO' if q8 else 'w[bih + j]'}")
    _fma_calls(out, "buf" if q8 else "w", "dst", GP, "wih", G, K, "src", "src_stride", "rows")
    if q8:  # kernels_int8w: the row scale on the finished sum, then the bias
        out("for r in range(rows):",
            f"    a = buf[dst + r * {GP}:]",
            f"    for j in range({G}):",
            "        a[j] = w[bih + j] + w[sih + j] * a[j]")
    offsets = "wih, bih, sih" if q8 else "wih, bih"
    return (f"\n\n@fast_inline\ndef {name}(buf, src, src_stride, rows, dst, {offsets}, w):\n"
            f'    """dst (rows, {GP}) = b_ih + W_ih v_r, v_r (rows, {K}) at src, src_stride apart."""\n' + out.text())


def recur(name: str, row, q8: bool) -> str:
    G, H, GP = gate_rows(row), int(row[L.L_HIDDEN]), padded(gate_rows(row))
    out = Lines()
    out("for b in range(B):",
        f"    for j in range({G}):",
        f"        buf[scr + b * {GP} + j] = {'ZERO' if q8 else 'w[bhh + j]'}")
    _fma_calls(out, "buf" if q8 else "w", "scr", GP, "whh", G, H, "st", "st_stride", "B")
    out("for b in range(B):",
        "    g, a, s = buf[gx + b * gx_stride:], buf[scr + b * " + f"{GP}:], buf[st + b * st_stride:]"
        "  # views: LLVM vectorises without alias checks")

    def gh(off: int) -> str:  # int8w: kernels_int8w's b + row scale * sum
        return f"(w[bhh + {off} + j] + w[shh + {off} + j] * a[{off} + j])" if q8 else f"a[{off} + j]"

    update(out, row, lambda off: f"g[{off} + j]", gh)
    offsets = "whh, bhh, shh" if q8 else "whh, bhh"
    return (f"\n\n@fast_inline\ndef {name}(buf, gx, gx_stride, st, st_stride, B, scr, {offsets}, w):\n"
            f'    """One step of B streams: state [h | c] ({H} each) at st, st_stride apart; gx their input '
            'projections."""\n' + out.text())


def update(out: Lines, row, gx, gh) -> None:
    """The cell's gates and state update for one stream (`s` its state row [h | c]), gx(off) / gh(off) the
    pre-activation parts of gate row off + j: kernels_f32's lstm_update_f32 / gru_update_f32 / rnn_update_f32."""
    cell, H = int(row[L.L_CELL]), int(row[L.L_HIDDEN])
    out(f"    for j in range({H}):")
    if cell == L.CELL_LSTM:  # gate order i f g o
        out(f"        i_ = ONE / (ONE + exp_f32(-({gx(0)} + {gh(0)})))",
            f"        f_ = ONE / (ONE + exp_f32(-({gx(H)} + {gh(H)})))",
            f"        g_ = TWO / (ONE + exp_f32(-TWO * ({gx(2 * H)} + {gh(2 * H)}))) - ONE",
            f"        o_ = ONE / (ONE + exp_f32(-({gx(3 * H)} + {gh(3 * H)})))",
            f"        c_ = f_ * s[{H} + j] + i_ * g_",
            f"        s[{H} + j] = c_",
            "        s[j] = o_ * (TWO / (ONE + exp_f32(-TWO * c_)) - ONE)")
    elif cell == L.CELL_GRU:  # gate order r z n
        out(f"        r_ = ONE / (ONE + exp_f32(-({gh(0)} + {gx(0)})))",
            f"        z_ = ONE / (ONE + exp_f32(-({gh(H)} + {gx(H)})))",
            f"        n_ = TWO / (ONE + exp_f32(-TWO * ({gx(2 * H)} + r_ * {gh(2 * H)}))) - ONE",
            "        s[j] = (ONE - z_) * n_ + z_ * s[j]")
    elif cell == L.CELL_RNN_RELU:
        out(f"        s[j] = max({gx(0)} + {gh(0)}, ZERO)")
    else:
        out(f"        s[j] = TWO / (ONE + exp_f32(-TWO * ({gx(0)} + {gh(0)}))) - ONE")


def inputs_source(model, q8: bool, args: str) -> str:
    """inputs(buf, dst, x, rows, *weights): the first layer's input rows, normalised features or embeddings."""
    m = model.layout.model
    n_in = int(m[L.M_N_IN])
    out = Lines()
    if model.dense:
        mean, std = int(m[L.M_OFF_IN_A]), int(m[L.M_OFF_IN_B])
        out("for r in range(rows):",
            f"    for j in range({n_in}):",
            f"        buf[dst + r * {n_in} + j] = (x[r, j] - w[{mean} + j]) / w[{std} + j]")
    else:
        emb = int(m[L.M_OFF_IN_A])
        out("for r in range(rows):",
            f"    e = {emb} + x[r] * {n_in}")
        if q8:  # kernels_int8w.dequantize_row_int8w: scale * q, one float32 product
            out(f"    s = w[{int(m[L.M_OFF_IN_S])} + x[r]]",
                f"    for j in range({n_in}):",
                f"        buf[dst + r * {n_in} + j] = s * np.float32(q[e + j])")
        else:
            out(f"    for j in range({n_in}):",
                f"        buf[dst + r * {n_in} + j] = w[e + j]")
    return (f"\n\n@fast_inline\ndef inputs(buf, dst, x, rows, {args}):\n"
            f'    """The first layer\'s input rows (rows, {n_in}) at dst from x\'s rows (checked by the caller)."""\n'
            + out.text())


def _rows_times(out: Lines, dst: str, n_out: int, n_in: int, woff: int, boff: int, soff: int | None, q8: bool,
                src: str, stride: str) -> None:
    """buf[dst + b n_out + o] = bias[o] (+ scale[o] *) sum_k W[o, k] v_b[k]: W (n_out, n_in) row-major, one dot
    product per row (few long rows: the head and its hidden layers), each row read once for all streams."""
    wref = "np.float32(wo[k])" if q8 else "wo[k]"
    total = f"w[{boff} + o] + w[{soff} + o] * acc" if q8 else f"w[{boff} + o] + acc"
    out(f"for o in range({n_out}):",
        f"    wo = {'q' if q8 else 'w'}[{woff} + o * {n_in}:]  # views: the sums vectorise",
        "    for b in range(B):",
        "        acc = ZERO",
        f"        v = buf[{src} + b * {stride}:]",
        f"        for k in range({n_in}):",
        f"            acc += {wref} * v[k]",
        f"        buf[{dst} + b * {n_out} + o] = {total}")


_HIDDEN = {  # kernels_f32.activate_hidden_f32, one element a_
    L.HID_RELU: "max(a_, ZERO)",
    L.HID_TANH: "TWO / (ONE + exp_f32(-TWO * a_)) - ONE",
    L.HID_SIGMOID: "ONE / (ONE + exp_f32(-a_))",
    L.HID_GELU: "HALF * a_ * (ONE + erf_f32(a_ * _RSQRT2))",
    L.HID_GELU_TANH: "HALF * a_ * (ONE + (TWO / (ONE + exp_f32(-TWO * (_GELU_TANH_K * (a_ + _GELU_TANH_C * a_ * a_ * "
                     "a_)))) - ONE))",
}


def head_source(model, q8: bool, args: str) -> str:
    """head(buf, src, stride, B, d, *weights): the head's hidden layers (their outputs at d), then its final linear
    layer into y (B, O) at buf[0 ..] and kernels_f32.activate_head_f32's activation per stream."""
    lay = model.layout
    m = lay.model
    out = Lines()
    src, stride, d_off = "src", "stride", 0
    for d in lay.dense:
        U, dst = int(d[L.D_UNITS]), f"d + B * {d_off}"
        out(f"# hidden head layer: {int(d[L.D_N_IN])} -> {U}")
        _rows_times(out, dst, U, int(d[L.D_N_IN]), int(d[L.D_OFF_W]), int(d[L.D_OFF_B]),
                    int(d[L.D_OFF_S]) if q8 else None, q8, src, stride)
        if int(d[L.D_ACTIVATION]) != L.HID_NONE:
            out(f"for i in range(B * {U}):",
                f"    a_ = buf[{dst} + i]",
                f"    buf[{dst} + i] = {_HIDDEN[int(d[L.D_ACTIVATION])]}")
        src, stride, d_off = dst, str(U), d_off + U
    O, n_in = int(m[L.M_OUT]), int(m[L.M_HEAD_IN])
    out("# head")
    _rows_times(out, "0", O, n_in, int(m[L.M_OFF_HEAD_W]), int(m[L.M_OFF_HEAD_B]),
                int(m[L.M_OFF_HEAD_S]) if q8 else None, q8, src, stride)
    act = int(m[L.M_ACTIVATION])
    if act == L.ACT_SIGMOID:
        out(f"for i in range(B * {O}):", "    buf[i] = ONE / (ONE + np.exp(-buf[i]))")
    elif act in (L.ACT_SOFTMAX, L.ACT_LOG_SOFTMAX):
        out("for b in range(B):",
            f"    y0 = b * {O}",
            "    top = buf[y0]",
            f"    for o in range(1, {O}):",
            "        top = max(top, buf[y0 + o])",
            "    total = ZERO")
        if act == L.ACT_SOFTMAX:
            out(f"    for o in range({O}):",
                "        e_ = np.exp(buf[y0 + o] - top)",
                "        buf[y0 + o] = e_",
                "        total += e_",
                f"    for o in range({O}):",
                "        buf[y0 + o] /= total")
        else:
            out(f"    for o in range({O}):",
                "        total += np.exp(buf[y0 + o] - top)",
                "    log_total = np.log(total)",
                f"    for o in range({O}):",
                "        buf[y0 + o] = (buf[y0 + o] - top) - log_total")
    return (f"\n\n@fast_inline\ndef head(buf, src, stride, B, d, {args}):\n"
            f'    """y (B, {O}) at buf[0 ..] from B rows at src, stride apart; the hidden layers\' outputs at d."""\n'
            + out.text())
