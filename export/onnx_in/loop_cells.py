"""A Loop body read as one cell step (export.onnx_in.loops): the body's dataflow evaluated symbolically as affine
forms over x_t, h and the cell's nonlinear pieces, then matched against the standard ONNX RNN and GRU steps.

Every value that depends on x_t or h is an affine form  sum_k atom_k @ M_k + b  (rows (batch, n)); an atom is x_t,
h, an activation of an affine form, or the elementwise product of two. So MatMul by a constant, Add / Sub of a
constant or of another form, scaling by a constant, and Split / Slice of the columns only move numbers between
matrices, whatever order the exporter wrote them in; what is left is compared with the cell equations:

    RNN:                         h' = f(x W + h R + b)
    GRU (linear_before_reset=0): h' = z * h + (1 - z) * g(x Wh + (r * h) Rh + bh),  z, r = f(x Wz|r + h Rz|r + b)
    GRU (linear_before_reset=1): h' = z * h + (1 - z) * g(x Wh + bh + r * (h Rh + rbh))

f and g are Sigmoid, Tanh, Relu, or a clip to a range (Min / Max / Clip: Keras' hard_sigmoid), which is read as
HardSigmoid(alpha=1, beta=0) with its slope and offset moved into the weights. Constant inputs are folded with
ONNX's reference implementation at the graph's opset. Anything else raises NotACell naming the body node.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

_ACTIVATIONS = ("Sigmoid", "Tanh", "Relu")  # body ops that are ONNX activation functions of the same name
_FUNCTIONS = (*_ACTIVATIONS, "HardSigmoid")  # what a gate may apply (HardSigmoid: alpha 1, beta 0; from a clip)


# how far a product of float32 constants may be from 1 (Keras 3's hard_sigmoid: a clip to [0, 6] times 1/6 in
# float32) and still be read as exactly 1; the proof against ONNX Runtime measures what that leaves
UNIT_TOLERANCE = 1e-6


def same(m: np.ndarray, want: np.ndarray) -> bool:
    return m.shape == want.shape and bool(np.all(np.abs(m - want) <= UNIT_TOLERANCE))


class NotACell(Exception):
    """The body is not one standard cell step; the message names the node and what differs."""


@dataclass(eq=False)
class Atom:
    kind: str  # "x", "h", an activation (Sigmoid, Tanh, Relu) or "mul"
    width: int
    args: tuple = ()  # the affine forms it applies to


@dataclass(eq=False)
class Affine:
    bias: np.ndarray  # (n,)
    terms: dict = field(default_factory=dict)  # id(atom) -> (atom, matrix (atom.width, n))

    @property
    def width(self) -> int:
        return self.bias.shape[0]

    @staticmethod
    def of(atom: Atom) -> Affine:
        return Affine(np.zeros(atom.width), {id(atom): (atom, np.eye(atom.width))})

    def map(self, fn) -> Affine:
        return Affine(fn(self.bias), {k: (a, fn(m)) for k, (a, m) in self.terms.items()})

    def plus(self, other: Affine, sign: float = 1.0) -> Affine:
        terms = dict(self.terms)
        for k, (atom, m) in other.terms.items():
            terms[k] = (atom, terms[k][1] + sign * m if k in terms else sign * m)
        return Affine(self.bias + sign * other.bias, terms)

    def single(self) -> Atom | None:
        """The atom this form is, unchanged (identity matrix, no bias), or None."""
        if len(self.terms) != 1 or self.bias.any():
            return None
        (atom, m), = self.terms.values()
        return atom if same(m, np.eye(atom.width)) else None

    def linear(self, *atoms: Atom) -> list[np.ndarray] | None:
        """[M for each atom (zeros if absent)] if this form reads only those atoms, else None."""
        if any(k not in {id(a) for a in atoms} for k in self.terms):
            return None
        return [self.terms[id(a)][1] if id(a) in self.terms else np.zeros((a.width, self.width)) for a in atoms]


@dataclass
class Cell:
    """One recognised step as ONNX's operator reads it (one direction, ONNX gate order)."""

    op: str  # "RNN" or "GRU"
    W: np.ndarray  # (gates*H, F)
    R: np.ndarray  # (gates*H, H)
    B: np.ndarray  # (2*gates*H,)
    activations: list[str]
    attributes: dict


class BodyEvaluator:
    """Symbolic evaluation of the nodes that compute a Loop body's new state."""

    def __init__(self, consts: dict[str, np.ndarray], x: Atom, h: Atom, h_name: str, x_source, opset: int):
        self.values: dict[str, object] = dict(consts)
        self.opset = opset
        self.values[h_name] = Affine.of(h)
        self.x, self.h = x, h
        self.x_source = x_source  # node -> True when the node reads x_t (Gather of the sequence at the step)

    def value(self, name: str):
        if name not in self.values:
            raise KeyError(name)
        return self.values[name]

    def run(self, nodes) -> None:
        for node in nodes:
            if self.x_source(node):
                self.values[node.output[0]] = Affine.of(self.x)
                continue
            try:
                args = [self.value(n) if n else None for n in node.input]
            except KeyError as e:
                raise NotACell(f"body node {node.name!r} ({node.op_type}) reads {e.args[0]!r}, which is not x_t, h or "
                               f"a constant") from None
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            try:
                results = self.evaluate(node, attrs, args)
            except NotACell as e:
                raise NotACell(f"body node {node.name!r} ({node.op_type}): {e}") from None
            except (ValueError, IndexError, TypeError) as e:  # shapes that do not fit one another
                raise NotACell(f"body node {node.name!r} ({node.op_type}): its inputs do not fit a cell step "
                               f"({type(e).__name__}: {e})") from None
            for name, value in zip(node.output, results):
                self.values[name] = value

    def evaluate(self, node, attrs, args) -> list:
        op = node.op_type
        if all(a is None or isinstance(a, np.ndarray) for a in args):
            return fold(node, args, self.opset)
        if op == "Identity":
            return [args[0]]
        if op in _ACTIVATIONS:
            return [Affine.of(Atom(op, args[0].width, (args[0],)))]
        if op in ("Min", "Max", "Clip"):
            return [self.bounded(op, args, attrs)]
        if op == "MatMul":
            a, w = args
            if not isinstance(a, Affine) or not isinstance(w, np.ndarray) or w.ndim != 2 or w.shape[0] != a.width:
                raise NotACell("a MatMul of the step's values must multiply them by a constant (in, out) matrix")
            return [a.map(lambda m: m @ w)]
        if op in ("Add", "Sub"):
            sign = 1.0 if op == "Add" else -1.0
            a, b = (self.affine(v, other) for v, other in ((args[0], args[1]), (args[1], args[0])))
            if a.width != b.width:
                raise NotACell(f"adds values of {a.width} and {b.width} columns")
            return [a.plus(b, sign)]
        if op == "Mul":
            a, b = args
            if isinstance(b, np.ndarray):
                a, b = b, a
            if isinstance(a, np.ndarray):
                scale = self.columns(a, b)
                return [b.map(lambda m: m * scale)]
            if a.width != b.width:
                raise NotACell(f"multiplies values of {a.width} and {b.width} columns")
            return [Affine.of(Atom("mul", a.width, (a, b)))]
        if op in ("Split", "Slice"):
            return self.columns_of(node, attrs, args)
        raise NotACell("not part of a standard cell step")

    def bounded(self, op: str, args, attrs) -> Affine:
        """Min / Max by a constant and Clip: x clipped to [lo, hi] is lo + (hi - lo) * HardSigmoid(alpha=1, beta=0)
        of (x - lo) / (hi - lo), which puts Keras' hard_sigmoid (clip(0.2 x + 0.5, 0, 1), or relu6(x + 3) / 6) and
        any scaling around it into the weights."""
        if op == "Clip":
            form = args[0]
            bounds = [a if a is not None else attrs.get(k) for a, k in zip((args + [None, None])[1:3], ("min", "max"))]
            lo, hi = (float(np.asarray(b).reshape(-1)[0]) if b is not None else None for b in bounds)
        else:
            form, bound = (args[0], args[1]) if isinstance(args[1], np.ndarray) else (args[1], args[0])
            if not isinstance(form, Affine) or not isinstance(bound, np.ndarray) or bound.size != 1:
                raise NotACell(f"{op} of two step values, or by a constant that is not one number")
            lo, hi = (None, float(bound.reshape(-1)[0])) if op == "Min" else (float(bound.reshape(-1)[0]), None)
            inner = form.single()
            if inner is not None and op == "Min" and inner.kind == "Relu":
                form, lo = inner.args[0], 0.0
            elif inner is not None and op == "Max" and inner.kind == "Min":
                form, hi = inner.args[0], inner.args[1]
        if lo is not None and hi is not None:
            if not lo < hi:
                raise NotACell(f"clips to the empty range [{lo}, {hi}]")
            inside = form.map(lambda m: m / (hi - lo))
            inside.bias = inside.bias - lo / (hi - lo)
            atom = Atom("HardSigmoid", form.width, (inside,))
            return Affine(np.full(form.width, lo), {id(atom): (atom, (hi - lo) * np.eye(form.width))})
        if lo == 0 and hi is None:
            return Affine.of(Atom("Relu", form.width, (form,)))
        if op == "Min":
            return Affine.of(Atom("Min", form.width, (form, hi)))
        raise NotACell("not part of a standard cell step (a bound that is not an activation)")

    def affine(self, value, other) -> Affine:
        if isinstance(value, Affine):
            return value
        return Affine(np.broadcast_to(self.columns(value, other), (other.width,)).astype(np.float64).copy())

    @staticmethod
    def columns(const: np.ndarray, form: Affine) -> np.ndarray:
        """A constant that broadcasts along the batch: one number per column (or one for all)."""
        squeezed = const.reshape(-1) if const.ndim <= 2 and (const.ndim < 2 or const.shape[0] == 1) else None
        if squeezed is None or squeezed.size not in (1, form.width):
            raise NotACell(f"a constant of shape {list(const.shape)} does not apply column by column to "
                           f"{form.width} columns")
        return squeezed.astype(np.float64)

    def columns_of(self, node, attrs, args) -> list:
        """Split / Slice of an affine form's columns (the last axis of the (batch, n) rows)."""
        form = args[0]
        if not isinstance(form, Affine):
            raise NotACell("only a step value's columns may be split")
        if node.op_type == "Split":
            if attrs.get("axis", 0) not in (-1, 1):
                raise NotACell("splits a step value along the batch axis")
            sizes = args[1] if len(args) > 1 and args[1] is not None else attrs.get("split")
            if sizes is None:
                n = len(node.output)
                if form.width % n:
                    raise NotACell(f"splits {form.width} columns into {n} equal parts")
                sizes = [form.width // n] * n
            sizes = [int(s) for s in np.asarray(sizes).reshape(-1)]
            if sum(sizes) != form.width:
                raise NotACell(f"split sizes {sizes} do not add up to {form.width} columns")
            edges = np.cumsum([0] + sizes)
            return [form.map(lambda m, s=s, e=e: m[..., s:e]) for s, e in itertools.pairwise(edges)]
        if any(not isinstance(a, np.ndarray) for a in args[1:] if a is not None):
            raise NotACell("slices by run-time indices")
        starts, ends = (a.reshape(-1).tolist() for a in args[1:3])
        axes = args[3].reshape(-1).tolist() if len(args) > 3 and args[3] is not None else list(range(len(starts)))
        steps = args[4].reshape(-1).tolist() if len(args) > 4 and args[4] is not None else [1] * len(starts)
        column = slice(0, form.width)
        for start, end, axis, step in zip(starts, ends, axes, steps):
            whole = start == 0 and end >= np.iinfo(np.int32).max and step == 1
            if axis in (0, -2) and whole:
                continue
            if axis not in (1, -1) or step != 1:
                raise NotACell("slices a step value other than by a range of its columns")
            column = slice(*slice(start, end).indices(form.width)[:2])
        return [form.map(lambda m: m[..., column])]


def fold(node, args, opset: int) -> list:
    """Constant folding of a body node whose inputs are all constants, by ONNX's reference implementation."""
    from onnx.reference import ReferenceEvaluator

    inputs = [f"in{i}" if name else "" for i, name in enumerate(node.input)]
    outputs = [f"out{i}" for i in range(len(node.output))]
    copy = helper.make_node(node.op_type, inputs, outputs, domain=node.domain)
    copy.attribute.extend(node.attribute)
    graph = helper.make_graph([copy], "fold", [onnx.ValueInfoProto(name=n) for n in inputs if n],
                              [onnx.ValueInfoProto(name=n) for n in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    feeds = {name: value for name, value in zip(inputs, args) if name}
    try:
        return list(ReferenceEvaluator(model).run(None, feeds))
    except Exception as e:  # noqa: BLE001
        raise NotACell(f"cannot be evaluated on its constant inputs: {type(e).__name__}: {e}") from None


def body_constants(graph) -> dict[str, np.ndarray]:
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if "value" in attrs:
                consts[node.output[0]] = numpy_helper.to_array(attrs["value"])
    return consts


def match_cell(new_h: Affine, x: Atom, h: Atom) -> Cell:
    """The standard cell step new_h is, with its weights in ONNX's layout; NotACell says what differs."""
    atom = new_h.single()
    if atom is not None and atom.kind in _FUNCTIONS:
        W, R = _linear(atom.args[0], (x, h), f"the {atom.kind} of an RNN step")
        b = atom.args[0].bias
        return Cell("RNN", W.T, R.T, np.concatenate([b, np.zeros_like(b)]), [atom.kind], {})
    if len(new_h.terms) == 1 and next(iter(new_h.terms.values()))[0].kind == "HardSigmoid":
        raise NotACell("the new state is clipped to a range other than [0, 1] (e.g. relu6), which no ONNX RNN "
                       "activation function computes")
    return _match_gru(new_h, x, h)


def _linear(form: Affine, atoms, what: str):
    found = form.linear(*atoms)
    if found is None:
        names = ", ".join(a.kind for a in atoms)
        raise NotACell(f"{what} must read only {names} through constant matrices")
    return found


def _match_gru(new_h: Affine, x: Atom, h: Atom) -> Cell:
    blend = "the new state is neither f(x W + h R + b) (an RNN step) nor z * h + (1 - z) * n (a GRU step)"
    products = [a for a, m in new_h.terms.values()]
    if new_h.bias.any() or len(products) != 2 or any(
            a.kind != "mul" or not same(m, np.eye(a.width)) for a, m in new_h.terms.values()):
        raise NotACell(blend)
    z = keep = candidate = None
    for first, second in (products, products[::-1]):
        for a, b in (first.args, first.args[::-1]):
            gate, state = a.single(), b.single()
            if gate is not None and state is h and gate.kind in _FUNCTIONS:
                z = gate
                keep = second
    if z is None:
        raise NotACell(blend + ": no z * h term")
    for a, b in (keep.args, keep.args[::-1]):
        one_minus = a.linear(z)
        if one_minus is not None and same(a.bias, np.ones(z.width)) and same(one_minus[0], -np.eye(z.width)) and (
                b.single() is not None and b.single().kind in _FUNCTIONS):
            candidate = b.single()
    if candidate is None:
        raise NotACell(blend + ": no (1 - z) * n term")
    Wz, Rz = _linear(z.args[0], (x, h), "the update gate z")
    inner = candidate.args[0]
    gated = [a for a, _ in inner.terms.values() if a.kind == "mul"]
    if len(gated) != 1:
        raise NotACell("the candidate n must read h through the reset gate r exactly once")
    reset_product = gated[0]
    Wn, Mn = _linear(inner, (x, reset_product), "the candidate n")
    r = read = None
    for a, b in (reset_product.args, reset_product.args[::-1]):
        if a.single() is not None and a.single().kind == z.kind:
            r, read = a.single(), b
    if r is None:
        raise NotACell(f"the candidate n must read h through a reset gate {z.kind}(...)")
    Wr, Rr = _linear(r.args[0], (x, h), "the reset gate r")
    H = h.width
    if read.single() is h:  # r * h, then the recurrent matrix: ONNX's default GRU
        linear_before_reset, Rn, recurrent_bias = 0, Mn, np.zeros(H)
    else:  # r * (h Rh + rbh): the recurrent product first
        (Rn,) = _linear(read, (h,), "what the reset gate multiplies")
        if not same(Mn, np.eye(H)):
            raise NotACell("the reset gate's product must enter the candidate unchanged")
        linear_before_reset, recurrent_bias = 1, read.bias
    W = np.concatenate([Wz.T, Wr.T, Wn.T])
    R = np.concatenate([Rz.T, Rr.T, Rn.T])
    B = np.concatenate([z.args[0].bias, r.args[0].bias, inner.bias, np.zeros(2 * H), recurrent_bias])
    return Cell("GRU", W, R, B, [z.kind, candidate.kind], {"linear_before_reset": linear_before_reset})
