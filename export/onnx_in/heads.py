"""The head behind the last recurrent layer: dense layers (MatMul [+ Add] or Gemm), each but the last followed by an
elementwise function, then Softmax / LogSoftmax / Sigmoid.

The function between two dense layers is not pattern-matched: the elementwise nodes applied to a dense layer's
output (Relu, or the Div / Erf / Add / Mul / Mul an exporter writes for GELU, ...) are recorded and run on a grid of
values when the next dense layer (or the output) reads them, and compared with the functions rnnedge runs."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rnnedge.export.onnx_in.values import Const, Refuse, Tensor, axis_index, spread_weight

ELEMENTWISE = {"Relu", "Tanh", "Sigmoid", "Gelu", "Erf", "Div", "Mul", "Add", "Sub", "Pow", "Sqrt", "Neg", "Exp",
               "Reciprocal", "Max", "Min", "Clip", "Softplus", "LeakyRelu", "HardSigmoid", "Elu"}
_GRID = np.linspace(-8.0, 8.0, 1601).astype(np.float32)
_erf = np.vectorize(math.erf)
# what rnnedge runs between dense layers (runtime/spec.py HIDDEN_ACTIVATIONS) and after the last one
_FUNCTIONS = {"none": lambda x: x, "relu": lambda x: np.maximum(x, 0), "tanh": np.tanh,
              "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "gelu": lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
              "gelu_tanh": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))}


class HeadOps:
    """The Mapper's handlers of head nodes (mixed into export.onnx_in.mapper.Mapper)."""

    def op_MatMul(self, node, attrs, args):
        x, w = args
        if not isinstance(x, Tensor) or not isinstance(w, Const) or w.value.ndim != 2:
            raise Refuse("MatMul is supported as the head: features x constant (features, out) matrix")
        if x.stage == "h":
            return self.recurrent_product(x, w.value)
        return self._head(x, w.value.T, None)

    def op_Gemm(self, node, attrs, args):
        x, b = args[0], args[1]
        c = args[2] if len(args) > 2 else None
        if not isinstance(x, Tensor) or not isinstance(b, Const) or not (c is None or isinstance(c, Const)):
            raise Refuse("Gemm is supported as the head: features x constant B + constant C")
        if attrs.get("transA", 0):
            raise Refuse("Gemm with transA=1 is not supported")
        w = b.value if attrs.get("transB", 0) else b.value.T
        w = w * attrs.get("alpha", 1.0)
        bias = None if c is None else np.broadcast_to(c.value * attrs.get("beta", 1.0), (w.shape[0],))
        return self._head(x, w, bias)

    def _head(self, x: Tensor, weight: np.ndarray, bias):
        if x.stage == "head":  # a dense layer behind another: that one is a hidden layer
            function = self.function_of(x, hidden=True)
            done = (x.weight, x.bias if x.bias is not None else np.zeros(x.weight.shape[0], np.float32), function)
            return Tensor(x.axes, "head", x.layer, source=x.source, stack=x.stack + (done,),
                          weight=weight.astype(np.float32), bias=None if bias is None else np.asarray(bias, np.float32))
        if x.stage not in ("y", "final", "input") or "D" in x.axes:  # input: an unrolled RNN's X W_ih^T
            raise Refuse("the head must read a recurrent layer's output (directions merged) or final state")
        return Tensor(x.axes, "head", x.layer, source=x, weight=spread_weight(weight.astype(np.float32), x),
                      bias=None if bias is None else np.asarray(bias, np.float32))

    def op_Add(self, node, attrs, args):
        a, b = args
        if any(isinstance(v, Tensor) and v.stage in ("rec", "xstep") for v in args):
            return self.unrolled_add(a, b)
        if isinstance(a, Tensor) and isinstance(b, Tensor) and "head" not in (a.stage, b.stage):
            return self.sum_of_directions(a, b)
        head, const = (a, b) if isinstance(a, Tensor) else (b, a)
        if not isinstance(head, Tensor) or head.stage != "head" or not isinstance(const, Const) or \
                head.activation != "none" or head.fn:
            raise Refuse("Add is supported as the head's bias (after MatMul)")
        out = head.weight.shape[0]
        if const.value.size != out:
            raise Refuse(f"the head bias has {const.value.size} values for {out} outputs")
        bias = const.value.reshape(-1).astype(np.float32) + (0 if head.bias is None else head.bias)
        return Tensor(**{**head.__dict__, "bias": bias})

    def op_Softmax(self, node, attrs, args):
        return self._over_last_axis(node, attrs, args, "softmax")

    def op_LogSoftmax(self, node, attrs, args):
        return self._over_last_axis(node, attrs, args, "log_softmax")

    def _over_last_axis(self, node, attrs, args, activation: str):
        (x,) = args
        axis = axis_index(attrs.get("axis", -1 if self.opset >= 13 else 1), len(x.axes))
        if x.stage != "head" or x.activation != "none" or axis != len(x.axes) - 1 or self.function_of(x) != "none":
            raise Refuse(f"{node.op_type} is supported over the last axis of the head's output")
        return Tensor(**{**x.__dict__, "activation": activation, "fn": ()})

    def op_Tanh(self, node, attrs, args):  # on a dense layer's output: elementwise(); else an unrolled RNN step
        return self.activate_step(node, args[0])

    def op_Relu(self, node, attrs, args):
        return self.activate_step(node, args[0])

    def elementwise(self, node, args) -> Tensor:
        """An elementwise node on a dense layer's output: recorded, identified when something reads the result."""
        heads = [a for a in args if isinstance(a, Tensor)]
        first = heads[0]
        if any(h.stage != "head" or h.activation != "none" or h.weight is not first.weight for h in heads):
            raise Refuse(f"operator {node.op_type} on the sequence is supported only between a head's dense layers")
        consts = {}
        for name, a in zip(node.input, args):
            if isinstance(a, Const):
                if a.value.size != 1:
                    raise Refuse(f"operator {node.op_type} with a {a.value.shape} constant: not an elementwise "
                                 f"function between a head's dense layers")
                consts[name] = a.value
            elif not isinstance(a, Tensor) and a is not None:
                raise Refuse(f"operator {node.op_type} reads a value computed at run time")
        nodes, seen = [], set()
        for h in heads:
            for n, c in h.fn:
                if id(n) not in seen:
                    seen.add(id(n))
                    nodes.append((n, c))
        nodes.append((node, consts))
        base = next((h.fn_base for h in heads if h.fn), None) or next(
            n for n, a in zip(node.input, args) if isinstance(a, Tensor))
        return Tensor(**{**first.__dict__, "fn": tuple(nodes), "fn_base": base})

    def function_of(self, x: Tensor, hidden: bool = False) -> str:
        """Which function the elementwise nodes recorded on x compute ("none" if there are none)."""
        if x.activation != "none":
            if hidden and x.activation != "sigmoid":
                raise Refuse(f"a dense layer reads the head's {x.activation} output")
            return x.activation
        if not x.fn:
            return "none"
        last = x.fn[-1][0].output[0]
        inits = [numpy_helper.from_array(np.asarray(v), k) for _, c in x.fn for k, v in c.items()]
        graph = helper.make_graph([n for n, _ in x.fn], "function", [
            helper.make_tensor_value_info(x.fn_base, onnx.TensorProto.FLOAT, [None])],
            [helper.make_tensor_value_info(last, onnx.TensorProto.FLOAT, [None])], initializer=inits)
        from onnx.reference import ReferenceEvaluator

        try:
            (got,) = ReferenceEvaluator(helper.make_model(graph, opset_imports=self.model.opset_import)).run(
                None, {x.fn_base: _GRID})
        except Exception as e:  # noqa: BLE001 - the evaluator raises many types
            raise Refuse(f"the elementwise nodes after a dense layer cannot be evaluated ({type(e).__name__}: {e})"
                         ) from None
        for name, f in _FUNCTIONS.items():
            if np.allclose(got, f(_GRID.astype(np.float64)), rtol=0, atol=1e-5):
                if not hidden and name not in ("none", "sigmoid"):
                    raise Refuse(f"the head ends with {name}; rnnedge's head ends with a dense layer (then softmax, "
                                 f"log_softmax or sigmoid)")
                return name
        raise Refuse(f"the elementwise nodes {[n.op_type for n, _ in x.fn]} after a dense layer compute none of "
                     f"{', '.join(_FUNCTIONS)}")


def read_step_of(read: list[tuple[int, str]], layer: dict) -> tuple[str, str, str]:
    """(OnnxMapping.read_step, the pitfall warning, the note) of a head that reads Y at one time step where some
    direction there is not its final state: (direction, "last" / "first") pairs of the last layer `layer`.

    rnnedge's last_step head reads each direction's final state; a bidirectional Y[-1] (torch's output[:, -1],
    a Keras head on the last step of a sequence) joins the forward final state with the backward direction after
    ONE step. No last_step head computes that, but the every_step head with the same weights computes it at every
    step: the graph's output is the converted model's at step T-1 (the --module path maps the same pitfall alike,
    export/module_heads.py)."""
    steps = {step for _, step in read}
    if len(steps) != 1:
        raise Refuse(f"the head reads {sorted(read)} (direction, time step) of Y: rnnedge heads read each "
                     f"direction's final state or one time step of the output, not two different steps")
    (step,) = steps
    where, index = ("T-1", -1) if step == "last" else ("0", 0)
    reverse = bool(layer.get("reverse"))
    names = ("reverse",) if reverse else ("forward", "backward")
    kind = f"{'bidirectional ' if layer.get('bidirectional') else 'reverse ' if reverse else ''}{layer['cell']}"
    read_at = ", ".join(f"{names[d]} at t={where}" for d, _ in read)
    note = (f"the head reads {read_at} of the last {kind} layer: mapped to an every_step head; the graph's output "
            f"is the converted model's (and the runtime's) output at step {where}, run(X)[:, {index}]")
    hidden = layer["hidden"]
    early = (1 if not reverse else 0, "last")
    if early in read:
        fix = ("read its final state (Y_h, or Y at step 0)" if reverse else
               f"read each direction's final state, torch.cat((h_n[-2], h_n[-1]), dim=1), or "
               f"torch.cat((output[:, -1, :{hidden}], output[:, 0, {hidden}:]), dim=1) (output[:, 0, {hidden}:] is "
               f"the backward half's final state)")
        warning = (f"the graph reads the {names[early[0]]} direction of its last {kind} layer at the last time step "
                   f"(e.g. torch's output[:, -1] of a bidirectional RNN): there it has seen only the last step, not "
                   f"the sequence. rnnedge reproduces this exactly (the converted model has an every_step head; the "
                   f"graph's output is its output at the last step, runtime run(X)[:, -1]). The usual fix, before "
                   f"exporting: {fix}; that maps to rnnedge's last_step head")
    else:
        warning = (f"the graph reads the forward direction of its last {kind} layer at t=0, where it has seen only "
                   f"the first step (e.g. torch's output[:, 0]); rnnedge reproduces this exactly (an every_step head; "
                   f"the graph's output is run(X)[:, 0]). The usual fix is output[:, -1] or h_n[-1]")
    return step, warning, note
