"""Generation (one-to-many): a token model streams a prompt, then samples each next token and feeds it back in.

    sampler = model.sampler(temperature=0.8, top_k=20, seed=0)
    sampler.feed(prompt_ids)          # stream the prompt (at least one token before the first sample)
    token = sampler.next()            # sample from the last output, step it in, return it
    sampler.sample_into(out)          # fill an int64 array with the next len(out) tokens
    text = model.generate("ROMEO:", 200, temperature=0.8, top_k=20, seed=0)   # the same, in one call
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rnnedge.runtime.model import Model

_SMALLEST_FLOAT32 = np.float64(2.0**-149)


class Sampler:
    """Sample tokens from a streaming token model, feeding each one back in: generation, one token per call.

    Everything is preallocated here: the batch-1 stream (its own output buffer is the distribution), float64
    scores and cumulative sums of vocab entries, a mask, the one-token input and the uniform draw. Per token:
    scores = log(y) / temperature (the head's softmax probabilities; for a log_softmax head or one without
    activation, y itself: log-probabilities or logits, equal up to a constant), the scores below the k-th largest
    set to -inf (top-k: an in-place partition of a copy), exp(scores - max), their cumulative sum, and the token is
    the first whose cumulative sum exceeds u times the total, u uniform in [0, 1) from a numpy
    Generator(PCG64(seed)): one draw per token. No array is allocated per token.

    Threads: a Sampler holds one stream and follows its contract (runtime.stream.Stream). Each call (feed, next,
    sample_into, reset) claims that stream for its whole length; a call from a second thread meanwhile, or a step
    or reset of sampler.stream, raises StreamInUseError and changes nothing. Use one Sampler per thread.
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
        with self.stream._claimed("Sampler.reset()"):
            self.stream._reset_state()
            self._rng = np.random.Generator(np.random.PCG64(self.seed))
            self._fed = False

    def feed(self, ids) -> None:
        """Stream token ids (a prompt, or text from elsewhere) through the model without sampling."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        with self.stream._claimed("Sampler.feed()"):
            for token in ids:
                self._x[0] = token
                self.stream._step_claimed(self._x)
                self._fed = True

    def next(self) -> int:
        """Sample a token from the model's last output, step it into the model, and return its id."""
        with self.stream._claimed("Sampler.next()"):
            if not self._fed:
                raise ValueError("feed() at least one token (a prompt) before sampling: the model has no output yet")
            token = self._sample()
            self._x[0] = token
            self.stream._step_claimed(self._x)
            return token

    def sample_into(self, out: np.ndarray) -> np.ndarray:
        """Fill `out` (a 1-D int64 array) with the next len(out) tokens, as repeated next() calls would."""
        with self.stream._claimed("Sampler.sample_into()"):
            if len(out) and not self._fed:
                raise ValueError("feed() at least one token (a prompt) before sampling: the model has no output yet")
            for i in range(len(out)):
                token = self._sample()
                out[i] = token
                self._x[0] = token
                self.stream._step_claimed(self._x)
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


def generate(model: Model, prompt, n: int, temperature: float = 1.0, top_k: int | None = None, seed: int = 0):
    """Model.generate: stream `prompt` through the model, then sample `n` more tokens (see there)."""
    ids = prompt_ids(model, prompt)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative integer (tokens to generate), got {n!r}")
    sampler = Sampler(model, temperature, top_k, seed)
    sampler.feed(ids)
    out = np.empty(int(n), dtype=np.int64)
    sampler.sample_into(out)
    if isinstance(prompt, str):
        return "".join(model.spec["input"]["chars"][i] for i in out)
    return out


def prompt_ids(model: Model, prompt) -> np.ndarray:
    """A prompt as int64 ids: characters looked up in input.chars, or ids checked against the vocabulary."""
    if model.dense:
        raise ValueError("generate() needs a token model (input kind 'tokens'); this model takes dense input")
    if isinstance(prompt, str):
        chars = model.spec["input"].get("chars")
        if chars is None:
            raise ValueError("this model's spec has no input.chars, so it cannot read text: pass the prompt "
                             "as token ids (rnnedge run: --prompt-ids 1,2,3)")
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
        bad = (ids < 0) | (ids >= model.vocab)
        if bad.any():
            raise ValueError(f"prompt token id {int(ids[bad][0])} at position {int(np.argmax(bad))} is outside "
                             f"the vocabulary [0, {model.vocab})")
    if ids.size == 0:
        raise ValueError("the prompt is empty: give at least one token to start from")
    return ids
