"""The ONNX layer extensions in the f32 and int8w runtime, against ONNX Runtime running the operator itself.

Each case builds one ONNX RNN/LSTM/GRU node with onnx.helper (random weights, the attribute under test), runs it
with ONNX Runtime, and runs the same weights through runtime.Model (spec keys of runtime/spec.py, tensors in
PyTorch's gate order, an identity head so the model's output is the layer's Y). f32 must match to 1e-5 over
whole sequences and step by step; int8w (int8 weights per row) to INT8W_TOLERANCE. The int8 precision has its
own tests (tests/runtime/test_int8_extensions.py).
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import helper

from rnnedge.export.quantize import quantize_int8w
from rnnedge.runtime import artifact
from rnnedge.runtime import spec as specs
from rnnedge.runtime.model import Model, load

F32_TOLERANCE = 1e-5
# int8w: weights off by at most max|row| / 254; on these layers (hidden 5, weights ~N(0, 0.6), inputs ~N(0, 1.5),
# 30 steps) the largest measured is 2.0e-2 (rnn-scaledtanh; 1.3e-2 for softplus, whose outputs reach 9.9);
# 5e-2 leaves 2.5x margin and still catches a wrong path (a missed peephole or clip moves outputs by O(0.1))
INT8W_TOLERANCE = 5e-2

_TORCH = {"lstm": "ifgo", "gru": "rzn", "rnn": "h"}
_ONNX = {"lstm": "iofg", "gru": "zrn", "rnn": "h"}


def _to_torch(family: str, rows: np.ndarray) -> np.ndarray:
    blocks = np.split(rows, len(_ONNX[family]), axis=0)
    return np.concatenate([blocks[_ONNX[family].index(g)] for g in _TORCH[family]], axis=0)


def _case(op: str, attrs: dict, layer_keys: dict, *, peepholes=False, init=False, dirs=1, T=30, B=3, I=4, H=5,
          seed=0, gain=1.0):
    """(spec, canonical f32 tensors, X (B, T, I), ORT's Y as (B, T, dirs * H))."""
    rng = np.random.default_rng(seed)
    family = op.lower()
    G = {"lstm": 4, "gru": 3, "rnn": 1}[family]
    W = rng.normal(0, 0.6, (dirs, G * H, I)).astype(np.float32)
    R = rng.normal(0, 0.6 * gain, (dirs, G * H, H)).astype(np.float32)  # gain < 1: unbounded functions settle
    Bias = rng.normal(0, 0.5, (dirs, 2 * G * H)).astype(np.float32)
    X = rng.normal(0, 1.5, (T, B, I)).astype(np.float32)
    P = rng.normal(0, 0.8, (dirs, 3 * H)).astype(np.float32)
    h0 = np.repeat(rng.normal(0, 0.5, (dirs, 1, H)), B, axis=1).astype(np.float32)
    c0 = np.repeat(rng.normal(0, 0.5, (dirs, 1, H)), B, axis=1).astype(np.float32)
    inits = [helper.make_tensor(n, onnx.TensorProto.FLOAT, a.shape, a.ravel()) for n, a in (("W", W), ("R", R),
                                                                                          ("B", Bias))]
    inputs = ["X", "W", "R", "B", "", "", "", ""]
    if init:
        inputs[5] = "h0"
        inits.append(helper.make_tensor("h0", onnx.TensorProto.FLOAT, h0.shape, h0.ravel()))
        if op == "LSTM":
            inputs[6] = "c0"
            inits.append(helper.make_tensor("c0", onnx.TensorProto.FLOAT, c0.shape, c0.ravel()))
    if peepholes:
        inputs[7] = "P"
        inits.append(helper.make_tensor("P", onnx.TensorProto.FLOAT, P.shape, P.ravel()))
    while inputs[-1] == "":
        inputs.pop()
    if dirs == 2:
        attrs = {**attrs, "direction": "bidirectional"}
    node = helper.make_node(op, inputs, ["Y"], hidden_size=H, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, X.shape)],
                              [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    Y = session.run(None, {"X": X})[0]  # (T, dirs, B, H)
    cell = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn_tanh"}[op]
    layer = {"cell": cell, "hidden": H, "bidirectional": dirs == 2, **layer_keys}
    if init:
        layer["initial_state"] = True
    if peepholes:
        layer["peepholes"] = True
    spec = specs.validate({"version": 1, "input": {"kind": "dense", "features": I}, "layers": [layer],
                           "head": {"out": dirs * H, "on": "every_step"}})
    tensors = {}
    for d, name in enumerate(("fwd", "bwd")[:dirs]):
        p = f"layers.0.{name}"
        tensors[f"{p}.w_ih"] = _to_torch(family, W[d])
        tensors[f"{p}.w_hh"] = _to_torch(family, R[d])
        tensors[f"{p}.b_ih"] = _to_torch(family, Bias[d, : G * H])
        tensors[f"{p}.b_hh"] = _to_torch(family, Bias[d, G * H :])
        if peepholes:  # ONNX P is i, o, f; the spec's p is i, f, o
            tensors[f"{p}.p"] = np.concatenate([P[d, :H], P[d, 2 * H :], P[d, H : 2 * H]])
        if init:
            tensors[f"{p}.h0"] = h0[d, 0]
            if op == "LSTM":
                tensors[f"{p}.c0"] = c0[d, 0]
    tensors["head.weight"] = np.eye(dirs * H, dtype=np.float32)
    tensors["head.bias"] = np.zeros(dirs * H, dtype=np.float32)
    return spec, tensors, np.ascontiguousarray(X.transpose(1, 0, 2)), Y.transpose(2, 0, 1, 3).reshape(B, T, dirs * H)


def _act(fn: str, alpha: float | None = None, beta: float | None = None) -> dict:
    out = {"fn": fn}
    if alpha is not None:
        out["alpha"] = alpha
    if beta is not None:
        out["beta"] = beta
    return out


# (id, op, ONNX attributes, spec layer keys, _case keywords); ONNX's activation_alpha / _beta lists hold entries
# only for the functions that take them, in order (ORT 1.32, checked by these cases)
CASES = [
    ("lstm-clip", "LSTM", {"clip": 1.5}, {"clip": 1.5}, {}),
    ("lstm-input-forget", "LSTM", {"input_forget": 1}, {"input_forget": True}, {}),
    ("lstm-peepholes", "LSTM", {}, {}, {"peepholes": True}),
    ("lstm-initial-state", "LSTM", {}, {}, {"init": True}),
    ("lstm-reverse", "LSTM", {"direction": "reverse"}, {"reverse": True}, {}),
    ("lstm-reverse-peepholes-init", "LSTM", {"direction": "reverse"}, {"reverse": True},
     {"init": True, "peepholes": True}),
    ("lstm-all", "LSTM", {"clip": 0.9, "input_forget": 1}, {"clip": 0.9, "input_forget": True},
     {"init": True, "peepholes": True}),
    ("lstm-activations", "LSTM",
     {"activations": ["HardSigmoid", "LeakyRelu", "Softsign"], "activation_alpha": [0.3, 0.1],
      "activation_beta": [0.4]},
     {"activations": [_act("hardsigmoid", 0.3, 0.4), _act("leakyrelu", 0.1), _act("softsign")]}, {}),
    ("lstm-bidirectional-mixed", "LSTM",
     {"activations": ["Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Tanh", "Relu"], "activation_alpha": [0.25],
      "activation_beta": [0.45]},
     {"activations": [_act("sigmoid"), _act("tanh"), _act("tanh"), _act("hardsigmoid", 0.25, 0.45), _act("tanh"),
                      _act("relu")]}, {"dirs": 2, "peepholes": True, "init": True}),
    ("gru-reset-before", "GRU", {"linear_before_reset": 0}, {"linear_before_reset": False}, {}),
    ("gru-reset-before-clip-init", "GRU", {"linear_before_reset": 0, "clip": 0.8},
     {"linear_before_reset": False, "clip": 0.8}, {"init": True}),
    ("gru-reset-before-bidirectional", "GRU", {"linear_before_reset": 0}, {"linear_before_reset": False},
     {"dirs": 2}),
    ("gru-reverse", "GRU", {"direction": "reverse", "linear_before_reset": 1}, {"reverse": True}, {}),
    ("gru-clip-elu", "GRU", {"linear_before_reset": 1, "clip": 0.8, "activations": ["Sigmoid", "Elu"],
                             "activation_alpha": [1.0]},
     {"clip": 0.8, "activations": [_act("sigmoid"), _act("elu", 1.0)]}, {}),
    ("rnn-softplus", "RNN", {"activations": ["Softplus"]}, {"activations": [_act("softplus")]}, {"gain": 0.3}),
    ("rnn-scaledtanh", "RNN", {"activations": ["ScaledTanh"], "activation_alpha": [1.5], "activation_beta": [0.7]},
     {"activations": [_act("scaledtanh", 1.5, 0.7)]}, {}),
    ("rnn-affine-clip", "RNN", {"activations": ["Affine"], "activation_alpha": [0.5], "activation_beta": [0.1],
                                "clip": 2.0},
     {"activations": [_act("affine", 0.5, 0.1)], "clip": 2.0}, {"gain": 0.3}),
    ("rnn-sigmoid", "RNN", {"activations": ["Sigmoid"]}, {"activations": [_act("sigmoid")]}, {}),
    ("rnn-thresholdedrelu", "RNN", {"activations": ["ThresholdedRelu"], "activation_alpha": [0.2]},
     {"activations": [_act("thresholdedrelu", 0.2)]}, {"gain": 0.3}),
    ("rnn-reverse-init", "RNN", {"direction": "reverse"}, {"reverse": True}, {"init": True}),
]


def _stream_outputs(model: Model, X: np.ndarray) -> np.ndarray:
    stream = model.stream(batch=X.shape[0])
    return np.stack([stream.step(np.ascontiguousarray(X[:, t])).copy() for t in range(X.shape[1])], axis=1)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_f32_matches_onnx_runtime(case):
    _name, op, attrs, keys, kw = case
    spec, tensors, X, expected = _case(op, attrs, keys, **kw)
    model = Model(spec, "f32", tensors)
    assert np.abs(model.run(X) - expected).max() <= F32_TOLERANCE
    if specs.can_stream(spec):
        assert np.abs(_stream_outputs(model, X) - expected).max() <= F32_TOLERANCE
    else:
        with pytest.raises(ValueError, match="reverse|bidirectional"):
            model.stream()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_int8w_matches_onnx_runtime(case, tmp_path):
    _name, op, attrs, keys, kw = case
    spec, tensors, X, expected = _case(op, attrs, keys, **kw)
    weights, _ = quantize_int8w(spec, tensors)
    artifact.write(tmp_path / "m.int8w.safetensors", weights, spec, "int8w")  # the file format holds them
    model = load(tmp_path / "m.int8w.safetensors")
    y = model.run(X)
    assert np.abs(y - expected).max() <= INT8W_TOLERANCE
    if specs.can_stream(spec):
        assert np.array_equal(_stream_outputs(model, X), y)  # step() equals run() bit for bit


def test_extended_f32_file_round_trip_and_version(tmp_path):
    spec, tensors, X, expected = _case("LSTM", {"clip": 1.5}, {"clip": 1.5}, peepholes=True, init=True)
    assert spec["version"] == specs.EXTENDED_VERSION
    path = tmp_path / "m.f32.safetensors"
    artifact.write(path, tensors, spec, "f32")
    model = load(path)
    assert model.spec == spec
    assert np.abs(model.run(X) - expected).max() <= F32_TOLERANCE
    missing = {k: v for k, v in tensors.items() if not k.endswith(".p")}
    with pytest.raises(artifact.ArtifactError, match=r"layers\.0\.fwd\.p"):
        artifact.write(tmp_path / "bad.safetensors", missing, spec, "f32")


def test_stream_reset_returns_to_the_initial_state():
    spec, tensors, X, expected = _case("GRU", {"linear_before_reset": 0}, {"linear_before_reset": False}, init=True)
    model = Model(spec, "f32", tensors)
    stream = model.stream(batch=X.shape[0])
    h0 = tensors["layers.0.fwd.h0"]
    assert np.array_equal(stream.state, np.tile(h0, (X.shape[0], 1)))  # a new stream starts from h0
    first = stream.step(np.ascontiguousarray(X[:, 0])).copy()
    stream.step(np.ascontiguousarray(X[:, 1]))
    stream.reset()
    assert np.array_equal(stream.state, np.tile(h0, (X.shape[0], 1)))
    assert np.array_equal(stream.step(np.ascontiguousarray(X[:, 0])), first)
    assert np.abs(first - expected[:, 0]).max() <= F32_TOLERANCE


def test_reverse_last_step_head_reads_step_zero():
    spec, tensors, X, expected = _case("LSTM", {"direction": "reverse"}, {"reverse": True})
    spec = specs.validate({**spec, "head": {"out": spec["head"]["out"], "on": "last_step"}})
    y = Model(spec, "f32", tensors).run(X)
    assert np.abs(y - expected[:, 0]).max() <= F32_TOLERANCE  # ONNX's Y_h of a reverse layer is Y at step 0


def test_reverse_with_lengths_starts_at_each_last_true_step():
    spec, tensors, X, _expected = _case("RNN", {"direction": "reverse"}, {"reverse": True}, init=True)
    model = Model(spec, "f32", tensors)
    lengths = np.array([30, 7, 1])
    y = model.run(X, lengths)
    for b, n in enumerate(lengths):  # the same sequence cut to n steps, alone
        alone = model.run(X[b : b + 1, :n])
        assert np.array_equal(y[b, :n], alone[0])
        assert not y[b, n:].any()


@pytest.mark.parametrize("layer, message", [
    ({"cell": "lstm", "hidden": 4, "bidirectional": True, "reverse": True}, "reverse and bidirectional"),
    ({"cell": "lstm", "hidden": 4, "linear_before_reset": False}, "linear_before_reset belongs to gru"),
    ({"cell": "gru", "hidden": 4, "peepholes": True}, "peepholes belongs to lstm"),
    ({"cell": "gru", "hidden": 4, "clip": -1.0}, "clip must be a positive finite number"),
    ({"cell": "gru", "hidden": 4, "activations": [{"fn": "sigmoid"}]}, "must list 2 functions"),
    ({"cell": "rnn_tanh", "hidden": 4, "activations": [{"fn": "gelu"}]}, "activations\\[0\\] must be"),
    ({"cell": "gru", "hidden": 4, "window": 3}, "unknown keys \\['window'\\]"),
])
def test_spec_refuses_malformed_extensions(layer, message):
    with pytest.raises(specs.SpecError, match=message):
        specs.validate({"version": 1, "input": {"kind": "dense", "features": 2}, "layers": [layer],
                        "head": {"out": 2, "on": "every_step"}})


def test_default_extension_values_keep_version_1():
    spec = specs.validate({"version": 1, "input": {"kind": "dense", "features": 2}, "head": {"out": 2, "on": "every_step"},
                           "layers": [{"cell": "gru", "hidden": 4, "linear_before_reset": True, "clip": None,
                                       "activations": [{"fn": "sigmoid"}, {"fn": "tanh"}]}]})
    assert spec["version"] == specs.SPEC_VERSION
    assert spec["layers"] == [{"cell": "gru", "hidden": 4, "bidirectional": False}]


@pytest.mark.parametrize("keys, named", [({"activations": [_act("hardsigmoid"), _act("tanh"), _act("tanh")]},
                                          "activations"),
                                         ({"peepholes": True, "activations": [_act("sigmoid"), _act("tanh"),
                                                                              _act("softsign")]},
                                          "activations")])  # int8 runs peepholes: only the functions are named
def test_int8_model_refuses_what_its_kernels_cannot_run(keys, named):
    spec = specs.validate({"version": 1, "input": {"kind": "dense", "features": 2}, "head": {"out": 2, "on": "every_step"},
                           "layers": [{"cell": "lstm", "hidden": 4, **keys}]})
    with pytest.raises(ValueError, match=rf"int8 cannot run this model: layers\[0\]: {named}"):
        Model(spec, "int8", {})  # refused before any tensor is read: never the plain cell instead
