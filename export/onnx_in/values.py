"""The abstract values the ONNX mapper computes with: constants, run-time shapes, zero / broadcast tensors, the
sequence itself (Tensor: its axes and what it is), and the folding of constant and shape arithmetic."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import helper, numpy_helper

SHAPE_OPS = {"Shape", "Size", "Gather", "Concat", "Unsqueeze", "Squeeze", "Slice", "Cast", "Identity", "Reshape",
              "Add", "Sub", "Mul", "Div", "Range", "Expand", "ConstantOfShape", "Transpose", "Tile",
              # torch.onnx.export's expand(-1, B, -1): Where(Equal(shape, -1), ConstantOfShape(1), shape)
              "Equal", "Where", "Max", "Min"}
ZERO_OPS = {"Slice", "Expand", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Cast", "Identity", "Tile",
             "Concat", "Gather"}
BIG = 2 ** 31 - 1  # a Slice end this large means "to the end"
LABELS = {"T": "time", "B": "batch", "D": "directions", "F": "features", "t": "one time step"}


class Const:
    def __init__(self, value):
        self.value = np.asarray(value)


class Shape:
    """A value computed from tensor shapes (known only at run time)."""


class Zeros:
    """A tensor of zeros of a run-time shape (ConstantOfShape of a shape)."""


class Broadcast:
    """A constant expanded to a run-time shape (Expand(constant, shape)): rnnedge's own graphs broadcast a layer's
    h0 / c0 (dirs, 1, H) over the batch this way."""

    def __init__(self, value):
        self.value = np.asarray(value)


@dataclass
class Extra:
    """A graph input other than the sequence: only a recurrent node's sequence_lens may read it."""

    name: str
    elem: int
    dims: list
    used_as: set = field(default_factory=set)


@dataclass
class Failed:
    op: str
    name: str
    message: str
    reported: bool = False


@dataclass
class Tensor:
    """A value derived from the input sequence.

    axes: labels of its axes: raw graph-input axes "0", "1" before the first recurrent node; then "T" time,
    "B" batch, "D" directions, "t" a one-step time axis, "F" features (always last).
    stage: "input" (normalised / embedded input), "y" (a layer's Y), "final" (a layer's Y_h), "head".
    dirs: the directions along D (stage y / final, while D is an axis); pieces: the directions along F.
    step: a time step read from Y ("last" / "first"), which removed the time axis.
    """

    axes: tuple
    stage: str
    layer: int = -1
    dirs: tuple = ()
    pieces: tuple = ()
    step: str | None = None
    source: Tensor | None = None  # stage head: the features it reads
    weight: np.ndarray | None = None  # stage head: (out, width of source)
    bias: np.ndarray | None = None
    activation: str = "none"
    hidden: int = 0



class Refuse(Exception):
    pass


def fold(node, attrs, args) -> list:
    """Constants, shapes and zero tensors: fold what can be folded, mark the rest."""
    op = node.op_type
    present = [a for a in args if a is not None]
    if all(isinstance(a, Const) for a in present):
        return evaluate_constant(node, args)
    if op in ("Shape", "Size"):
        return [Shape()]
    if op == "Expand" and isinstance(args[0], Const) and isinstance(args[1], Shape):
        return [Broadcast(args[0].value)]
    if op == "ConstantOfShape":
        value = attrs.get("value")
        fill = numpy_helper.to_array(value).reshape(-1)[0] if value is not None else 0
        # zeros: a tensor (e.g. an initial state); any other fill only ever feeds shape arithmetic (a data
        # path that reads a Shape is refused there, and the proof checks what the shapes meant)
        return [Zeros()] if fill == 0 else [Shape()]
    if any(isinstance(a, Zeros) for a in present) and op in ZERO_OPS and isinstance(args[0], Zeros):
        return [Zeros()]
    if op in SHAPE_OPS:
        return [Shape()] * len(node.output)
    raise Refuse(f"operator {op} on a run-time shape is not supported")


def float32_decimal(value: float) -> float:
    """An ONNX float attribute (float32) as the shortest decimal that is the same float32: 0.3, not 0.30000001."""
    return float(str(np.float32(value)))



def as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def describe_runtime(value) -> str:
    """How a non-constant input of a recurrent node is described in an error."""
    if isinstance(value, Extra):
        return f"is the graph input {value.name!r}"
    if isinstance(value, Tensor):
        return "is computed from the input sequence"
    return "is computed at run time (from shapes)"


def axis_index(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def replace_axis(x: Tensor, axis: int, label, **changes) -> Tensor:
    axes = list(x.axes)
    if label is None:
        del axes[axis]
    else:
        axes[axis] = label
    fields = {**x.__dict__, **changes, "axes": tuple(axes)}
    if label is None and x.axes[axis] == "D":  # the direction axis is gone: its directions are the features now
        fields["pieces"], fields["dirs"] = fields["dirs"], ()
    return Tensor(**fields)



def constant_value(node, attrs) -> np.ndarray:
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise Refuse(f"Constant with {sorted(attrs)} is not supported")


def evaluate_constant(node, args) -> list:
    """Fold a node whose inputs are all constants with onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if a is not None else "" for i, a in enumerate(args)]
    folded = helper.make_node(node.op_type, names, [f"out{i}" for i in range(len(node.output))],
                              **{a.name: helper.get_attribute_value(a) for a in node.attribute})
    feeds = {n: a.value for n, a in zip(names, args) if a is not None}
    try:
        outs = ReferenceEvaluator(folded).run(None, feeds)
    except Exception as e:  # noqa: BLE001 - the evaluator raises many types
        raise Refuse(f"cannot fold this node of constants ({type(e).__name__}: {e})") from None
    return [Const(o) for o in outs]

