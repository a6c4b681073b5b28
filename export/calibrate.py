"""Calibration for the `int8` precision: run the float model over sample sequences, record the largest magnitudes.

`calibrate(model, X, lengths)` returns the export/quantize_int8.py `Ranges`: max |normalised input| (dense),
and per layer max |h| (both directions) and max |c| (lstm), the initial state h0, c0 included when the layer
has one, and per hidden head layer max |output| (head_absmax). The forward (`float_layers`) is NumPy float64 from
the canonical tensors (export/weights.py), batched over sequences and looped over time, in PyTorch's gate order, and it is the float64 reference of every layer
of the spec, the ONNX extensions (runtime/spec.py) included:

    lstm      i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh), each pre-activation clipped to [-clip, clip]
              (with "clip"; peepholes: i, f add p_i * c, p_f * c of the previous c before the clip)
              i, f = F(i), F(f)  (input_forget: f = 1 - i);  c = f * c + i * G(g)
              o = F(o + p_o * c, clipped) of the new c;  h = o * H(c)
    gru       r, z = F(W_i{r,z} x + b_i{r,z} + W_h{r,z} h + b_h{r,z}), clipped
              n = G(W_in x + b_in + r * (W_hn h + b_hn))            (linear_before_reset, PyTorch's form)
              n = G(W_in x + b_in + W_hn (r * h) + b_hn)            (linear_before_reset false, ONNX's default)
              the whole n pre-activation clipped;  h = (1 - z) * n + z * h
    rnn       h = F(W_ih x + b_ih + W_hh h + b_hh), clipped;  F = tanh (rnn_tanh) or relu (rnn_relu)

F, G, H are the layer-direction's activation functions (spec.functions: the cell's own sigmoid / tanh / relu,
or ONNX's named functions with their alpha and beta). Only steps t < length count. Every direction starts from
the layer's initial state (h0, c0 with "initial_state", else zeros): the forward one at step 0, the backward
one of a bidirectional layer (and the one direction of a "reverse" layer) at each sequence's last true step,
running down to step 0; outside a sequence's length the state stays frozen. Layer l > 0 reads the previous
layer's outputs, both directions side by side. Why NumPy and not the PyTorch module: torch's RNN modules
return c at the last step only, and an LSTM cell's largest |c| is usually reached mid-sequence; and they
have none of the extensions.

`calibration_slice` picks the sequences to calibrate on: a representative slice of the training data.
"""

from __future__ import annotations

import math

import numpy as np

from rnnedge.export.quantize_int8 import Ranges
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import spec as specs

MAX_STEPS = 20000  # time steps calibrated on by default: enough to see every regime of a stream, ~1 s of NumPy


class CalibrationError(ValueError):
    """Calibration data that cannot feed the model (empty, wrong shape or dtype, non-finite, bad lengths)."""


def calibrate(model_or_spec_and_tensors, X, lengths=None, where: str = "calibration data") -> Ranges:
    """Largest magnitudes the float model reaches on X (N, T, F) float or (N, T) int token ids, within lengths.

    model_or_spec_and_tensors: a train.model.RecurrentModel, or (spec, canonical float32 tensors).
    lengths: (N,) true lengths in [1, T]; None means every sequence is T steps long.
    A layer's initial state counts as a value its h (and c) take: max |h0|, |c0| are part of its ranges.
    Raises CalibrationError (naming `where`) for data that cannot feed the model.
    """
    spec, tensors = _spec_and_tensors(model_or_spec_and_tensors)
    X, lengths = check_calibration_data(spec, X, lengths, where)
    first_input, outputs, cell_absmax = float_layers(spec, tensors, X, lengths)
    dense = spec["input"]["kind"] == "dense"
    hidden = [max(float(np.abs(h).max()), _initial_absmax(tensors, l, layer, "h0"))
              for l, (layer, h) in enumerate(zip(spec["layers"], outputs))]
    return Ranges(input_absmax=float(np.abs(first_input).max()) if dense else None,
                  hidden_absmax=hidden, cell_absmax=cell_absmax,
                  head_absmax=head_absmax(spec, tensors, head_features(spec, outputs[-1], lengths)),
                  samples=int(lengths.sum()), extra={"sequences": len(lengths)})


def head_features(spec: dict, last: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """What the head reads, (rows, W): the last layer's output at every valid step (a stream runs its head at
    every step, whatever head.on says), and for a last_step head each sequence's final state as well (a
    bidirectional layer's backward half at step 0)."""
    valid = np.arange(last.shape[1])[None, :] < lengths[:, None]
    rows = [last[valid]]
    if spec["head"]["on"] == "last_step" and not specs.can_stream(spec):
        final = last[np.arange(len(lengths)), lengths - 1].copy()
        layer = spec["layers"][-1]
        if layer.get("reverse"):
            final = last[:, 0]
        elif layer["bidirectional"]:
            final[:, layer["hidden"] :] = last[:, 0, layer["hidden"] :]
        rows.append(final)
    return np.concatenate(rows)


_erf = np.vectorize(math.erf, otypes=[np.float64])
# spec.HIDDEN_ACTIVATIONS in float64
HEAD_FUNCTIONS = {"relu": lambda v: np.maximum(v, 0.0), "tanh": np.tanh, "sigmoid": lambda v: _sigmoid(v),
                  "gelu": lambda v: 0.5 * v * (1.0 + _erf(v / math.sqrt(2.0))),
                  "gelu_tanh": lambda v: 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3))),
                  "none": lambda v: v}


def head_absmax(spec: dict, tensors: dict[str, np.ndarray], v: np.ndarray) -> list[float]:
    """max |output| of each hidden head layer (spec head.hidden) over the rows v (rows, W), in float64."""
    peaks = []
    for k, dense in enumerate(specs.head_hidden(spec)):
        pre = v @ tensors[f"head.hidden.{k}.weight"].astype(np.float64).T + tensors[f"head.hidden.{k}.bias"]
        v = HEAD_FUNCTIONS[dense["activation"]](pre)
        peaks.append(float(np.abs(v).max()))
    return peaks


def _initial_absmax(tensors: dict, l: int, layer: dict, name: str) -> float:
    """max |h0| (or |c0|) over a layer's directions; 0.0 without an initial state."""
    if not layer.get("initial_state") or (name == "c0" and layer["cell"] != "lstm"):
        return 0.0
    return max(float(np.abs(tensors[f"layers.{l}.{d}.{name}"]).max())
               for d in ("fwd", "bwd")[: specs.directions(layer)])


def float_layers(spec: dict, tensors: dict[str, np.ndarray], X: np.ndarray, lengths: np.ndarray, probe=None):
    """The float64 forward over checked data: (first layer's input (N, T, I), every layer's output
    (N, T, H * directions), every layer's max |c| (c0 included; 0.0 for cells without one)), zero past each
    length and cropped to the longest length.

    probe: None, or called as probe(layer, tensor, values (N, K), counted (N, 1) bool) at every step with the
    terms the int8 step forms (export/saturation.py TENSORS): "input term" (W_ih x plus the bias int8 folds
    into it), "recurrent term" (W_hh h or W_hn (r * h), plus gru's b_hn), "pre-activation" (their sum as
    each gate's activation function receives it, peepholes and gru's r * included, before the clip), "cell"
    (lstm c) and "h"; rows where counted is False are padding."""
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
        for d, name in enumerate(("fwd", "bwd")[: specs.directions(layer)]):
            prefix = f"layers.{l}.{name}"
            w = {k: tensors[f"{prefix}.{k}"].astype(np.float64) for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
            for k in ("p", "h0", "c0"):
                if f"{prefix}.{k}" in tensors:
                    w[k] = tensors[f"{prefix}.{k}"].astype(np.float64)
            backward = d == 1 or bool(specs.option(layer, "reverse"))
            h, c = _direction(layer, d, w, v, valid, reverse=backward,
                              probe=None if probe is None else (lambda *a, l=l: probe(l, *a)))
            directions.append(h)
            cells.append(c)
        v = np.concatenate(directions, axis=2)
        outputs.append(v)
        cell_absmax.append(max(cells) if layer["cell"] == "lstm" else 0.0)
    return first_input, outputs, cell_absmax


def activation(name: str, alpha: float, beta: float, x: np.ndarray) -> np.ndarray:
    """One of ONNX's RNN activation functions (spec.ACTIVATION_FNS) in float64."""
    if name == "sigmoid":
        return _sigmoid(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "affine":
        return alpha * x + beta
    if name == "leakyrelu":
        return np.where(x >= 0.0, x, alpha * x)
    if name == "thresholdedrelu":
        return np.where(x > alpha, x, 0.0)  # ONNX's ThresholdedRelu: x > alpha
    if name == "scaledtanh":
        return alpha * np.tanh(beta * x)
    if name == "hardsigmoid":
        return np.clip(alpha * x + beta, 0.0, 1.0)
    if name == "elu":
        return np.where(x >= 0.0, x, alpha * np.expm1(np.minimum(x, 0.0)))
    if name == "softsign":
        return x / (1.0 + np.abs(x))
    if name == "softplus":
        return np.logaddexp(0.0, x)  # log(1 + e^x) without overflow
    raise ValueError(f"activation function {name!r} is not one of {sorted(specs.ACTIVATION_FNS)}")


def _direction(layer: dict, direction: int, w: dict[str, np.ndarray], v: np.ndarray, valid: np.ndarray,
               reverse: bool, probe=None):
    """One direction of one layer over v (N, T, I) -> (outputs (N, T, H) zero past each length, max |c|).

    w: the direction's float64 tensors (w_ih, w_hh, b_ih, b_hh; p, h0, c0 when the layer has them).
    A stream's state is the initial state (h0, c0, or zeros) until its first step in this direction and is
    frozen after its last, so the padding never moves it: forward, the padding is at the end; backward, the
    loop meets it first. probe: None or probe(tensor, values, counted), see float_layers.
    """
    cell = layer["cell"]
    n, steps, _ = v.shape
    hidden = w["w_hh"].shape[1]
    fns = specs.functions(layer, direction)

    def fn(k, x):
        return activation(*fns[k], x)

    clip = specs.option(layer, "clip")

    def clipped(x):
        return np.clip(x, -clip, clip) if clip is not None else x

    xw = v @ w["w_ih"].T + w["b_ih"]  # (N, T, G): every step's input projection at once
    w_hh_t = w["w_hh"].T  # (H, G)
    h = np.tile(w["h0"], (n, 1)) if "h0" in w else np.zeros((n, hidden))
    c = np.tile(w["c0"], (n, 1)) if "c0" in w else np.zeros((n, hidden))
    out = np.zeros((n, steps, hidden))
    cell_absmax = float(np.abs(c).max()) if cell == "lstm" else 0.0
    peep = w.get("p")
    reset_after = bool(specs.option(layer, "linear_before_reset"))
    for t in range(steps - 1, -1, -1) if reverse else range(steps):
        keep = valid[:, t, None]
        if cell == "gru" and not reset_after:
            xr, xz, xn = np.split(xw[:, t], 3, axis=1)
            hr, hz = np.split(h @ w_hh_t[:, : 2 * hidden] + w["b_hh"][: 2 * hidden], 2, axis=1)
            r, z = fn(0, clipped(xr + hr)), fn(0, clipped(xz + hz))
            rh = (r * h) @ w_hh_t[:, 2 * hidden :]
            h_new = (1.0 - z) * fn(1, clipped(xn + rh + w["b_hh"][2 * hidden :])) + z * h
            if probe is not None:  # int8 folds every bias, b_hn too, into the input term
                probe("input term", xw[:, t] + w["b_hh"], keep)
                probe("recurrent term", np.concatenate([hr - w["b_hh"][:hidden], hz - w["b_hh"][hidden : 2 * hidden],
                                                        rh], axis=1), keep)
                probe("pre-activation", np.concatenate([xr + hr, xz + hz, xn + rh + w["b_hh"][2 * hidden :]], axis=1),
                      keep)
                probe("h", h_new, keep)
            h = np.where(keep, h_new, h)
            out[:, t] = np.where(keep, h, 0.0)
            continue
        hw = h @ w_hh_t + w["b_hh"]  # (N, G)
        if cell == "lstm":
            i, f, g, o = np.split(xw[:, t] + hw, 4, axis=1)
            if peep is not None:
                i = i + peep[:hidden] * c
                f = f + peep[hidden : 2 * hidden] * c
            i_pre, f_pre = i, f
            i = fn(0, clipped(i))
            f = 1.0 - i if specs.option(layer, "input_forget") else fn(0, clipped(f))
            c_new = f * c + i * fn(1, clipped(g))
            if peep is not None:
                o = o + peep[2 * hidden :] * c_new
            h_new = fn(0, clipped(o)) * fn(2, c_new)
            if probe is not None:
                _probe_terms(probe, xw[:, t], hw, w["b_hh"], slice(0, 0), np.concatenate([i_pre, f_pre, g, o], axis=1),
                             keep)
                probe("cell", c_new, keep)
            c = np.where(keep, c_new, c)
            cell_absmax = max(cell_absmax, float(np.abs(c).max()))  # c is c0 or a counted step's value
        elif cell == "gru":
            xr, xz, xn = np.split(xw[:, t], 3, axis=1)
            hr, hz, hn = np.split(hw, 3, axis=1)
            r, z = fn(0, clipped(xr + hr)), fn(0, clipped(xz + hz))
            h_new = (1.0 - z) * fn(1, clipped(xn + r * hn)) + z * h
            if probe is not None:
                _probe_terms(probe, xw[:, t], hw, w["b_hh"], specs.recurrent_bias_rows(layer),
                             np.concatenate([xr + hr, xz + hz, xn + r * hn], axis=1), keep)
        else:
            h_new = fn(0, clipped(xw[:, t] + hw))
            if probe is not None:
                _probe_terms(probe, xw[:, t], hw, w["b_hh"], slice(0, 0), xw[:, t] + hw, keep)
        if probe is not None:
            probe("h", h_new, keep)
        h = np.where(keep, h_new, h)
        out[:, t] = np.where(keep, h, 0.0)
    return out, cell_absmax


def _probe_terms(probe, xw: np.ndarray, hw: np.ndarray, b_hh: np.ndarray, kept: slice, pre: np.ndarray,
                 keep: np.ndarray) -> None:
    """The input and recurrent terms as the int8 step forms them (export/quantize_int8.py): b_hh moves to the input
    side except in the rows `kept` (gru's b_hn), and the pre-activations."""
    moved = np.ones(b_hh.shape, dtype=bool)
    moved[kept] = False
    probe("input term", xw + np.where(moved, b_hh, 0.0), keep)
    probe("recurrent term", hw - np.where(moved, b_hh, 0.0), keep)
    probe("pre-activation", pre, keep)


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
