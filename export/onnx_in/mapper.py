"""The ONNX mapper: walks a graph's nodes in order over abstract values (export.onnx_in.values) and builds the spec
and canonical tensors of what it found (glue, recurrent and head handlers in their own modules)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rnnedge.export.from_module import MappingError
from rnnedge.export.onnx_in.glue import GlueOps
from rnnedge.export.onnx_in.heads import ELEMENTWISE, HeadOps, read_step_of
from rnnedge.export.onnx_in.loops import loop_refusal, rewrite_loops
from rnnedge.export.onnx_in.recurrent import RecurrentOps
from rnnedge.export.onnx_in.unrolled import UnrolledOps
from rnnedge.export.onnx_in.values import (
    SAMPLE_POINTS,
    Const,
    Extra,
    Failed,
    Monomial,
    Pinned,
    Refuse,
    Sampled,
    Tensor,
    constant_value,
    fold,
    joined,
    settle,
    spread_weight,
)
from rnnedge.runtime import spec as specs

PROOF_TOLERANCE = 1e-5


@dataclass
class OnnxMapping:
    """What map_onnx found; unpacks as (spec, tensors, notes)."""

    spec: dict
    tensors: dict[str, np.ndarray]
    notes: list[str]
    input_name: str = "x"
    input_time_major: bool = False  # the graph takes (T, B[, F])
    output_time_major: bool = False  # an every_step graph returns (T, B, out)
    max_abs_diff: float | None = None  # the proof's measured difference
    proof_reference: str = "ONNX Runtime"  # what ran the original graph in the proof
    input_dims: list = field(default_factory=list)  # the graph input's dims (int or None for dynamic)
    lengths_name: str | None = None  # the graph input that holds the sequence lengths (model.run(X, lengths))
    read_step: str | None = None  # None: the graph's output is the model's; "last"/"first": its run(X)[:, -1]/[:, 0]
    warnings: list[str] = field(default_factory=list)  # pitfalls of the graph reproduced exactly (heads.read_step_of)

    def __iter__(self):
        return iter((self.spec, self.tensors, self.notes))

    def user_output(self, y: np.ndarray) -> np.ndarray:
        """The runtime's (B, T, out) or (B, out) output -> what the original graph returns."""
        if self.read_step is not None:
            return y[:, -1 if self.read_step == "last" else 0]
        return np.swapaxes(y, 0, 1) if self.output_time_major else y

    def describe(self) -> dict:
        return {"source": "onnx", "spec_head_on": self.spec["head"]["on"], "read_step": self.read_step,
                "input_time_major": self.input_time_major,
                "output_time_major": self.output_time_major, "proof_max_abs_diff": self.max_abs_diff,
                "proof_tolerance": PROOF_TOLERANCE, "proof_reference": self.proof_reference,
                "lengths_input": self.lengths_name, "warnings": list(self.warnings),
                "notes": list(self.notes)}


# what may pass on a failure it reads (an op outside these is named as unsupported itself)
_SUPPORTED_OPS = {"Identity", "Cast", "Dropout", "Shape", "Size", "ConstantOfShape", "Gather", "Slice", "Sub", "Div",
                  "Transpose", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "Concat", "MatMul", "Gemm", "Add", "Mul",
                  "Softmax", "LogSoftmax", "Sigmoid", "Tanh", "Relu", "Expand", "Range", "Tile", "Constant", "RNN",
                  "LSTM", "GRU", "Equal", "Where", "Max", "Min"}


class Mapper(GlueOps, RecurrentOps, HeadOps, UnrolledOps):
    def __init__(self, model: onnx.ModelProto, pinned: dict | None = None):
        self.pinned = dict(pinned or {})  # input axis -> the size the graph fixes it at (Pinned)
        rewritten, loop_notes = rewrite_loops(model)  # Loops whose body is one cell step -> ONNX RNN / GRU nodes
        self.model = model
        self.graph = rewritten.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.env: dict[str, object] = {}
        self.errors: list[Failed] = []
        self.notes: list[str] = loop_notes
        self.warnings: list[str] = []
        self.input: dict = {}
        self.embedding: np.ndarray | None = None
        self.layers: list[dict] = []
        self.layer_tensors: list[dict] = []
        self.layer_lengths: list[str | None] = []  # per layer: the graph input its sequence_lens reads, or None
        self.extras: list[Extra] = []
        self.unrolled: list[dict] = []  # unrolled RNN layers (export.onnx_in.unrolled): their source and chains
        self.raw_time: str | None = None
        self.input_name = ""
        self.input_dims: list = []

    # -- bookkeeping ----------------------------------------------------------------------------------------------
    def fail(self, node, message: str) -> Failed:
        err = Failed(node.op_type, node.name or "(unnamed)", message, reported=True)
        self.errors.append(err)
        return err

    def report(self, value: Failed):
        for root in value.roots():
            if not root.reported:
                root.reported = True
                self.errors.append(root)

    def read(self, name: str):
        if name == "":
            return None
        if name not in self.env:
            raise KeyError(name)
        return self.env[name]

    def const(self, node, value, what: str) -> np.ndarray:
        if isinstance(value, Const):
            return value.value
        raise Refuse(f"{what} must be a constant (an initializer or a Constant node)")

    # -- the walk -------------------------------------------------------------------------------------------------
    def run(self):
        """Map the graph; a graph that fixes a dynamic input axis at one size (Pinned) is mapped again with it."""
        try:
            return self._walk()
        except Pinned as pin:
            if pin.axis in self.pinned:
                raise MappingError(f"the graph fixes input axis {pin.axis} at {pin.size} and at "
                                   f"{self.pinned[pin.axis]}") from None
            mapping = Mapper(self.model, {**self.pinned, pin.axis: pin.size}).run()
            mapping.notes.append(f"node {pin.node!r} ({pin.op}) fixes the input's axis {pin.axis} at {pin.size} "
                                 f"though the graph declares it dynamic (the exporter specialised it): ONNX Runtime "
                                 f"runs the graph at that size only, and the proof uses it; the converted model runs "
                                 f"any size")
            return mapping

    def _walk(self):
        initializers = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        for name, arr in initializers.items():
            self.env[name] = Const(arr)
        inputs = [i for i in self.graph.input if i.name not in initializers]
        if not inputs:
            raise MappingError("the graph has no input; rnnedge models take one input sequence")
        inp = inputs[0]  # the sequence; any other input may only be a recurrent node's sequence_lens
        for extra in inputs[1:]:
            t = extra.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
            self.extras.append(Extra(extra.name, t.elem_type, dims))
            self.env[extra.name] = self.extras[-1]
        self.input_name = inp.name
        ttype = inp.type.tensor_type
        self.input_dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
        for axis, size in self.pinned.items():
            self.input_dims[int(axis)] = size
        elem = ttype.elem_type
        if elem in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            if len(self.input_dims) != 2:
                raise MappingError(f"input {inp.name!r}: token ids must be 2-D (batch and time), got rank "
                                   f"{len(self.input_dims)}")
            self.env[inp.name] = Tensor(("0", "1"), "ids")
        elif elem == onnx.TensorProto.FLOAT:
            if len(self.input_dims) != 3 or self.input_dims[2] is None:
                raise MappingError(f"input {inp.name!r}: a dense sequence must be 3-D with a fixed feature size "
                                   f"(batch, time, features), got dims {self.input_dims}")
            self.input = {"kind": "dense", "features": int(self.input_dims[2])}
            self.env[inp.name] = Tensor(("0", "1", "F"), "input")
        else:
            raise MappingError(f"input {inp.name!r} has element type "
                               f"{onnx.TensorProto.DataType.Name(elem)}; rnnedge takes float32 or int64 ids")

        for node in self.graph.node:
            if node.domain not in ("", "ai.onnx"):
                outs = self.fail(node, f"operator domain {node.domain!r} is not supported")
                for o in node.output:
                    self.env[o] = outs
                continue
            try:
                args = [self.read(n) for n in node.input]
            except KeyError as e:
                raise MappingError(f"node {node.name!r} ({node.op_type}) reads {e.args[0]!r}, which nothing makes "
                                   f"(subgraphs are not supported)") from None
            try:
                results = self.evaluate(node, args)
            except Refuse as e:
                results = [self.fail(node, str(e))] * len(node.output)
            for name, value in zip(node.output, results):
                self.env[name] = value

        if len(self.graph.output) != 1:
            raise_all = [f"the graph has {len(self.graph.output)} outputs; rnnedge models return one tensor"]
            self._raise(raise_all)
        value = self.env.get(self.graph.output[0].name)
        if isinstance(value, Failed):
            self.report(value)
        unused = [f"graph input {e.name!r} is not used as a recurrent node's sequence_lens; rnnedge models take one "
                  f"input sequence (and its lengths)" for e in self.extras if not e.used_as]
        self._raise(unused + self._lengths_problems())
        return self.build(value)

    def _lengths_problems(self) -> list[str]:
        """Sequence lengths from a graph input must reach every recurrent layer (rnnedge's run(X, lengths) applies
        them to every layer); a layer without them would run over ONNX's zero padding."""
        names = set(self.layer_lengths)
        if len(names) <= 1:
            return []
        which = ", ".join(f"layer {l}: {name!r}" if name else f"layer {l}: none"
                          for l, name in enumerate(self.layer_lengths))
        return [(f"the recurrent layers read different sequence_lens ({which}); rnnedge applies one lengths input "
                 "to every layer")]

    def _raise(self, extra: list[str]):
        lines = [f"node {e.name!r} ({e.op}): {e.message}" for e in self.errors] + extra
        cells = {"Tanh", "Relu"} & {n.op_type for n in self.graph.node}
        recurrent = any(n.op_type in ("RNN", "LSTM", "GRU", "Loop", "Scan") for n in self.graph.node)
        if lines and cells and not self.layers and not recurrent:
            raise MappingError(
                f"the graph has no RNN / LSTM / GRU node, but {'/'.join(sorted(cells))} nodes on the sequence: a "
                f"recurrence unrolled over time steps (torch.onnx.export's dynamo exporter writes nn.RNN this way: "
                f"MatMul / Add / Tanh|Relu per step). rnnedge follows such steps as one plain RNN cell, but not "
                f"these: export with torch.onnx.export(..., dynamo=False), which writes an RNN node. First "
                f"refused: {lines[0]}")
        if lines:
            raise MappingError(f"rnnedge cannot map {len(lines)} node(s) of this ONNX graph:\n  " + "\n  ".join(lines))

    # -- one node -------------------------------------------------------------------------------------------------
    def evaluate(self, node, args) -> list:
        op = node.op_type
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if op in ("RNN", "LSTM", "GRU"):
            return self.recurrent(node, attrs, args)  # checks its attributes even when its input is an error
        if op == "Constant":
            return [Const(constant_value(node, attrs))]
        extras = [a for a in args if isinstance(a, Extra)]
        for e in extras:
            if op in ("Identity", "Cast") and len(args) == 1:
                to = attrs.get("to", e.elem)
                return [Extra(e.name, to, e.dims, e.used_as)]
            e.used_as.add(f"{op} {node.name or '(unnamed)'!r}")
            raise Refuse(f"reads the graph input {e.name!r}, which rnnedge can only pass to a recurrent node's "
                          f"sequence_lens")
        if op in ("Loop", "Scan"):
            raise Refuse(loop_refusal(node))
        errors = [a for a in args if isinstance(a, Failed)]
        if errors:
            if op in ("Shape", "Size") or all(e.of_shape for e in errors):  # shape arithmetic: any op folds
                return [Failed("", "", "", also=tuple(errors), of_shape=True)] * len(node.output)
            if op not in _SUPPORTED_OPS:
                return [self.fail(node, self._unsupported(op))] * len(node.output)
            return [joined(errors)] * len(node.output)
        tensors = [a for a in args if isinstance(a, Tensor)]
        if not tensors:
            return fold(node, args, self.opset)
        if op in ("Shape", "Size"):
            return [self.shape_of(attrs, args[0], op)]
        if op in ("Identity", "Cast", "Dropout"):
            mask = Failed(op, node.name or "(unnamed)", "its output mask is used; rnnedge runs inference only")
            return [args[0]] + [mask] * (len(node.output) - 1)
        bias = op == "Add" and len(tensors) == 1 and not tensors[0].fn  # the head's bias: op_Add
        if op in ELEMENTWISE and any(t.stage == "head" for t in tensors) and not bias:
            return [self.elementwise(node, args)]
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise Refuse(self._unsupported(op))
        return [handler(node, attrs, args)]

    @staticmethod
    def _unsupported(op: str) -> str:
        return f"operator {op} is not supported"

    def shape_of(self, attrs, x: Tensor, op: str) -> Const | Sampled:
        """Shape / Size of the sequence, at every sample point of the input's run-time sizes."""
        samples = []
        for point in SAMPLE_POINTS:
            dims = np.array(self.sizes(x, point), np.int64)
            if op == "Size":
                samples.append(np.array(np.prod(dims), np.int64))
                continue
            start, end = attrs.get("start", 0), attrs.get("end", len(dims))
            samples.append(dims[start:end])
        return settle(samples)

    def raw_axes(self, label: str) -> list[str]:
        """The graph input's axes ("0", "1") an axis label spans: time, batch, or both merged ("B*T")."""
        batch = {"0": "1", "1": "0"}.get(self.raw_time)
        return [a if a in ("0", "1") else self.raw_time if a == "T" else batch for a in label.split("*")]

    def sizes(self, x: Tensor, point: dict) -> list[int]:
        """x's dims at a sample point of the input's dynamic axes."""
        return [int(self.label_size(x, label).coef * np.prod([point[s] for s in self.label_size(x, label).sizes]))
                for label in x.axes]

    def monomials_of(self, x: Tensor) -> list[Monomial]:
        """x's dims as sizes (a dynamic input axis is a size, a fixed one a number)."""
        return [self.label_size(x, label) for label in x.axes]

    def label_size(self, x: Tensor, label: str) -> Monomial:
        if label in ("D", "L"):  # with an "L" axis, dirs holds every layer's (layer, direction) entries
            layers = len({l for l, _ in x.dirs}) if "L" in x.axes else 1
            return Monomial(layers if label == "L" else len(x.dirs) // layers)
        if label == "t":
            return Monomial(1)
        if label == "F":
            return Monomial(specs.input_size({"input": self.input}) if x.stage == "input" else x.width())
        size = Monomial(1)
        for axis in self.raw_axes(label):
            fixed = self.input_dims[int(axis)]
            size = size * (Monomial(fixed) if fixed else Monomial(1, (axis,)))
        return size

    def dynamic_axes(self) -> tuple:
        return tuple(str(i) for i, d in enumerate(self.input_dims[:2]) if d is None)

    # -- the result -----------------------------------------------------------------------------------------------
    def _head_on(self, feats: Tensor, layer: dict) -> tuple[str, list[int], str | None]:
        """(the spec head's "on", the directions the head reads in order, OnnxMapping.read_step). Each direction's
        final state is a last_step head; one time step of Y that is not every direction's final state (a
        bidirectional Y[-1]: the backward half after one step) is an every_step head whose output at that step is
        the graph's (read_step, heads.read_step_of)."""
        dirs, lengths = specs.directions(layer), self.layer_lengths[-1]
        if feats.stage == "y" and feats.step is None:
            if feats.pieces != tuple(range(dirs)):
                raise MappingError("an every-step output must read all directions of the last layer, in order")
            return "every_step", list(range(dirs)), None
        pieces = feats.pieces if feats.step != "mixed" else [p for p, _ in feats.pieces]
        steps = [feats.step] * len(pieces) if feats.step != "mixed" else [s for _, s in feats.pieces]
        if feats.stage == "y" and lengths and "last" in steps:
            raise MappingError(
                f"the output reads Y's last time step while sequence_lens is the graph input {lengths!r}: ONNX pads "
                f"Y with zeros past each sequence's length, so that step is zero for shorter sequences; read the "
                f"final state Y_h instead")
        final = ((0, "first"),) if layer.get("reverse") else ((0, "last"), (1, "first"))
        if feats.stage != "y" or all(at in final for at in zip(pieces, steps)):
            return "last_step", list(pieces), None
        try:
            read_step, warning, note = read_step_of(list(zip(pieces, steps)), layer)
        except Refuse as e:
            raise MappingError(str(e)) from None
        self.warnings.append(warning)
        self.notes.append(note)
        return "every_step", list(pieces), read_step

    def build(self, value) -> OnnxMapping:
        if not isinstance(value, Tensor) or value.stage not in ("y", "final", "head"):
            raise MappingError("the graph's output is not computed from a recurrent layer's output")
        if not self.layers:
            raise MappingError("the graph has no RNN, LSTM or GRU node")
        head = value if value.stage == "head" else None
        feats = head.source if head else value
        last = len(self.layers) - 1
        if feats.layer != last:
            raise MappingError(f"the output reads recurrent layer {feats.layer}, not the last one ({last}); "
                               f"rnnedge heads read the last layer")
        if "D" in feats.axes:
            raise MappingError("the output keeps a direction axis; rnnedge's output has the directions merged into "
                               "the features")
        layer = self.layers[last]
        H, dirs = layer["hidden"], specs.directions(layer)
        on, columns, read_step = self._head_on(feats, layer)
        width = len(columns) * H
        if head is None:
            weight = spread_weight(np.eye(feats.width(), dtype=np.float32), feats)
            bias, activation = np.zeros(feats.width(), np.float32), "none"
            self.notes.append("the graph has no head: an identity head was added")
        else:
            try:
                activation = self.function_of(head)
            except Refuse as e:
                raise MappingError(str(e)) from None
            bias = head.bias if head.bias is not None else np.zeros(head.weight.shape[0], np.float32)
            dense = [*head.stack, (head.weight, bias, activation)]
            weight = dense[0][0]  # the layer reading the recurrent features
            if weight.shape[1] != width:
                raise MappingError(f"the head reads {weight.shape[1]} features, the recurrent output has {width}")
        spec_weight = np.zeros((weight.shape[0], dirs * H), np.float32)
        for i, d in enumerate(columns):
            spec_weight[:, d * H:(d + 1) * H] += weight[:, i * H:(i + 1) * H]
        hidden = []
        if head is not None and head.stack:
            hidden = [{"units": int(w.shape[0]), "activation": fn} for w, _, fn in head.stack]
            layer_tensors = {"head.hidden.0.weight": spec_weight}
            for k, (w, b, _) in enumerate(head.stack):
                layer_tensors.setdefault(f"head.hidden.{k}.weight", w)
                layer_tensors[f"head.hidden.{k}.bias"] = b
            spec_weight = head.weight
        if on == "last_step" and sorted(columns) != list(range(dirs)):
            self.notes.append("the head reads only some directions' final states; the others get zero weight")

        inp = dict(self.input)
        if inp.get("kind") == "dense":
            inp.setdefault("mean", [0.0] * inp["features"])
            inp.setdefault("std", [1.0] * inp["features"])
        spec = {"version": specs.EXTENDED_VERSION, "input": inp, "layers": self.layers,
                "head": {"out": int(spec_weight.shape[0]), "on": on, "activation": activation,
                         **({"hidden": hidden} if hidden else {})},
                "task": "classify", "dropout": 0.0}
        spec = specs.validate(spec)
        tensors: dict[str, np.ndarray] = {}
        if self.embedding is not None:
            tensors["embedding.weight"] = np.ascontiguousarray(self.embedding, np.float32)
        try:
            unrolled = self.unrolled_tensors()
        except Refuse as e:
            raise MappingError(str(e)) from None
        for t in self.layer_tensors + unrolled:
            tensors.update({k: np.ascontiguousarray(v, np.float32) for k, v in t.items()})
        if hidden:
            tensors.update({k: np.ascontiguousarray(v, np.float32) for k, v in layer_tensors.items()})
        tensors["head.weight"] = spec_weight
        tensors["head.bias"] = np.ascontiguousarray(bias, np.float32)
        input_time_major = self.raw_time == "0"
        if any("*" in a for a in value.axes):
            raise MappingError("the graph's output keeps batch and time merged into one axis; rnnedge returns "
                               "(batch, time, out)")
        output_time_major = on == "every_step" and read_step is None and value.axes[0] == "T"
        if input_time_major:
            self.notes.append("the graph takes time-major input (time, batch, ...); the rnnedge runtime takes "
                              "(batch, time, ...)")
        if output_time_major:
            self.notes.append("the graph returns time-major output (time, batch, out); the rnnedge runtime returns "
                              "(batch, time, out)")
        lengths_name = self.layer_lengths[0] if self.layer_lengths else None
        if lengths_name:
            self.notes.append(f"the graph's input {lengths_name!r} is the sequence lengths (sequence_lens): give them "
                              f"to the converted model as model.run(X, lengths)")
        return OnnxMapping(spec, tensors, self.notes, self.input_name, input_time_major, output_time_major,
                           input_dims=self.input_dims, lengths_name=lengths_name, read_step=read_step,
                           warnings=self.warnings)
