"""float32 tensors + calibrated ranges -> the `int8` weight file's tensors (arithmetic: docs/int8.md and
runtime/kernels_int8.py).

Weights: symmetric int8 per output row (export/quantize.py, the same rows as int8w); the embedding table has
one scale for the whole table, because the looked-up row is the first layer's input and that input has one
scale. Activations are int16 with zero point 0, so no zero point is folded anywhere.

Calibration statistic: the largest magnitude seen (min/max) over a representative slice of the training
data, times HEADROOM = 2 (one bit). Why not a percentile or an MSE-optimal clip: those trade range for
resolution, which pays off for 8-bit activations (256 levels); our activations are int16, where one bit of
headroom still leaves a resolution of ~1e-4 of the range, and clipping a recurrent state is worse than
rounding it, because the clipped value feeds back into every later step. Calibrated are:

    input (dense)   s_x = HEADROOM * max |(x - mean) / std| / 32767
    lstm cell c     p = ceil(log2(HEADROOM * max |c|)) - 15, clamped to [-15, 1]   (scale 2^p)
    rnn_relu h      s_h = HEADROOM * max h / 32767
    (lstm, gru and rnn_tanh have |h| < 1: h is Q0.15, nothing to calibrate)
    hidden head layer k, relu or none: s_out = HEADROOM * max |output| / 32767 (tanh, sigmoid: Q0.15; gelu,
    gelu_tanh: Q3.12, int8_math.gelu_q12)

Everything else follows from the scales: per row, the requantisation multipliers (runtime.int8_math.
quantize_multiplier) and the int32 biases round(b / (s_in * s_W[row])). The file keeps only what the integer
step reads (runtime.file_tensors.int8_tensors): the weight rows' float scales live on in the multipliers.

The ONNX layer extensions (runtime/spec.py): reverse, input_forget and clip need no tensor (runtime/layout.py
derives the clip's integer from the spec); a gru with linear_before_reset false folds its b_hn into b_ih like
every other row (its n = G(W_in x + b_in + W_hn (r * h) + b_hn) adds b_hn outside the reset), so its file has no
b_hh; initial_state writes h0 as int16 in the layer's s_h (Q0.15 for the bounded cells) and lstm c0 in
2^cell_power, rounded and saturated to [-32767, 32767] (calibration counts |h0| and |c0| into the ranges, so
only a bounded cell's |h0| > 1 saturates; info["initial_state_error"] says by how much). An lstm's peepholes
(TFLM's cell-to-gate weights) become int16 p, symmetric with one scale per gate vector, s_k = max |p_k| / 32767
(k = i, f, o), and one multiplier per gate, (p_requant, p_shift) of s_k * 2^cell_power / 2^-12, which takes
p * c to the gate's Q3.12 pre-activation; info["per_matrix"] holds each p's max abs error. What the int8
kernels cannot run (spec.unsupported: activation functions other than the cell's own) is refused with a
ValueError naming each layer and feature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rnnedge.export.quantize import QMAX, quantize_rows
from rnnedge.runtime import spec as specs
from rnnedge.runtime.int8_math import CELL_POWER_MAX_INT8, CELL_POWER_MIN_INT8, quantize_multiplier
from rnnedge.runtime.layout import check_int32_sums

HEADROOM = 2.0
ACT_MAX = 32767  # int16 activations, symmetric
Q15 = 2.0**-15  # the hidden state scale of bounded cells
Q12 = 2.0**-12  # gate pre-activations
BOUNDED = ("lstm", "gru", "rnn_tanh")


@dataclass
class Ranges:
    """What calibration measured on the float model (export/calibrate.py): largest magnitudes seen."""

    input_absmax: float | None  # dense: max |normalised input|; None for token input
    hidden_absmax: list[float]  # per layer (both directions): max |h|
    cell_absmax: list[float]  # per layer: max |c| (lstm), 0.0 for other cells
    head_absmax: list[float] = field(default_factory=list)  # per hidden head layer: max |output| (spec head.hidden)
    samples: int = 0  # time steps the ranges were measured over
    extra: dict = field(default_factory=dict)  # anything the calibrator wants in the report

    def as_dict(self) -> dict:
        return {"statistic": f"max magnitude x {HEADROOM:g} headroom", "steps": self.samples,
                "input_absmax": self.input_absmax, "hidden_absmax": list(self.hidden_absmax),
                "cell_absmax": list(self.cell_absmax), **({"head_absmax": list(self.head_absmax)}
                                                          if self.head_absmax else {}), **self.extra}


def cell_power(absmax: float) -> int:
    """p with HEADROOM * absmax < 2^(p + 15), in [CELL_POWER_MIN_INT8, CELL_POWER_MAX_INT8]."""
    if not absmax > 0:
        return CELL_POWER_MIN_INT8
    p = math.ceil(math.log2(HEADROOM * absmax)) - 15
    return int(min(max(p, CELL_POWER_MIN_INT8), CELL_POWER_MAX_INT8))


def _activation_scale(absmax: float | None) -> float:
    return HEADROOM * absmax / ACT_MAX if absmax and absmax > 0 else 1.0 / ACT_MAX


def _multipliers(real: np.ndarray) -> np.ndarray:
    """(2, rows) int32: M and S of each real multiplier."""
    pairs = [quantize_multiplier(float(m)) for m in real]
    return np.array(pairs, dtype=np.int64).T.astype(np.int32).reshape(2, -1)


BIAS_ROOM = 2.0**30  # largest |int32 bias|: half the int32 range, the other half is the dot product's


def _rows(w: np.ndarray, bias: np.ndarray, s_in: float):
    """quantize_rows, then widen the scale of any row too fine for its bias: a row of near-zero weights gets
    scale ~ max|row| / 127, and its bias b / (s_in * scale) would not fit int32. Such a row's scale becomes
    |b| / (s_in * BIAS_ROOM): its weights, tiny next to the bias, lose resolution nobody can see, and the
    error returned says by how much. -> (q, scale, max abs error of the dequantised row)."""
    q, scale, error = quantize_rows(w)
    floor = (np.abs(bias.astype(np.float64)) / (s_in * BIAS_ROOM)).astype(np.float32)
    wide = floor > scale
    if np.any(wide):
        scale = np.where(wide, floor, scale).astype(np.float32)
        q = np.clip(np.rint(w.astype(np.float64) / scale[:, None]), -QMAX, QMAX).astype(np.int8)
        error = float(np.abs(q.astype(np.float32) * scale[:, None] - w).max())
    return q, scale, error


def _bias(name: str, b: np.ndarray, scale: np.ndarray) -> np.ndarray:
    q = np.rint(b.astype(np.float64) / scale)
    if np.any(np.abs(q) >= 2**31):
        r = int(np.argmax(np.abs(q)))
        raise ValueError(f"int8: bias {name}[{r}] = {b[r]:g} does not fit int32 in scale {scale[r]:.3g}")
    return q.astype(np.int32)


def quantize_int8(spec: dict, tensors: dict[str, np.ndarray], ranges: Ranges):
    """Canonical float32 tensors -> (int8 tensors, info): info has the scales chosen and weight errors."""
    problems = specs.unsupported(spec, "int8")
    if problems:
        raise ValueError("int8 cannot run this model: " + "; ".join(problems))
    out: dict[str, np.ndarray] = {}
    errors: dict[str, float] = {}
    initial_errors: dict[str, float] = {}
    if len(ranges.hidden_absmax) != len(spec["layers"]) or len(ranges.cell_absmax) != len(spec["layers"]):
        raise ValueError(f"int8: calibration ranges cover {len(ranges.hidden_absmax)} layers, the model has "
                         f"{len(spec['layers'])}")
    if spec["input"]["kind"] == "dense":
        s_in = _activation_scale(ranges.input_absmax)
        out["input.scale"] = np.array([s_in], dtype=np.float32)
    else:
        emb = tensors["embedding.weight"].astype(np.float32)
        peak = float(np.abs(emb).max())
        s_in = peak / QMAX if peak > 0 else 1.0
        out["embedding.weight"] = np.clip(np.rint(emb / np.float32(s_in)), -QMAX, QMAX).astype(np.int8)
        out["embedding.scale"] = np.array([s_in], dtype=np.float32)
        errors["embedding.weight"] = float(np.abs(out["embedding.weight"] * np.float32(s_in) - emb).max())
    s_in = float(np.float32(s_in))  # the scale the file holds is the one every constant derives from
    scales = []
    for l, layer in enumerate(spec["layers"]):
        cell = layer["cell"]
        s_h = Q15 if cell in BOUNDED else float(np.float32(_activation_scale(ranges.hidden_absmax[l])))
        target = Q12 if cell in BOUNDED else s_h  # what yx + yh is in: Q3.12, or rnn_relu's output scale
        power = cell_power(ranges.cell_absmax[l]) if cell == "lstm" else 0
        for d in ("fwd", "bwd")[: specs.directions(layer)]:
            p = f"layers.{l}.{d}"
            b_ih = tensors[f"{p}.b_ih"].astype(np.float64)
            b_hh = tensors[f"{p}.b_hh"].astype(np.float64)
            keep = specs.recurrent_bias_rows(layer)  # biases that stay on the recurrent side: gru's b_hn
            inside = np.zeros(b_hh.shape, dtype=bool)
            inside[keep] = True
            bias_x, bias_h = np.where(inside, b_ih, b_ih + b_hh), np.where(inside, b_hh, 0.0)
            wx, sx, errors[f"{p}.w_ih"] = _rows(tensors[f"{p}.w_ih"], bias_x, s_in)
            wh, sh, errors[f"{p}.w_hh"] = _rows(tensors[f"{p}.w_hh"], bias_h, s_h)
            scale_x = s_in * sx.astype(np.float64)
            scale_h = s_h * sh.astype(np.float64)
            out[f"{p}.w_ih"], out[f"{p}.w_hh"] = wx, wh
            out[f"{p}.b_ih"] = _bias(f"{p}.b_ih", bias_x, scale_x)
            b_h = _bias(f"{p}.b_hh", bias_h, scale_h)
            if inside.any():
                out[f"{p}.b_hh"] = b_h[keep]
            mx, mh = _multipliers(scale_x / target), _multipliers(scale_h / target)
            out[f"{p}.requant"] = np.stack([mx[0], mh[0]]).astype(np.int32)
            out[f"{p}.shift"] = np.stack([mx[1], mh[1]]).astype(np.int8)
            check_int32_sums(f"{p}.w_ih", wx, out[f"{p}.b_ih"])
            check_int32_sums(f"{p}.w_hh", wh, b_h)
            if layer.get("peepholes"):
                peep, m, errors[f"{p}.p"] = _peepholes(tensors[f"{p}.p"], layer["hidden"], 2.0**power)
                out[f"{p}.p"], out[f"{p}.p_requant"], out[f"{p}.p_shift"] = peep, m[0], m[1].astype(np.int8)
            if layer.get("initial_state"):
                out[f"{p}.h0"], initial_errors[f"{p}.h0"] = _state16(tensors[f"{p}.h0"], s_h)
                if cell == "lstm":
                    out[f"{p}.c0"], initial_errors[f"{p}.c0"] = _state16(tensors[f"{p}.c0"], 2.0**power)
        out[f"layers.{l}.scale"] = np.array([s_h], dtype=np.float32)
        out[f"layers.{l}.cell_power"] = np.array([power], dtype=np.int32)
        scales.append({"cell": cell, "hidden_scale": s_h, "cell_power": power if cell == "lstm" else None})
        s_in = s_h
    hidden = specs.head_hidden(spec)
    if len(ranges.head_absmax) != len(hidden):
        raise ValueError(f"int8: calibration ranges cover {len(ranges.head_absmax)} hidden head layers, the model "
                         f"has {len(hidden)}")
    head_scales = []
    for k, dense in enumerate(hidden):
        s_in = _dense_layer(out, errors, tensors, k, dense["activation"], ranges.head_absmax[k], s_in)
        head_scales.append({"activation": dense["activation"], "output_scale": s_in})
    w, s, errors["head.weight"] = _rows(tensors["head.weight"], tensors["head.bias"], s_in)
    head_scale = s_in * s.astype(np.float64)
    out["head.weight"] = w
    out["head.bias"] = _bias("head.bias", tensors["head.bias"], head_scale)
    out["head.scale"] = head_scale.astype(np.float32)
    check_int32_sums("head.weight", w, out["head.bias"])
    info = {"max_abs_weight_error": max(errors.values()), "per_matrix": errors,
            "input_scale": float(out.get("input.scale", out.get("embedding.scale"))[0]), "layers": scales,
            "calibration": ranges.as_dict()}
    if initial_errors:
        info["initial_state_error"] = initial_errors
    if head_scales:
        info["head_hidden"] = head_scales
    return out, info


def _dense_layer(out: dict, errors: dict, tensors: dict, k: int, activation: str, absmax: float, s_in: float) -> float:
    """Hidden head layer k into `out` (runtime.file_tensors.int8_tensors); returns its output scale s_out, the next
    layer's s_in. tanh and sigmoid requantise the sum to Q3.12 for the gate tables, whose output is Q0.15; gelu
    and gelu_tanh to Q3.12 for int8_math.gelu_q12, whose output is Q3.12 too; relu and none to s_out itself."""
    p = f"head.hidden.{k}"
    w, s, errors[f"{p}.weight"] = _rows(tensors[f"{p}.weight"], tensors[f"{p}.bias"], s_in)
    scale = s_in * s.astype(np.float64)
    s_out = {"tanh": Q15, "sigmoid": Q15, "gelu": Q12, "gelu_tanh": Q12}.get(activation)
    s_out = float(np.float32(_activation_scale(absmax))) if s_out is None else s_out
    m = _multipliers(scale / (s_out if activation in ("relu", "none") else Q12))
    out[f"{p}.weight"] = w
    out[f"{p}.bias"] = _bias(f"{p}.bias", tensors[f"{p}.bias"], scale)
    out[f"{p}.requant"], out[f"{p}.shift"] = m[0], m[1].astype(np.int8)
    out[f"{p}.scale"] = np.array([s_out], dtype=np.float32)
    check_int32_sums(f"{p}.weight", w, out[f"{p}.bias"])
    return s_out


def _peepholes(p: np.ndarray, hidden: int, cell_scale: float) -> tuple[np.ndarray, np.ndarray, float]:
    """[p_i; p_f; p_o] (3H,) float -> (int16 p, (2, 3) int32 M and S per gate, max abs error of the dequantised
    p). Each gate vector's scale s = max |p_k| / 32767 (an all-zero vector: 1 / 32767, it stays 0); its
    multiplier s * cell_scale / 2^-12 takes p * c, c in cell_scale, to Q3.12."""
    gates = p.astype(np.float64).reshape(3, hidden)
    peak = np.abs(gates).max(axis=1)
    scale = np.where(peak > 0, peak, 1.0) / ACT_MAX
    q = np.clip(np.rint(gates / scale[:, None]), -ACT_MAX, ACT_MAX)
    error = float(np.abs(q * scale[:, None] - gates).max())
    return q.astype(np.int16).ravel(), _multipliers(scale * cell_scale / Q12), error


def _state16(values: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """An initial state in `scale`: int16 round(values / scale), saturated to [-32767, 32767], and its max abs
    error in real units."""
    v = values.astype(np.float64)
    q = np.clip(np.rint(v / scale), -ACT_MAX, ACT_MAX)
    return q.astype(np.int16), float(np.abs(q * scale - v).max()) if v.size else 0.0
