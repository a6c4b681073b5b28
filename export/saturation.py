"""int8 ranges and saturation: every tensor the integer step forms, its calibrated range, the format int8 chose
for it, and how much of the held-out streams falls outside that format.

The int8 step (runtime/kernels_int8.py, docs/int8.md) stores each value in a fixed-point format whose range follows
from calibration (export/quantize_int8.py); a value past that range saturates. `table` runs the float64 forward
(export/calibrate.float_layers, the reference int8 approximates) twice with a probe: over the calibration slice
(what the scales were chosen from) and over the test streams (what the report scores), and returns one row per
layer and tensor:

    tensor            format (int8's)                              range (real units)
    input x           int16 in s_x                                 32767 s_x
    input term        int32 in Q3.12 (rnn_relu: s_h)               2^31 2^-12 (2^31 s_h): the terms are added
    recurrent term    int32 in Q3.12 (rnn_relu: s_h)               before their one saturation
    pre-activation    int16 Q3.12 (rnn_relu: s_h)                  32767 / 4096 ~ 8 (32767 s_h)
    cell (lstm)       int16 in 2^p                                 32767 2^p
    h                 int16 Q0.15 (rnn_relu: s_h)                  32767 / 32768 (32767 s_h)
    head k pre        int16 Q3.12 (tanh, sigmoid, gelu) or s_out   8 or 32767 s_out
    head k output     int16 Q0.15 / Q3.12 / s_out                  the format's end

Saturating a pre-activation past +-8 on its way into sigmoid or tanh is harmless: both are flat there (sigmoid(8)
is 1 - 3.4e-4, tanh(8) 1 - 2.3e-7), which is why gate pre-activations may use Q3.12; so is a value bounded by 1
(a bounded cell's h, a sigmoid/tanh output) meeting Q0.15's end, 1 - 2^-15. Such rows say why ("harmless"). Any
other saturation changes what the model computes, and the report warns about it.
"""

from __future__ import annotations

import numpy as np

from rnnedge.export.calibrate import HEAD_FUNCTIONS, float_layers, head_features
from rnnedge.runtime import spec as specs

ACT_MAX = 32767
Q12, Q15 = 2.0**-12, 2.0**-15
INT32_LIMIT = 2.0**31
BOUNDED = ("lstm", "gru", "rnn_tanh")
FLAT = "sigmoid/tanh are flat past +-8: at most 3.4e-4 off"
UNIT = "|value| <= 1 by construction: at most 2^-15 off"
WARN_FRACTION = 0.0  # any saturation that is not harmless is worth a warning: it feeds back through the state


class _Probe:
    """Per (layer, tensor): largest |value| and, given limits, how many values lie past them. Tensors in
    `positive` feed a relu: only how far they reach above 0 counts (a negative one saturates into relu's 0)."""

    def __init__(self, positive: set, limits: dict | None = None):
        self.positive, self.limits = positive, limits
        self.stats: dict[tuple, list] = {}

    def __call__(self, layer, tensor: str, values: np.ndarray, counted: np.ndarray) -> None:
        rows = values[counted[:, 0]]
        rows = np.maximum(rows, 0.0) if (layer, tensor) in self.positive else np.abs(rows)
        if rows.size == 0:
            return
        entry = self.stats.setdefault((layer, tensor), [0.0, 0, 0])
        entry[0] = max(entry[0], float(rows.max()))
        entry[2] += rows.size
        if self.limits is not None:
            entry[1] += int((rows > self.limits[(layer, tensor)]).sum())


def formats(spec: dict, info: dict) -> dict[tuple, tuple[str, float, str | None]]:
    """{(layer, tensor): (format, largest real magnitude it holds, why its saturation is harmless or None)} from
    quantize_int8's info: layer is
    "input", a layer index, or ("head", k). A relu's pre-activation is in its output's format ("relu" in the
    format's name: only its positive side can saturate, see positive_side)."""
    out = {}
    if spec["input"]["kind"] == "dense":
        s_x = info["input_scale"]
        out[("input", "x")] = (f"int16, scale {s_x:.3g}", ACT_MAX * s_x, None)
    for l, (layer, scales) in enumerate(zip(spec["layers"], info["layers"])):
        bounded = layer["cell"] in BOUNDED
        s_h = scales["hidden_scale"]
        unit, name = (Q12, "Q3.12") if bounded else (s_h, f"scale {s_h:.3g}")
        out[(l, "input term")] = (f"int32, {name}", INT32_LIMIT * unit, None)
        out[(l, "recurrent term")] = (f"int32, {name}", INT32_LIMIT * unit, None)
        out[(l, "pre-activation")] = ((f"int16, {name}", ACT_MAX * unit, FLAT) if bounded else
                                      (f"int16, {name}, relu", ACT_MAX * unit, None))
        if layer["cell"] == "lstm":
            p = scales["cell_power"]
            out[(l, "cell")] = (f"int16, scale 2^{p}", ACT_MAX * 2.0**p, None)
        out[(l, "h")] = ("int16, Q0.15", ACT_MAX * Q15, UNIT) if bounded else \
            (f"int16, scale {s_h:.3g}", ACT_MAX * s_h, None)
    for k, (dense, scales) in enumerate(zip(specs.head_hidden(spec), info.get("head_hidden", []))):
        activation, s_out = dense["activation"], scales["output_scale"]
        if activation in ("relu", "none"):
            relu = ", relu" if activation == "relu" else ""
            out[(("head", k), "pre-activation")] = (f"int16, scale {s_out:.3g}{relu}", ACT_MAX * s_out, None)
            out[(("head", k), "output")] = (f"int16, scale {s_out:.3g}", ACT_MAX * s_out, None)
        elif activation in ("tanh", "sigmoid"):
            out[(("head", k), "pre-activation")] = ("int16, Q3.12", ACT_MAX * Q12, FLAT)
            out[(("head", k), "output")] = ("int16, Q0.15", ACT_MAX * Q15, UNIT)
        else:  # gelu, gelu_tanh: int8_math.gelu_q12, Q3.12 in and out
            out[(("head", k), "pre-activation")] = ("int16, Q3.12", ACT_MAX * Q12, None)
            out[(("head", k), "output")] = ("int16, Q3.12", ACT_MAX * Q12, None)
    return out


def _run(spec: dict, tensors: dict, X: np.ndarray, lengths: np.ndarray, probe: _Probe) -> None:
    first_input, outputs, _ = float_layers(spec, tensors, X, lengths, probe=probe)
    if spec["input"]["kind"] == "dense":
        valid = np.arange(first_input.shape[1])[None, :] < lengths[:, None]
        probe("input", "x", first_input[valid], np.ones((int(valid.sum()), 1), bool))
    v = head_features(spec, outputs[-1], lengths)
    everything = np.ones((len(v), 1), bool)
    for k, dense in enumerate(specs.head_hidden(spec)):
        pre = v @ tensors[f"head.hidden.{k}.weight"].astype(np.float64).T + tensors[f"head.hidden.{k}.bias"]
        v = HEAD_FUNCTIONS[dense["activation"]](pre)
        probe(("head", k), "pre-activation", pre, everything)
        probe(("head", k), "output", v, everything)


def table(spec: dict, tensors: dict[str, np.ndarray], info: dict, calibration: tuple, test: tuple) -> list[dict]:
    """One row per layer and tensor: calibrated range (max |value| on the calibration slice), format, the range the
    format holds, max |value| on the test streams and the fraction of test values past the format's range (a
    relu's pre-activation: max value, and the fraction above the range).
    calibration, test: (X, lengths) checked data (export/calibrate.check_calibration_data)."""
    limits = formats(spec, info)
    positive = {key for key, value in limits.items() if value[0].endswith(", relu")}
    calibrated, measured = _Probe(positive), _Probe(positive, {key: value[1] for key, value in limits.items()})
    _run(spec, tensors, *calibration, calibrated)
    _run(spec, tensors, *test, measured)
    rows = []
    for key, (fmt, limit, harmless) in limits.items():
        layer, tensor = key
        seen = calibrated.stats.get(key, [0.0, 0, 0])
        test_max, over, total = measured.stats.get(key, [0.0, 0, 0])
        rows.append({"layer": _layer_name(layer), "tensor": tensor, "format": fmt, "limit": limit,
                     "calibrated_absmax": seen[0], "test_absmax": test_max, "test_values": total,
                     "saturated": over / total if total else 0.0, "harmless": harmless})  # why, or None
    return rows


def warnings(rows: list[dict]) -> list[str]:
    """One line per tensor whose test values saturate where it changes the result."""
    out = []
    for row in rows:
        if row["saturated"] > WARN_FRACTION and not row["harmless"]:
            out.append(f"int8: {100 * row['saturated']:.3g}% of {row['layer']} {row['tensor']} values on the test "
                       f"streams lie past its format's range ({row['format']}: |x| <= {row['limit']:.4g}; calibrated "
                       f"max {row['calibrated_absmax']:.4g}, test max {row['test_absmax']:.4g}) and saturate")
    return out


def _layer_name(layer) -> str:
    if layer == "input":
        return "input"
    if isinstance(layer, tuple):
        return f"head.hidden.{layer[1]}"
    return f"layer {layer}"
