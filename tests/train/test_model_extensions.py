"""train/model.py's OnnxLayer (a spec layer with ONNX extensions) against a plain float64 NumPy loop of the ONNX
equations, and against torch's own modules where an extension changes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnedge.export.weights import canonical_tensors, torch_names
from rnnedge.runtime import spec as specs
from rnnedge.train.checkpoint import load_checkpoint, save_checkpoint
from rnnedge.train.model import ACTIVATION_FUNCTIONS, OnnxLayer, RecurrentModel
from tests.helpers import make_spec, random_inputs

EXACT = 1e-10  # float64 torch vs float64 NumPy: the same sums, in a different order


# -- the reference: ONNX's equations in NumPy, PyTorch's gate order ---------------------------------------------
def np_fn(name, alpha, beta):
    return {
        "relu": lambda x: np.maximum(x, 0.0),
        "tanh": np.tanh,
        "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
        "affine": lambda x: alpha * x + beta,
        "leakyrelu": lambda x: np.where(x >= 0, x, alpha * x),
        "thresholdedrelu": lambda x: np.where(x > alpha, x, 0.0),
        "scaledtanh": lambda x: alpha * np.tanh(beta * x),
        "hardsigmoid": lambda x: np.clip(alpha * x + beta, 0.0, 1.0),
        "elu": lambda x: np.where(x >= 0, x, alpha * (np.exp(np.minimum(x, 0.0)) - 1.0)),
        "softsign": lambda x: x / (1.0 + np.abs(x)),
        "softplus": lambda x: np.log1p(np.exp(x)),
    }[name]


def np_step(layer: dict, t: dict, d: int, x: np.ndarray, h: np.ndarray, c: np.ndarray | None):
    """One step of one direction for one sequence: x (I,), h (H,), c (H,) or None -> (h, c)."""
    H, cell, clip = layer["hidden"], layer["cell"], specs.option(layer, "clip")

    def clipped(v):
        return v if clip is None else np.clip(v, -clip, clip)

    fns = [np_fn(*f) for f in specs.functions(layer, d)]
    gx = t["w_ih"] @ x + t["b_ih"]
    if cell == "lstm":
        f, g, hf = fns
        gates = gx + t["w_hh"] @ h + t["b_hh"]
        i_pre, f_pre, g_pre, o_pre = gates[:H], gates[H:2 * H], gates[2 * H:3 * H], gates[3 * H:]
        p = t.get("p", np.zeros(3 * H))
        i = f(clipped(i_pre + p[:H] * c))
        forget = 1.0 - i if layer.get("input_forget") else f(clipped(f_pre + p[H:2 * H] * c))
        c = forget * c + i * g(clipped(g_pre))
        o = f(clipped(o_pre + p[2 * H:] * c))
        return o * hf(c), c
    if cell == "gru":
        f, g = fns
        w_r, w_z, w_n = t["w_hh"][:H], t["w_hh"][H:2 * H], t["w_hh"][2 * H:]
        b_r, b_z, b_n = t["b_hh"][:H], t["b_hh"][H:2 * H], t["b_hh"][2 * H:]
        r = f(clipped(gx[:H] + w_r @ h + b_r))
        z = f(clipped(gx[H:2 * H] + w_z @ h + b_z))
        if specs.option(layer, "linear_before_reset"):
            n = g(clipped(gx[2 * H:] + r * (w_n @ h + b_n)))
        else:
            n = g(clipped(gx[2 * H:] + w_n @ (r * h) + b_n))
        return (1.0 - z) * n + z * h, None
    (f,) = fns
    return f(clipped(gx + t["w_hh"] @ h + t["b_hh"])), None


def np_layer(layer: dict, tensors: dict, l: int, X: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(B, T, I) -> (B, T, dirs*H): each sequence run over its true length only, zero after it."""
    B, T = X.shape[:2]
    H = layer["hidden"]
    out = np.zeros((B, T, specs.directions(layer) * H))
    for d, name in enumerate(("fwd", "bwd")[: specs.directions(layer)]):
        t = {k.split(".")[-1]: v.astype(np.float64) for k, v in tensors.items() if k.startswith(f"layers.{l}.{name}.")}
        backward = d == 1 or layer.get("reverse", False)
        for b in range(B):
            h = t.get("h0", np.zeros(H))
            c = t.get("c0", np.zeros(H)) if layer["cell"] == "lstm" else None
            n = int(lengths[b])
            for step in (range(n - 1, -1, -1) if backward else range(n)):
                h, c = np_step(layer, t, d, X[b, step], h, c)
                out[b, step, d * H:(d + 1) * H] = h
    return out


def np_features(spec: dict, tensors: dict, X: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    mean, std = np.asarray(spec["input"]["mean"]), np.asarray(spec["input"]["std"])
    h = (X.astype(np.float64) - mean) / std
    for l, layer in enumerate(spec["layers"]):
        h = np_layer(layer, tensors, l, h, lengths)
    return h


# -- models -------------------------------------------------------------------------------------------------------
def extended_model(cell: str, ext: dict, layers: int = 1, on: str = "every_step", seed: int = 0,
                   hidden: int = 5) -> RecurrentModel:
    """A seeded model whose layers all carry ext; peepholes and h0/c0 random (their init is zero or small)."""
    spec = make_spec(cell, layers=layers, on=on, hidden=hidden, features=3, out=4, activation="none")
    spec["layers"] = [{"cell": cell, "hidden": hidden, "bidirectional": False, **ext} for _ in range(layers)]
    torch.manual_seed(seed)
    model = RecurrentModel(spec).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.split(".")[-1].startswith(("h0_", "c0_", "peephole_")):
                param.copy_(torch.rand(param.shape) * 1.6 - 0.8)
    return model


SIGMOIDAL = [{"fn": "hardsigmoid", "alpha": 0.3, "beta": 0.45}]
CASES = [  # (cell, extensions): each extension alone, then together
    ("lstm", {"reverse": True}),
    ("lstm", {"input_forget": True}),
    ("lstm", {"peepholes": True}),
    ("lstm", {"clip": 0.7}),
    ("lstm", {"initial_state": True}),
    ("lstm", {"activations": SIGMOIDAL + [{"fn": "scaledtanh", "alpha": 1.3, "beta": 0.8},
                                          {"fn": "softsign"}]}),
    ("lstm", {"activations": [{"fn": "sigmoid"}, {"fn": "elu", "alpha": 0.6}, {"fn": "affine", "alpha": 0.9,
                                                                                "beta": 0.1}]}),
    ("lstm", {"peepholes": True, "input_forget": True, "clip": 0.9, "initial_state": True, "reverse": True}),
    ("lstm", {"bidirectional": True, "peepholes": True, "initial_state": True, "clip": 1.1}),
    ("gru", {"linear_before_reset": False}),
    ("gru", {"reverse": True}),
    ("gru", {"clip": 0.5}),
    ("gru", {"initial_state": True}),
    ("gru", {"activations": SIGMOIDAL + [{"fn": "softsign"}]}),
    ("gru", {"linear_before_reset": False, "clip": 0.8, "initial_state": True, "reverse": True}),
    ("gru", {"bidirectional": True, "linear_before_reset": False, "initial_state": True,
             "activations": SIGMOIDAL + [{"fn": "tanh"}, {"fn": "sigmoid"}, {"fn": "softsign"}]}),
    ("rnn_tanh", {"reverse": True, "initial_state": True}),
    ("rnn_tanh", {"clip": 0.4}),
    ("rnn_tanh", {"activations": [{"fn": "leakyrelu", "alpha": 0.2}]}),
    ("rnn_tanh", {"activations": [{"fn": "thresholdedrelu", "alpha": 0.1}]}),
    ("rnn_relu", {"clip": 0.6, "initial_state": True}),
    ("rnn_relu", {"activations": [{"fn": "softplus"}]}),
]


def case_id(case):
    return f"{case[0]}-{'-'.join(sorted(case[1]))}"


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_extended_layer_matches_numpy_onnx_equations_with_lengths(case):
    cell, ext = case
    model = extended_model(cell, ext, layers=2).double()
    assert all(isinstance(rnn, OnnxLayer) for rnn in model.layers)
    X = random_inputs(model.spec, 4, 9, seed=3).astype(np.float64)
    lengths = np.array([9, 4, 1, 7])
    with torch.no_grad():
        got = model.features(torch.from_numpy(X), torch.from_numpy(lengths)).numpy()
    sd = model.state_dict()
    tensors = {ours: sd[theirs].numpy() for ours, theirs in torch_names(model.spec).items()}  # float64
    want = np_features(model.spec, tensors, X, lengths)
    assert np.abs(got - want).max() <= EXACT


@pytest.mark.parametrize("name", sorted(specs.ACTIVATION_FNS))
def test_activation_function_matches_onnx_definition(name):
    alpha, beta = {"thresholdedrelu": (0.5, 0.0), "elu": (0.7, 0.0)}.get(name, (1.3, 0.4))
    x = np.concatenate([np.linspace(-30, 30, 601), [alpha, -alpha, 0.0]])
    got = ACTIVATION_FUNCTIONS[name](torch.from_numpy(x), alpha, beta).numpy()
    assert np.abs(got - np_fn(name, alpha, beta)(x)).max() <= 1e-12


def test_thresholded_relu_drops_x_equal_to_alpha_as_onnx_runtime_does():
    x = torch.tensor([0.5, 0.5000001, 0.4999999], dtype=torch.float64)
    assert ACTIVATION_FUNCTIONS["thresholdedrelu"](x, 0.5, 0.0).tolist() == [0.0, 0.5000001, 0.0]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_extended_layer_with_no_effect_equals_torch_module_on_padded_batches(cell, bidirectional):
    """A clip no pre-activation reaches changes nothing: OnnxLayer's time loop, length masking and backward start
    then equal torch's packed sequences exactly."""
    model = extended_model(cell, {"clip": 1e9, "bidirectional": bidirectional}, layers=2)
    plain_spec = {**model.spec, "layers": [{"cell": cell, "hidden": 5, "bidirectional": bidirectional}] * 2}
    plain = RecurrentModel(plain_spec).eval()
    plain.load_state_dict(model.state_dict())
    X = torch.from_numpy(random_inputs(model.spec, 4, 11, seed=1))
    lengths = torch.tensor([11, 3, 6, 1])
    with torch.no_grad():
        for on in ("every_step", "last_step"):
            model.spec["head"]["on"] = plain.spec["head"]["on"] = on
            assert torch.allclose(model(X, lengths), plain(X, lengths), atol=1e-6, rtol=0)
    assert not isinstance(plain.layers[0], OnnxLayer) and isinstance(model.layers[0], OnnxLayer)


STREAMABLE = [c for c in CASES if not (c[1].get("reverse") or c[1].get("bidirectional"))]


@pytest.mark.parametrize("case", STREAMABLE, ids=case_id)
def test_step_from_initial_state_equals_forward_at_every_step(case):
    cell, ext = case
    model = extended_model(cell, ext, layers=2, on="last_step")
    X = torch.from_numpy(random_inputs(model.spec, 3, 12, seed=2))
    state = model.initial_state(3)
    with torch.no_grad():
        for t in range(X.shape[1]):
            y, state = model.step(X[:, t], state)
            assert torch.allclose(y, model(X[:, : t + 1]), atol=1e-6, rtol=0)


def test_initial_state_returns_h0_and_c0_of_each_layer():
    model = extended_model("lstm", {"initial_state": True}, layers=2)
    state = model.initial_state(batch=3)
    for l, (h, c) in enumerate(state):
        assert torch.equal(h, model.layers[l].h0_l0.detach().expand(3, 5))
        assert torch.equal(c, model.layers[l].c0_l0.detach().expand(3, 5))
    assert all(torch.count_nonzero(s) == 0 for layer in extended_model("gru", {"clip": 1.0}).initial_state(2)
               for s in layer)


@pytest.mark.parametrize("ext", [{"reverse": True}, {"bidirectional": True, "clip": 2.0}])
def test_step_refuses_a_model_that_cannot_stream(ext):
    model = extended_model("gru", ext)
    with pytest.raises(ValueError, match="bidirectional or reverse"):
        model.step(torch.zeros(1, 3), model.initial_state(1))


def test_last_step_head_of_a_reverse_layer_reads_step_zero():
    model = extended_model("lstm", {"reverse": True}, on="last_step")
    X = torch.from_numpy(random_inputs(model.spec, 3, 8, seed=4))
    lengths = torch.tensor([8, 5, 2])
    with torch.no_grad():
        features = model.features(X, lengths)
        assert torch.equal(model(X, lengths), model.head(features[:, 0]))
        # step 0 of a reverse layer has seen the sequence's true steps only
        assert torch.allclose(model(X[1:2, :5]), model(X[1:2], lengths[1:2]), atol=1e-6, rtol=0)


def test_pytorch_cells_keep_torch_modules_and_their_parameter_names():
    model = RecurrentModel(make_spec("lstm", layers=2, bidirectional=True))
    assert [type(m).__name__ for m in model.layers] == ["LSTM", "LSTM"]
    assert model.spec["version"] == specs.SPEC_VERSION


def test_extension_tensors_have_spec_names_and_survive_a_checkpoint(tmp_path):
    model = extended_model("lstm", {"bidirectional": True, "peepholes": True, "initial_state": True}, layers=2)
    tensors = canonical_tensors(model)
    assert {k: v.shape for k, v in tensors.items()} == specs.tensor_shapes(model.spec)
    assert np.array_equal(tensors["layers.1.bwd.p"], model.layers[1].peephole_l0_reverse.detach().numpy())
    assert np.array_equal(tensors["layers.0.fwd.c0"], model.layers[0].c0_l0.detach().numpy())
    save_checkpoint(tmp_path / "m.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    assert loaded.spec == model.spec and loaded.spec["version"] == specs.EXTENDED_VERSION
    for name, value in canonical_tensors(loaded).items():
        assert np.array_equal(value, tensors[name]), name


def test_extended_layer_trains_its_initial_state_and_peepholes():
    model = extended_model("lstm", {"peepholes": True, "initial_state": True, "clip": 3.0}).train()
    X = torch.from_numpy(random_inputs(model.spec, 2, 6, seed=5))
    model(X).square().sum().backward()
    layer = model.layers[0]
    for name in ("peephole_l0", "h0_l0", "c0_l0", "weight_hh_l0"):
        grad = getattr(layer, name).grad
        assert grad is not None and torch.count_nonzero(grad) > 0, name
