"""Calibration for the `int8` precision: run the float model over sample sequences, record the largest magnitudes.

`calibrate(model, X, lengths)` returns the export/quantize_int8.py `Ranges`: max |normalised input| (dense),
and per layer max |h| (both directions) and max |c| (lstm). The forward is NumPy float64 from the canonical
tensors (export/weights.py), batched over sequences and looped over time, in PyTorch's gate order:

    lstm      i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh)
              c = sigmoid(f) * c + sigmoid(i) * tanh(g);  h = sigmoid(o) * tanh(c)
    gru       r, z = sigmoid(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z})
              n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h = (1 - z) * n + z * h
    rnn_tanh  h = tanh(W_ih x + b_ih + W_hh h + b_hh)      rnn_relu: max(0, ...)

Only steps t < length count. The backward direction of a bidirectional layer starts from a zero state at each
sequence's last true step and runs down to step 0; layer l > 0 reads the previous layer's outputs, both
directions side by side. Why NumPy and not the PyTorch module: torch's RNN modules return c at the last step
only, and an LSTM cell's largest |c| is usually reached mid-sequence.

`calibration_slice` picks the sequences to calibrate on: a representative slice of the training data.
"""

from __future__ import annotations

import numpy as np

from export.quantize_int8 import Ranges
from export.weights import canonical_tensors
from runtime import spec as specs

MAX_STEPS = 20000  # time steps calibrated on by default: enough to see every regime of a stream, ~1 s of NumPy


class CalibrationError(ValueError):
    """Calibration data that cannot feed the model (empty, wrong shape or dtype, non-finite, bad lengths)."""


def calibrate(model_or_spec_and_tensors, X, lengths=None, where: str = "calibration data") -> Ranges:
    """Largest magnitudes the float model reaches on X (N, T, F) float or (N, T) int token ids, within lengths.

    model_or_spec_and_tensors: a train.model.RecurrentModel, or (spec, canonical float32 tensors).
    lengths: (N,) true lengths in [1, T]; None means every sequence is T steps long.
    Raises CalibrationError (naming `where`) for data that cannot feed the model.
    """
    spec, tensors = _spec_and_tensors(model_or_spec_and_tensors)
    X, lengths = check_calibration_data(spec, X, lengths, where)
    first_input, outputs, cell_absmax = float_layers(spec, tensors, X, lengths)
    dense = spec["input"]["kind"] == "dense"
    return Ranges(input_absmax=float(np.abs(first_input).max()) if dense else None,
                  hidden_absmax=[float(np.abs(h).max()) for h in outputs], cell_absmax=cell_absmax,
                  samples=int(lengths.sum()), extra={"sequences": len(lengths)})


def float_layers(spec: dict, tensors: dict[str, np.ndarray], X: np.ndarray, lengths: np.ndarray):
    """The float64 forward over checked data: (first layer's input (N, T, I), every layer's output
    (N, T, H * directions), every layer's max |c| (0.0 for cells without one)), zero past each length and
    cropped to the longest length."""
    steps = int(lengths.max())
    X = X[:, :steps]
    valid = np.arange(steps)[None, :] < lengths[:, None]  # (N, T)
    inp = spec["input"]
    if inp["kind"] == "dense":
        mean, std = np.asarray(inp["mean"], np.float64), np.asarray(inp["std"], np.float64)
        v = (np.where(valid[:, :, None], X, mean) - mean) / std  # padding (NaN or not) becomes exactly 0
    else:
        v = tensors["embedding.weight"].astype(np.float64)[np.where(valid, X, 0)]
        v[~valid] = 0.0
    first_input, outputs, cell_absmax = v, [], []
    for l, layer in enumerate(spec["layers"]):
        directions, cells = [], []
        for d in ("fwd", "bwd")[: specs.directions(layer)]:
            w = {k: tensors[f"layers.{l}.{d}.{k}"].astype(np.float64) for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
            h, c = _direction(layer["cell"], w, v, valid, reverse=d == "bwd")
            directions.append(h)
            cells.append(c)
        v = np.concatenate(directions, axis=2)
        outputs.append(v)
        cell_absmax.append(max(cells) if layer["cell"] == "lstm" else 0.0)
    return first_input, outputs, cell_absmax


def _direction(cell: str, w: dict[str, np.ndarray], v: np.ndarray, valid: np.ndarray, reverse: bool):
    """One direction of one layer over v (N, T, I) -> (outputs (N, T, H) zero past each length, max |c|).

    A stream's state stays zero until its first step in this direction and is frozen after its last, so the
    padding never moves it: forward, the padding is at the end; backward, the loop meets it first.
    """
    n, steps, _ = v.shape
    hidden = w["w_hh"].shape[1]
    xw = v @ w["w_ih"].T + w["b_ih"]  # (N, T, G): every step's input projection at once
    w_hh_t = w["w_hh"].T  # (H, G)
    h = np.zeros((n, hidden))
    c = np.zeros((n, hidden))
    out = np.zeros((n, steps, hidden))
    cell_absmax = 0.0
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        hw = h @ w_hh_t + w["b_hh"]  # (N, G)
        if cell == "lstm":
            i, f, g, o = np.split(xw[:, t] + hw, 4, axis=1)
            c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h_new = _sigmoid(o) * np.tanh(c_new)
            c = np.where(valid[:, t, None], c_new, c)
            cell_absmax = max(cell_absmax, float(np.abs(c).max()))  # c is 0 or a counted step's value
        elif cell == "gru":
            xr, xz, xn = np.split(xw[:, t], 3, axis=1)
            hr, hz, hn = np.split(hw, 3, axis=1)
            r, z = _sigmoid(xr + hr), _sigmoid(xz + hz)
            h_new = (1.0 - z) * np.tanh(xn + r * hn) + z * h
        else:
            pre = xw[:, t] + hw
            h_new = np.tanh(pre) if cell == "rnn_tanh" else np.maximum(pre, 0.0)
        h = np.where(valid[:, t, None], h_new, h)
        out[:, t] = np.where(valid[:, t, None], h, 0.0)
    return out, cell_absmax


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # exact identity, and no overflow warning for large |x|


def _spec_and_tensors(model_or_spec_and_tensors) -> tuple[dict, dict[str, np.ndarray]]:
    if hasattr(model_or_spec_and_tensors, "state_dict"):
        return model_or_spec_and_tensors.spec, canonical_tensors(model_or_spec_and_tensors)
    spec, tensors = model_or_spec_and_tensors
    return specs.validate(spec), tensors


def check_calibration_data(spec: dict, X, lengths=None, where: str = "calibration data"):
    """(X, lengths int64) if they can feed this model, else CalibrationError saying what is wrong."""
    X = np.asarray(X)
    if X.ndim < 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise CalibrationError(f"{where} is empty (shape {X.shape}): calibration needs at least one sequence of "
                               "at least one step")
    inp = spec["input"]
    if inp["kind"] == "dense":
        if X.ndim != 3 or X.dtype.kind != "f" or X.shape[2] != inp["features"]:
            raise CalibrationError(f"{where}: the model reads (N, T, {inp['features']}) float values, got "
                                   f"{X.dtype} of shape {X.shape}")
    elif X.ndim != 2 or X.dtype.kind not in "iu":
        raise CalibrationError(f"{where}: the model reads (N, T) integer token ids, got {X.dtype} of shape {X.shape}")
    n, steps = X.shape[:2]
    lengths = _check_lengths(lengths, n, steps, where)
    valid = np.arange(steps)[None, :] < lengths[:, None]
    if inp["kind"] == "dense":
        bad = valid[:, :, None] & ~np.isfinite(X)
        if bad.any():
            seq, t, feature = (int(i[0]) for i in np.nonzero(bad))
            raise CalibrationError(f"{where}: non-finite value {X[seq, t, feature]} in sequence {seq}, step {t}, "
                                   f"feature {feature} (within its length {lengths[seq]})")
    else:
        ids = X[valid]
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= inp["vocab"]:
            raise CalibrationError(f"{where}: token ids span [{low}, {high}], the model's vocabulary is "
                                   f"[0, {inp['vocab']})")
    return X, lengths


def _check_lengths(lengths, n: int, steps: int, where: str) -> np.ndarray:
    if lengths is None:
        return np.full(n, steps, dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != (n,) or lengths.dtype.kind not in "iu":
        raise CalibrationError(f"{where}: lengths must be ({n},) integers, one per sequence, got {lengths.dtype} "
                               f"of shape {lengths.shape}")
    lengths = lengths.astype(np.int64)
    if lengths.min() < 1 or lengths.max() > steps:
        raise CalibrationError(f"{where}: lengths must lie in [1, {steps}] (the padded length), got "
                               f"[{lengths.min()}, {lengths.max()}]")
    return lengths


def calibration_slice(X, lengths=None, max_steps: int = MAX_STEPS, seed: int = 0):
    """A representative slice of the training data: (X, lengths) of a seeded random subset of sequences.

    Sequences are visited in a seeded random order and kept while their total length stays within max_steps,
    so the slice mixes every part of the data rather than its first recordings. It holds at least one
    sequence: if none fits whole, the first one in that order is cut to max_steps. X comes back cropped to
    the slice's longest sequence.
    """
    X = np.asarray(X)
    if max_steps < 1:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    if X.ndim < 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise CalibrationError(f"calibration data is empty (shape {X.shape}): calibration needs at least one "
                               "sequence of at least one step")
    lengths = _check_lengths(lengths, X.shape[0], X.shape[1], "calibration data")
    order = np.random.default_rng(seed).permutation(len(lengths))
    chosen, total = [], 0
    for i in order:
        if total + lengths[i] <= max_steps:
            chosen.append(i)
            total += int(lengths[i])
    if not chosen:
        chosen = [order[0]]
    chosen = np.sort(np.asarray(chosen))  # keep the data's own order within the slice
    kept = np.minimum(lengths[chosen], max_steps)
    return X[chosen, : int(kept.max())], kept
