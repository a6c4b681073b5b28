"""The FMA layers of a float step compiled for one model (fused_float_source.source writes the step around them):
f32's (FMA, FMA_BIAS) and int8w's on FMA8 (its int8 weights, or their float16 copy, as float32 sums), one forward
layer for every stream -- both mat-vecs on fused_float_source.fma_calls' register-blocked sums, then the cell update
(fused_float_cells.update) -- and a GRU with linear_before_reset false (_reset_before). The buffer's parts (v, the
sums, rb) are fused_float_source's module docstring's; int8w's VNNI limbs are fused_float_limbs.py's."""

from __future__ import annotations

from rnnedge.runtime.fused_float_cells import gru_reset_before, gru_reset_gate, update
from rnnedge.runtime.fused_float_ext import Extensions
from rnnedge.runtime.fused_float_fma import padded
from rnnedge.runtime.fused_float_lanes import in_lanes, update_lanes
from rnnedge.runtime.fused_float_source import (
    Lines,
    bias_start,
    fma_calls,
    gate_rows,
    hn_rows,
    reset_before,
    scale_start,
)
from rnnedge.runtime.layout import (
    L_CELL,
    L_HIDDEN,
    L_N_IN,
    L_OFF_BHH,
    L_OFF_BIH,
    L_OFF_H,
    L_OFF_SHH,
    L_OFF_SIH,
    L_OFF_WHH,
    L_OFF_WIH,
)


def layer_f32(out: Lines, row, src: str, stride: int, S: int, sums: int, projected: bool = False,
               w_size: int = 0, rs: int = 0, ext: Extensions | None = None) -> None:
    """One forward f32 layer for every stream: both mat-vecs (b + W v, as kernels_f32), then the cell update.
    projected: the first layer of `layers`, whose b_ih + W_ih v run() may have computed ahead (at >= 0:
    fused_float_run.py), copied from pv instead. The sums start from each bias in registers (FMA_BIAS) where the
    blocks' reads of it stay inside w (bias_start); else b is first copied into every stream's sums (that pass
    cost ~4-6% of kws' step at batch 64-256 on Zen 3). ext: the layer's extensions (fused_float_ext.py)."""
    G, K, H = gate_rows(row), int(row[L_N_IN]), int(row[L_HIDDEN])
    half = sums // 2
    out(f"# layer: cell {int(row[L_CELL])}, {K} -> {H}")

    def start(bias: int, at: str) -> tuple[str, int] | None:
        begin = bias_start(bias, G, w_size)
        if begin is None:
            out("for b in range(B):",
                f"    av, bv = buf[A + b * {sums}:], w[{bias}:{bias + G}]  # views: the copy vectorises",
                f"    for i in range({G}):",
                f"        av[{at}i] = bv[i]")
        return begin

    if projected:
        out("if at < 0:")
        out.depth += 1
    fma_calls(out, "w", "A", sums, int(row[L_OFF_WIH]), G, K, src, stride, "B", "b",
              bias=start(int(row[L_OFF_BIH]), ""))
    if projected:
        out.depth -= 1
        _projections(out, sums, G)
    h_rows, first = hn_rows(row)  # a reset-before GRU's products: the r, z rows' then the n rows' (or every row)
    begin = start(int(row[L_OFF_BHH]), f"{half} + ")
    fma_calls(out, "w", f"A + {half}", sums, int(row[L_OFF_WHH]), h_rows, H, f"S0 + {int(row[L_OFF_H])}", S, "B", "b",
              bias=begin)
    gx, gh = (lambda off: f"av[{off} + j]"), (lambda off: f"av[{half + off} + j]")
    if reset_before(row):
        ph, n, bias = padded(H), G - first, int(row[L_OFF_BHH]) + first

        def product() -> None:  # b_hh + W_hh^T (r h) into RB + ph, from b in registers or a pass writing it
            if begin is None:
                out("for b in range(B):",
                    f"    rv, bv = buf[RB + b * {rs} + {ph + first}:], w[{bias}:{bias + n}]",
                    f"    for i in range({n}):",
                    "        rv[i] = bv[i]")
            fma_calls(out, "w", f"RB + {ph + first}", rs, int(row[L_OFF_WHH]) + first * H, n, H, "RB", rs, "B", "b",
                      bias=None if begin is None else ("w", bias))

        _reset_before(out, row, S, sums, rs, gx, gh, lambda off: f"rb[{ph + off} + j]", product, ext)
        return
    streams = _streams(out, row, gx, gh, sums, S, ext)  # writes the lanes' passes first, where the layer has them
    out(f"for b in range({streams}):",
        f"    av, st = buf[A + b * {sums}:], buf[S0 + b * {S}:]  # views: LLVM then vectorises without alias checks")
    update(out, row, gx, gh, scratch=lambda off: f"av[{half + off} + j]", padded_reads=True, ext=ext)


def _streams(out: Lines, row, gx, gh, sums: int, S: int, ext: Extensions | None) -> str:
    """The range of streams f32's per-stream cell update takes: every one ("B"), or, for a layer of few units
    (fused_float_lanes.in_lanes), those past the multiples of 16, after writing update_lanes' passes for the others
    ("b1, B")."""
    if not in_lanes(row, ext):
        return "B"
    update_lanes(out, row, gx, gh, sums, S)
    return "b1, B"


def _reset_before(out: Lines, row, S: int, sums: int, rs: int, gx, gh, gn, product,
                  ext: Extensions | None) -> None:
    """A GRU with linear_before_reset false, every stream, after the input sums and the recurrent sums of h (those
    of the r and z rows used): r h into each stream's RB, then product() b_hn + W_hn (r h) (all G rows, on the
    same blocked sums; the n rows read, gn(off)), then z, n and h (kernels_f32_ext's order)."""
    views = f"    av, st, rb = buf[A + b * {sums}:], buf[S0 + b * {S}:], buf[RB + b * {rs}:]  # views"
    out("for b in range(B):", views)
    gru_reset_gate(out, row, gx, gh, lambda off: f"rb[{off} + j]", ext=ext)
    product()
    out("for b in range(B):", views)
    gru_reset_before(out, row, gx, gh, gn, ext=ext)


def _projections(out: Lines, sums: int, G: int, head: str = "else:") -> None:
    """Under `head` (at >= 0): each stream's first-layer input sums copied from run()'s projections (pv, padded(G)
    apart)."""
    out(head,
        "    for b in range(B):",
        f"        av, pr = buf[A + b * {sums}:], pv[at + b * {padded(G)}:]  # views, as below",
        f"        for i in range({G}):",
        "            av[i] = pr[i]")


def layer_int8w_fma(out: Lines, row, src: str, stride: int, S: int, sums: int, projected: bool = False,
                     wide: bool = False, w_size: int = 0, qw_at: int = 0, rs: int = 0,
                     ext: Extensions | None = None) -> None:
    """One forward int8w layer for every stream on FMA8 (fused_float.limb_sums false): both mat-vecs as float32 sums
    of the int8 weights (each converted exactly as it is loaded, or read from their float16 copy: fused_float_fma.FMA8)
    times the inputs, in layer_f32's blocks, each sum stored as b + row scale * sum (FMA8_SCALED: the scale and
    bias loaded once per block for four streams, where their blocks' reads stay inside w, scale_start; else the
    cell update applies them), then the cell update: kernels_int8w's arithmetic to float32 rounding. projected: as
    layer_f32's (the sums from pv when at >= 0, run() having scaled them alike). wide: each group of W^T's columns
    converted once into CW for all the streams (step_wide, from CONVERT_FROM streams), else converted as loaded,
    once per four streams. Zen 3, har at batch 64: the gate stage 0.33-0.36 -> 0.25-0.26 us a stream-step, the
    step 1.20-1.21 -> 1.12-1.14. Converted as loaded, the sums read W^T from qw, which starts at qblob's offset
    qw_at (qw_start). ext: as layer_f32's."""
    G, K, H = gate_rows(row), int(row[L_N_IN]), int(row[L_HIDDEN])
    half = sums // 2
    out(f"# layer: cell {int(row[L_CELL])}, {K} -> {H}")
    if projected:
        _projections(out, sums, G, "if at >= 0:")
    h_rows, first = hn_rows(row)  # a reset-before GRU's products: the r, z rows' then the n rows' (or every row)
    parts = ((int(row[L_OFF_WIH]), K, G, "A", src, stride),
             (int(row[L_OFF_WHH]), H, h_rows, f"A + {half}", f"S0 + {int(row[L_OFF_H])}", S))
    scaled = [scale_start(row, side, w_size) for side in ("x", "h")]
    for n, (woff, k, N, acc, v, v_stride) in enumerate(parts):
        if projected and n == 0:
            out("if at < 0:")
            out.depth += 1
        # each sum starts from 0 in registers (FMA8_ZERO, FMA8_SCALED): no pass clears them first
        if wide:
            fma_calls(out, "buf", acc, sums, "CW", N, k, v, v_stride, "B", "b", "fma8", convert=(woff, N, k),
                      zero=True, scaled=scaled[n])
        else:
            fma_calls(out, "qw", acc, sums, woff - qw_at, N, k, v, v_stride, "B", "b", "fma8", zero=True,
                      scaled=scaled[n])
        if projected and n == 0:
            out.depth -= 1

    def part(bias: int, scale: int, at: int, done, array: str = "av"):
        if done is not None:  # b + s * sum stored by the product
            return lambda off: f"{array}[{at + off} + j]"
        return lambda off: f"(w[{bias + off} + j] + w[{scale + off} + j] * {array}[{at + off} + j])"

    gx = part(int(row[L_OFF_BIH]), int(row[L_OFF_SIH]), 0, scaled[0])
    gh = part(int(row[L_OFF_BHH]), int(row[L_OFF_SHH]), half, scaled[1])
    if reset_before(row):
        ph, N = padded(H), G - first
        woff, acc = int(row[L_OFF_WHH]) + first * H, f"RB + {ph + first}"
        sb = None if scaled[1] is None else ("w", scaled[1][1] + first, scaled[1][2] + first)

        def product() -> None:  # [b + s *] W_hh^T (r h) into RB + ph, as the sums of h above
            if wide:
                fma_calls(out, "buf", acc, rs, "CW", N, H, "RB", rs, "B", "b", "fma8", convert=(woff, N, H),
                          zero=True, scaled=sb)
            else:
                fma_calls(out, "qw", acc, rs, woff - qw_at, N, H, "RB", rs, "B", "b", "fma8", zero=True, scaled=sb)

        _reset_before(out, row, S, sums, rs, gx, gh,
                      part(int(row[L_OFF_BHH]), int(row[L_OFF_SHH]), ph, scaled[1], "rb"), product, ext)
        return
    out("for b in range(B):",  # no lanes: the step from 16 streams is step_wide, run() `layers` (fused_float_lanes)
        f"    av, st = buf[A + b * {sums}:], buf[S0 + b * {S}:]  # views, as in layer_f32")
    update(out, row, gx, gh, scratch=lambda off: f"av[{half + off} + j]",
           padded_reads=scaled[0] is not None and scaled[1] is not None, ext=ext)  # no w read in gx, gh
