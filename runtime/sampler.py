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

from rnnedge.runtime.jit import kernel
from rnnedge.runtime.stream_call import compiled_entry

if TYPE_CHECKING:
    from rnnedge.runtime.model import Model

_SMALLEST_FLOAT32 = np.float64(2.0**-149)


@kernel
def kth_smallest(a, k):
    """The k-th smallest value of a (0-based), a reordered in place (selection by partitions, no allocation): the
    value a sorted copy holds at k, which numpy's ndarray.partition(k) leaves there."""
    lo, hi = 0, a.shape[0] - 1
    while lo < hi:
        pivot = a[(lo + hi) // 2]
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            break
    return a[k]


@kernel
def sample_token(y, u, inverse_t, log, top_k, space):
    """One token from y (V,) float32, the step's output, and u uniform in [0, 1): Sampler's arithmetic (class
    docstring) in float64, each value as NumPy's array operations form it (no fast-math: the cumulative sum runs in
    order); top_k 0 for none. space (3 V,) float64, overwritten: the scores, a work copy (top-k's selection) and
    the cumulative sums (one array: each array argument costs a call ~30 ns)."""
    V = y.shape[0]
    scores, work, cum = space[:V], space[V : 2 * V], space[2 * V :]
    for i in range(V):
        v = np.float64(y[i])
        if log:  # a probability that underflowed to 0 counts as the smallest float32 (never drawn in practice)
            v = np.log(max(v, _SMALLEST_FLOAT32))
        scores[i] = v * inverse_t
    if top_k > 0:
        for i in range(V):
            work[i] = scores[i]
        kth = kth_smallest(work, V - top_k)
        for i in range(V):
            if scores[i] < kth:
                scores[i] = -np.inf
    top = scores[0]
    for i in range(1, V):
        top = max(top, scores[i])
    total = 0.0
    for i in range(V):
        total += np.exp(scores[i] - top)
        cum[i] = total
    target = u * cum[V - 1]
    count = 0
    for i in range(V):
        count += cum[i] <= target
    return min(count, V - 1)


class Sampler:
    """Sample tokens from a streaming token model, feeding each one back in: generation, one token per call.

    Everything is preallocated here: the batch-1 stream (its own output buffer is the distribution), float64
    scores, a work copy and cumulative sums of vocab entries and the one-token input. Per token:
    scores = log(y) / temperature (the head's softmax probabilities; for a log_softmax head or one without
    activation, y itself: log-probabilities or logits, equal up to a constant), the scores below the k-th largest
    set to -inf (top-k: a selection in the work copy), exp(scores - max), their cumulative sum, and the token is
    the first whose cumulative sum exceeds u times the total, u uniform in [0, 1) from a numpy
    Generator(PCG64(seed)): one draw per token. The arithmetic after the draw is one compiled function
    (sample_token, ~10 NumPy calls before: 10-13 us a token on Zen 4, against a 2-4 us step); its float64 exp and
    log are the C library's, NumPy's may differ from them in the last bit, so a token could differ only where u
    times the total falls within ~1e-16 of a cumulative sum. No array is allocated per token.

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
        self._x = np.zeros(1, dtype=np.int64)
        # sample_token's arguments after u, and its machine code for their types (no dispatch per token)
        self._args = (self._inverse_t, self._log, np.int64(self.top_k or 0), np.zeros(3 * V, dtype=np.float64))
        self._y = self.stream.y[0]
        self._sample_entry = compiled_entry(sample_token, (self._y, 0.0, *self._args), 0)
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
        return self._sample_entry(self._y, self._rng.random(), *self._args)  # random(): random(out=)'s draw


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
