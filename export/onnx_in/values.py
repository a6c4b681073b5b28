"""The abstract values the ONNX mapper computes with: constants, values computed from the input's run-time sizes
(Sampled), the sequence itself (Tensor: its axes and what it is), and the folding of constant and shape arithmetic.

Shape arithmetic is not pattern-matched: a value computed from the run-time batch and time sizes is evaluated at
a few sample sizes (SAMPLE_POINTS). What comes out the same at every sample point is a constant in fact (a zero
initial state built from the batch size, a reshape target's feature width); an entry that follows a size is that
size (Monomial: coefficient x the sizes it multiplies)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from onnx import helper, numpy_helper

BIG = 2 ** 31 - 1  # a Slice end this large means "to the end"
LABELS = {"T": "time", "B": "batch", "D": "directions", "F": "features", "t": "one time step", "L": "layers"}
# sizes of the graph input's dynamic axes "0" and "1" at which shape arithmetic is evaluated: distinct, above 2 (a
# size 1 would take broadcasting's other branch), and no point a multiple of another point's
SAMPLE_POINTS = ({"0": 3, "1": 7}, {"0": 5, "1": 11}, {"0": 6, "1": 13})


class Const:
    def __init__(self, value):
        self.value = np.asarray(value)


class Sampled:
    """A value computed from the input's run-time sizes: its value at each of SAMPLE_POINTS."""

    def __init__(self, samples):
        self.samples = [np.asarray(s) for s in samples]


def settle(samples) -> Const | Sampled:
    """The same array at every sample point is a constant."""
    first = samples[0]
    if all(s.shape == first.shape and s.dtype == first.dtype and np.array_equal(s, first) for s in samples[1:]):
        return Const(first)
    return Sampled(samples)


@dataclass(frozen=True)
class Monomial:
    """A size: coef x the product of the run-time sizes of the input axes named in `sizes` ("0", "1")."""

    coef: int
    sizes: tuple = ()

    def __mul__(self, other: Monomial) -> Monomial:
        return Monomial(self.coef * other.coef, tuple(sorted(self.sizes + other.sizes)))

    def divides(self, other: Monomial) -> bool:
        rest = list(other.sizes)
        for s in self.sizes:
            if s not in rest:
                return False
            rest.remove(s)
        return self.coef != 0 and other.coef % self.coef == 0

    def __truediv__(self, other: Monomial) -> Monomial:
        rest = list(self.sizes)
        for s in other.sizes:
            rest.remove(s)
        return Monomial(self.coef // other.coef, tuple(rest))

    def __str__(self) -> str:
        names = [{"0": "N0", "1": "N1"}.get(s, s) for s in self.sizes]
        return "*".join(([str(self.coef)] if self.coef != 1 or not names else []) + names)


def monomials(value, dynamic: tuple) -> list[Monomial | None]:
    """The entries of a 1-D integer Const or Sampled as sizes; None where an entry is no product of sizes."""
    if isinstance(value, Const):
        return [Monomial(int(v)) for v in value.value.reshape(-1).tolist()]
    rows = [s.reshape(-1).astype(np.int64).tolist() for s in value.samples]
    if len({len(r) for r in rows}) != 1:
        return [None]
    found = []
    for entry in zip(*rows):
        match = None
        for n in range(len(dynamic) + 1):
            for sizes in itertools.combinations(dynamic, n):
                prods = [int(np.prod([p[s] for s in sizes])) for p in SAMPLE_POINTS[:len(entry)]]
                if all(v % p == 0 for v, p in zip(entry, prods)) and len({v // p for v, p in zip(entry, prods)}) == 1:
                    match = Monomial(entry[0] // prods[0], sizes)
                    break
            if match:
                break
        found.append(match)
    return found


@dataclass
class Extra:
    """A graph input other than the sequence: only a recurrent node's sequence_lens may read it."""

    name: str
    elem: int
    dims: list
    used_as: set = field(default_factory=set)


@dataclass(eq=False)
class Failed:
    """A value that cannot be mapped and why. A node that only passes it on joins the failures it carries (also);
    they are reported when a recurrent node or the graph's output needs them."""

    op: str
    name: str
    message: str
    reported: bool = False
    also: tuple = ()
    of_shape: bool = False  # the shape of a failed value: what reads it is shape arithmetic

    def roots(self) -> list[Failed]:
        own = [self] if self.op else []
        return own + [r for f in self.also for r in f.roots()]


def joined(failures: list[Failed]) -> Failed:
    return failures[0] if len(failures) == 1 else Failed("", "", "", also=tuple(failures))


@dataclass
class Tensor:
    """A value derived from the input sequence.

    axes: labels of its axes: raw graph-input axes "0", "1" before the first recurrent node; then "T" time,
    "B" batch, "D" directions, "t" a one-step time axis, "F" features (always last), "L" the layers of a stack
    of final states split from its directions (torch's h_n.view(num_layers, num_directions, B, H)).
    stage: "input" (normalised / embedded input), "y" (a layer's Y), "final" (a layer's Y_h), "head".
    dirs: the directions along D (stage y / final, while D is an axis); pieces: the directions along F.
    A stack of several layers' final states (Concat of Y_h along D, as torch's h_n) has layer None and
    dirs of (layer, direction) pairs; selecting one layer's entries makes it that layer's again.
    step: a time step read from Y ("last" / "first"), which removed the time axis.
    terms, scale: a sum of `terms` equal-width feature blocks (pieces holds them one after the other), times
    scale: Keras' Bidirectional merge_mode "sum" / "ave" adds the directions. Read by a dense layer W (or the
    next recurrent layer), the sum is the blocks' concatenation read by [W, W, ...] x scale (spread_weight).
    """

    axes: tuple
    stage: str
    layer: int | None = -1
    dirs: tuple = ()
    pieces: tuple = ()
    step: str | None = None
    source: Tensor | None = None  # stage head: the features it reads
    weight: np.ndarray | None = None  # stage head: (out, width of source)
    bias: np.ndarray | None = None
    activation: str = "none"
    hidden: int = 0
    unrolled: object = None  # export.onnx_in.unrolled's bookkeeping of an unrolled RNN step
    stack: tuple = ()  # stage head: the hidden dense layers before this one, (weight, bias, function) each
    fn: tuple = ()  # stage head: elementwise nodes applied to its output, (node, constant inputs) each
    fn_base: str = ""  # the graph value those nodes read
    terms: int = 1
    scale: float = 1.0

    def width(self) -> int:
        """The size of the feature axis."""
        if self.stage == "head":
            return int(self.weight.shape[0])
        if self.stage in ("xstep", "pre", "rec", "h"):  # inside an unrolled RNN step (export.onnx_in.unrolled)
            return self.hidden
        return self.hidden * (1 if "D" in self.axes else len(self.pieces) // self.terms)


def spread_weight(weight: np.ndarray, x: Tensor) -> np.ndarray:
    """A weight (rows, x's width) reading x -> the same weight reading x's pieces concatenated: one copy per summed
    block (Tensor.terms), times x's scale."""
    return (np.tile(weight, (1, x.terms)) * np.float32(x.scale)).astype(np.float32)


class Refuse(Exception):
    pass


class Pinned(Exception):
    """A node fixes a dynamic input axis at one size (an exporter specialised it)."""

    def __init__(self, axis: str, size: int, node):
        super().__init__(f"input axis {axis} is fixed at {size}")
        self.axis, self.size, self.node, self.op = axis, size, node.name or "(unnamed)", node.op_type


def fold(node, args, opset: int) -> list:
    """A node of constants and values computed from sizes: evaluated (at every sample point) under the graph's
    opset."""
    present = [a for a in args if a is not None]
    if all(isinstance(a, Const) for a in present):
        return [Const(o) for o in evaluate(node, [None if a is None else a.value for a in args], opset)]
    if not all(isinstance(a, (Const, Sampled)) for a in present):
        raise Refuse(f"operator {node.op_type} mixes the sequence with values computed from its sizes")
    runs = [evaluate(node, [None if a is None else a.samples[k] if isinstance(a, Sampled) else a.value
                            for a in args], opset) for k in range(len(SAMPLE_POINTS))]
    return [settle([run[i] for run in runs]) for i in range(len(node.output))]


def select_dirs(x: Tensor, chosen: tuple) -> dict:
    """The fields of x that change when its direction axis keeps only `chosen` (entries of x.dirs): a stack of
    several layers' final states narrowed to one layer becomes that layer's."""
    if x.layer is None and len({layer for layer, _ in chosen}) == 1:
        return {"layer": chosen[0][0], "dirs": tuple(d for _, d in chosen)}
    return {"dirs": tuple(chosen)}


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


def evaluate(node, arrays, opset: int) -> list[np.ndarray]:
    """Run one node on arrays with onnx's reference evaluator (None: an omitted optional input), as the graph's
    opset defines it: operators change between opsets (Unsqueeze's axes are an attribute up to opset 12, an input
    from 13), and a bare node would run as the newest."""
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if a is not None else "" for i, a in enumerate(arrays)]
    outputs = [f"out{i}" for i in range(len(node.output))]
    folded = helper.make_node(node.op_type, names, outputs,
                              **{a.name: helper.get_attribute_value(a) for a in node.attribute})
    graph = helper.make_graph([folded], "fold", [helper.make_empty_tensor_value_info(n) for n in names if n],
                              [helper.make_empty_tensor_value_info(n) for n in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    feeds = {n: a for n, a in zip(names, arrays) if a is not None}
    try:
        return [np.asarray(o) for o in ReferenceEvaluator(model).run(None, feeds)]
    except Exception as e:  # noqa: BLE001 - the evaluator raises many types
        raise Refuse(f"cannot fold this node of constants ({type(e).__name__}: {e})") from None
