"""The public runtime: load a weight file, stream it one step at a time, or run whole sequences.

Thin classes that validate, then call one kernel. Weights are shared and read-only, so independent
streams of one model may step in different threads. The precision picks the kernels: f32
(runtime/kernels_f32.py), int8w (runtime/kernels_int8w.py, weights kept int8 in memory) or int8
(runtime/kernels_int8.py, integers only between the quantised input and the head's integer logits);
validation and the API are the same for all three.
"""

from __future__ import annotations

import os

import numpy as np

from runtime import artifact
from runtime import spec as specs
from runtime.kernels_f32 import (
    BAD_TOKEN,
    BAD_VALUE,
    denses_f32,
    heads_f32,
    input_projections_f32,
    model_step_dense_f32,
    model_step_tokens_f32,
    sequence_layer_f32,
)
from runtime.kernels_int8 import (
    denses_int8,
    heads_int8,
    input_projections_int8,
    model_step_dense_int8,
    model_step_tokens_int8,
    quantize_inputs_int8,
    sequence_layer_int8,
)
from runtime.kernels_int8w import (
    denses_int8w,
    heads_int8w,
    input_projections_int8w,
    model_step_dense_int8w,
    model_step_tokens_int8w,
    sequence_layer_int8w,
)
from runtime.layout import (
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

_SMALLEST_FLOAT32 = np.float64(2.0**-149)


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

    @property
    def nbytes(self) -> int:
        """Bytes of weights and tables the model holds (shared by all its streams)."""
        return self.layout.nbytes + (0 if self.initial_state is None else self.initial_state.nbytes)

    def stream(self, batch: int = 1) -> Stream:
        """A stream of `batch` independent sequences, advanced one time step per `step()` call."""
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
        ids = self._prompt_ids(prompt)
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n must be a non-negative integer (tokens to generate), got {n!r}")
        sampler = self.sampler(temperature, top_k, seed)
        sampler.feed(ids)
        out = np.empty(int(n), dtype=np.int64)
        sampler.sample_into(out)
        if isinstance(prompt, str):
            return "".join(self.spec["input"]["chars"][i] for i in out)
        return out

    def _prompt_ids(self, prompt) -> np.ndarray:
        """A prompt as int64 ids: characters looked up in input.chars, or ids checked against the vocabulary."""
        if self.dense:
            raise ValueError("generate() needs a token model (input kind 'tokens'); this model takes dense input")
        if isinstance(prompt, str):
            chars = self.spec["input"].get("chars")
            if chars is None:
                raise ValueError("this model's spec has no input.chars, so it cannot read text: pass the prompt "
                                 "as token ids")
            index = {c: i for i, c in enumerate(chars)}
            for position, c in enumerate(prompt):
                if c not in index:
                    raise ValueError(f"prompt character {c!r} (U+{ord(c):04X}) at position {position} is not in "
                                     f"the model's vocabulary of {len(chars)} characters: {chars!r}")
            ids = np.array([index[c] for c in prompt], dtype=np.int64)
        else:
            ids = np.asarray(prompt)
            if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
                raise TypeError(f"prompt must be a str or a 1-D sequence of int token ids, got {ids.dtype} "
                                f"{ids.shape}")
            ids = ids.astype(np.int64)
            bad = (ids < 0) | (ids >= self.vocab)
            if bad.any():
                raise ValueError(f"prompt token id {int(ids[bad][0])} at position {int(np.argmax(bad))} is outside "
                                 f"the vocabulary [0, {self.vocab})")
        if ids.size == 0:
            raise ValueError("the prompt is empty: give at least one token to start from")
        return ids

    # -- whole sequences ------------------------------------------------------------------
    def run(self, X, lengths=None) -> np.ndarray:
        """Whole sequences: X (B, T, F) float32 or (B, T) int token ids; lengths (B,) true lengths.

        Returns (B, T, out) for an every_step head (zero past each length), (B, out) for last_step.
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
        valid = np.arange(T)[None, :] < lengths[:, None]
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
            X = X.astype(np.float32)
            if not np.all(np.isfinite(X[valid])):
                raise ValueError("X holds NaN or infinity within its lengths; the runtime refuses non-finite input")
            mean = np.asarray(self.spec["input"]["mean"], dtype=np.float32)
            std = np.asarray(self.spec["input"]["std"], dtype=np.float32)
            return np.ascontiguousarray((X - mean) / std, dtype=np.float32)
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
            X = np.ascontiguousarray(X, dtype=np.float32)
            if not np.all(np.isfinite(X[valid])):
                raise ValueError("X holds NaN or infinity within its lengths; the runtime refuses non-finite input")
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
        if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"lengths must be {B} integers (one per sequence), got shape {lengths.shape} {lengths.dtype}")
        if lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"lengths must lie in [1, {T}], got min {lengths.min()} max {lengths.max()}")
        return lengths.astype(np.int64)


class Stream:
    """Preallocated state and output for `batch` streams; `step()` allocates nothing."""

    def __init__(self, model: Model, batch: int):
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be a positive integer, got {batch!r}")
        lay = model.layout
        self.model = model
        self.batch = batch
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
            # one buffer, so a step passes one array for all of them (see kernels_f32.stream_buffers)
            self._buf = np.zeros(n_y + n_state + lay.scratch_size, dtype=np.float32)
            self.y = self._buf[:n_y].reshape(batch, model.out)  # the last step's output
            self._args = (self._buf,)
            if model.precision == "int8w":
                self._weights = (lay.qblob, lay.blob, lay.table)
                kernels = (model_step_dense_int8w, model_step_tokens_int8w)
            else:
                self._weights = (lay.blob, lay.table)
                kernels = (model_step_dense_f32, model_step_tokens_f32)
        # every layer's h (and c): float32, or int32 holding int16 values (int8)
        self.state = self._buf[n_y : n_y + n_state].reshape(batch, -1)
        self.reset()
        if model.dense:
            self._x_shape, self._x_dtype = (batch, model.features), np.dtype(np.float32)
            self._kernel = kernels[0]
        else:
            self._x_shape, self._x_dtype = (batch,), np.dtype(np.int64)
            self._kernel = kernels[1]

    @property
    def nbytes(self) -> int:
        """Bytes this stream holds beyond the model: state, output and scratch."""
        return self._buf.nbytes + (self._ybuf.nbytes if self.model.precision == "int8" else 0)

    def step(self, x: np.ndarray) -> np.ndarray:
        """Advance every stream one time step: x (B, F) float32 or (B,) int64 -> y (B, out) float32.

        Returns the stream's own output buffer, overwritten by the next step: copy it to keep it.
        A refused input (wrong shape or dtype, NaN or infinity, token id out of range) raises
        ValueError and leaves the state as it was.
        """
        if x.__class__ is not np.ndarray or x.dtype is not self._x_dtype or x.shape != self._x_shape:
            self._refuse(x)
        status = self._kernel(*self._args, x, *self._weights)
        if status:
            self._refuse_values(x, status)
        return self.y

    def reset(self) -> None:
        """Back to the initial state (zeros, or the layers' h0/c0 for a spec with initial_state): the next step
        starts a new sequence."""
        if self.model.initial_state is None:
            self.state[:] = 0
        else:
            self.state[:] = self.model.initial_state

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
            raise ValueError("step() input holds NaN or infinity; the state is unchanged (the step was not taken)")
        if status == BAD_TOKEN:
            bad = x[(x < 0) | (x >= self.model.vocab)]
            raise ValueError(f"token id {int(bad[0])} is outside the vocabulary [0, {self.model.vocab}); "
                             "the state is unchanged (the step was not taken)")
        raise RuntimeError(f"kernel returned unknown status {status}")


class Sampler:
    """Sample tokens from a streaming token model, feeding each one back in: generation, one token per call.

        sampler = model.sampler(temperature=0.8, top_k=20, seed=0)
        sampler.feed(prompt_ids)          # stream the prompt (at least one token before the first sample)
        token = sampler.next()            # sample from the last output, step it in, return it
        sampler.sample_into(out)          # fill an int64 array with the next len(out) tokens

    Everything is preallocated here: the batch-1 stream (its own output buffer is the distribution), float64
    scores and cumulative sums of vocab entries, a mask, the one-token input and the uniform draw. Per token:
    scores = log(y) / temperature (the head's softmax probabilities; for a log_softmax head or one without
    activation, y itself: log-probabilities or logits, equal up to a constant), the scores below the k-th largest
    set to -inf (top-k: an in-place partition of a copy), exp(scores - max), their cumulative sum, and the token is the first whose cumulative sum exceeds u times
    the total, u uniform in [0, 1) from a numpy Generator(PCG64(seed)): one draw per token. No array is
    allocated per token. A Sampler holds one stream: use one per thread.
    """

    def __init__(self, model: Model, temperature: float = 1.0, top_k: int | None = None, seed: int = 0):
        if model.dense:
            raise ValueError("generation needs a token model (input kind 'tokens'); this model takes dense input")
        head = model.spec["head"]
        if head["on"] != "every_step" or head["out"] != model.vocab or head["activation"] == "sigmoid":
            raise ValueError("generation needs a head that predicts the next token on every step: head on "
                             f"every_step with out = vocab = {model.vocab} and a softmax, log_softmax (or no) "
                             f"activation; this model's head is on {head['on']} with out {head['out']} and "
                             f"{head['activation']}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating)) \
                or not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")
        self.model = model
        self.stream = model.stream(batch=1)  # refuses a bidirectional model
        self.temperature = float(temperature)
        self.top_k = None if top_k is None or top_k >= model.vocab else int(top_k)
        self.seed = seed
        self._log = head["activation"] == "softmax"  # y holds probabilities: their log are the logits (+ const)
        self._inverse_t = np.float64(1.0 / self.temperature)
        V = model.vocab
        self._scores = np.zeros(V, dtype=np.float64)
        self._sorted = np.zeros(V, dtype=np.float64)  # top-k: partitioned copy of the scores
        self._cum = np.zeros(V, dtype=np.float64)
        self._mask = np.zeros(V, dtype=np.bool_)
        self._u = np.zeros(1, dtype=np.float64)
        self._x = np.zeros(1, dtype=np.int64)
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._fed = False

    def reset(self) -> None:
        """Reset the stream to its initial state and restart the generator from its seed."""
        self.stream.reset()
        self._rng = np.random.Generator(np.random.PCG64(self.seed))
        self._fed = False

    def feed(self, ids) -> None:
        """Stream token ids (a prompt, or text from elsewhere) through the model without sampling."""
        for token in np.asarray(ids, dtype=np.int64).reshape(-1):
            self._x[0] = token
            self.stream.step(self._x)
            self._fed = True

    def next(self) -> int:
        """Sample a token from the model's last output, step it into the model, and return its id."""
        if not self._fed:
            raise ValueError("feed() at least one token (a prompt) before sampling: the model has no output yet")
        token = self._sample()
        self._x[0] = token
        self.stream.step(self._x)
        return token

    def sample_into(self, out: np.ndarray) -> np.ndarray:
        """Fill `out` (a 1-D int64 array) with the next len(out) tokens, as repeated next() calls would."""
        if len(out) and not self._fed:
            raise ValueError("feed() at least one token (a prompt) before sampling: the model has no output yet")
        for i in range(len(out)):
            token = self._sample()
            out[i] = token
            self._x[0] = token
            self.stream.step(self._x)
        return out

    def _sample(self) -> int:
        y, scores, cum = self.stream.y[0], self._scores, self._cum
        if self._log:  # a probability that underflowed to 0 counts as the smallest float32 (never drawn in practice)
            np.maximum(y, _SMALLEST_FLOAT32, out=scores)
            np.log(scores, out=scores)
        else:
            scores[:] = y
        np.multiply(scores, self._inverse_t, out=scores)
        if self.top_k is not None:
            sorted_ = self._sorted
            sorted_[:] = scores
            kth = len(sorted_) - self.top_k
            sorted_.partition(kth)
            np.less(scores, sorted_[kth], out=self._mask)
            np.copyto(scores, -np.inf, where=self._mask)
        np.subtract(scores, scores.max(), out=scores)
        np.exp(scores, out=scores)
        np.add.accumulate(scores, out=cum)
        self._rng.random(out=self._u)
        np.multiply(self._u, cum[-1], out=self._u)
        np.less_equal(cum, self._u, out=self._mask)
        return min(int(np.count_nonzero(self._mask)), len(cum) - 1)


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
    if not np.issubdtype(X.dtype, kind):
        raise TypeError(f"{name} has dtype {X.dtype}; expected {expected}")


def _check_shape(X: np.ndarray, ndim: int, shape: tuple, name: str, expected: str) -> None:
    if X.ndim != ndim or any(want is not None and got != want for got, want in zip(X.shape, shape)):
        raise ValueError(f"{name} has shape {X.shape}; expected {expected} = {shape}")
