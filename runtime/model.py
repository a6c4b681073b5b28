"""The public runtime: load a weight file, stream it one step at a time, or run whole sequences.

Thin classes that validate, then call one kernel. Weights are shared and read-only, so independent
streams of one model may step in different threads (the kernels release the GIL); one stream belongs to one
thread at a time (Stream: a second thread's step or reset raises StreamInUseError). The precision picks the kernels: f32
(runtime/kernels_f32.py, kernels_f32_model.py), int8w (runtime/kernels_int8w.py, weights kept int8 in memory) or int8
(runtime/kernels_int8.py, kernels_int8_model.py, integers only between the quantised input and the head's integer logits);
validation and the API are the same for all three.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np

from rnnedge.runtime import artifact, fused
from rnnedge.runtime import spec as specs
from rnnedge.runtime.kernels_f32 import BAD_TOKEN, BAD_VALUE, sequences_finite_f32
from rnnedge.runtime.kernels_f32_model import (
    denses_f32,
    heads_f32,
    input_projections_f32,
    model_step_dense_f32,
    model_step_tokens_f32,
    sequence_layer_f32,
)
from rnnedge.runtime.kernels_int8 import quantize_inputs_int8
from rnnedge.runtime.kernels_int8_model import (
    denses_int8,
    heads_int8,
    input_projections_int8,
    model_step_dense_int8,
    model_step_tokens_int8,
    sequence_layer_int8,
)
from rnnedge.runtime.kernels_int8w import (
    denses_int8w,
    heads_int8w,
    input_projections_int8w,
    model_step_dense_int8w,
    model_step_tokens_int8w,
    sequence_layer_int8w,
)
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
from rnnedge.runtime.stream_call import compiled_entry, step_function


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
            _check_shape(X, 3, (None, None, self.features), "X", "(batch, time, features)")
        else:
            _check_dtype(X, np.integer, "X", "int64 token ids")
            _check_shape(X, 2, (None, None), "X", "(batch, time)")
        B, T = X.shape[:2]
        if T == 0:
            raise ValueError("X has no time steps")
        lengths = self._check_lengths(lengths, B, T)
        if B == 0:
            return np.zeros((0, T, self.out) if self.spec["head"]["on"] != "last_step" else (0, self.out), np.float32)
        valid = np.arange(T) < lengths[:, None]
        if self.dense:
            X = np.ascontiguousarray(X, dtype=np.float32)
            self._check_normalised(X, valid, lengths)
        step = fused.specialised(self)
        if step is not None and step.run is not None:  # the step's own arithmetic, so run() equals step()
            return step.run(X, lengths, valid)
        h = self._inputs_int8(X, lengths, valid) if self.precision == "int8" else self._inputs(X, valid)
        y = self._heads(self._head_features(self._layers(h, lengths), lengths))
        if self.spec["head"]["on"] == "last_step":
            return y
        y = y.reshape(B, T, self.out)
        y[~valid] = 0.0
        return y

    def _inputs(self, X: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The first layer's input (B, T, I) float32: normalised features, or embedding rows (f32, int8w)."""
        lay = self.layout
        if self.dense:
            return np.ascontiguousarray(self._normalised(X), dtype=np.float32)
        ids = self._check_tokens(X, valid)
        h = lay.matrix(int(lay.model[M_OFF_IN_A]), self.vocab, int(lay.model[M_N_IN]))[ids]
        if self.precision == "int8w":  # the product the step's dequantize_row_int8w computes
            h = lay.vector(int(lay.model[M_OFF_IN_S]), self.vocab)[ids][..., None] * h.astype(np.float32)
        return np.ascontiguousarray(h, dtype=np.float32)

    def _inputs_int8(self, X: np.ndarray, lengths: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The int8 model's first-layer input (B, T, I) int32 (int16 values), quantised as a step does."""
        lay, m = self.layout, self.layout.model
        n_in = int(m[M_N_IN])
        h = np.zeros((*X.shape[:2], n_in), dtype=np.int32)
        if self.dense:
            quantize_inputs_int8(h, X, lengths, lay.vector(int(m[M_OFF_IN_A]), n_in),
                                 lay.vector(int(m[M_OFF_IN_B]), n_in), lay.blob[int(m[M_OFF_IN_S])])
        else:
            h[:] = lay.matrix(int(m[M_OFF_IN_A]), self.vocab, n_in)[self._check_tokens(X, valid)]
            h[~valid] = 0
        return h

    def _layers(self, h: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Every recurrent layer over whole sequences, in the precision's kernels: for each layer-direction,
        every step's input projection first (W_ih stays in cache), then the recurrence."""
        lay = self.layout
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
                    input_projections_int8(gx, h, lengths, w_ih_t, lay.ivector(int(row[L_OFF_BIH]), gates))
                    sequence_layer_int8(out, gx, lengths, lay.qblob, lay.iblob, row, backward, d * H)
                elif self.precision == "int8w":
                    input_projections_int8w(gx, h, lengths, w_ih_t, lay.vector(int(row[L_OFF_SIH]), gates),
                                            lay.vector(int(row[L_OFF_BIH]), gates))
                    sequence_layer_int8w(out, gx, lengths, lay.qblob, lay.blob, row, backward, d * H)
                else:
                    input_projections_f32(gx, h, lengths, w_ih_t, lay.vector(int(row[L_OFF_BIH]), gates))
                    sequence_layer_f32(out, gx, lengths, lay.blob, row, backward, d * H)
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

    def _check_normalised(self, X: np.ndarray, valid: np.ndarray, lengths: np.ndarray | None = None) -> None:
        """Refuse X (..., F) float32 if a normalised value where `valid` (X.shape[:-1]) is true is not finite
        (X (B, T, F) with its lengths: checked in one compiled pass first, numpy's arrays only to say where)."""
        if lengths is not None and sequences_finite_f32(X, self._mean, self._std, lengths):
            return
        bad = ~np.isfinite(self._normalised(X)) & valid[..., None]
        if bad.any():
            raise ValueError(_non_finite_message(X, tuple(np.argwhere(bad)[0]), self._mean, self._std, "X"))

    def _check_tokens(self, X: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Token ids as int64, 0 past each length; refuses an id outside the vocabulary within a length."""
        ids = X.astype(np.int64)
        bad = valid & ((ids < 0) | (ids >= self.vocab))
        if bad.any():
            b, t = np.argwhere(bad)[0]
            raise ValueError(f"token id {ids[b, t]} at [{b}, {t}] is outside the vocabulary [0, {self.vocab})")
        return np.where(valid, ids, 0)

    def _heads(self, feats: np.ndarray) -> np.ndarray:
        """The head on every row of feats (N, W): its hidden layers one at a time over all rows, then the final
        layer and the activation; row for row the kernels a step runs, so run() equals step()."""
        lay = self.layout
        m = lay.model
        if len(lay.dense):
            feats = self._hidden_layers(feats)
        y = np.empty((feats.shape[0], self.out), dtype=np.float32)
        w = lay.matrix(int(m[M_OFF_HEAD_W]), self.out, int(m[M_HEAD_IN]))
        if self.precision == "int8":
            acc = np.empty((feats.shape[0], self.out), dtype=np.int32)
            heads_int8(y, acc, feats, w, lay.ivector(int(m[M_OFF_HEAD_B]), self.out),
                       lay.vector(int(m[M_OFF_HEAD_S]), self.out), m[M_ACTIVATION])
            return y
        b = lay.vector(int(m[M_OFF_HEAD_B]), self.out)
        if self.precision == "int8w":
            heads_int8w(y, feats, w, lay.vector(int(m[M_OFF_HEAD_S]), self.out), b, m[M_ACTIVATION])
        else:
            heads_f32(y, feats, w, b, m[M_ACTIVATION])
        return y

    def _hidden_layers(self, feats: np.ndarray) -> np.ndarray:
        """The head's hidden dense layers on every row of feats (N, W): (N, U_last)."""
        lay = self.layout
        for row in lay.dense:
            units, n_in, act = int(row[D_UNITS]), int(row[D_N_IN]), row[D_ACTIVATION]
            out = np.empty((feats.shape[0], units), dtype=feats.dtype)
            w = lay.matrix(int(row[D_OFF_W]), units, n_in)
            if self.precision == "int8":
                denses_int8(out, feats, w, lay.ivector(int(row[D_OFF_B]), units),
                            lay.ivector(int(row[D_OFF_S]), 2 * units), act)
            elif self.precision == "int8w":
                denses_int8w(out, feats, w, lay.vector(int(row[D_OFF_S]), units),
                             lay.vector(int(row[D_OFF_B]), units), act)
            else:
                denses_f32(out, feats, w, lay.vector(int(row[D_OFF_B]), units), act)
            feats = out
        return feats

    def _check_lengths(self, lengths, B: int, T: int) -> np.ndarray:
        if lengths is None:
            return np.full(B, T, dtype=np.int64)
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or not (np.issubdtype(lengths.dtype, np.integer) or lengths.size == 0):
            raise ValueError(f"lengths must be {B} integers (one per sequence), got shape {lengths.shape} {lengths.dtype}")
        if B and (lengths.min() < 1 or lengths.max() > T):
            raise ValueError(f"lengths must lie in [1, {T}], got min {lengths.min()} max {lengths.max()}")
        return lengths.astype(np.int64)


class StreamInUseError(RuntimeError):
    """A stream was stepped or reset while another thread was stepping or resetting it (Stream's thread contract)."""


class Stream:
    """Preallocated state and output for `batch` streams; `step()` allocates nothing.

    Thread contract: independent streams, of one model or of several, may step in parallel threads (the kernels
    release the GIL; the weights are shared and read-only). One stream belongs to one thread at a time: its state
    and output buffer are its own. A step() or reset() that finds the stream busy in another thread raises
    StreamInUseError and changes nothing, so a shared stream never computes from a half-written state; the call
    under way completes normally. Use one stream per thread (model.stream() is cheap), or guard a shared one with
    your own threading.Lock. y (the output buffer step() returns) and state are overwritten by the next step:
    copy them before handing them to another thread. The check costs ~40 ns a step: one ownership token per
    stream, taken and put back around each kernel call with list operations that are atomic with the GIL and
    without it (free-threaded Python), so two threads can never both hold it.
    """

    def __init__(self, model: Model, batch: int):
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)):
            raise TypeError(f"batch must be an int (the number of independent sequences), got "
                            f"{type(batch).__name__} {batch!r}")
        if batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        batch = int(batch)
        lay = model.layout
        self.model = model
        self.batch = batch
        # the thread contract's check: one token, taken (list.pop, atomic with or without the GIL) for each step or
        # reset and put back after; an empty list means another thread holds the stream. A threading.Lock does
        # the same at 3x the cost (acquire(False) parses its arguments: ~100 ns against ~30 ns a step, measured)
        self._token = [True]
        n_y, n_state = batch * model.out, batch * lay.state_size
        if model.precision == "int8":
            # float32 y; one int32 buffer for the integer logits, state and scratch (kernels_int8)
            self._ybuf = np.zeros(n_y, dtype=np.float32)
            self._buf = np.zeros(n_y + n_state + lay.scratch_size, dtype=np.int32)
            self.y = self._ybuf.reshape(batch, model.out)
            self.logits_q = self._buf[:n_y].reshape(batch, model.out)  # the last step's integer logits
            self._args = (self.y, self._buf)
            self._weights = (lay.qblob, lay.iblob, lay.blob, lay.table)
            kernels = (model_step_dense_int8, model_step_tokens_int8)
        else:
            # one buffer, so a step passes one array for all of them (see kernels_f32_model.stream_buffers)
            self._buf = np.zeros(n_y + n_state + lay.scratch_size, dtype=np.float32)
            self.y = self._buf[:n_y].reshape(batch, model.out)  # the last step's output
            self._args = (self._buf,)
            if model.precision == "int8w":
                self._weights = (lay.qblob, lay.blob, lay.table)
                kernels = (model_step_dense_int8w, model_step_tokens_int8w)
            else:
                self._weights = (lay.blob, lay.table)
                kernels = (model_step_dense_f32, model_step_tokens_f32)
        if model.dense:
            self._x_shape, self._x_dtype = (batch, model.features), np.dtype(np.float32)
            self._kernel = kernels[0]
        else:
            self._x_shape, self._x_dtype = (batch,), np.dtype(np.int64)
            self._kernel = kernels[1]
        step = fused.specialised(model)
        if step is not None:
            self._kernel, self._weights = step.kernel_for(batch), step.weights
            extra = step.scratch(batch) - lay.scratch_size
            if extra > 0:  # the same buffer, longer: y and state stay where the generic kernels keep them
                self._buf = np.concatenate([self._buf, np.zeros(extra, dtype=self._buf.dtype)])
                if model.precision != "int8":
                    self.y = self._buf[:n_y].reshape(batch, model.out)
                else:
                    self.logits_q = self._buf[:n_y].reshape(batch, model.out)
                self._args = (self.y, self._buf) if model.precision == "int8" else (self._buf,)
        # every layer's h (and c): float32, or int32 holding int16 values (int8)
        self.state = self._buf[n_y : n_y + n_state].reshape(batch, -1)
        self._reset_state()
        self._x_strides = np.zeros(self._x_shape, self._x_dtype).strides
        self._entry = compiled_entry(self._kernel, (*self._args, np.zeros(self._x_shape, self._x_dtype),
                                                    *self._weights))
        self.step = step_function(self)  # this method as a closure over the stream's arrays (stream_call.py)

    @property
    def nbytes(self) -> int:
        """Bytes this stream holds beyond the model: state, output and scratch."""
        return self._buf.nbytes + (self._ybuf.nbytes if self.model.precision == "int8" else 0)

    def step(self, x: np.ndarray) -> np.ndarray:
        """Advance every stream one time step: x (B, F) float32 or (B,) int64 -> y (B, out) float32.

        Returns the stream's own output buffer, overwritten by the next step: copy it to keep it.
        A refused input (wrong shape or dtype; NaN or infinity, or a finite value whose normalised
        (x - mean) / std overflows to infinity; a token id out of range) raises ValueError or TypeError and leaves
        the state as it was. Called while another thread steps or resets this stream: StreamInUseError, nothing
        changed (class docstring).
        """
        return self.__dict__["step"](x)  # the instance's own step: stream_call.step_function, set at __init__

    def reset(self) -> None:
        """Back to the initial state (zeros, or the layers' h0/c0 for a spec with initial_state): the next step
        starts a new sequence. Called while another thread steps or resets this stream: StreamInUseError."""
        with self._claimed("reset()"):
            self._reset_state()

    @contextmanager
    def _claimed(self, what: str):
        """Hold the stream for a caller that steps or resets it through _step_claimed / _reset_state (Sampler)."""
        try:
            self._token.pop()
        except IndexError:
            raise self._busy(what) from None
        try:
            yield
        finally:
            self._token.append(True)

    def _step_claimed(self, x: np.ndarray) -> None:
        """step() of a valid x (dtype, shape) by a caller inside _claimed()."""
        status = self._kernel(*self._args, x, *self._weights)
        if status:
            self._refuse_values(x, status)

    def _reset_state(self) -> None:
        if self.model.initial_state is None:
            self.state[:] = 0
        else:
            self.state[:] = self.model.initial_state

    def _busy(self, what: str) -> StreamInUseError:
        return StreamInUseError(
            f"{what} refused: this stream is being stepped or reset by another thread right now. One stream belongs "
            "to one thread at a time (its state and output buffer are its own); use one stream per thread "
            "(model.stream() is cheap) or guard a shared stream with a threading.Lock. Nothing was changed.")

    def _refuse(self, x) -> None:
        if isinstance(x, np.ndarray) and x.dtype == self._x_dtype and x.shape == self._x_shape:
            return  # an equal dtype that is not numpy's cached instance: nothing wrong after all
        what = "float32 array of shape (batch, features)" if self.model.dense else "int64 array of shape (batch,)"
        if not isinstance(x, np.ndarray):
            raise TypeError(f"step() takes a numpy {what} = {self._x_shape}, got {type(x).__name__}")
        if x.dtype != self._x_dtype:
            raise TypeError(f"step() input has dtype {x.dtype}; expected {self._x_dtype} "
                            f"(convert once with x.astype(np.{self._x_dtype}))")
        raise ValueError(f"step() input has shape {x.shape}; expected {self._x_shape}: a {what} "
                         f"(this stream has batch={self.batch})")

    def _refuse_values(self, x: np.ndarray, status: int) -> None:
        if status == BAD_VALUE:
            bad = np.argwhere(~np.isfinite(self.model._normalised(x)))
            where = tuple(bad[0]) if len(bad) else None  # None: x changed after the kernel read it
            raise ValueError(_non_finite_message(x, where, self.model._mean, self.model._std, "step() input")
                             + "; the state is unchanged (the step was not taken)")
        if status == BAD_TOKEN:
            bad = x[(x < 0) | (x >= self.model.vocab)]
            raise ValueError(f"token id {int(bad[0])} is outside the vocabulary [0, {self.model.vocab}); "
                             "the state is unchanged (the step was not taken)")
        raise RuntimeError(f"kernel returned unknown status {status}")


def _non_finite_message(x: np.ndarray, where: tuple | None, mean: np.ndarray, std: np.ndarray, name: str) -> str:
    """Why x[where] (x (..., F) float32) was refused: NaN or infinity itself, or a normalised value that is not."""
    if where is None:
        return f"{name} holds NaN or infinity, or a value whose normalised (x - mean) / std is not finite"
    value, f = x[where], where[-1]
    at = f"{name}[{', '.join(str(int(i)) for i in where)}]"
    if not np.isfinite(value):
        return f"{at} = {value}, refused: NaN or infinity"
    return (f"{at} = {value:g} is finite, but its normalised value (x - mean) / std = ({value:g} - {mean[f]:g}) / "
            f"{std[f]:g} overflows float32 (|x| up to {np.finfo(np.float32).max:g}); such an input is refused, as it "
            "would turn the state into NaN")


def _shares_layout(w: np.ndarray, lay) -> bool:
    """Whether a specialised step's weight array is one of the layout's own (counted once in nbytes)."""
    return any(w is a for a in (lay.blob, lay.qblob, lay.iblob, lay.table))


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
    if X.ndim != ndim or any(want is not None and got != want for got, want in zip(X.shape, shape)):
        raise ValueError(f"{name} has shape {X.shape}; expected {expected} = {shape}")
