"""The public runtime: load a weight file, stream it one step at a time, or run whole sequences.

Thin classes that validate, then call one kernel. Weights are shared and read-only, so independent streams of one
model may step in different threads (the kernels release the GIL); one stream belongs to one thread at a time
(Stream, runtime/stream.py: a second thread's step or reset raises StreamInUseError). The precision picks the
kernels: f32 (runtime/kernels_f32.py, kernels_f32_model.py), int8w (runtime/kernels_int8w.py, weights kept int8 in
memory) or int8 (runtime/kernels_int8.py, kernels_int8_model.py, integers only between the quantised input and the
head's integer logits); validation and the API are the same for all three.
"""

from __future__ import annotations

import importlib
import os

import numpy as np

from rnnedge.runtime import artifact, fused
from rnnedge.runtime import spec as specs
from rnnedge.runtime.kernels_f32 import sequences_finite_f32
from rnnedge.runtime.layout import (
    D_ACTIVATION,
    D_N_IN,
    D_OFF_B,
    D_OFF_S,
    D_OFF_W,
    D_UNITS,
    F_INIT,
    L_FLAGS,
    L_HIDDEN,
    L_OFF_BIH,
    L_OFF_C,
    L_OFF_H,
    L_OFF_INIT,
    L_OFF_SIH,
    L_OFF_WIH,
    M_ACTIVATION,
    M_HEAD_IN,
    M_N_IN,
    M_OFF_HEAD_B,
    M_OFF_HEAD_S,
    M_OFF_HEAD_W,
    M_OFF_IN_A,
    M_OFF_IN_B,
    M_OFF_IN_S,
    build,
)
from rnnedge.runtime.sampler import Sampler, generate
from rnnedge.runtime.stream import GENERIC, Stream, _non_finite_message


def _generic(precision: str):
    """The precision's generic kernels' module (stream.GENERIC), imported when run() first needs it: a model the
    specialised steps serve never does, and a process imports only its models' kernels (faster start, issue 15)."""
    return importlib.import_module(GENERIC[precision][0])


def load(path: str | os.PathLike) -> Model:
    """Load and verify a `model.<precision>.safetensors` file (version, checksum, shapes vs spec)."""
    spec, precision, tensors = artifact.read(path)
    return Model(spec, precision, tensors)


class Model:
    """A loaded model: its spec, its packed weights, and the two ways to run it."""

    def __init__(self, spec: dict, precision: str, tensors: dict[str, np.ndarray]):
        self.spec = specs.validate(spec)
        self.precision = precision
        self.layout = build(self.spec, tensors, precision)
        self.dense = self.spec["input"]["kind"] == "dense"
        self.features = specs.input_size(self.spec) if self.dense else None
        self.vocab = None if self.dense else self.spec["input"]["vocab"]
        self.out = self.spec["head"]["out"]
        self.initial_state = _initial_state(self)  # (S,) read-only, shared by the streams; None: zeros
        if self.dense:  # float32, as the kernels normalise: for run() and for naming a refused value
            self._mean = np.asarray(self.spec["input"]["mean"], dtype=np.float32)
            self._std = np.asarray(self.spec["input"]["std"], dtype=np.float32)

    @property
    def nbytes(self) -> int:
        """Bytes of weights and tables the model holds (shared by all its streams)."""
        step = fused.specialised(self)
        extra = 0 if step is None else sum(w.nbytes for w in step.weights if not _shares_layout(w, self.layout))
        return self.layout.nbytes + extra + (0 if self.initial_state is None else self.initial_state.nbytes)

    @property
    def kernel_info(self) -> dict:
        """Which step runs here: {"step": "specialised" | "generic", ...} (runtime/fused.py)."""
        return fused.kernel_info(self)

    def stream(self, batch: int = 1) -> Stream:
        """A stream of `batch` independent sequences, advanced one time step per `step()` call.

        batch: a positive int (numpy integers too). One stream belongs to one thread at a time (see Stream).
        """
        if not specs.can_stream(self.spec):
            kind = "bidirectional" if any(layer["bidirectional"] for layer in self.spec["layers"]) else "reverse"
            raise ValueError(
                f"this model has a {kind} layer: its output at step t depends on later steps, so it "
                "cannot stream one step at a time; use model.run(X) on whole sequences instead"
            )
        return Stream(self, batch)

    # -- generation (one-to-many) ----------------------------------------------------------
    def sampler(self, temperature: float = 1.0, top_k: int | None = None, seed: int = 0) -> Sampler:
        """A Sampler: a stream of batch 1 that feeds each token it samples back in (see Sampler)."""
        return Sampler(self, temperature, top_k, seed)

    def generate(self, prompt, n: int, temperature: float = 1.0, top_k: int | None = None, seed: int = 0):
        """Stream `prompt` through the model, then sample `n` more tokens, each fed back as the next input.

        prompt: a str (the model's spec must carry input.chars; every character must be in it) or a sequence
        of token ids. Returns the n generated tokens: a str for a str prompt, else an int64 array.
        temperature > 0 divides the log-probabilities (below 1: bolder choices of the likely tokens); top_k
        keeps only the k most probable tokens (ties at the k-th probability are kept too); seed seeds a numpy
        PCG64 generator, so the same arguments give the same text. After its buffers are set up, the loop
        allocates nothing per token (Sampler). f32, int8w and int8 models alike; a model must stream (no
        bidirectional layer), take tokens and predict the next token on every step (head.out = vocab).
        """
        return generate(self, prompt, n, temperature, top_k, seed)

    # -- whole sequences ------------------------------------------------------------------
    def run(self, X, lengths=None) -> np.ndarray:
        """Whole sequences: X (B, T, F) float32 or (B, T) int token ids; lengths (B,) true lengths.

        Returns (B, T, out) float32 for an every_step head (zero past each length), (B, out) for last_step; an
        empty batch (B = 0) gives an empty array of that shape, as numpy does. Dense inputs whose normalised value
        (x - mean) / std is not finite within the lengths (NaN, infinity, or a finite x that overflows there) are
        refused with ValueError, as step() refuses them.
        """
        X = np.asarray(X)
        if self.dense:
            _check_dtype(X, np.floating, "X", "float32")
            if X.ndim != 3 or X.shape[2] != self.features:  # the check's own test, without its loop per call
                _check_shape(X, 3, (None, None, self.features), "X", "(batch, time, features)")
        else:
            _check_dtype(X, np.integer, "X", "int64 token ids")
            if X.ndim != 2:
                _check_shape(X, 2, (None, None), "X", "(batch, time)")
        B, T = X.shape[:2]
        if T == 0:
            raise ValueError("X has no time steps")
        if lengths is None:  # every sequence T steps long (run()'s usual call)
            lengths, full = np.empty(B, dtype=np.int64), True
            lengths.fill(T)  # np.full's arithmetic at a third of its cost per call
        else:
            lengths, full = self._check_lengths(lengths, B, T)
        if B == 0:
            return np.zeros((0, T, self.out) if self.spec["head"]["on"] != "last_step" else (0, self.out), np.float32)
        # valid (B, T): which steps lie within their sequence's length; None when all do (run()'s usual call: no
        # mask to build, nothing to replace or zero)
        valid = None if full else np.arange(T) < lengths[:, None]
        step = fused.specialised(self)
        if self.dense:
            X = np.ascontiguousarray(X, dtype=np.float32)
            if step is None or not step.run_checks:
                self._check_normalised(X, valid, lengths)
        if step is not None and step.run is not None:  # the step's own arithmetic, so run() equals step()
            return step.run(X, lengths, valid)
        h = self._inputs_int8(X, lengths, valid) if self.precision == "int8" else self._inputs(X, valid)
        y = self._heads(self._head_features(self._layers(h, lengths), lengths))
        if self.spec["head"]["on"] == "last_step":
            return y
        y = y.reshape(B, T, self.out)
        if valid is not None:
            y[~valid] = 0.0
        return y

    def _inputs(self, X: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        """The first layer's input (B, T, I) float32: normalised features, or embedding rows (f32, int8w)."""
        lay = self.layout
        if self.dense:
            return np.ascontiguousarray(self._normalised(X), dtype=np.float32)
        ids = self._check_tokens(X, valid)
        h = lay.matrix(int(lay.model[M_OFF_IN_A]), self.vocab, int(lay.model[M_N_IN]))[ids]
        if self.precision == "int8w":  # the product the step's dequantize_row_int8w computes
            h = lay.vector(int(lay.model[M_OFF_IN_S]), self.vocab)[ids][..., None] * h.astype(np.float32)
        return np.ascontiguousarray(h, dtype=np.float32)

    def _inputs_int8(self, X: np.ndarray, lengths: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        """The int8 model's first-layer input (B, T, I) int32 (int16 values), quantised as a step does."""
        lay, m = self.layout, self.layout.model
        n_in = int(m[M_N_IN])
        h = np.zeros((*X.shape[:2], n_in), dtype=np.int32)
        if self.dense:
            from rnnedge.runtime.kernels_int8 import quantize_inputs_int8

            quantize_inputs_int8(h, X, lengths, lay.vector(int(m[M_OFF_IN_A]), n_in),
                                 lay.vector(int(m[M_OFF_IN_B]), n_in), lay.blob[int(m[M_OFF_IN_S])])
        else:
            h[:] = lay.matrix(int(m[M_OFF_IN_A]), self.vocab, n_in)[self._check_tokens(X, valid)]
            if valid is not None:
                h[~valid] = 0
        return h

    def _layers(self, h: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Every recurrent layer over whole sequences, in the precision's kernels: for each layer-direction,
        every step's input projection first (W_ih stays in cache), then the recurrence."""
        lay, kernels = self.layout, _generic(self.precision)
        B, T = h.shape[:2]
        for l, layer in enumerate(self.spec["layers"]):
            H = layer["hidden"]
            gates = specs.GATES[layer["cell"]] * H
            out = np.zeros((B, T, H * specs.directions(layer)), dtype=h.dtype)
            for d in range(specs.directions(layer)):
                row = lay.layers[2 * l + d]
                backward = d == 1 or layer.get("reverse", False)
                gx = np.zeros((B, T, gates), dtype=h.dtype)
                w_ih_t = lay.matrix(int(row[L_OFF_WIH]), h.shape[2], gates)
                if self.precision == "int8":
                    kernels.input_projections_int8(gx, h, lengths, w_ih_t, lay.ivector(int(row[L_OFF_BIH]), gates))
                    kernels.sequence_layer_int8(out, gx, lengths, lay.qblob, lay.iblob, row, backward, d * H)
                elif self.precision == "int8w":
                    kernels.input_projections_int8w(gx, h, lengths, w_ih_t, lay.vector(int(row[L_OFF_SIH]), gates),
                                                    lay.vector(int(row[L_OFF_BIH]), gates))
                    kernels.sequence_layer_int8w(out, gx, lengths, lay.qblob, lay.blob, row, backward, d * H)
                else:
                    kernels.input_projections_f32(gx, h, lengths, w_ih_t, lay.vector(int(row[L_OFF_BIH]), gates))
                    kernels.sequence_layer_f32(out, gx, lengths, lay.blob, row, backward, d * H)
            h = out
        return h

    def _head_features(self, h: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """What the head reads: every step's output (B*T, W), or each sequence's final state (B, W): a forward
        direction's output at the last true step, a backward (or reverse) one's at step 0."""
        if self.spec["head"]["on"] != "last_step":
            return np.ascontiguousarray(h.reshape(h.shape[0] * h.shape[1], -1))
        if self.spec["layers"][-1].get("reverse", False):
            return np.ascontiguousarray(h[:, 0])
        last = h[np.arange(h.shape[0]), lengths - 1]
        if self.spec["layers"][-1]["bidirectional"]:
            H = self.spec["layers"][-1]["hidden"]
            last[:, H:] = h[:, 0, H:]
        return np.ascontiguousarray(last)

    def _normalised(self, X: np.ndarray) -> np.ndarray:
        """(X - mean) / std in float32 (normalise_f32's arithmetic), overflow to infinity left unreported here."""
        with np.errstate(over="ignore", invalid="ignore"):
            return (X - self._mean) / self._std

    def _check_normalised(self, X: np.ndarray, valid: np.ndarray | None, lengths: np.ndarray | None = None) -> None:
        """Refuse X (..., F) float32 if a normalised value where `valid` (X.shape[:-1]; None: everywhere) is true is
        not finite (X (B, T, F) with its lengths: checked in one compiled pass first, numpy's arrays only to say
        where)."""
        if lengths is not None and sequences_finite_f32(X, self._mean, self._std, lengths):
            return
        bad = ~np.isfinite(self._normalised(X))
        if valid is not None:
            bad &= valid[..., None]
        if bad.any():
            raise ValueError(_non_finite_message(X, tuple(np.argwhere(bad)[0]), self._mean, self._std, "X"))

    def _check_tokens(self, X: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        """Token ids as int64, 0 past each length (valid (B, T), or None: every step within its length); refuses
        an id outside the vocabulary within a length."""
        ids = X.astype(np.int64)
        bad = (ids < 0) | (ids >= self.vocab)
        if valid is not None:
            bad &= valid
        if bad.any():
            b, t = np.argwhere(bad)[0]
            raise ValueError(f"token id {ids[b, t]} at [{b}, {t}] is outside the vocabulary [0, {self.vocab})")
        return ids if valid is None else np.where(valid, ids, 0)

    def _heads(self, feats: np.ndarray) -> np.ndarray:
        """The head on every row of feats (N, W): its hidden layers one at a time over all rows, then the final
        layer and the activation; row for row the kernels a step runs, so run() equals step()."""
        lay, kernels = self.layout, _generic(self.precision)
        m = lay.model
        if len(lay.dense):
            feats = self._hidden_layers(feats)
        y = np.empty((feats.shape[0], self.out), dtype=np.float32)
        w = lay.matrix(int(m[M_OFF_HEAD_W]), self.out, int(m[M_HEAD_IN]))
        if self.precision == "int8":
            acc = np.empty((feats.shape[0], self.out), dtype=np.int32)
            kernels.heads_int8(y, acc, feats, w, lay.ivector(int(m[M_OFF_HEAD_B]), self.out),
                               lay.vector(int(m[M_OFF_HEAD_S]), self.out), m[M_ACTIVATION])
            return y
        b = lay.vector(int(m[M_OFF_HEAD_B]), self.out)
        if self.precision == "int8w":
            kernels.heads_int8w(y, feats, w, lay.vector(int(m[M_OFF_HEAD_S]), self.out), b, m[M_ACTIVATION])
        else:
            kernels.heads_f32(y, feats, w, b, m[M_ACTIVATION])
        return y

    def _hidden_layers(self, feats: np.ndarray) -> np.ndarray:
        """The head's hidden dense layers on every row of feats (N, W): (N, U_last)."""
        lay, kernels = self.layout, _generic(self.precision)
        for row in lay.dense:
            units, n_in, act = int(row[D_UNITS]), int(row[D_N_IN]), row[D_ACTIVATION]
            out = np.empty((feats.shape[0], units), dtype=feats.dtype)
            w = lay.matrix(int(row[D_OFF_W]), units, n_in)
            if self.precision == "int8":
                kernels.denses_int8(out, feats, w, lay.ivector(int(row[D_OFF_B]), units),
                                    lay.ivector(int(row[D_OFF_S]), 2 * units), act)
            elif self.precision == "int8w":
                kernels.denses_int8w(out, feats, w, lay.vector(int(row[D_OFF_S]), units),
                                     lay.vector(int(row[D_OFF_B]), units), act)
            else:
                kernels.denses_f32(out, feats, w, lay.vector(int(row[D_OFF_B]), units), act)
            feats = out
        return feats

    def _check_lengths(self, lengths, B: int, T: int) -> tuple[np.ndarray, bool]:
        """(lengths (B,) int64, whether every one is T) for run()'s `lengths` argument when given (None, all T, is
        run()'s own)."""
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or not (np.issubdtype(lengths.dtype, np.integer) or lengths.size == 0):
            raise ValueError(f"lengths must be {B} integers (one per sequence), got shape {lengths.shape} {lengths.dtype}")
        if not B:
            return lengths.astype(np.int64), True
        low, high = lengths.min(), lengths.max()
        if low < 1 or high > T:
            raise ValueError(f"lengths must lie in [1, {T}], got min {low} max {high}")
        return lengths.astype(np.int64), bool(low == T)


def _shares_layout(w: np.ndarray, lay) -> bool:
    """Whether a specialised step's weight array is one of the layout's own, or a view of one (int8w's qw: part of
    qblob), counted once in nbytes."""
    return any(np.may_share_memory(w, a) for a in (lay.blob, lay.qblob, lay.iblob, lay.table))


def _initial_state(model: Model) -> np.ndarray | None:
    """One stream's initial state row (S,) in the state's dtype, from the layout's h0/c0 (L_OFF_INIT), or None
    when every layer starts from zeros."""
    lay = model.layout
    rows = [lay.layers[2 * l] for l in range(len(model.spec["layers"]))]
    if not any(row[L_FLAGS] & F_INIT for row in rows):
        return None
    init = np.zeros(lay.state_size, dtype=np.int32 if model.precision == "int8" else np.float32)
    source = lay.iblob if model.precision == "int8" else lay.blob
    for layer, row in zip(model.spec["layers"], rows):
        if row[L_FLAGS] & F_INIT:
            H, off = int(row[L_HIDDEN]), int(row[L_OFF_INIT])
            init[int(row[L_OFF_H]) : int(row[L_OFF_H]) + H] = source[off : off + H]
            if layer["cell"] == "lstm":
                init[int(row[L_OFF_C]) : int(row[L_OFF_C]) + H] = source[off + H : off + 2 * H]
    init.flags.writeable = False
    return init


def _check_dtype(X: np.ndarray, kind, name: str, expected: str) -> None:
    if X.dtype.kind not in _KINDS[kind]:  # np.issubdtype's answer for these two, without its cost per call
        raise TypeError(f"{name} has dtype {X.dtype}; expected {expected}")


_KINDS = {np.floating: "f", np.integer: "iu"}


def _check_shape(X: np.ndarray, ndim: int, shape: tuple, name: str, expected: str) -> None:
    if X.ndim == ndim:
        for got, want in zip(X.shape, shape):  # a loop, not any() over a generator: a third of its cost per call
            if want is not None and got != want:
                break
        else:
            return
    raise ValueError(f"{name} has shape {X.shape}; expected {expected} = {shape}")
