"""The source of one recurrent layer-direction's two stages, f32 and int8w (fused_float_sequence.py assembles them):

    proj(buf, src, src_stride, rows, dst, <W_ih offsets>, w)    dst (rows, GP) = b_ih + W_ih v_r
    recur(buf, gx, gx_stride, st, st_stride, B, scr, <W_hh offsets>, w[, qw])     qw: int8w's
        one time step of B streams: b_hh + W_hh h, the gates (gx the step's input projections) and the state update

run() calls proj once on all T steps' rows of a layer-direction (the weights read once for the whole sequence),
then recur T times. The weights' offsets in the layout's arrays are arguments, not literals: the directions of a
layer (and layers of one shape) share one function. Sizes are literals. GP: the gate rows padded to blocks of
16 (fused_float_fma.padded). Like inputs() and head() here, they are inlined into `sequence`, each at one call
site, so each is compiled once (what an empty cache spends its time on).

Both products on fused_float_fma's register-blocked FMA (STREAMS rows x BLOCKS blocks of 16 gate rows per call,
the blocks outer: a block of W^T is read once for all rows), W^T in panels of 64 columns (fused_float_blob.py).
int8w: proj on a float32 copy of the layer-direction's int8 W_ih^T in the run's buffer (`buf`, offset wih there;
each int8 is exact as a float32), recur on qw (the float16 copy, or buf with W_hh^T's float32 copy at whh), the
row scale applied to the finished sum (b + s * sum, kernels_int8w's arithmetic). Where every bias and row scale can
be read in whole blocks of 16 inside the blob (fused_float_sequence.in_registers), the sums start from b in
registers (f32: FMA_BIAS) or are stored as b + s * sum from them (int8w: FMA8_SCALED), with no pass writing b (or
0) into every row's sums first or scaling them after:
the same numbers (Zen 3, the seed classifier's run() at B = 32: f32 1.25-1.42 -> 1.06-1.22 us a step, int8w
1.23-1.33 -> 1.08-1.15; level at B = 1).
"""

from __future__ import annotations

from rnnedge.runtime import layout as L
from rnnedge.runtime.fused_float_cells import dense, gru_reset_before, gru_reset_gate, head, hidden_activation, update
from rnnedge.runtime.fused_float_ext import Extensions
from rnnedge.runtime.fused_float_fma import padded
from rnnedge.runtime.fused_float_source import (
    Lines,
    fma_calls,
    gate_rows,
    hn_rows,
    input_rows,
    reset_before,
    reset_before_scratch,
)


def proj_offsets(row, q8: bool) -> tuple[int, ...]:
    """The offsets a proj function takes, in its argument order: W_ih^T, b_ih (int8w: and the row scales)."""
    return tuple(int(row[c]) for c in ((L.L_OFF_WIH, L.L_OFF_BIH, L.L_OFF_SIH) if q8 else (L.L_OFF_WIH, L.L_OFF_BIH)))


def recur_offsets(row, q8: bool) -> tuple[int, ...]:
    """The offsets a recur function takes: W_hh^T, b_hh (int8w: and the row scales)."""
    return tuple(int(row[c]) for c in ((L.L_OFF_WHH, L.L_OFF_BHH, L.L_OFF_SHH) if q8 else (L.L_OFF_WHH, L.L_OFF_BHH)))


def recur_scratch(rows) -> int:
    """Per stream: the scratch recur needs, the recurrent sums (GP), then a GRU's with linear_before_reset false
    (fused_float_source.reset_before_scratch: r h and the sums of W_hh^T (r h))."""
    return max(padded(gate_rows(row)) for row in rows) + reset_before_scratch(rows)


def _start(out: Lines, q8: bool, acc: str, stride: int | str, G: int, rows: str, i: str, bias: str) -> None:
    """Each of `rows` sums at acc, stride apart, set to b (w[bias:]) or, int8w, 0, before a product adds to them."""
    # the offsets are arguments, so every array is indexed through a view from its offset (index j: provably >= 0,
    # so numba's negative-index wrap folds away and the loops vectorise; w[bih + j] kept each lane scalar)
    out(f"for {i} in range({rows}):",
        f"    d_ = buf[{acc} + {i} * {stride}:]" if q8 else f"    d_, bi_ = buf[{acc} + {i} * {stride}:], w[{bias}:]",
        f"    for j in range({G}):",
        f"        d_[j] = {'ZERO' if q8 else 'bi_[j]'}")


def product(out: Lines, q8: bool, registers: bool, acc: str, stride: int | str, woff: str, G: int, K: int,
            src: str, src_stride: str, rows: str, i: str, bias: str, scale: str, q: str = "qw") -> None:
    """rows sums b + W^T v (f32: W^T in w) or W^T v (int8w, W^T in the array q names; b + s * W^T v where
    registers) into acc."""
    if registers and q8:
        fma_calls(out, q, acc, stride, woff, G, K, src, src_stride, rows, i, "fma8", scaled=("w", scale, bias))
    elif registers:
        fma_calls(out, "w", acc, stride, woff, G, K, src, src_stride, rows, i, bias=("w", bias))
    else:
        _start(out, q8, acc, stride, G, rows, i, bias)
        fma_calls(out, q if q8 else "w", acc, stride, woff, G, K, src, src_stride, rows, i, "fma8" if q8 else "fma")


def proj(name: str, row, q8: bool, GS: int, registers: bool = False) -> str:
    """dst rows GS apart (the sequence's widest padded gate rows: recur reads them at that stride whatever the
    layer-direction's own width). registers: fused_float_sequence.in_registers(model)."""
    G, K = gate_rows(row), int(row[L.L_N_IN])
    out = Lines()
    product(out, q8, registers, "dst", GS, "wih", G, K, "src", "src_stride", "rows", "r", "bih", "sih", "buf")
    if q8 and not registers:  # kernels_int8w: the row scale on the finished sum, then the bias
        out("for r in range(rows):",
            f"    a, bi_, si_ = buf[dst + r * {GS}:], w[bih:], w[sih:]",
            f"    for j in range({G}):",
            "        a[j] = bi_[j] + si_[j] * a[j]")
    offsets = "wih, bih, sih" if q8 else "wih, bih"
    return (f"\n\n@fast_inline\ndef {name}(buf, src, src_stride, rows, dst, {offsets}, w):\n"
            f'    """dst (rows, {GS}) = b_ih + W_ih v_r, v_r (rows, {K}) at src, src_stride apart."""\n' + out.text())


def recur(name: str, row, q8: bool, registers: bool = False, rs: int = 0, ext: Extensions | None = None) -> str:
    """registers: fused_float_sequence.in_registers(model); rs: reset_before_scratch of the model's rows (a GRU
    with linear_before_reset false: r h and the sums of W_hh^T (r h) of each stream, after the B streams' sums);
    ext: the layer-direction's extensions (fused_float_ext.py), written into the text (its peepholes read at their
    offset in w), so layer-directions share a recur only where they agree."""
    G, H, GP = gate_rows(row), int(row[L.L_HIDDEN]), padded(gate_rows(row))
    h_rows, first = hn_rows(row)  # a reset-before GRU's products: the r, z rows' then the n rows' (or every row)
    out = Lines()
    product(out, q8, registers, "scr", GP, "whh", h_rows, H, "st", "st_stride", "B", "r", "bhh", "shh")
    scaled = q8 and not registers  # int8w's b + s * sum still to form (kernels_int8w's)
    rb = [f"    rb = buf[scr + B * {GP} + b * {rs}:]"] if reset_before(row) else []
    views = ["    g, a, s = buf[gx + b * gx_stride:], buf[scr + b * " + f"{GP}:], buf[st + b * st_stride:]"
             "  # views: LLVM vectorises without alias checks or index wraps", *rb,
             *(["    bh_, sh_ = w[bhh:], w[shh:]"] if scaled else [])]

    def summed(a: str, at: int = 0):  # gate row off + j of the recurrent sums at a[at ..], b + s * sum formed if scaled
        return lambda off: (f"(bh_[{off} + j] + sh_[{off} + j] * {a}[{at + off} + j])" if scaled else
                            f"{a}[{at + off} + j]")

    gx, gh = (lambda off: f"g[{off} + j]"), summed("a")
    out("for b in range(B):", *views)
    if reset_before(row):  # r h, then the sums of W_hh^T (r h) (the n rows': apart, only theirs), then z, n, h
        ph = padded(H)
        gru_reset_gate(out, row, gx, gh, lambda off: f"rb[{off} + j]", "s", 0, ext)
        product(out, q8, registers, f"scr + B * {GP} + {ph + first}", rs, f"whh + {first * H}", G - first, H,
                f"scr + B * {GP}", str(rs), "B", "r", f"bhh + {first}", f"shh + {first}")
        out("for b in range(B):", *views)
        gru_reset_before(out, row, gx, gh, summed("rb", ph), "s", 0, ext)
    else:
        update(out, row, gx, gh, "s", 0, H, scratch=lambda off: f"a[{off} + j]", padded_reads=not scaled, ext=ext)
    offsets = "whh, bhh, shh" if q8 else "whh, bhh"
    weights = "w, qw" if q8 else "w"
    return (f"\n\n@fast_inline\ndef {name}(buf, gx, gx_stride, st, st_stride, B, scr, {offsets}, {weights}):\n"
            f'    """One step of B streams: state [h | c] ({H} each) at st, st_stride apart; gx their input '
            'projections."""\n' + out.text())



def inputs_source(model, q8: bool, args: str) -> str:
    """inputs(buf, dst, x, rows, *weights) -> finite: the first layer's input rows, normalised features (False where
    one is NaN or infinite) or embeddings."""
    n_in = int(model.layout.model[L.M_N_IN])
    out = Lines()
    out("finite = True")
    input_rows(out, model, q8, "r", "rows", "dst", check=model.dense)
    out("return finite")
    return (f"\n\n@fast_inline\ndef inputs(buf, dst, x, rows, {args}):\n"
            f'    """The first layer\'s input rows (rows, {n_in}) at dst from x\'s rows (token ids checked by the caller); '
            'whether\n    every normalised feature is finite."""\n'
            + out.text())


def head_source(model, q8: bool, args: str) -> str:
    """head(buf, src, stride, B, d, *weights): the head's hidden layers (their outputs at d), then its final linear
    layer into y (B, O) at buf[0 ..] and kernels_f32.activate_head_f32's activation per stream."""
    lay = model.layout
    m = lay.model
    out = Lines()
    src, stride, d_off = "src", "stride", 0
    for d in lay.dense:
        U, dst = int(d[L.D_UNITS]), f"d + B * {d_off}"
        dense(out, dst, U, d, q8, src, stride)
        hidden_activation(out, dst, U, int(d[L.D_ACTIVATION]))
        src, stride, d_off = dst, str(U), d_off + U
    head(out, m, q8, src, stride)
    O = int(m[L.M_OUT])
    return (f"\n\n@fast_inline\ndef head(buf, src, stride, B, d, {args}):\n"
            f'    """y (B, {O}) at buf[0 ..] from B rows at src, stride apart; the hidden layers\' outputs at d."""\n'
            + out.text())
