"""Model.generate / Sampler: seeded, allocation-free sampling from a character model, in every precision."""

import subprocess
import sys

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.runtime.spec import SpecError, validate
from tests.helpers import bytes_allocated_in_runtime, make_model, make_spec, write_artifact

CHARS = "abc d\n!"


def char_spec(cell="lstm", bidirectional=False, activation="softmax"):
    return {"version": 1,
            "input": {"kind": "tokens", "vocab": len(CHARS), "embed_dim": 5, "padding_idx": None, "chars": CHARS},
            "layers": [{"cell": cell, "hidden": 16, "bidirectional": bidirectional}],
            "head": {"out": len(CHARS), "on": "every_step", "activation": activation}, "task": "generate"}


@pytest.fixture(scope="module")
def char_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gen")
    torch_model = make_model(char_spec(), seed=3)
    return {p: runtime.load(write_artifact(torch_model, folder / f"m.{p}.safetensors", p))
            for p in ("f32", "int8w", "int8")}


@pytest.mark.parametrize("precision", ["f32", "int8w", "int8"])
def test_generate_is_deterministic_for_a_seed_and_differs_for_another(char_models, precision):
    model = char_models[precision]
    text = model.generate("abc", 60, temperature=1.0, seed=0)
    assert isinstance(text, str) and len(text) == 60 and set(text) <= set(CHARS)
    assert model.generate("abc", 60, seed=0) == text
    assert model.generate("abc", 60, seed=1) != text
    ids = model.generate([0, 1, 2], 60, seed=0)  # token ids in, ids out: the same draw
    assert ids.dtype == np.int64 and "".join(CHARS[i] for i in ids) == text


@pytest.mark.parametrize("precision", ["f32", "int8"])
def test_top_k_1_is_greedy_argmax_of_the_stream(char_models, precision):
    model = char_models[precision]
    got = model.generate([4, 0], 40, top_k=1, seed=5)
    stream, x, expected = model.stream(1), np.zeros(1, np.int64), []
    for token in (4, 0):
        x[0] = token
        y = stream.step(x)
    for _ in range(40):
        x[0] = int(np.argmax(y[0]))
        expected.append(x[0])
        y = stream.step(x)
    assert got.tolist() == expected
    assert model.generate([4, 0], 40, top_k=1, temperature=0.3, seed=9).tolist() == expected


def first_draw(model, seed, top_k=None):
    sampler = model.sampler(top_k=top_k, seed=seed)
    sampler.feed([0])
    return sampler.next()


def test_sampling_follows_the_model_distribution_and_top_k_restricts_it(char_models):
    model = char_models["f32"]
    sampler = model.sampler(seed=0)
    sampler.feed([0])
    probabilities = sampler.stream.y[0].astype(np.float64).copy()
    draws = np.array([first_draw(model, s) for s in range(2000)])
    freq = np.bincount(draws, minlength=len(CHARS)) / len(draws)
    assert np.abs(freq - probabilities).max() < 0.04
    top2 = set(np.argsort(probabilities)[-2:].tolist())
    assert {first_draw(model, s, top_k=2) for s in range(200)} <= top2


def test_temperature_sharpens_and_flattens(char_models):
    model = char_models["f32"]
    cold = model.generate("a", 400, temperature=0.05, seed=0)
    hot = model.generate("a", 400, temperature=5.0, seed=0)
    assert len(set(hot)) > len(set(cold))


@pytest.mark.parametrize("precision", ["f32", "int8w", "int8"])
@pytest.mark.parametrize("top_k", [None, 3])
def test_no_allocation_per_token_after_warm_up(char_models, precision, top_k):
    sampler = char_models[precision].sampler(temperature=0.8, top_k=top_k, seed=1)
    sampler.feed([0, 1, 2])
    out = np.empty(3000, dtype=np.int64)
    sampler.sample_into(out[:200])  # warm up numba dispatch and numpy's caches
    sampler.sample_into(out[:200])
    assert bytes_allocated_in_runtime(lambda: sampler.sample_into(out)) == 0


def test_next_continues_where_sample_into_left_off(char_models):
    model = char_models["int8w"]
    whole = model.generate([1, 2], 30, seed=4)
    sampler = model.sampler(seed=4)
    sampler.feed([1, 2])
    first = sampler.sample_into(np.empty(10, np.int64))
    rest = [sampler.next() for _ in range(20)]
    assert first.tolist() + rest == whole.tolist()
    sampler.reset()
    sampler.feed([1, 2])
    assert sampler.sample_into(np.empty(30, np.int64)).tolist() == whole.tolist()


def test_bad_arguments_are_refused_with_clear_errors(char_models, tmp_path):
    model = char_models["f32"]
    with pytest.raises(ValueError, match=r"'Z' \(U\+005A\) at position 2"):
        model.generate("abZ", 5)
    with pytest.raises(ValueError, match="n must be a non-negative"):
        model.generate("a", -1)
    assert model.generate("a", 0) == ""
    for t in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            model.generate("a", 5, temperature=t)
    for k in (0, -3, 1.5):
        with pytest.raises(ValueError, match="top_k"):
            model.generate("a", 5, top_k=k)
    with pytest.raises(ValueError, match="empty"):
        model.generate("", 5)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.generate([0, len(CHARS)], 5)
    with pytest.raises(ValueError, match="feed"):
        model.sampler().next()
    dense = runtime.load(write_artifact(make_model(make_spec("gru")), tmp_path / "dense.safetensors"))
    with pytest.raises(ValueError, match="token model"):
        dense.generate([0], 5)
    bi = runtime.load(write_artifact(make_model(char_spec(bidirectional=True)), tmp_path / "bi.safetensors"))
    with pytest.raises(ValueError, match="bidirectional"):
        bi.generate("a", 5)
    tagger = runtime.load(write_artifact(make_model(make_spec("gru", kind="tokens")), tmp_path / "tag.safetensors"))
    with pytest.raises(ValueError, match="input.chars"):
        tagger.generate("a", 5)
    with pytest.raises(ValueError, match="out = vocab"):
        tagger.generate([1, 2], 5)


def test_spec_validates_input_chars():
    assert validate(char_spec())["input"]["chars"] == CHARS
    for chars, message in (("abc", "must hold vocab"), ("abc d\na", "repeat"), (list(CHARS), "string")):
        spec = char_spec()
        spec["input"]["chars"] = chars
        with pytest.raises(SpecError, match=message):
            validate(spec)


def test_rnnedge_run_generate_prints_the_prompt_and_the_sampled_text(tmp_path):
    path = write_artifact(make_model(char_spec(), seed=3), tmp_path / "m.int8w.safetensors", "int8w")
    args = [sys.executable, "-m", "rnnedge.runtime", path, "--generate", "ab\\nc", "--n", "25", "--top-k", "3",
            "--temperature", "0.8", "--seed", "7"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    expected = runtime.load(path).generate("ab\nc", 25, temperature=0.8, top_k=3, seed=7)
    assert done.stdout == "ab\nc" + expected + "\n"
    bad = subprocess.run([*args[:4], "--generate", "aZ"], capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode == 2 and "'Z'" in bad.stderr


def _numpy_token(y, u, temperature, log, top_k):
    """The sampler's arithmetic as NumPy array operations (what Sampler ran before its compiled sample_token)."""
    scores = np.log(np.maximum(y, np.float64(2.0**-149))) if log else y.astype(np.float64)
    scores = scores * np.float64(1.0 / temperature)
    if top_k:
        kth = np.partition(scores, len(scores) - top_k)[len(scores) - top_k]
        scores = np.where(scores < kth, -np.inf, scores)
    cum = np.add.accumulate(np.exp(scores - scores.max()))
    return min(int(np.count_nonzero(cum <= u * cum[-1])), len(cum) - 1)


@pytest.mark.parametrize("log", [True, False])
def test_the_compiled_sampler_draws_the_tokens_numpys_array_operations_draw(log):
    """20,000 draws over vocabularies of 2-300 entries (peaked, flat and tied distributions, temperatures, top-k
    from 1 to V - 1): the same token every time."""
    from rnnedge.runtime.sampler import sample_token

    rng = np.random.default_rng(7)
    for n in range(20000):
        V = int(rng.integers(2, 300))
        if n % 5 == 0:  # ties: top-k's threshold value held by several entries
            y = rng.integers(1, 4, V).astype(np.float32)
            y /= y.sum()
        else:
            y = rng.dirichlet(np.full(V, rng.choice([0.05, 1.0, 20.0]))).astype(np.float32)
        if not log:
            y = np.log(np.maximum(y, 1e-30)).astype(np.float32) + np.float32(rng.normal(0, 3))
        temperature = float(rng.choice([0.3, 0.8, 1.0, 1.7]))
        top_k = int(rng.integers(1, V)) if n % 2 else 0
        u = rng.random()
        got = sample_token(y, u, np.float64(1.0 / temperature), log, np.int64(top_k), np.zeros(3 * V))
        assert got == _numpy_token(y, u, temperature, log, top_k), (n, V, top_k)
