"""The int8 head stack (integer dense layers, requantised between them; runtime/kernels_int8.py) equals the NumPy
twin (tests/runtime/int8_twin.py) bit for bit, stepped and whole-sequence; gelu is refused by name."""

from __future__ import annotations

import numpy as np
import pytest

import runtime
from runtime import artifact
from runtime import spec as specs
from runtime.model import Model
from tests.helpers import make_model, make_spec, stream_all, write_artifact
from tests.runtime.int8_twin import Int8Twin, random_int8_tensors, saturating_dense_inputs

BATCH, STEPS = 2, 1500
STACK = ((9, "relu"), (7, "tanh"), (8, "none"), (6, "sigmoid"))  # every activation int8 computes


def hot_case(cell: str, kind: str, seed: int, on: str = "every_step", bidirectional: bool = False):
    """(spec, random hot int8 tensors, inputs (B, T, ...)): the head's sums saturate int16 now and then."""
    spec = make_spec(cell, layers=2, kind=kind, on=on, activation="none", hidden=8, features=4, vocab=20,
                     embed_dim=5, out=3, head_hidden=STACK, bidirectional=bidirectional)
    rng = np.random.default_rng(seed)
    tensors = random_int8_tensors(spec, rng, hot=True)
    if kind == "dense":
        X = saturating_dense_inputs(spec, float(tensors["input.scale"][0]), rng, BATCH, STEPS)
    else:
        X = rng.integers(0, 20, (BATCH, STEPS)).astype(np.int64)
    return specs.validate(spec), tensors, X


@pytest.mark.parametrize("cell,kind", [("lstm", "dense"), ("gru", "tokens"), ("rnn_relu", "dense")])
def test_int8_head_stack_stream_equals_numpy_twin_bit_exact_at_every_step(tmp_path, cell, kind):
    spec, tensors, X = hot_case(cell, kind, seed=len(cell))
    path = tmp_path / "m.int8.safetensors"
    artifact.write(path, tensors, spec, "int8")  # the random tensors pass the artifact's own checks
    stream = runtime.load(path).stream(BATCH)
    twin = Int8Twin(spec, tensors, batch=BATCH)
    for t in range(STEPS):
        x = np.ascontiguousarray(X[:, t])
        stream.step(x)
        xq = twin.quantize_input(x) if kind == "dense" else twin.embed(x)
        expected = twin.step_quantised(xq)
        assert np.array_equal(stream.logits_q, expected), f"step {t}: {stream.logits_q} vs twin {expected}"
        assert np.array_equal(stream.state, twin.state_vector()), f"step {t}"
    assert twin.counts["head_hidden"] > 0, "the head's requantised sums never saturated: the test would prove little"


@pytest.mark.parametrize("on", ["every_step", "last_step"])
def test_int8_head_stack_run_equals_twin_and_stream(on):
    spec, tensors, X = hot_case("gru", "dense", seed=7, on=on)
    model = Model(spec, "int8", tensors)
    twin = Int8Twin(spec, tensors, batch=BATCH)
    got = model.run(X[:, :300])
    assert np.array_equal(got, twin.dequantize(twin.run(twin.quantize_input(X[:, :300]))))
    streamed = stream_all(model.stream(BATCH), X[:, :300])
    assert np.array_equal(got, streamed if on == "every_step" else streamed[:, -1])


def test_int8_head_stack_runs_bidirectional_last_step_like_the_twin():
    spec, tensors, X = hot_case("lstm", "tokens", seed=3, on="last_step", bidirectional=True)
    lengths = np.full(BATCH, 200)
    twin = Int8Twin(spec, tensors, batch=BATCH)
    got = Model(spec, "int8", tensors).run(X[:, :200], lengths)
    assert np.array_equal(got, twin.dequantize(twin.run(twin.embed(X[:, :200]))))


def test_int8_refuses_gelu_head_layers_by_name(tmp_path):
    spec = specs.validate(make_spec("gru", head_hidden=((8, "relu"), (6, "gelu"), (5, "gelu_tanh"))))
    computes = "(int8 computes relu, tanh, sigmoid, none between head layers)"
    assert specs.unsupported(spec, "int8") == [f"head.hidden[1]: a dense layer with activation gelu {computes}",
                                               f"head.hidden[2]: a dense layer with activation gelu_tanh {computes}"]
    assert specs.unsupported(spec, "f32") == specs.unsupported(spec, "int8w") == []
    with pytest.raises(ValueError, match=r"int8 cannot run this model: head.hidden\[1\]: a dense layer with "
                                         r"activation gelu"):
        write_artifact(make_model(spec), tmp_path / "m.int8.safetensors", "int8")
