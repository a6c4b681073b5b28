"""model.run() of an f32 / int8w model that streams, on its compiled step (fused_float_source.py writes both).

    sequence(buf, X, Y, lengths, *weights, pv)  X (T, B, ...); Y (T, B, O), or (B, O) at lengths[b] - 1

The step's body is a function `layers(buf, x, *weights, pv, at)`: step() calls it with at = -1 (it checks x and
computes everything), run() with at >= 0 where it has computed the first layer's input sums ahead. Below
STREAMS sequences (B = 1 to 3, where the step sums one stream at a time and so reads W_ih from cache at every
step for every stream), run() takes the steps in chunks of about PROJECT_ROWS rows (t, b): their inputs
normalised (or embedded) into pv, their first-layer sums b_ih + W_ih v (int8w: b_ih + s W_ih v, each row scale
applied as the step applies it: to the sum as it is stored, or in the cell update, fused_float_source.scale_start)
as one register-blocked product over the chunk's rows (four rows per weight load),
then `layers` at each step of the chunk, which copies its row of pv in place of its own W_ih product. The
product's sums are the step's (each one fused multiply-add chain over k in the same order, on the same weights:
int8w's run() reads the step's qw -- the int8 weights converted as loaded, or their float16 copy where
fused_float.half_copy() -- or a float32 copy of them where fused_float.float_copy()), so run() still equals
stepping, bit for bit. From STREAMS sequences on, run() is
`layers` at every t (the batched step already shares each weight load between four streams; int8w's run() sums
the same way there at any B, where a stream of 8 or more -- 16 with the float16 copy -- runs `step_wide`, the
same numbers). Measured (Zen 3,
T = 300, B = 1, us per step): kws f32 5.78 -> 5.12, int8w 6.22 -> 5.70; har (6 inputs, W_ih small) unchanged.

pv: [projections (rows, GP) | inputs (rows, n_in)], rows up to PROJECT_ROWS + STREAMS, GP the first layer's gate
rows padded to blocks of 16 (lanes past G are the blocks' padding, never read); run_function allocates it per
run(), with the buffer.
"""

from __future__ import annotations

from rnnedge.runtime.fused_float_fma import STREAMS, padded
from rnnedge.runtime.fused_float_source import (
    Lines,
    bias_start,
    fma_calls,
    gate_rows,
    input_rows,
    qw_start,
    scale_start,
)
from rnnedge.runtime.layout import L_N_IN, L_OFF_BIH, L_OFF_WIH

PROJECT_ROWS = 16  # rows (t, b) a chunk projects at once: 4 products of 4 rows, their sums 32 KB for kws (G 512)


def pv_size(model, rows) -> int:
    """Elements of run()'s projections array pv for the model's first layer."""
    return (PROJECT_ROWS + STREAMS) * (padded(gate_rows(rows[0])) + int(rows[0][L_N_IN]))


def sequence_source(model, rows, q8: bool, args: str, O: int, every: bool) -> str:
    """`sequence` (module docstring) calling `layers(buf, x, <args>, pv, at)`; args the step's weights ("w", or
    "q, w, qw" for int8w on FMA8: qw the part of q its sums read, or a float16 / float32 copy of it, as the step's
    or made per run(): fused_float._step_weights / _run_weights)."""
    row = rows[0]
    G, K = gate_rows(row), int(row[L_N_IN])
    GP, VP = padded(G), (PROJECT_ROWS + STREAMS) * padded(G)
    out = Lines()
    out("T, B = X.shape[0], X.shape[1]",
        f"if B >= {STREAMS}:  # the batched step shares each weight load between streams already",
        "    for t in range(T):",
        f"        if layers(buf, X[t], {args}, buf, -1):  # x refused (dense: a normalised value not finite)",
        "            return 1")
    out.depth += 2
    _outputs(out, O, every)
    out.depth -= 2
    out("    return 0")
    if model.dense:  # the chunks' inputs as they are normalised (input_rows' check)
        out("finite = True")
    out(f"ch = ({PROJECT_ROWS} + B - 1) // B  # steps per chunk",
        "for t0 in range(0, T, ch):",
        "    t1 = min(T, t0 + ch)",
        "    rows = (t1 - t0) * B",
        "    for t in range(t0, t1):",
        "        x = X[t]")
    out.depth += 2
    input_rows(out, model, q8, "b", "B", f"{VP} + (t - t0) * B * {K}", array="pv", check=model.dense)
    out.depth -= 1
    if model.dense:
        out("if not finite:  # a normalised value: run_function raises run()'s ValueError",
            "    return 1")
    # the sums start from b (f32) or 0 (int8w) in registers, as the step's (fused_float_source.bias_start /
    # scale_start)
    bias = None if q8 else bias_start(int(row[L_OFF_BIH]), G, model.layout.blob.size)
    if not q8 and bias is None:
        out("for r in range(rows):",
            f"    for j in range({G}):",
            f"        pv[r * {GP} + j] = w[{int(row[L_OFF_BIH])} + j]")
    fma_calls(out, "qw" if q8 else "w", "0", GP, int(row[L_OFF_WIH]) - (qw_start(rows) if q8 else 0), G, K,
              str(VP), K, "rows", "r",
              "fma8" if q8 else "fma", array="pv", bias=bias, zero=q8,
              scaled=scale_start(row, "x", model.layout.blob.size) if q8 else None)
    out("for t in range(t0, t1):",
        f"    layers(buf, X[t], {args}, pv, (t - t0) * B * {GP})")
    out.depth += 1
    _outputs(out, O, every)
    out.depth -= 2
    out("return 0")
    return ("\n\n@fast_entry\n"
            f"def sequence(buf, X, Y, lengths, {args}, pv):\n"
            '    """X (T, B, ...) inputs valid at every t; Y (T, B, O) every output, or (B, O) the output at step\n'
            '    lengths[b] - 1; pv: the first layer\'s input sums of a chunk of steps (fused_float_run.py)."""\n'
            + out.text())


def stepping_source(args: str, O: int, every: bool) -> str:
    """run()'s loop on int8w's VNNI step (whose limb sums are not split by layer part): the same compiled step
    (`layers`, the step without its shape check) at every t, so a whole sequence equals stepping bit for bit."""
    out = Lines()
    out("B = X.shape[1]",
        "for t in range(X.shape[0]):",
        f"    if layers(buf, X[t], {args}):  # x refused (dense: a normalised value not finite)",
        "        return 1")
    out.depth += 1
    _outputs(out, O, every)
    out.depth -= 1
    out("return 0")
    return ("\n\n@fast_entry\n"
            f"def sequence(buf, X, Y, lengths, {args}):\n"
            '    """X (T, B, ...) inputs valid at every t; Y (T, B, O) every output, or (B, O) the output at step\n'
            '    lengths[b] - 1."""\n'
            + out.text())


def _outputs(out: Lines, O: int, every: bool) -> None:
    """Step t's outputs from y (buf's first B O) into Y: every one, or each sequence's at its end."""
    if every:
        out("for b in range(B):",
            f"    for o in range({O}):",
            f"        Y[t, b, o] = buf[b * {O} + o]")
    else:
        out("for b in range(B):",
            "    if lengths[b] == t + 1:",
            f"        for o in range({O}):",
            f"            Y[b, o] = buf[b * {O} + o]")
