"""Canonical tensors + spec -> ONNX graphs built node by node, so that each graph is exactly the spec.

Two graphs, both with the standard ONNX `RNN`, `LSTM` and `GRU` operators (layout 0: time first):

    model.onnx       x (batch, time, features) float32 | (batch, time) int64  ->  y (batch, time, out) | (batch, out)
    model.step.onnx  x (batch, features) float32 | (batch,) int64,
                     h{l}_in [, c{l}_in] (batch, hidden_l) per layer l        ->  y (batch, out), h{l}_out [, c{l}_out]

`y` is the head's activated output, as RecurrentModel.forward returns it. A `last_step` head reads each
direction's final output (forward: the last step; backward: step 0), which is what the ONNX ops return
as Y_h. The step graph's `y` is the head on the last layer's new h: the prediction if the stream ended now.

Gate order, the only place it is stated (rows of W, R and B are blocks of `hidden` rows, one per gate):

    torch lstm: i f g o   ->   onnx lstm: i o f c    (ONNX's c is torch's g, the cell candidate)
    torch gru:  r z n     ->   onnx gru:  z r h      (ONNX's h is torch's n, the candidate state)
    rnn:        one gate, nothing to reorder

    peepholes:  spec p = [p_i; p_f; p_o]  ->   onnx P = [P_i; P_o; P_f]

PyTorch's GRU applies the reset gate after the recurrent matmul (n = tanh(W_in x + b_in + r * (W_hn h + b_hn))),
which is ONNX's linear_before_reset=1. ONNX's bias B is [Wb; Rb] = [b_ih; b_hh], each in ONNX gate order.

A layer's ONNX extensions (runtime/spec.py) are the operator's own attributes and inputs: reverse is
direction=reverse, linear_before_reset false is linear_before_reset=0, input_forget=1, P (above), clip, and
activations with activation_alpha / activation_beta. ONNX Runtime reads those two lists packed: each holds the
values of only the functions that take one, in function order (alpha: Affine, LeakyRelu, ThresholdedRelu,
ScaledTanh, HardSigmoid, Elu; beta: Affine, ScaledTanh, HardSigmoid), and a value left out is not the
function's ONNX default (Affine and ScaledTanh become 0), so every value is always written (measured with ORT
1.32). initial_state is initial_h [/ initial_c]: in model.onnx the (H,) vectors are constants broadcast to
(dirs, batch, H) for any batch; model.step.onnx keeps the state as explicit inputs, so a stream starts from
what its caller feeds as the first h{l}_in [/ c{l}_in]: zeros, or a layer's h0 [/ c0]. The step graph carries
those values in its metadata ("rnnedge.initial_state", initial_state_feed), as model.f32.safetensors does.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from rnnedge.runtime import spec as specs

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17; ONNX Runtime reads it everywhere

# Each ONNX gate, in ONNX's order, named by its PyTorch letter.
TORCH_GATES = {"rnn_tanh": "h", "rnn_relu": "h", "lstm": "ifgo", "gru": "rzn"}
ONNX_GATES = {"rnn_tanh": "h", "rnn_relu": "h", "lstm": "iofg", "gru": "zrn"}

_ONNX_OP = {"rnn_tanh": "RNN", "rnn_relu": "RNN", "lstm": "LSTM", "gru": "GRU"}
# spec.ACTIVATION_FNS -> ONNX's name; which take an alpha and a beta (ORT's packed lists, module docstring)
ONNX_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "affine": "Affine", "leakyrelu": "LeakyRelu",
                    "thresholdedrelu": "ThresholdedRelu", "scaledtanh": "ScaledTanh", "hardsigmoid": "HardSigmoid",
                    "elu": "Elu", "softsign": "Softsign", "softplus": "Softplus"}
TAKES_ALPHA = ("affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu")
TAKES_BETA = ("affine", "scaledtanh", "hardsigmoid")
INITIAL_STATE_KEY = "rnnedge.initial_state"  # step graph metadata: initial_state_feed as JSON


def to_onnx_gate_order(cell: str, rows: np.ndarray) -> np.ndarray:
    """Reorder the gate blocks (axis 0) of a weight or bias from PyTorch's order to ONNX's."""
    blocks = np.split(rows, len(TORCH_GATES[cell]), axis=0)
    return np.concatenate([blocks[TORCH_GATES[cell].index(g)] for g in ONNX_GATES[cell]], axis=0)


def onnx_layer_weights(spec: dict, tensors: dict[str, np.ndarray], l: int) -> tuple[np.ndarray, ...]:
    """W (dirs, G*H, I), R (dirs, G*H, H), B (dirs, 2*G*H) of layer l: directions stacked forward then reverse."""
    layer = spec["layers"][l]
    cell = layer["cell"]
    w, r, b = [], [], []
    for d in ("fwd", "bwd")[: specs.directions(layer)]:
        t = {k: tensors[f"layers.{l}.{d}.{k}"] for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
        w.append(to_onnx_gate_order(cell, t["w_ih"]))
        r.append(to_onnx_gate_order(cell, t["w_hh"]))
        b.append(np.concatenate([to_onnx_gate_order(cell, t["b_ih"]), to_onnx_gate_order(cell, t["b_hh"])]))
    return tuple(np.ascontiguousarray(np.stack(a), dtype=np.float32) for a in (w, r, b))


def onnx_peepholes(spec: dict, tensors: dict[str, np.ndarray], l: int) -> np.ndarray:
    """P (dirs, 3H) of layer l in ONNX's order i o f, from the spec's p = [p_i; p_f; p_o] per direction."""
    layer = spec["layers"][l]
    rows = []
    for d in ("fwd", "bwd")[: specs.directions(layer)]:
        p_i, p_f, p_o = np.split(tensors[f"layers.{l}.{d}.p"], 3)
        rows.append(np.concatenate([p_i, p_o, p_f]))
    return np.ascontiguousarray(np.stack(rows), dtype=np.float32)


def activation_attributes(layer: dict) -> dict:
    """activations [, activation_alpha, activation_beta] of a layer, both directions, lists packed as ORT reads
    them (module docstring)."""
    fns = [fn for d in range(specs.directions(layer)) for fn in specs.functions(layer, d)]
    attrs = {"activations": [ONNX_ACTIVATIONS[name] for name, _, _ in fns]}
    alphas = [alpha for name, alpha, _ in fns if name in TAKES_ALPHA]
    betas = [beta for name, _, beta in fns if name in TAKES_BETA]
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    return attrs


def initial_state_feed(spec: dict, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The step graph's state inputs a stream starts from, for the layers with initial_state: {"h{l}_in": h0 (H,),
    "c{l}_in": c0 (H,)}; every other state input starts at zeros. Broadcast each over the batch to feed it."""
    feed = {}
    for l, layer in enumerate(spec["layers"]):
        if layer.get("initial_state"):
            feed[f"h{l}_in"] = np.asarray(tensors[f"layers.{l}.fwd.h0"], np.float32)
            if layer["cell"] == "lstm":
                feed[f"c{l}_in"] = np.asarray(tensors[f"layers.{l}.fwd.c0"], np.float32)
    return feed


class _Graph:
    """Collects nodes and initializers; every helper returns the name of the value it makes."""

    def __init__(self, spec: dict, tensors: dict[str, np.ndarray]):
        self.spec = specs.validate(spec)
        self.tensors = tensors
        expected = specs.tensor_shapes(self.spec)
        for name, shape in expected.items():
            if name not in tensors or tuple(tensors[name].shape) != shape:
                got = tuple(tensors[name].shape) if name in tensors else "missing"
                raise ValueError(f"tensor {name}: spec needs shape {shape}, got {got}")
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value) -> str:
        arr = np.asarray(value)
        arr = arr.astype(np.int64 if arr.dtype.kind in "iu" else np.float32)
        self.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> list[str]:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=f"{op}_{len(self.nodes)}", **attrs))
        return outputs

    def input_features(self, x: str, shape: str) -> str:
        """Raw input -> first layer's input: (x - mean) / std, or the embedding rows of the token ids."""
        inp = self.spec["input"]
        if inp["kind"] == "tokens":
            table = self.const("embedding.weight", self.tensors["embedding.weight"])
            return self.node("Gather", [table, x], [f"embedded_{shape}"], axis=0)[0]
        mean = self.const("input.mean", np.asarray(inp["mean"], dtype=np.float32))
        std = self.const("input.std", np.asarray(inp["std"], dtype=np.float32))
        centred = self.node("Sub", [x, mean], ["centred"])[0]
        return self.node("Div", [centred, std], [f"normalised_{shape}"])[0]

    def recurrent(self, l: int, x: str, outputs: list[str], initial: list[str] | None = None) -> list[str]:
        """One spec layer as one ONNX RNN/LSTM/GRU node over X (time, batch, I), extensions included.

        outputs: names for Y (time, dirs, batch, H), Y_h (dirs, batch, H) [, Y_c]; "" leaves one out.
        initial: [initial_h [, initial_c]] each (dirs, batch, H); None: the layer's h0 [/ c0] broadcast over the
        batch of x (initial_state), else zeros.
        """
        layer = self.spec["layers"][l]
        cell = layer["cell"]
        w, r, b = onnx_layer_weights(self.spec, self.tensors, l)
        inputs = [x, self.const(f"layers.{l}.W", w), self.const(f"layers.{l}.R", r), self.const(f"layers.{l}.B", b)]
        if initial is None and layer.get("initial_state"):
            initial = self.broadcast_initial_state(l, x)
        inputs += ["", *(initial or ["", ""][: 2 if cell == "lstm" else 1])]  # "": no sequence_lens, zero state
        if layer.get("peepholes"):
            inputs.append(self.const(f"layers.{l}.P", onnx_peepholes(self.spec, self.tensors, l)))
        while inputs[-1] == "":  # optional inputs left out at the end
            inputs.pop()
        direction = "reverse" if layer.get("reverse") else "forward"
        attrs = {"hidden_size": layer["hidden"], "direction": "bidirectional" if layer["bidirectional"] else direction}
        if cell not in ("lstm", "gru") or "activations" in layer:
            attrs.update(activation_attributes(layer))
        if cell == "gru":
            attrs["linear_before_reset"] = int(specs.option(layer, "linear_before_reset"))
        if layer.get("input_forget"):
            attrs["input_forget"] = 1
        if "clip" in layer:
            attrs["clip"] = layer["clip"]
        return self.node(_ONNX_OP[cell], inputs, outputs, **attrs)

    def broadcast_initial_state(self, l: int, x: str) -> list[str]:
        """Layer l's h0 [, c0] as (dirs, batch, H): constants (dirs, 1, H) expanded over the batch axis of x."""
        layer = self.spec["layers"][l]
        dirs = ("fwd", "bwd")[: specs.directions(layer)]
        batch = self.node("Gather", [self.node("Shape", [x], [f"layer_{l}_x_shape"])[0],
                                     self.const(f"index.layer_{l}_batch", np.array([1], dtype=np.int64))],
                          [f"layer_{l}_batch"], axis=0)[0]
        one = self.const(f"shape.layer_{l}_one", np.array([1], dtype=np.int64))
        shape = self.node("Concat", [one, batch, one], [f"layer_{l}_state_shape"], axis=0)[0]  # (1, batch, 1)
        names = []
        for part in ("h0", "c0") if layer["cell"] == "lstm" else ("h0",):
            value = np.stack([self.tensors[f"layers.{l}.{d}.{part}"] for d in dirs])[:, None, :]  # (dirs, 1, H)
            constant = self.const(f"layers.{l}.{part}", value)
            names.append(self.node("Expand", [constant, shape], [f"layer_{l}_{part}_dbh"])[0])
        return names

    def head(self, h: str) -> str:
        """(..., width) -> (..., out): each hidden dense layer (MatMul + Add, its activation), then the final
        MatMul + Add and the spec's activation, into `y`."""
        for k, dense in enumerate(specs.head_hidden(self.spec)):
            weight_t = self.const(f"head.hidden.{k}.weight_t", self.tensors[f"head.hidden.{k}.weight"].T)
            bias = self.const(f"head.hidden.{k}.bias", self.tensors[f"head.hidden.{k}.bias"])
            product = self.node("MatMul", [h, weight_t], [f"head_hidden_{k}_matmul"])[0]
            h = self.hidden_activation(k, dense["activation"], self.node("Add", [product, bias],
                                                                        [f"head_hidden_{k}_pre"])[0])
        weight_t = self.const("head.weight_t", self.tensors["head.weight"].T)
        bias = self.const("head.bias", self.tensors["head.bias"])
        product = self.node("MatMul", [h, weight_t], ["head_matmul"])[0]
        activation = self.spec["head"]["activation"]
        if activation == "none":
            return self.node("Add", [product, bias], ["y"])[0]
        logits = self.node("Add", [product, bias], ["logits"])[0]
        if activation == "softmax":
            return self.node("Softmax", [logits], ["y"], axis=-1)[0]
        if activation == "log_softmax":
            return self.node("LogSoftmax", [logits], ["y"], axis=-1)[0]
        return self.node("Sigmoid", [logits], ["y"])[0]

    def hidden_activation(self, k: int, name: str, v: str) -> str:
        """A hidden head layer's activation (spec.HIDDEN_ACTIVATIONS) of v. Opset 17 has no Gelu: gelu is
        x/2 (1 + erf(x / sqrt 2)), gelu_tanh x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch defines them."""
        out = f"head_hidden_{k}"
        if name == "none":
            return v
        if name in ("relu", "tanh", "sigmoid"):
            return self.node({"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}[name], [v], [out])[0]
        half_x = self.node("Mul", [v, self.const(f"head.hidden.{k}.half", np.float32(0.5))], [f"{out}_half"])[0]
        if name == "gelu":
            scaled = self.node("Mul", [v, self.const(f"head.hidden.{k}.rsqrt2", np.float32(0.5**0.5))],
                               [f"{out}_scaled"])[0]
            curve = self.node("Erf", [scaled], [f"{out}_erf"])[0]
        else:
            cube = self.node("Mul", [self.node("Mul", [v, v], [f"{out}_x2"])[0], v], [f"{out}_x3"])[0]
            inner = self.node("Add", [v, self.node("Mul", [cube, self.const(f"head.hidden.{k}.c", np.float32(0.044715))],
                                                   [f"{out}_cx3"])[0]], [f"{out}_inner"])[0]
            scaled = self.node("Mul", [inner, self.const(f"head.hidden.{k}.sqrt2_pi",
                                                         np.float32((2 / np.pi) ** 0.5))], [f"{out}_scaled"])[0]
            curve = self.node("Tanh", [scaled], [f"{out}_tanh"])[0]
        one_plus = self.node("Add", [curve, self.const(f"head.hidden.{k}.one", np.float32(1.0))], [f"{out}_1p"])[0]
        return self.node("Mul", [half_x, one_plus], [out])[0]

    def model(self, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
              props: dict[str, str] | None = None):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="rnnedge")
        model.ir_version = IR_VERSION
        helper.set_model_props(model, {"rnnedge.spec": specs.dumps(self.spec), **(props or {})})
        onnx.checker.check_model(model, full_check=True)
        return model


def _input_info(spec: dict, name: str, batch_dims: list) -> onnx.ValueInfoProto:
    inp = spec["input"]
    if inp["kind"] == "tokens":
        return helper.make_tensor_value_info(name, TensorProto.INT64, batch_dims)
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [*batch_dims, inp["features"]])


def build_sequence_graph(spec: dict, tensors: dict[str, np.ndarray]) -> onnx.ModelProto:
    """model.onnx: whole sequences of equal length, x (batch, time, ...) -> y, dynamic batch and time."""
    g = _Graph(spec, tensors)
    spec = g.spec
    last_step = spec["head"]["on"] == "last_step"

    x = g.input_features("x", "btf")
    h = g.node("Transpose", [x], ["layer_0_input"], perm=[1, 0, 2])[0]  # (time, batch, I)
    n_layers = len(spec["layers"])
    for l in range(n_layers):
        if l == n_layers - 1 and last_step:
            y_h = g.recurrent(l, h, ["", f"layer_{l}_y_h"])[1]
            # Y_h (dirs, batch, H): the forward final output and the backward one at step 0 -> (batch, dirs*H)
            per_batch = g.node("Transpose", [y_h], [f"layer_{l}_final_bdh"], perm=[1, 0, 2])[0]
            h = g.node("Reshape", [per_batch, g.const("shape.batch_flat", np.array([0, -1], dtype=np.int64))],
                       ["final_state"])[0]
            break
        y = g.recurrent(l, h, [f"layer_{l}_y"])[0]  # (time, dirs, batch, H)
        tbdh = g.node("Transpose", [y], [f"layer_{l}_y_tbdh"], perm=[0, 2, 1, 3])[0]
        merge_directions = g.const(f"shape.layer_{l}_merge_directions", np.array([0, 0, -1], dtype=np.int64))
        h = g.node("Reshape", [tbdh, merge_directions], [f"layer_{l + 1}_input"])[0]  # (time, batch, dirs*H)
    if not last_step:
        h = g.node("Transpose", [h], ["features"], perm=[1, 0, 2])[0]  # (batch, time, dirs*H)
    g.head(h)

    out = spec["head"]["out"]
    y_dims = ["batch", out] if last_step else ["batch", "time", out]
    return g.model("rnnedge_sequence", [_input_info(spec, "x", ["batch", "time"])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_dims)])


def state_names(spec: dict, suffix: str) -> list[str]:
    """Names of the step graph's state values, layer by layer: h0, [c0,] h1, ... with `_in` or `_out`."""
    names = []
    for l, layer in enumerate(spec["layers"]):
        names.append(f"h{l}_{suffix}")
        if layer["cell"] == "lstm":
            names.append(f"c{l}_{suffix}")
    return names


def build_step_graph(spec: dict, tensors: dict[str, np.ndarray]) -> onnx.ModelProto:
    """model.step.onnx: one time step with the state as explicit inputs and outputs, dynamic batch. A stream
    starts from zeros, or from initial_state_feed (also in the metadata, read_initial_state)."""
    g = _Graph(spec, tensors)
    spec = g.spec
    if not specs.can_stream(spec):
        raise ValueError("a model with a bidirectional or reverse layer has no step graph: it needs the whole "
                         "sequence")
    to_dirs = g.const("axes.directions", np.array([0], dtype=np.int64))

    x = g.input_features("x", "bf")
    h = g.node("Unsqueeze", [x, to_dirs], ["layer_0_input"])[0]  # (time=1, batch, I)
    inputs = [_input_info(spec, "x", ["batch"])]
    for l, layer in enumerate(spec["layers"]):
        is_lstm = layer["cell"] == "lstm"
        state_in = [f"h{l}_in"] + ([f"c{l}_in"] if is_lstm else [])
        initial = [g.node("Unsqueeze", [s, to_dirs], [f"{s}_dbh"])[0] for s in state_in]  # (dirs=1, batch, H)
        step_out = g.recurrent(l, h, ["", f"h{l}_dbh"] + ([f"c{l}_dbh"] if is_lstm else []), initial)[1:]
        for s_in, s_out in zip(state_in, step_out):
            g.node("Squeeze", [s_out, to_dirs], [s_in.replace("_in", "_out")])
            inputs.append(helper.make_tensor_value_info(s_in, TensorProto.FLOAT, ["batch", layer["hidden"]]))
        h = step_out[0]  # Y_h (1, batch, H) is also the next layer's X (time=1, batch, H)
    g.head(f"h{len(spec['layers']) - 1}_out")

    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", spec["head"]["out"]])]
    for l, layer in enumerate(spec["layers"]):
        for name in [f"h{l}_out"] + ([f"c{l}_out"] if layer["cell"] == "lstm" else []):
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", layer["hidden"]]))
    feed = initial_state_feed(spec, tensors)
    props = {INITIAL_STATE_KEY: json.dumps({k: v.tolist() for k, v in feed.items()})} if feed else None
    return g.model("rnnedge_step", inputs, outputs, props)


def read_initial_state(metadata: dict[str, str]) -> dict[str, np.ndarray]:
    """initial_state_feed back from a step graph's metadata (onnx metadata_props or ORT's custom_metadata_map)."""
    text = metadata.get(INITIAL_STATE_KEY)
    return {} if text is None else {k: np.asarray(v, np.float32) for k, v in json.loads(text).items()}
