"""The head behind the last recurrent layer: MatMul [+ Add] or Gemm, then Softmax / Sigmoid."""

from __future__ import annotations

import numpy as np

from export.onnx_in.values import Const, Refuse, Tensor, axis_index


class HeadOps:
    """The Mapper's handlers of head nodes (mixed into export.onnx_in.mapper.Mapper)."""

    def op_MatMul(self, node, attrs, args):
        x, w = args
        if not isinstance(x, Tensor) or not isinstance(w, Const) or w.value.ndim != 2 or x.stage == "head":
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
        if x.stage not in ("y", "final", "input") or "D" in x.axes:  # input: an unrolled RNN's X W_ih^T
            raise Refuse("the head must read a recurrent layer's output (directions merged) or final state")
        return Tensor(x.axes, "head", x.layer, source=x,
                       weight=weight.astype(np.float32), bias=None if bias is None else np.asarray(bias, np.float32))

    def op_Add(self, node, attrs, args):
        a, b = args
        if any(isinstance(v, Tensor) and v.stage in ("rec", "xstep") for v in args):
            return self.unrolled_add(a, b)
        head, const = (a, b) if isinstance(a, Tensor) else (b, a)
        if not isinstance(head, Tensor) or head.stage != "head" or not isinstance(const, Const) or \
                head.activation != "none":
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
        if x.stage != "head" or x.activation != "none" or axis != len(x.axes) - 1:
            raise Refuse(f"{node.op_type} is supported over the last axis of the head's output")
        return Tensor(**{**x.__dict__, "activation": activation})

    def op_Tanh(self, node, attrs, args):
        return self.activate_step(node, args[0])

    def op_Relu(self, node, attrs, args):
        return self.activate_step(node, args[0])

    def op_Sigmoid(self, node, attrs, args):
        (x,) = args
        if x.stage != "head" or x.activation != "none":
            raise Refuse("Sigmoid is supported on the head's output")
        return Tensor(**{**x.__dict__, "activation": "sigmoid"})
