"""The int8 head stack (integer dense layers, requantised between them; runtime/kernels_int8.py) equals the NumPy
twin (tests/runtime/int8_twin.py) bit for bit, stepped and whole-sequence; the integer gelu against PyTorch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnedge import runtime
from rnnedge.runtime import artifact
from rnnedge.runtime import spec as specs
from rnnedge.runtime.int8_math import gelu_q12
from rnnedge.runtime.model import Model
from tests.helpers import make_model, make_spec, random_inputs, stream_all, write_artifact
from tests.runtime.int8_twin import ALL_INT16, GELU_OF_INT16, Int8Twin, random_int8_tensors, saturating_dense_inputs

BATCH, STEPS = 2, 1500
STACK = ((9, "relu"), (7, "tanh"), (8, "gelu"), (8, "none"), (6, "sigmoid"), (5, "gelu_tanh"))  # every activation


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
    saturated = {a: twin.counts[f"head_hidden {a}"] for _, a in STACK}
    assert all(saturated.values()), f"some head layer's sums never saturated, the test would prove little: {saturated}"


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


def test_int8_gelu_q12_equals_twin_on_every_int16_and_pytorch_gelu_within_3e_3():
    got = np.array([gelu_q12(np.int16(x)) for x in ALL_INT16], dtype=np.int64)
    assert np.array_equal(got, GELU_OF_INT16)
    x = torch.tensor(ALL_INT16 / 4096.0)
    real = got / 4096.0
    error = np.abs(real - torch.nn.functional.gelu(x, approximate="tanh").numpy())
    assert error.max() < 3e-3 and error[np.abs(x.numpy()) < 2].max() < 2e-4  # past 3.6, 2u saturates at 8
    # gelu (erf), which computes the same integers: the two forms differ by < 5e-4
    assert np.abs(real - torch.nn.functional.gelu(x).numpy()).max() < 3e-3


def test_int8_runs_gelu_head_layers_written_from_a_torch_model(tmp_path):
    spec = specs.validate(make_spec("gru", activation="none", head_hidden=((8, "relu"), (6, "gelu"), (5, "gelu_tanh"))))
    assert specs.unsupported(spec, "int8") == []
    path = write_artifact(make_model(spec), tmp_path / "m.int8.safetensors", "int8")
    _, _, tensors = artifact.read(path)
    # gelu_q12's output is Q3.12: the next layer's bias and multipliers were made for s_in = 2^-12
    assert [float(tensors[f"head.hidden.{k}.scale"][0]) for k in (1, 2)] == [2.0**-12, 2.0**-12]
    X = random_inputs(spec, BATCH, 50, seed=5)
    twin = Int8Twin(spec, tensors, batch=BATCH)
    assert np.array_equal(runtime.load(path).run(X), twin.dequantize(twin.run(twin.quantize_input(X))))
