"""export/calibrate.py's float64 forward against ONNX Runtime for every ONNX layer extension (runtime/spec.py):
reverse, linear_before_reset false, input_forget, peepholes, clip, activation functions with alpha / beta, initial
state, with variable sequence lengths; and the ranges counting the initial state."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from rnnedge.export.calibrate import calibrate, float_layers
from rnnedge.runtime import spec as specs

ort = pytest.importorskip("onnxruntime")

I, H = 4, 5
LENGTHS = np.array([24, 9, 1, 17])  # padded to 24 steps
STEPS = 24
ONNX_FN = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "affine": "Affine", "leakyrelu": "LeakyRelu",
           "thresholdedrelu": "ThresholdedRelu", "scaledtanh": "ScaledTanh", "hardsigmoid": "HardSigmoid",
           "elu": "Elu", "softsign": "Softsign", "softplus": "Softplus"}
TAKES_ALPHA = {"affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"}
TAKES_BETA = {"affine", "scaledtanh", "hardsigmoid"}
# ONNX order of each cell's gate blocks, as indices into PyTorch's (lstm i f g o -> i o f c; gru r z n -> z r h)
ONNX_GATES = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn_tanh": (0,), "rnn_relu": (0,)}
OP = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN", "rnn_relu": "RNN"}


def fn(name, alpha=None, beta=None):
    a, b = specs.ACTIVATION_FNS[name]
    return {"fn": name, "alpha": a if alpha is None else alpha, "beta": b if beta is None else beta}


def layer_spec(cell, bidirectional=False, **ext):
    spec = {"version": 1, "input": {"kind": "dense", "features": I},
            "layers": [{"cell": cell, "hidden": H, "bidirectional": bidirectional, **ext}],
            "head": {"out": 2, "on": "every_step"}}
    return specs.validate(spec)


def random_tensors(spec, rng, scale=0.6):
    tensors = {}
    for name, shape in specs.tensor_shapes(spec).items():
        tensors[name] = (rng.uniform(-scale, scale, shape) * (2.0 if name.endswith((".h0", ".c0")) else 1.0)
                         ).astype(np.float32)
    return tensors


def _blocks(a, cell):
    """Rows (or entries) of a (G*H, ...) tensor in ONNX's gate order."""
    return np.concatenate([a[k * H : (k + 1) * H] for k in ONNX_GATES[cell]])


def ort_outputs(spec, tensors, X, lengths):
    """Y (N, T, H * directions) of one ONNX RNN/LSTM/GRU node holding the spec's one layer, from ONNX Runtime."""
    layer = spec["layers"][0]
    cell = layer["cell"]
    dirs = ["fwd", "bwd"][: specs.directions(layer)]
    W = np.stack([_blocks(tensors[f"layers.0.{d}.w_ih"], cell) for d in dirs])
    R = np.stack([_blocks(tensors[f"layers.0.{d}.w_hh"], cell) for d in dirs])
    B = np.stack([np.concatenate([_blocks(tensors[f"layers.0.{d}.b_ih"], cell),
                                  _blocks(tensors[f"layers.0.{d}.b_hh"], cell)]) for d in dirs])
    N = X.shape[0]
    feeds = {"X": np.ascontiguousarray(X.transpose(1, 0, 2), dtype=np.float32), "W": W, "R": R, "B": B,
             "sequence_lens": lengths.astype(np.int32)}
    inputs = ["X", "W", "R", "B", "sequence_lens"]
    zeros = np.zeros((len(dirs), N, H), np.float32)
    init = layer.get("initial_state", False)
    feeds["initial_h"] = np.stack([np.tile(tensors[f"layers.0.{d}.h0"], (N, 1)) for d in dirs]) if init else zeros
    inputs.append("initial_h")
    if cell == "lstm":
        c0 = np.stack([np.tile(tensors[f"layers.0.{d}.c0"], (N, 1)) for d in dirs]) if init else zeros
        feeds["initial_c"] = c0
        inputs.append("initial_c")
        if layer.get("peepholes"):
            p = [tensors[f"layers.0.{d}.p"] for d in dirs]
            feeds["P"] = np.stack([np.concatenate([q[:H], q[2 * H :], q[H : 2 * H]]) for q in p])  # i o f
            inputs.append("P")
    direction = "bidirectional" if layer["bidirectional"] else "reverse" if layer.get("reverse") else "forward"
    attrs = {"hidden_size": H, "direction": direction}
    if layer.get("clip") is not None:
        attrs["clip"] = layer["clip"]
    if cell == "lstm" and layer.get("input_forget"):
        attrs["input_forget"] = 1
    if cell == "gru":
        attrs["linear_before_reset"] = int(layer.get("linear_before_reset", True))
    functions = [f for d in range(len(dirs)) for f in specs.functions(layer, d)]
    attrs["activations"] = [ONNX_FN[name] for name, _, _ in functions]
    attrs["activation_alpha"] = [a for name, a, _ in functions if name in TAKES_ALPHA]
    attrs["activation_beta"] = [b for name, _, b in functions if name in TAKES_BETA]
    for key in ("activation_alpha", "activation_beta"):
        if not attrs[key]:
            del attrs[key]
    node = helper.make_node(OP[cell], inputs, ["Y"], **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(name, TensorProto.INT32 if name == "sequence_lens" else TensorProto.FLOAT,
                                       list(feeds[name].shape)) for name in inputs],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    Y = session.run(None, feeds)[0]  # (T, dirs, N, H)
    return Y.transpose(2, 0, 1, 3).reshape(N, X.shape[1], len(dirs) * H)


# every case is unambiguous under any reading of ONNX's activation_alpha / _beta lists: every function takes an
# alpha, or those that do not come last; the functions that take a beta come first
CASES = [
    ("lstm", False, {"reverse": True}),
    ("lstm", False, {"input_forget": True}),
    ("lstm", False, {"peepholes": True}),
    ("lstm", False, {"clip": 0.7}),
    ("lstm", False, {"initial_state": True}),
    ("lstm", False, {"activations": [fn("hardsigmoid", 0.25, 0.45), fn("scaledtanh", 0.9, 1.2),
                                     fn("leakyrelu", 0.1)]}),
    ("lstm", False, {"activations": [fn("affine", 0.3, 0.5), fn("elu", 0.7), fn("thresholdedrelu", 0.2)]}),
    ("lstm", True, {"peepholes": True, "clip": 0.9, "input_forget": True, "initial_state": True}),
    ("lstm", False, {"reverse": True, "peepholes": True, "clip": 1.1, "initial_state": True,
                     "activations": [fn("hardsigmoid", 0.3, 0.5), fn("softsign"), fn("softplus")]}),
    ("gru", False, {"linear_before_reset": False}),
    ("gru", False, {"reverse": True, "clip": 0.5}),
    ("gru", False, {"initial_state": True, "linear_before_reset": False, "clip": 0.8}),
    ("gru", False, {"activations": [fn("hardsigmoid", 0.3, 0.4), fn("softsign")]}),
    ("gru", False, {"activations": [fn("sigmoid"), fn("softplus")], "linear_before_reset": False}),
    ("gru", True, {"initial_state": True, "linear_before_reset": False, "clip": 0.6}),
    ("rnn_tanh", False, {"reverse": True, "initial_state": True}),
    ("rnn_tanh", False, {"clip": 0.4}),
    ("rnn_tanh", False, {"activations": [fn("scaledtanh", 1.5, 0.8)]}),
    ("rnn_tanh", False, {"activations": [fn("elu", 0.5)]}),
    ("rnn_tanh", False, {"activations": [fn("thresholdedrelu", 0.1)]}),
    ("rnn_tanh", False, {"activations": [fn("affine", 0.5, 0.1)], "clip": 1.0}),
    ("rnn_tanh", True, {"activations": [fn("leakyrelu", 0.2), fn("softsign")], "initial_state": True}),
    ("rnn_relu", False, {"clip": 0.3, "initial_state": True}),
    ("rnn_relu", False, {"reverse": True}),
]


@pytest.mark.parametrize("cell,bidirectional,ext", CASES, ids=[f"{c}-{'bi-' if b else ''}{'-'.join(e)}"
                                                              for c, b, e in CASES])
def test_float_forward_of_every_extension_equals_onnx_runtime(cell, bidirectional, ext):
    spec = layer_spec(cell, bidirectional, **ext)
    assert spec["version"] == specs.EXTENDED_VERSION
    rng = np.random.default_rng(len(str(ext)) + 7 * len(cell))
    tensors = random_tensors(spec, rng)
    X = rng.standard_normal((len(LENGTHS), STEPS, I)).astype(np.float32)
    _, outputs, _ = float_layers(spec, tensors, X, LENGTHS)
    theirs = ort_outputs(spec, tensors, X, LENGTHS)
    np.testing.assert_allclose(outputs[0], theirs, atol=3e-5, rtol=0)
    assert np.abs(theirs).max() > 0.1  # the comparison saw real values


def test_ranges_count_the_initial_state():
    spec = layer_spec("lstm", initial_state=True)
    rng = np.random.default_rng(3)
    tensors = random_tensors(spec, rng, scale=0.1)
    tensors["layers.0.fwd.h0"][2] = -0.97
    tensors["layers.0.fwd.c0"][4] = 6.5  # far beyond what the small weights ever reach
    X = rng.standard_normal((2, 6, I)).astype(np.float32)
    ranges = calibrate((spec, tensors), X)
    assert ranges.hidden_absmax[0] == pytest.approx(0.97)
    assert ranges.cell_absmax[0] == pytest.approx(6.5)

    relu = layer_spec("rnn_relu", bidirectional=True, initial_state=True)
    tensors = random_tensors(relu, rng, scale=0.1)
    tensors["layers.0.bwd.h0"][0] = -40.0  # a negative h0 of a relu cell: only its magnitude is a range
    assert calibrate((relu, tensors), X).hidden_absmax[0] == pytest.approx(40.0)


def test_padding_keeps_the_initial_state_until_a_backward_direction_starts():
    spec = layer_spec("gru", bidirectional=True, initial_state=True, linear_before_reset=False)
    rng = np.random.default_rng(5)
    tensors = random_tensors(spec, rng)
    X = rng.standard_normal((2, 10, I)).astype(np.float32)
    lengths = np.array([10, 4])
    _, (out,), _ = float_layers(spec, tensors, X, lengths)
    _, (alone,), _ = float_layers(spec, tensors, X[1:, :4], np.array([4]))
    np.testing.assert_allclose(out[1, :4], alone[0], atol=1e-12, rtol=0)
    assert np.all(out[1, 4:] == 0)
