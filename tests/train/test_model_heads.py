"""train/model.py's Head (the spec's hidden dense layers, then the final linear layer) and the log_softmax
activation against NumPy float64, and the head's state_dict keys against the canonical tensor names."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnedge.export.weights import canonical_tensors, torch_names
from rnnedge.runtime import spec as specs
from rnnedge.train.checkpoint import load_checkpoint, save_checkpoint
from rnnedge.train.metrics import task_metric
from rnnedge.train.model import RecurrentModel
from tests.helpers import make_model, make_spec, random_inputs

EXACT = 1e-10  # float64 torch vs float64 NumPy
_erf = np.vectorize(math.erf)
NP_HIDDEN = {
    "relu": lambda v: np.maximum(v, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "gelu": lambda v: 0.5 * v * (1.0 + _erf(v / math.sqrt(2.0))),
    "gelu_tanh": lambda v: 0.5 * v * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v**3))),
    "none": lambda v: v,
}
STACKS = [(), ((8, "relu"),), ((9, "tanh"), (6, "sigmoid")), ((7, "gelu"), (5, "gelu_tanh"), (6, "none"))]


def np_head(spec: dict, t: dict, v: np.ndarray) -> np.ndarray:
    """The head in float64 NumPy: every hidden layer, the final layer, then the output activation."""
    for k, dense in enumerate(specs.head_hidden(spec)):
        v = NP_HIDDEN[dense["activation"]](v @ t[f"head.hidden.{k}.weight"].T + t[f"head.hidden.{k}.bias"])
    z = v @ t["head.weight"].T + t["head.bias"]
    act = spec["head"]["activation"]
    if act in ("softmax", "log_softmax"):
        shifted = z - z.max(axis=-1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return np.exp(logp) if act == "softmax" else logp
    return 1.0 / (1.0 + np.exp(-z)) if act == "sigmoid" else z


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("activation", ["log_softmax", "softmax", "sigmoid", "none"])
def test_head_stack_and_activation_match_numpy_float64(stack, activation):
    model = make_model(make_spec("gru", activation=activation, head_hidden=stack), seed=3).double()
    X = torch.from_numpy(random_inputs(model.spec, 3, 11, seed=4)).double()
    with torch.no_grad():
        features = model.features(X).numpy()
        y = model(X).numpy()
    t = {name: model.state_dict()[key].numpy() for name, key in torch_names(model.spec).items()}
    assert np.abs(y - np_head(model.spec, t, features)).max() < EXACT


@pytest.mark.parametrize("on", ["every_step", "last_step"])
def test_head_stack_step_equals_forward_at_every_step(on):
    model = make_model(make_spec("lstm", layers=2, on=on, activation="log_softmax",
                                 head_hidden=((10, "gelu"), (6, "relu"))), seed=5)
    X = torch.from_numpy(random_inputs(model.spec, 2, 9, seed=6))
    with torch.no_grad():
        whole = model(X)
    state = model.initial_state(batch=2)
    for t in range(X.shape[1]):
        y, state = model.step(X[:, t], state)
        if on == "every_step":
            assert torch.allclose(y, whole[:, t], atol=1e-6)
    if on == "last_step":
        assert torch.allclose(y, whole, atol=1e-6)


def test_log_softmax_head_gives_the_log_of_the_softmax_head():
    spec = make_spec("rnn_tanh", activation="log_softmax", head_hidden=((8, "tanh"),))
    log_model = make_model(spec, seed=7)
    soft_model = make_model({**spec, "head": {**spec["head"], "activation": "softmax"}}, seed=7)
    X = torch.from_numpy(random_inputs(spec, 2, 6, seed=8))
    with torch.no_grad():
        assert torch.allclose(log_model(X).exp(), soft_model(X), atol=1e-6)


def test_head_state_dict_keys_are_the_canonical_tensor_names():
    model = make_model(make_spec("gru", head_hidden=((8, "relu"), (5, "none"))))
    names = torch_names(model.spec)
    assert set(model.head.state_dict()) == {"weight", "bias", "hidden.0.weight", "hidden.0.bias",
                                            "hidden.1.weight", "hidden.1.bias"}
    head_names = {name for name in names if name.startswith("head.")}
    assert head_names == {f"head.{key}" for key in model.head.state_dict()}
    assert all(names[name] == name for name in head_names)
    shapes = specs.tensor_shapes(model.spec)
    assert (shapes["head.hidden.0.weight"], shapes["head.hidden.1.weight"], shapes["head.weight"]) == \
        ((8, 12), (5, 8), (4, 5))
    assert {name: v.shape for name, v in canonical_tensors(model).items()} == shapes


def test_single_linear_head_state_dict_is_unchanged_and_old_checkpoints_load():
    spec = make_spec("lstm")
    model = make_model(spec)
    assert [k for k in model.state_dict() if k.startswith("head")] == ["head.weight", "head.bias"]
    old_style = {k: v.clone() for k, v in model.state_dict().items()}  # what an nn.Linear head saved
    fresh = RecurrentModel(spec)
    fresh.load_state_dict(old_style)
    assert torch.equal(fresh.head.weight, model.head.weight)


def test_head_stack_checkpoint_round_trips(tmp_path):
    model = make_model(make_spec("gru", activation="log_softmax", head_hidden=((8, "gelu_tanh"),)), seed=2)
    path = tmp_path / "model.pt"
    save_checkpoint(path, model)
    loaded, _ = load_checkpoint(path)
    X = torch.from_numpy(random_inputs(model.spec, 2, 5))
    with torch.no_grad():
        assert torch.equal(loaded(X), model(X))
    assert loaded.spec["version"] == specs.HEAD_VERSION


def test_bits_per_character_of_a_log_softmax_head_equals_that_of_the_softmax_head():
    spec = make_spec("gru", kind="tokens", activation="log_softmax", out=40)
    X = torch.from_numpy(random_inputs(spec, 2, 9, seed=1))
    y = np.random.default_rng(2).integers(0, 40, (2, 9))
    log_model = make_model(spec, seed=4)
    soft_model = make_model({**spec, "head": {**spec["head"], "activation": "softmax"}}, seed=4)
    with torch.no_grad():
        log_bpc = task_metric("generate", log_model(X).numpy(), y, None, "log_softmax")
        soft_bpc = task_metric("generate", soft_model(X).numpy(), y, None, "softmax")
    assert log_bpc[0] == "bpc" and log_bpc[1] == pytest.approx(soft_bpc[1], abs=1e-5)
