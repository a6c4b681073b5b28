"""The head contract in the runtime: log_softmax and the hidden dense layers before the final one, in every
precision, against the PyTorch reference (tests.helpers.TOLERANCE), stream against run, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.runtime import artifact
from rnnedge.runtime import spec as specs
from tests.helpers import (
    TOLERANCE,
    bytes_allocated_by_steps,
    make_model,
    make_spec,
    random_inputs,
    stream_all,
    torch_forward,
    write_artifact,
)

# (cell, input kind, head activation, hidden layers): every head form once, over cells and input kinds
FORMS = {
    "log_softmax": ("gru", "dense", "log_softmax", ()),
    "log_softmax-tokens": ("lstm", "tokens", "log_softmax", ()),
    "relu": ("lstm", "dense", "softmax", ((16, "relu"),)),
    "tanh-sigmoid-tokens": ("gru", "tokens", "none", ((10, "tanh"), (8, "sigmoid"))),
    "gelu": ("rnn_tanh", "dense", "log_softmax", ((12, "gelu"),)),
    "gelu_tanh": ("gru", "dense", "sigmoid", ((9, "gelu_tanh"),)),
    "none-relu": ("lstm", "dense", "none", ((6, "none"), (10, "relu"))),
}


def form_spec(form: str, on: str = "every_step", layers: int = 1) -> dict:
    cell, kind, activation, hidden = FORMS[form]
    return make_spec(cell, layers=layers, kind=kind, on=on, activation=activation, head_hidden=hidden)


@pytest.mark.parametrize("precision", specs.PRECISIONS)
@pytest.mark.parametrize("on", ["every_step", "last_step"])
@pytest.mark.parametrize("form", FORMS)
def test_head_form_runs_like_pytorch_in_every_precision(tmp_path, form, on, precision):
    spec = form_spec(form, on, layers=2)
    torch_model = make_model(spec, seed=1)
    model = runtime.load(write_artifact(torch_model, tmp_path / f"m.{precision}.safetensors", precision))
    X = random_inputs(spec, 3, 200, seed=2)
    lengths = np.array([200, 137, 1])
    expected = torch_forward(torch_model, X, lengths)
    got = model.run(X, lengths)
    if on == "every_step":  # past its length a sequence's output is zero in the runtime, the head of zeros in torch
        valid = np.arange(X.shape[1])[None, :] < lengths[:, None]
        got, expected = got[valid], expected[valid]
    assert np.abs(got - expected).max() <= TOLERANCE[precision]


@pytest.mark.parametrize("precision", specs.PRECISIONS)
@pytest.mark.parametrize("form", FORMS)
def test_head_form_streamed_one_step_at_a_time_equals_run(tmp_path, form, precision):
    spec = form_spec(form)
    model = runtime.load(write_artifact(make_model(spec, seed=3), tmp_path / f"m.{precision}.safetensors", precision))
    X = random_inputs(spec, 2, 40, seed=4)
    assert np.array_equal(stream_all(model.stream(batch=2), X), model.run(X))
    assert bytes_allocated_by_steps(model.stream(batch=2), X[:, :5]) == 0


def test_log_softmax_outputs_are_log_probabilities(tmp_path):
    spec = form_spec("log_softmax")
    model = runtime.load(write_artifact(make_model(spec), tmp_path / "m.f32.safetensors"))
    y = model.run(random_inputs(spec, 2, 30, seed=5))
    assert np.all(y <= 0) and np.abs(np.exp(y.astype(np.float64)).sum(axis=-1) - 1).max() < 1e-5
    softmax = {**spec, "head": {**spec["head"], "activation": "softmax"}}
    soft = runtime.load(write_artifact(make_model(softmax), tmp_path / "s.f32.safetensors"))
    assert np.abs(np.exp(y) - soft.run(random_inputs(spec, 2, 30, seed=5))).max() < 1e-6


def test_head_tensors_that_do_not_fit_the_spec_are_refused_naming_them(tmp_path):
    spec = form_spec("relu")
    _, _, tensors = artifact.read(write_artifact(make_model(spec), tmp_path / "m.f32.safetensors"))
    bias = tensors.pop("head.hidden.0.bias")
    with pytest.raises(artifact.ArtifactError, match=r"missing \['head.hidden.0.bias'\]"):
        artifact.write(tmp_path / "missing.f32.safetensors", tensors, spec, "f32")
    tensors["head.hidden.0.bias"] = bias[:15]
    with pytest.raises(artifact.ArtifactError, match=r"tensor head.hidden.0.bias has shape \(15,\), spec says \(16,\)"):
        artifact.write(tmp_path / "short.f32.safetensors", tensors, spec, "f32")
