"""float32 tensors -> the int8w weight file's tensors: symmetric int8 per output row, float32 scales.

Every weight matrix (runtime.file_tensors.quantized_matrices) becomes `q` int8 in the narrow range [-127, 127] plus
`<name>.scale` float32 (rows,), with w[r, k] ~= scale[r] * q[r, k]. Biases stay float32, the recurrent one folded into b_ih wherever it is a plain constant
(runtime.spec.recurrent_bias_rows); an LSTM's peepholes and a layer's initial state stay float32 too. The scale of a row is
max|row| / 127, so the row's largest weight is exact and every other one is off by at most scale / 2; a row
of zeros gets scale 1 (any positive value reproduces it exactly, and a zero scale would be refused).
"""

from __future__ import annotations

import numpy as np

from rnnedge.runtime import file_tensors
from rnnedge.runtime import spec as specs

QMAX = 127  # narrow range: -128 is never used, so the range is symmetric about zero


def quantize_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """w (R, K) float -> (q (R, K) int8, scale (R,) float32, max abs error of scale[:, None] * q against w)."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"quantize_rows takes a matrix (rows, columns), got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("quantize_rows: the matrix holds NaN or infinity")
    peak = np.abs(w).max(axis=1) if w.shape[1] else np.zeros(w.shape[0], np.float32)
    scale = np.where(peak > 0, peak / np.float32(QMAX), np.float32(1.0)).astype(np.float32)
    q = np.clip(np.rint(w.astype(np.float64) / scale[:, None]), -QMAX, QMAX).astype(np.int8)
    error = float(np.abs(dequantize_rows(q, scale) - w).max()) if w.size else 0.0
    return q, scale, error


def dequantize_rows(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """scale[:, None] * q in float32: the weights the int8w runtime computes with."""
    return q.astype(np.float32) * scale.astype(np.float32)[:, None]


def quantize_int8w(spec: dict, tensors: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Canonical float32 tensors -> (int8w tensors, max abs weight error per quantized matrix)."""
    out = dict(tensors)
    errors: dict[str, float] = {}
    for name in file_tensors.quantized_matrices(spec):
        out[name], out[f"{name}.scale"], errors[name] = quantize_rows(tensors[name])
    for l, layer in enumerate(spec["layers"]):  # fold the recurrent bias into b_ih where it is a constant
        keep = specs.recurrent_bias_rows(layer)
        for d in ("fwd", "bwd")[: specs.directions(layer)]:
            b_ih, b_hh = tensors[f"layers.{l}.{d}.b_ih"], tensors[f"layers.{l}.{d}.b_hh"]
            with np.errstate(over="ignore"):  # a sum past float32 is refused by name where the file is checked
                folded = (b_ih + b_hh).astype(np.float32)
            folded[keep] = b_ih[keep]
            out[f"layers.{l}.{d}.b_ih"] = folded
            if keep.stop > keep.start:  # gru's b_hn, inside r * (W_hn h + b_hn)
                out[f"layers.{l}.{d}.b_hh"] = np.ascontiguousarray(b_hh[keep], dtype=np.float32)
            else:
                del out[f"layers.{l}.{d}.b_hh"]
    return out, errors
