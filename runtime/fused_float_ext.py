"""The per-element arithmetic of a float step's layer with ONNX extensions (clip, other activation functions,
peepholes, input_forget), as source text: fused_float_cells' update and a reset-before GRU's gates take it where a
layer has them (`extensions(blob, row)` is not None).

Each is kernels_f32_ext's arithmetic, element for element (lstm_update_ext_f32, gru_rz_ext_f32 /
gru_update_ext_f32, rnn_update_ext_f32, activate_f32's functions and clip_f32), written for one model: the clip and
every function's alpha and beta are literals of the model's float32 values, and the peepholes are read from the
float32 blob (w) at the layout's offset. Keras' LSTM(activation="relu") and old Keras' hard_sigmoid gates
(tf2onnx: activations Sigmoid / HardSigmoid, Relu, Relu) are layers of this kind; they ran the generic kernels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from rnnedge.runtime.layout import (
    CELL_GRU,
    CELL_LSTM,
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
    L_CELL,
    L_FLAGS,
    L_OFF_EXT,
    L_OFF_P,
)

if TYPE_CHECKING:
    from rnnedge.runtime.fused_float_source import Lines

# the extensions this module writes (a GRU's linear_before_reset false is the products' order: fused_float_step.py)
GATE_EXTENSIONS = F_STEP & ~F_RESET_BEFORE


class Extensions(NamedTuple):
    """One layer-direction's extensions as its step is written: clip (0.0 without), each activation function's
    (code, alpha, beta) in spec.functions' order, where the peepholes [p_i; p_f; p_o] start in w (None without),
    input_forget."""

    clip: float
    functions: tuple[tuple[int, float, float], ...]
    peepholes: int | None
    input_forget: bool


def extensions(blob: np.ndarray, row) -> Extensions | None:
    """The layer-direction's extensions from its layout row and float32 blob (layout.extension_block), or None
    where it has none of GATE_EXTENSIONS (its default functions are then fused_float_cells' own text)."""
    flags = int(row[L_FLAGS])
    if not flags & GATE_EXTENSIONS:
        return None
    cell = int(row[L_CELL])
    n = 3 if cell == CELL_LSTM else 2 if cell == CELL_GRU else 1
    at = int(row[L_OFF_EXT])
    block = [np.float32(v) for v in blob[at : at + 1 + 3 * n]]
    functions = tuple((int(block[1 + 3 * k]), block[2 + 3 * k], block[3 + 3 * k]) for k in range(n))
    return Extensions(block[0], functions, int(row[L_OFF_P]) if flags & F_PEEPHOLES else None,
                      bool(flags & F_INPUT_FORGET))


def literal(value) -> str:
    """A float32 value as source text that numba types as that float32, exactly."""
    return f"np.float32({float(np.float32(value))!r})"


def function(fn: tuple[int, float, float], v: str) -> str:
    """activate_f32's expression of one function (code, alpha, beta) of the float32 variable v."""
    code, alpha, beta = fn
    a, b = literal(alpha), literal(beta)
    return {
        FN_SIGMOID: f"ONE / (ONE + exp_f32(-{v}))",
        FN_TANH: f"TWO / (ONE + exp_f32(-TWO * {v})) - ONE",
        FN_RELU: f"max({v}, ZERO)",
        FN_AFFINE: f"{a} * {v} + {b}",
        FN_LEAKYRELU: f"{a} * {v} if {v} < ZERO else {v}",
        FN_THRESHOLDEDRELU: f"ZERO if {v} <= {a} else {v}",
        FN_SCALEDTANH: f"{a} * (TWO / (ONE + exp_f32(-TWO * {b} * {v})) - ONE)",
        FN_HARDSIGMOID: f"min(max({a} * {v} + {b}, ZERO), ONE)",
        FN_ELU: f"{a} * (exp_f32({v}) - ONE) if {v} < ZERO else {v}",
        FN_SOFTSIGN: f"{v} / (ONE + abs({v}))",
        # kernels_f32_ext._SOFTPLUS_LINEAR: above 20, log1p(e^x) == x in float32
        FN_SOFTPLUS: f"np.log1p(exp_f32({v})) if {v} <= np.float32(20.0) else {v}",
    }[code]


def gate(v: str, pre: str, ext: Extensions, k: int) -> list[str]:
    """Lines (in a loop over j) that set v to function k of the clipped pre-activation `pre`."""
    lines = [f"{v} = {pre}"]
    if ext.clip > 0:
        c = literal(ext.clip)
        lines.append(f"{v} = min(max({v}, -{c}), {c})")
    return lines + [f"{v} = {function(ext.functions[k], v)}"]


def update(out: Lines, cell: int, H: int, gx, gh, st: str, h: int, c: int, ext: Extensions) -> None:
    """fused_float_cells.update's contract for a layer with extensions: kernels_f32_ext's lstm_update_ext_f32 (i, f
    see c_prev and o sees c_new through the peepholes, each pre-activation clipped, f = 1 - i with input_forget, two
    loops over j as the plain LSTM's), gru_rz_ext_f32 + gru_update_ext_f32 or rnn_update_ext_f32."""
    body = "        "
    if cell == CELL_LSTM:  # gate order i f g o; p = [p_i; p_f; p_o]
        p = ext.peepholes

        def pre(off: int, peep: int | None) -> str:
            return f"{gx(off)} + {gh(off)}" + ("" if p is None or peep is None else
                                               f" + w[{p + peep} + j] * {st}[{c} + j]")

        lines = gate("i_", pre(0, 0), ext, 0)
        lines += ["f_ = ONE - i_"] if ext.input_forget else gate("f_", pre(H, H), ext, 0)
        lines += gate("g_", pre(2 * H, None), ext, 1)
        lines += [f"{st}[{c} + j] = f_ * {st}[{c} + j] + i_ * g_"]
        out(f"    for j in range({H}):", *[body + line for line in lines])
        lines = gate("o_", pre(3 * H, 2 * H), ext, 0) + [
            f"t_ = {st}[{c} + j]", f"t_ = {function(ext.functions[2], 't_')}", f"{st}[{h} + j] = o_ * t_"]
        out(f"    for j in range({H}):", *[body + line for line in lines])
    elif cell == CELL_GRU:  # gate order r z n
        lines = (gate("r_", f"{gh(0)} + {gx(0)}", ext, 0) + gate("z_", f"{gh(H)} + {gx(H)}", ext, 0)
                 + gate("n_", f"{gx(2 * H)} + r_ * {gh(2 * H)}", ext, 1)
                 + [f"{st}[{h} + j] = (ONE - z_) * n_ + z_ * {st}[{h} + j]"])
        out(f"    for j in range({H}):", *[body + line for line in lines])
    else:
        out(f"    for j in range({H}):", *[body + line for line in gate("a_", f"{gx(0)} + {gh(0)}", ext, 0)],
            f"{body}{st}[{h} + j] = a_")


def reset_gate(out: Lines, H: int, gx, gh, rh, st: str, h: int, ext: Extensions) -> None:
    """fused_float_cells.gru_reset_gate's contract with extensions: r = f(clip(gh + gx)) (gru_rz_ext_f32)."""
    out(f"    for j in range({H}):", *["        " + line for line in gate("r_", f"{gh(0)} + {gx(0)}", ext, 0)],
        f"        {rh(0)} = r_ * {st}[{h} + j]")


def reset_before(out: Lines, H: int, gx, gh, gn, st: str, h: int, ext: Extensions) -> None:
    """fused_float_cells.gru_reset_before's contract with extensions: z = f(clip(gh + gx)), n = g(clip(gn + gx))
    (gru_rz_ext_f32 and gru_update_ext_f32 with reset_before)."""
    lines = (gate("z_", f"{gh(H)} + {gx(H)}", ext, 0) + gate("n_", f"{gn(2 * H)} + {gx(2 * H)}", ext, 1)
             + [f"{st}[{h} + j] = (ONE - z_) * n_ + z_ * {st}[{h} + j]"])
    out(f"    for j in range({H}):", *["        " + line for line in lines])
