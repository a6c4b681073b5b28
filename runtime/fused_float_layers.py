"""The source of one recurrent layer-direction's two stages, f32 and int8w (fused_float_sequence.py assembles them):

    proj(buf, src, src_stride, rows, dst, [scr,] <W_ih offsets>, *weights)   dst (rows, GP) = b_ih + W_ih v_r
    recur(buf, gx, gx_stride, st, st_stride, B, scr, <W_hh offsets>, *weights)
        one time step of B streams: b_hh + W_hh h, the gates (gx the step's input projections) and the state update

run() calls proj once on all T steps' rows of a layer-direction (the weights read once for the whole sequence),
then recur T times. The weights' offsets in the layout's arrays are arguments, not literals: the two directions
of a layer (and layers of one shape) share one compiled function, which is what an empty cache spends its time
on. Sizes are literals. GP: the gate rows padded to blocks of 16 (fused_float_fma.padded).

f32: both products on fused_float_fma's register-blocked FMA (STREAMS rows x BLOCKS blocks of 16 gate rows per
call, the blocks outer: a block of W^T is read once for all rows). int8w: each row's input as two int16 limbs and
its int32 sums on VNNI (fused_float_vnni.py); recur's blocks are outer there too (read once for all streams).
"""

from __future__ import annotations

from rnnedge.runtime import layout as L
from rnnedge.runtime.fused_float_fma import BLOCKS, STREAMS, blocks, padded
from rnnedge.runtime.fused_float_vnni import GROUP, LANES, limb_range

_GATES = {L.CELL_LSTM: 4, L.CELL_GRU: 3}  # rows per hidden unit; the plain RNNs have 1


def gate_rows(row) -> int:
    return _GATES.get(int(row[L.L_CELL]), 1) * int(row[L.L_HIDDEN])


def pairs(n: int) -> int:
    return -(-n // 2)


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


def recur_scratch(rows, q8: bool) -> int:
    """Per stream: the scratch recur (and, in its first stream's part, proj) needs. f32: the recurrent sums (GP);
    int8w: limb words of the widest part, their two scales, the int32 sums hi, lo (2 GP)."""
    gp = max(padded(gate_rows(row)) for row in rows)
    if not q8:
        return gp
    words = max(2 * max(pairs(int(row[L.L_N_IN])), pairs(int(row[L.L_HIDDEN]))) for row in rows)
    return words + 2 + 2 * gp


def _fma_calls(out: Lines, acc: str, acc_stride: int, woff: str, N: int, K: int, src: str, stride: str,
               rows: str) -> None:
    """buf[acc + r acc_stride + i] += sum_k W^T[k, i] v_r[k] for r < rows: a group of BLOCKS blocks of W^T at a
    time (then the remaining blocks as one shorter group), every row of inputs through it, STREAMS at a time, then
    the remaining rows one by one. No branch on the rows: LLVM would copy a loop's body per case (compile time)."""
    nb = blocks(N)
    full = nb - nb % BLOCKS

    def through_rows(indent: str, count: int, lane: str) -> None:
        for first, last, step, streams in (("0", "r0", f", {STREAMS}", STREAMS), ("r0", rows, "", 1)):
            out(f"{indent}for r in range({first}, {last}{step}):",
                f"{indent}    fma_{streams}_{count}(buf, {acc} + r * {acc_stride} + {lane}, {acc_stride}, w, "
                f"{woff} + {lane}, {N}, {src} + r * {stride}, {stride}, {K})")

    out(f"r0 = {rows} - {rows} % {STREAMS}")
    if full:
        out(f"for g in range(0, {full * LANES}, {BLOCKS * LANES}):")
        through_rows("    ", BLOCKS, "g")
    if nb > full:
        through_rows("", nb - full, str(full * LANES))


def proj_f32(name: str, row) -> str:
    G, K, GP = gate_rows(row), int(row[L.L_N_IN]), padded(gate_rows(row))
    out = Lines()
    out("for r in range(rows):",
        f"    for j in range({G}):",
        f"        buf[dst + r * {GP} + j] = w[bih + j]")
    _fma_calls(out, "dst", GP, "wih", G, K, "src", "src_stride", "rows")
    return (f"\n\n@fast_kernel\ndef {name}(buf, src, src_stride, rows, dst, wih, bih, w):\n"
            f'    """dst (rows, {GP}) = b_ih + W_ih v_r, v_r (rows, {K}) at src, src_stride apart."""\n' + out.text())


def recur_f32(name: str, row) -> str:
    G, H, GP = gate_rows(row), int(row[L.L_HIDDEN]), padded(gate_rows(row))
    out = Lines()
    out("for b in range(B):",
        f"    for j in range({G}):",
        f"        buf[scr + b * {GP} + j] = w[bhh + j]")
    _fma_calls(out, "scr", GP, "whh", G, H, "st", "st_stride", "B")
    out("for b in range(B):",
        "    g, a, s = buf[gx + b * gx_stride:], buf[scr + b * " + f"{GP}:], buf[st + b * st_stride:]"
        "  # views: LLVM vectorises without alias checks")
    update(out, row, lambda off: f"g[{off} + j]", lambda off: f"a[{off} + j]")
    return (f"\n\n@fast_kernel\ndef {name}(buf, gx, gx_stride, st, st_stride, B, scr, whh, bhh, w):\n"
            f'    """One step of B streams: state [h | c] ({H} each) at st, st_stride apart; gx their input '
            'projections."""\n' + out.text())


def _groups(G: int) -> list[tuple[int, int]]:
    """int8w's blocks of 16 gate rows as (first, count): GROUP at a time, then one by one."""
    nb = blocks(G)
    return [(g, GROUP) for g in range(0, nb - nb % GROUP, GROUP)] + [(g, 1) for g in range(nb - nb % GROUP, nb)]


def _dp2(path: str, count: int) -> tuple[str, str]:
    """The call's head and tail: the VNNI intrinsic for `count` blocks, or the portable loops."""
    if path == "avx512_vnni":
        return f"dp2_{count}(", ")"
    return "dp2_portable(", f", {count})"


def proj_int8w(name: str, row, path: str) -> str:
    G, K, GP = gate_rows(row), int(row[L.L_N_IN]), padded(gate_rows(row))
    px = pairs(K)
    out = Lines()
    out("ibuf = buf.view(np.int32)  # the same memory: the limbs and int32 sums",
        "sc, a = scr + " + f"{2 * px}, scr + {2 * px} + 2",
        "for r in range(rows):")
    out.depth += 1
    limbs(out, "src + r * src_stride", K, "scr", px, "sc")
    out.depth -= 1
    out(f"    for j in range({2 * GP}):",
        "        ibuf[a + j] = 0")
    for first, count in _groups(G):
        call, tail = _dp2(path, count)
        lane = LANES * first
        out(f"    {call}ibuf, a + {lane}, a + {GP + lane}, q, wih + {lane}, {G}, scr, scr + {px}, {px}{tail}")
    out("    sx, tx = buf[sc], buf[sc + 1]",
        f"    for j in range({G}):",
        f"        buf[dst + r * {GP} + j] = w[bih + j] + w[sih + j] * "
        f"(np.float32(ibuf[a + j]) * sx + np.float32(ibuf[a + {GP} + j]) * tx)")
    return (f"\n\n@fast_kernel\ndef {name}(buf, src, src_stride, rows, dst, scr, wih, bih, sih, q, w):\n"
            f'    """dst (rows, {GP}) = b_ih + row scale * (W_ih v_r), v_r (rows, {K}) at src, src_stride apart; '
            'one row at a time in scr."""\n' + out.text())


def recur_int8w(name: str, row, path: str, per_stream: int) -> str:
    G, H, GP = gate_rows(row), int(row[L.L_HIDDEN]), padded(gate_rows(row))
    ph = pairs(H)
    out = Lines()
    out("ibuf = buf.view(np.int32)",
        "for b in range(B):",
        f"    wd = scr + b * {per_stream}")
    out.depth += 1
    limbs(out, "st + b * st_stride", H, "wd", ph, f"wd + {2 * ph}")
    out.depth -= 1
    out(f"    for j in range({2 * GP}):",
        f"        ibuf[wd + {2 * ph + 2} + j] = 0")
    for first, count in _groups(G):
        call, tail = _dp2(path, count)
        lane = LANES * first
        out("for b in range(B):  # a group of blocks for every stream before the next group",
            f"    wd = scr + b * {per_stream}",
            f"    {call}ibuf, wd + {2 * ph + 2 + lane}, wd + {2 * ph + 2 + GP + lane}, q, whh + {lane}, {G}, wd, "
            f"wd + {ph}, {ph}{tail}")
    out("for b in range(B):",
        f"    wd = scr + b * {per_stream}",
        f"    g, a, s = buf[gx + b * gx_stride:], ibuf[wd + {2 * ph + 2}:], buf[st + b * st_stride:]  # views",
        f"    sh, th = buf[wd + {2 * ph}], buf[wd + {2 * ph + 1}]")

    def gh(off: int) -> str:
        return f"(w[bhh + {off} + j] + w[shh + {off} + j] * (np.float32(a[{off} + j]) * sh + " \
               f"np.float32(a[{GP + off} + j]) * th))"

    update(out, row, lambda off: f"g[{off} + j]", gh)
    return (f"\n\n@fast_kernel\ndef {name}(buf, gx, gx_stride, st, st_stride, B, scr, whh, bhh, shh, q, w):\n"
            f'    """One step of B streams: state [h | c] ({H} each) at st, st_stride apart; gx their input '
            'projections."""\n' + out.text())


def limbs(out: Lines, v: str, K: int, words: str, npairs: int, scales: str) -> None:
    """K inputs at buf[v ..] as two int16 limbs (fused_float_vnni.py), two inputs to a word: hi words at `words`,
    lo words after them; the scales s, t at buf[scales], buf[scales + 1]."""
    R = limb_range(K)
    out(f"vb = {v}",
        "m_ = ZERO",
        f"for k in range({K}):",
        "    m_ = max(m_, abs(buf[vb + k]))",
        f"s_ = m_ / np.float32({R}) if m_ > ZERO else ONE",
        f"t_ = s_ / np.float32({2 * R - 2})",
        f"buf[{scales}], buf[{scales} + 1] = s_, t_",
        "inv_s, inv_t = ONE / s_, ONE / t_",
        f"for p in range({npairs}):",
        "    v0 = buf[vb + 2 * p]",
        f"    v1 = buf[vb + 2 * p + 1] if 2 * p + 1 < {K} else ZERO",
        f"    h0 = min(max(np.floor(v0 * inv_s + HALF), np.float32(-{R})), np.float32({R}))",
        f"    h1 = min(max(np.floor(v1 * inv_s + HALF), np.float32(-{R})), np.float32({R}))",
        f"    l0 = min(max(np.floor((v0 - h0 * s_) * inv_t + HALF), np.float32(-{R})), np.float32({R}))",
        f"    l1 = min(max(np.floor((v1 - h1 * s_) * inv_t + HALF), np.float32(-{R})), np.float32({R}))",
        f"    ibuf[{words} + p] = np.int32((np.int64(h0) & 0xFFFF) | (np.int64(h1) << 16))",
        f"    ibuf[{words} + {npairs} + p] = np.int32((np.int64(l0) & 0xFFFF) | (np.int64(l1) << 16))")


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
    return (f"\n\n@fast_kernel\ndef inputs(buf, dst, x, rows, {args}):\n"
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
    return (f"\n\n@fast_kernel\ndef head(buf, src, stride, B, d, {args}):\n"
            f'    """y (B, {O}) at buf[0 ..] from B rows at src, stride apart; the hidden layers\' outputs at d."""\n'
            + out.text())
