"""An ONNX file made by any tool -> an rnnedge spec and canonical float32 tensors, proven against ONNX Runtime.

Issue 7. `map_onnx(model_proto)` walks the graph's nodes in order, folds the constant and
Shape-driven glue, follows what happens to the input sequence, and maps one or more stacked ONNX `RNN` /
`LSTM` / `GRU` nodes (as the ONNX operator spec defines them) and the head behind them to a spec plus the
canonical tensors of an f32 artifact (export/weights.py names, PyTorch gate order). It then **proves** the
mapping: ONNX Runtime runs the ORIGINAL graph (a layout=1 node as layout=0 between Transposes: ORT implements
layout 0 only) and the rnnedge runtime runs the converted f32 tensors on random inputs of several batch sizes and
lengths (and random sequence lengths when the graph takes them); a max abs difference above 1e-5 is refused
(ProofError) with the measured difference. `export_onnx` writes the mapped model as an ordinary rnnedge
checkpoint (`model.pt`) plus `onnx_mapping.json` and runs the usual `export_checkpoint`, whose report carries
report["module"]["source"] == "onnx".

Gate order (the reverse of export/onnx_graphs.py): rows of W, R and each half of B are blocks of
hidden_size rows, one per gate:

    onnx LSTM: i o f c   ->   torch: i f g o      (ONNX's c is torch's g)
    onnx GRU:  z r h     ->   torch: r z n        (ONNX's h is torch's n)
    RNN: one gate

B is [Wb; Rb] = [b_ih; b_hh]; no B means zero biases.

What maps (anything else is refused; every node that cannot be handled is listed in one MappingError with its op
type and name):

  recurrent  RNN, LSTM, GRU with direction forward, reverse ("reverse") or bidirectional; layout 0 or 1; optional
             B; activations (any of Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh,
             HardSigmoid, Elu, Softsign, Softplus, per direction) with activation_alpha / beta aligned as ONNX
             Runtime aligns them (_Mapper._functions): RNN Tanh / Relu alone -> cell rnn_tanh / rnn_relu, anything
             else the spec's "activations"; clip; LSTM input_forget and peepholes P (all-zero P: none); GRU
             linear_before_reset 0 ("linear_before_reset": false) and 1; initial_h / initial_c constants equal over
             the batch ("initial_state", zeros: none); sequence_lens absent, a constant of the full fixed length,
             or a graph input (the converted model takes it as model.run(X, lengths); OnnxMapping.lengths_name);
             Y and Y_h. Refused by name: per-batch initial states, initial states or P given at run time, other
             activation functions, a used Y_c (rnnedge heads read h), layers reading different sequence_lens.
  input      a dense float input straight into the first layer (optionally Sub mean, Div std: the
             normalisation rnnedge writes), or int64 token ids through Gather(table, ids) (an embedding)
  glue       Transpose, Squeeze (of a one-direction axis or a one-step time axis), Reshape merging the
             direction axis into the features ([T, B, D, H] -> [T, B, D*H]), Slice / Gather of the last (or
             first) time step and of one direction, Concat of directions along the features, Identity,
             Cast, Dropout, and Shape / ConstantOfShape / Gather / Concat / Unsqueeze / Slice on shapes and
             constants (folded)
  head       MatMul [+ Add] or Gemm (transA=0) on the last layer's output (every step) or final state
             (last_step), then Softmax over the last axis or Sigmoid; no head -> an identity head
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export.from_module import MappingError, ProofError
from runtime import spec as specs

PROOF_TOLERANCE = 1e-5
PROOF_SHAPES = ((1, 1), (3, 5), (2, 17), (4, 40))  # (batch, steps) of the random proof inputs
MAPPING_FILE = "onnx_mapping.json"
CHECKPOINT_FILE = "model.pt"

# ONNX gate order, each gate named by its PyTorch letter (export/onnx_graphs.py says the same the other way)
TORCH_GATES = {"rnn": "h", "lstm": "ifgo", "gru": "rzn"}
ONNX_GATES = {"rnn": "h", "lstm": "iofg", "gru": "zrn"}
_SHAPE_OPS = {"Shape", "Size", "Gather", "Concat", "Unsqueeze", "Squeeze", "Slice", "Cast", "Identity", "Reshape",
              "Add", "Sub", "Mul", "Div", "Range", "Expand", "ConstantOfShape", "Transpose", "Tile",
              # torch.onnx.export's expand(-1, B, -1): Where(Equal(shape, -1), ConstantOfShape(1), shape)
              "Equal", "Where", "Max", "Min"}
_ZERO_OPS = {"Slice", "Expand", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Cast", "Identity", "Tile",
             "Concat", "Gather"}
_BIG = 2 ** 31 - 1  # a Slice end this large means "to the end"


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

    def __iter__(self):
        return iter((self.spec, self.tensors, self.notes))

    def describe(self) -> dict:
        return {"source": "onnx", "spec_head_on": self.spec["head"]["on"], "input_time_major": self.input_time_major,
                "output_time_major": self.output_time_major, "proof_max_abs_diff": self.max_abs_diff,
                "proof_tolerance": PROOF_TOLERANCE, "proof_reference": self.proof_reference,
                "lengths_input": self.lengths_name,
                "notes": list(self.notes)}


# -- abstract values ----------------------------------------------------------------------------------------------
class _Const:
    def __init__(self, value):
        self.value = np.asarray(value)


class _Shape:
    """A value computed from tensor shapes (known only at run time)."""


class _Zeros:
    """A tensor of zeros of a run-time shape (ConstantOfShape of a shape)."""


class _Broadcast:
    """A constant expanded to a run-time shape (Expand(constant, shape)): rnnedge's own graphs broadcast a layer's
    h0 / c0 (dirs, 1, H) over the batch this way."""

    def __init__(self, value):
        self.value = np.asarray(value)


@dataclass
class _Extra:
    """A graph input other than the sequence: only a recurrent node's sequence_lens may read it."""

    name: str
    elem: int
    dims: list
    used_as: set = field(default_factory=set)


@dataclass
class _Error:
    op: str
    name: str
    message: str
    reported: bool = False


@dataclass
class _Tensor:
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
    source: _Tensor | None = None  # stage head: the features it reads
    weight: np.ndarray | None = None  # stage head: (out, width of source)
    bias: np.ndarray | None = None
    activation: str = "none"
    hidden: int = 0


class _Mapper:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.env: dict[str, object] = {}
        self.errors: list[_Error] = []
        self.notes: list[str] = []
        self.input: dict = {}
        self.embedding: np.ndarray | None = None
        self.layers: list[dict] = []
        self.layer_tensors: list[dict] = []
        self.layer_lengths: list[str | None] = []  # per layer: the graph input its sequence_lens reads, or None
        self.extras: list[_Extra] = []
        self.raw_time: str | None = None
        self.input_name = ""
        self.input_dims: list = []

    # -- bookkeeping ----------------------------------------------------------------------------------------------
    def fail(self, node, message: str) -> _Error:
        err = _Error(node.op_type, node.name or "(unnamed)", message, reported=True)
        self.errors.append(err)
        return err

    def read(self, name: str):
        if name == "":
            return None
        if name not in self.env:
            raise KeyError(name)
        return self.env[name]

    def const(self, node, value, what: str) -> np.ndarray:
        if isinstance(value, _Const):
            return value.value
        raise _Refuse(f"{what} must be a constant (an initializer or a Constant node)")

    # -- the walk -------------------------------------------------------------------------------------------------
    def run(self):
        initializers = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        for name, arr in initializers.items():
            self.env[name] = _Const(arr)
        inputs = [i for i in self.graph.input if i.name not in initializers]
        if not inputs:
            raise MappingError("the graph has no input; rnnedge models take one input sequence")
        inp = inputs[0]  # the sequence; any other input may only be a recurrent node's sequence_lens
        for extra in inputs[1:]:
            t = extra.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
            self.extras.append(_Extra(extra.name, t.elem_type, dims))
            self.env[extra.name] = self.extras[-1]
        self.input_name = inp.name
        ttype = inp.type.tensor_type
        self.input_dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
        elem = ttype.elem_type
        if elem in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
            if len(self.input_dims) != 2:
                raise MappingError(f"input {inp.name!r}: token ids must be 2-D (batch and time), got rank "
                                   f"{len(self.input_dims)}")
            self.env[inp.name] = _Tensor(("0", "1"), "ids")
        elif elem == onnx.TensorProto.FLOAT:
            if len(self.input_dims) != 3 or self.input_dims[2] is None:
                raise MappingError(f"input {inp.name!r}: a dense sequence must be 3-D with a fixed feature size "
                                   f"(batch, time, features), got dims {self.input_dims}")
            self.input = {"kind": "dense", "features": int(self.input_dims[2])}
            self.env[inp.name] = _Tensor(("0", "1", "F"), "input")
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
            except _Refuse as e:
                results = [self.fail(node, str(e))] * len(node.output)
            for name, value in zip(node.output, results):
                self.env[name] = value

        if len(self.graph.output) != 1:
            raise_all = [f"the graph has {len(self.graph.output)} outputs; rnnedge models return one tensor"]
            self._raise(raise_all)
        value = self.env.get(self.graph.output[0].name)
        if isinstance(value, _Error) and not value.reported:
            value.reported = True
            self.errors.append(value)
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
        if lines:
            raise MappingError(f"rnnedge cannot map {len(lines)} node(s) of this ONNX graph:\n  " + "\n  ".join(lines))

    # -- one node -------------------------------------------------------------------------------------------------
    def evaluate(self, node, args) -> list:
        op = node.op_type
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if op in ("RNN", "LSTM", "GRU"):
            return self.recurrent(node, attrs, args)  # checks its attributes even when its input is an error
        if op == "Constant":
            return [_Const(_constant_value(node, attrs))]
        extras = [a for a in args if isinstance(a, _Extra)]
        for e in extras:
            if op in ("Identity", "Cast") and len(args) == 1:
                to = attrs.get("to", e.elem)
                return [_Extra(e.name, to, e.dims, e.used_as)]
            e.used_as.add(f"{op} {node.name or '(unnamed)'!r}")
            raise _Refuse(f"reads the graph input {e.name!r}, which rnnedge can only pass to a recurrent node's "
                          f"sequence_lens")
        errors = [a for a in args if isinstance(a, _Error)]
        if errors:
            handled = op in _SUPPORTED_OPS
            for e in errors:
                if not e.reported:
                    e.reported = True
                    self.errors.append(e)
            if not handled:
                return [self.fail(node, f"operator {op} is not supported")] * len(node.output)
            return [errors[0]] * len(node.output)
        if op not in _SUPPORTED_OPS:
            raise _Refuse(f"operator {op} is not supported")
        tensors = [a for a in args if isinstance(a, _Tensor)]
        if op in ("Shape", "Size"):
            return [_Shape()]
        if not tensors:
            return self.fold(node, attrs, args)
        if op in ("Identity", "Cast", "Dropout"):
            return [args[0]] + [_Zeros()] * (len(node.output) - 1)
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise _Refuse(f"operator {op} on the sequence is not supported")
        return [handler(node, attrs, args)]

    def fold(self, node, attrs, args) -> list:
        """Constants, shapes and zero tensors: fold what can be folded, mark the rest."""
        op = node.op_type
        present = [a for a in args if a is not None]
        if all(isinstance(a, _Const) for a in present):
            return _evaluate_constant(node, args)
        if op in ("Shape", "Size"):
            return [_Shape()]
        if op == "Expand" and isinstance(args[0], _Const) and isinstance(args[1], _Shape):
            return [_Broadcast(args[0].value)]
        if op == "ConstantOfShape":
            value = attrs.get("value")
            fill = numpy_helper.to_array(value).reshape(-1)[0] if value is not None else 0
            # zeros: a tensor (e.g. an initial state); any other fill only ever feeds shape arithmetic (a data
            # path that reads a _Shape is refused there, and the proof checks what the shapes meant)
            return [_Zeros()] if fill == 0 else [_Shape()]
        if any(isinstance(a, _Zeros) for a in present) and op in _ZERO_OPS and isinstance(args[0], _Zeros):
            return [_Zeros()]
        if op in _SHAPE_OPS:
            return [_Shape()] * len(node.output)
        raise _Refuse(f"operator {op} on a run-time shape is not supported")

    # -- input glue -----------------------------------------------------------------------------------------------
    def op_Gather(self, node, attrs, args):
        data, index = args
        axis = attrs.get("axis", 0)
        if isinstance(data, _Const) and isinstance(index, _Tensor) and index.stage == "ids":
            if axis != 0 or data.value.ndim != 2:
                raise _Refuse("an embedding must gather rows (axis 0) of a 2-D table")
            table = data.value.astype(np.float32)
            self.embedding = table
            self.input = {"kind": "tokens", "vocab": int(table.shape[0]), "embed_dim": int(table.shape[1]),
                          "padding_idx": None}
            return _Tensor((*index.axes, "F"), "input")
        if not isinstance(data, _Tensor) or not isinstance(index, _Const):
            raise _Refuse("Gather is supported as an embedding (table, ids) or with a constant index")
        axis = _axis(axis, len(data.axes))
        label = data.axes[axis]
        idx = index.value
        scalar = idx.ndim == 0
        if not scalar and idx.size != 1:
            raise _Refuse(f"Gather of {idx.size} entries of axis {label!r}; rnnedge reads one time step or direction")
        i = int(idx.reshape(-1)[0])
        if label == "D":
            d = data.dirs[i]
            return _replace(data, axis, None if scalar else "D", dirs=(d,))
        if label == "T":
            return self._step(data, axis, i, scalar)
        raise _Refuse(f"Gather on axis {axis} ({_LABELS.get(label, label)}) is not supported")

    def _step(self, data: _Tensor, axis: int, i: int, drop: bool) -> _Tensor:
        if data.stage != "y":
            raise _Refuse("selecting a time step is supported on a recurrent layer's output Y only")
        if i not in (-1, 0):
            raise _Refuse(f"reads time step {i}; rnnedge heads read every step, the last (-1) or the first (0)")
        return _replace(data, axis, None if drop else "t", step="last" if i == -1 else "first")

    def op_Slice(self, node, attrs, args):
        data = args[0]
        if self.opset >= 10:
            starts, ends = (self.const(node, a, "Slice starts/ends") for a in args[1:3])
            axes = self.const(node, args[3], "Slice axes") if len(args) > 3 and args[3] is not None else None
            steps = self.const(node, args[4], "Slice steps") if len(args) > 4 and args[4] is not None else None
        else:
            starts, ends, axes, steps = np.array(attrs["starts"]), np.array(attrs["ends"]), attrs.get("axes"), None
        axes = np.arange(len(starts)) if axes is None else np.asarray(axes)
        steps = np.ones(len(starts), dtype=np.int64) if steps is None else np.asarray(steps)
        for start, end, ax, step in zip(starts.tolist(), ends.tolist(), axes.tolist(), steps.tolist()):
            ax = _axis(ax, len(data.axes))
            label = data.axes[ax]
            if step != 1:
                raise _Refuse(f"Slice with step {step} is not supported")
            if start == 0 and end >= _BIG:
                continue
            if label == "T" and start == -1 and end >= _BIG:
                data = self._step(data, ax, -1, False)
            elif label == "T" and start == 0 and end == 1:
                data = self._step(data, ax, 0, False)
            elif label == "D":
                data = _replace(data, ax, "D", dirs=tuple(data.dirs[start:end]))
            else:
                raise _Refuse(f"Slice [{start}:{end}] of axis {ax} ({_LABELS.get(label, label)}) is not supported")
        return data

    def op_Sub(self, node, attrs, args):
        x, mean = args
        if isinstance(x, _Tensor) and x.stage == "input" and self.input.get("kind") == "dense" and isinstance(
                mean, _Const) and "mean" not in self.input and "std" not in self.input:
            f = self.input["features"]
            self.input["mean"] = [float(v) for v in np.broadcast_to(mean.value.astype(np.float32), (f,))]
            return x
        raise _Refuse("Sub is supported only as the dense input's normalisation (x - mean)")

    def op_Div(self, node, attrs, args):
        x, std = args
        if isinstance(x, _Tensor) and x.stage == "input" and self.input.get("kind") == "dense" and isinstance(
                std, _Const) and "std" not in self.input:
            f = self.input["features"]
            self.input["std"] = [float(v) for v in np.broadcast_to(std.value.astype(np.float32), (f,))]
            return x
        raise _Refuse("Div is supported only as the dense input's normalisation ((x - mean) / std)")

    def op_Transpose(self, node, attrs, args):
        (x,) = args
        perm = attrs.get("perm", list(range(len(x.axes)))[::-1])
        axes = tuple(x.axes[p] for p in perm)
        if x.stage == "head" or axes[-1] != "F":
            raise _Refuse(f"Transpose perm={list(perm)} moves the feature axis; rnnedge keeps features last")
        return _Tensor(**{**x.__dict__, "axes": axes})

    def op_Squeeze(self, node, attrs, args):
        x = args[0]
        if self.opset >= 13:
            axes = self.const(node, args[1], "Squeeze axes").tolist() if len(args) > 1 and args[1] is not None else None
        else:
            axes = attrs.get("axes")
        if axes is None:
            axes = [i for i, a in enumerate(x.axes) if a == "t" or (a == "D" and len(x.dirs) == 1)]
        axes = sorted(_axis(a, len(x.axes)) for a in np.reshape(axes, -1).tolist())
        for ax in reversed(axes):
            label = x.axes[ax]
            if label == "t" or (label == "D" and len(x.dirs) == 1):
                x = _replace(x, ax, None)
            else:
                raise _Refuse(f"Squeeze of axis {ax} ({_LABELS.get(label, label)}), which may not have size 1")
        return x

    def op_Reshape(self, node, attrs, args):
        x, shape = args
        axes = x.axes
        if "D" in axes:
            d = axes.index("D")
            if d + 1 == len(axes) - 1 and axes[-1] == "F":
                merged = axes[:d] + ("F",)
                if isinstance(shape, _Const):
                    target = shape.value.reshape(-1).tolist()
                    ok = len(target) == len(merged) and all(t in (0, -1) for t in target[:-1]) and (
                        target[-1] in (-1, len(x.dirs) * x.hidden) and target.count(-1) <= 1)
                    if not ok:
                        raise _Refuse(f"Reshape to {target} is not supported (only merging the direction axis into "
                                      f"the features, e.g. [0, 0, -1])")
                elif not isinstance(shape, _Shape):
                    raise _Refuse("Reshape's shape must be a constant or computed from shapes")
                return _Tensor(**{**x.__dict__, "axes": merged, "pieces": x.dirs, "dirs": ()})
        if isinstance(shape, _Const):
            target = shape.value.reshape(-1).tolist()
            if len(target) == len(axes) and all(t == 0 or (t == -1 and i == len(axes) - 1) for i, t in enumerate(target)):
                return x
        raise _Refuse("Reshape is supported only to merge the direction axis into the features")

    def op_Concat(self, node, attrs, args):
        if not all(isinstance(a, _Tensor) for a in args):
            raise _Refuse("Concat of the sequence with constants is not supported")
        axis = _axis(attrs["axis"], len(args[0].axes))
        first = args[0]
        if first.axes[axis] != "F" or any(a.axes != first.axes or a.stage != first.stage or a.layer != first.layer
                                          or "D" in a.axes for a in args):
            raise _Refuse("Concat is supported only of one layer's directions along the features")
        steps = {a.step for a in args}
        pieces = tuple(p for a in args for p in a.pieces)
        if len(steps) != 1:
            pieces = tuple((p, a.step) for a in args for p in a.pieces)
            return _Tensor(**{**first.__dict__, "pieces": pieces, "step": "mixed"})
        return _Tensor(**{**first.__dict__, "pieces": pieces})

    # -- recurrent nodes ------------------------------------------------------------------------------------------
    def recurrent(self, node, attrs, args) -> list:
        op = node.op_type
        family = op.lower()
        problems: list[str] = []
        direction = _text(attrs.get("direction", "forward"))
        if direction not in ("forward", "reverse", "bidirectional"):
            problems.append(f"direction={direction!r} is not an ONNX direction (forward, reverse, bidirectional)")
        dirs = 2 if direction == "bidirectional" else 1
        ext: dict = {"reverse": True} if direction == "reverse" else {}
        if "clip" in attrs:
            clip = _decimal(attrs["clip"])
            if clip > 0 and np.isfinite(clip):
                ext["clip"] = clip
            else:
                problems.append(f"clip={clip} is not a positive finite threshold")
        if op == "LSTM" and attrs.get("input_forget", 0):
            ext["input_forget"] = True
        if op == "GRU" and not attrs.get("linear_before_reset", 0):
            ext["linear_before_reset"] = False  # ONNX's default GRU: the reset before the recurrent product
        cell, functions = self._functions(node, attrs, dirs, problems)
        if functions is not None:
            ext["activations"] = functions
        layout = attrs.get("layout", 0)
        if layout not in (0, 1):
            problems.append(f"layout={layout} is not an ONNX layout (0 or 1)")
        inputs = list(args) + [None] * (8 - len(args))
        x = inputs[0]
        time_label = None
        if isinstance(x, _Tensor) and len(x.axes) == 3:
            time_label = x.axes[0] if layout == 0 else x.axes[1]
            if x.stage != "input":
                time_label = self.raw_time
        lengths = self._sequence_lens(inputs[4], time_label, problems)
        batch_axis = 1 if layout == 0 else 0  # of initial_h / initial_c: (D, B, H) or (B, D, H)
        states = {what: self._initial_state(inputs[k], what, batch_axis, problems)
                  for k, what in ((5, "initial_h"), (6, "initial_c")) if k < 6 or op == "LSTM"}
        peepholes = inputs[7] if op == "LSTM" else None
        if peepholes is not None and not isinstance(peepholes, (_Const, _Zeros, _Error)):
            problems.append(f"peepholes P {_runtime_value(peepholes)}; rnnedge's peepholes must be a constant")
        for k, what in ((1, "W"), (2, "R"), (3, "B")):
            if inputs[k] is not None and not isinstance(inputs[k], (_Const, _Error)):
                problems.append(f"{what} {_runtime_value(inputs[k])}; it must be a constant")
        if problems:
            raise _Refuse("; ".join(problems))
        errors = [a for a in args if isinstance(a, _Error)]
        for e in errors:
            if not e.reported:
                e.reported = True
                self.errors.append(e)
        if errors:
            return [errors[0]] * len(node.output)
        self._layer_input(x, layout)
        W, R = inputs[1].value.astype(np.float32), inputs[2].value.astype(np.float32)
        kind = "rnn" if op == "RNN" else family
        gates = len(TORCH_GATES[kind])
        hidden = int(attrs.get("hidden_size", R.shape[-1]))
        n_in = W.shape[-1]
        B = inputs[3].value.astype(np.float32) if inputs[3] is not None else np.zeros((dirs, 2 * gates * hidden),
                                                                                       np.float32)
        if W.shape != (dirs, gates * hidden, n_in) or R.shape != (dirs, gates * hidden, hidden) or B.shape != (
                dirs, 2 * gates * hidden):
            raise _Refuse(f"W {W.shape}, R {R.shape}, B {B.shape} do not fit hidden_size {hidden}, {dirs} "
                          f"direction(s), {gates} gate(s)")
        expected_in = specs.input_size({"input": self.input}) if not self.layers else (
            self.layers[-1]["hidden"] * specs.directions(self.layers[-1]))
        if n_in != expected_in:
            raise _Refuse(f"W reads {n_in} input features, the sequence it is given has {expected_in}")
        P = None
        if isinstance(peepholes, _Const) and peepholes.value.any():
            P = peepholes.value.astype(np.float32)
            if P.shape != (dirs, 3 * hidden):
                raise _Refuse(f"peepholes P {P.shape} do not fit hidden_size {hidden}, {dirs} direction(s): "
                              f"expected {(dirs, 3 * hidden)}")
            ext["peepholes"] = True
        init = {}
        for what, value in states.items():
            if value is not None:
                if value.shape != (dirs, hidden):
                    raise _Refuse(f"{what} holds {value.shape[0]} direction(s) of {value.shape[1]} units; expected "
                                  f"{dirs} of hidden_size {hidden}")
                init[what] = value
        if init:
            ext["initial_state"] = True
        l = len(self.layers)
        self.layers.append({"cell": cell, "hidden": hidden, "bidirectional": dirs == 2, **ext})
        self.layer_lengths.append(lengths)
        for d, name in enumerate(("fwd", "bwd")[:dirs]):
            t = {f"layers.{l}.{name}.w_ih": _to_torch_order(kind, W[d]),
                 f"layers.{l}.{name}.w_hh": _to_torch_order(kind, R[d]),
                 f"layers.{l}.{name}.b_ih": _to_torch_order(kind, B[d, : gates * hidden]),
                 f"layers.{l}.{name}.b_hh": _to_torch_order(kind, B[d, gates * hidden:])}
            if P is not None:  # ONNX's P is [p_i; p_o; p_f], the spec's [p_i; p_f; p_o]
                p_i, p_o, p_f = np.split(P[d], 3)
                t[f"layers.{l}.{name}.p"] = np.concatenate([p_i, p_f, p_o])
            if init:
                zeros = np.zeros(hidden, np.float32)
                t[f"layers.{l}.{name}.h0"] = init["initial_h"][d] if "initial_h" in init else zeros
                if op == "LSTM":
                    t[f"layers.{l}.{name}.c0"] = init["initial_c"][d] if "initial_c" in init else zeros
            self.layer_tensors.append(t)
        all_dirs = tuple(range(dirs))
        if layout == 0:
            y_axes, final_axes = ("T", "D", "B", "F"), ("D", "B", "F")
        else:
            y_axes, final_axes = ("B", "T", "D", "F"), ("B", "D", "F")
        outs = [_Tensor(y_axes, "y", l, dirs=all_dirs, hidden=hidden),
                _Tensor(final_axes, "final", l, dirs=all_dirs, hidden=hidden),
                _Error(op, node.name or "(unnamed)", "its output Y_c (the final cell state) is used; rnnedge heads "
                       "read the hidden state")]
        return outs[: len(node.output)]

    def _functions(self, node, attrs, dirs: int, problems: list[str]):
        """(cell, the spec's "activations" list or None) of a recurrent node's activations and activation_alpha /
        activation_beta, aligned as ONNX Runtime aligns them.

        Measured with ONNX Runtime 1.32 (RNN, LSTM and GRU, forward and bidirectional, every function): the alpha
        list is consumed in order, across both directions, only by the functions that take an alpha (Affine,
        LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu); the beta list likewise only by those that take a
        beta (Affine, ScaledTanh, HardSigmoid). Tanh, Relu, Sigmoid, Softsign, Softplus consume nothing:
        activations [Tanh, LeakyRelu] with alpha [0.3] give LeakyRelu 0.3 (not positional, unlike
        onnx.reference's RNN). Once a list runs out, ORT takes its own defaults (_ORT_DEFAULTS): LeakyRelu 0.01,
        Elu 1.0, HardSigmoid 0.2 / 0.5, but 0 for Affine's and ScaledTanh's alpha and beta and ThresholdedRelu's
        alpha (ONNX's deprecated Affine / ThresholdedRelu operators default alpha to 1.0); entries left over are
        ignored. ORT's ThresholdedRelu is x > alpha (not >=). The spec gets every alpha and beta written out.
        """
        op = node.op_type
        per_direction = specs.FUNCTIONS_PER_CELL["rnn_tanh" if op == "RNN" else op.lower()]
        default = {"RNN": ["Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}[op]
        names = [_text(a) for a in attrs.get("activations", [])] or default * dirs
        alphas = [float(v) for v in attrs.get("activation_alpha", [])]
        betas = [float(v) for v in attrs.get("activation_beta", [])]
        plain = {"RNN": "rnn_tanh", "LSTM": "lstm", "GRU": "gru"}[op]
        if len(names) != per_direction * dirs:
            problems.append(f"activations {names} list {len(names)} function(s); {op} with {dirs} direction(s) takes "
                            f"{per_direction * dirs} ({per_direction} per direction)")
            return plain, None
        unknown = [n for n in names if n.lower() not in specs.ACTIVATION_FNS]
        if unknown:
            problems.append(f"activations {unknown} are not supported (rnnedge runs {', '.join(_ONNX_FNS.values())})")
            return plain, None
        functions = []
        for name in names:
            fn = name.lower()
            alpha, beta = _ORT_DEFAULTS.get(fn, (0.0, 0.0))
            if fn in _TAKES_ALPHA and alphas:
                alpha = alphas.pop(0)
            elif fn in _TAKES_ALPHA and fn in _ORT_DIFFERS:
                self.notes.append(f"node {node.name or '(unnamed)'!r} ({op}): {name} gets ONNX Runtime's default "
                                  f"alpha {alpha:g} (the graph is mapped as ONNX Runtime runs it)")
            if fn in _TAKES_BETA and betas:
                beta = betas.pop(0)
            functions.append({"fn": fn, "alpha": _decimal(alpha), "beta": _decimal(beta)})
        if alphas or betas:
            self.notes.append(f"node {node.name or '(unnamed)'!r} ({op}): {len(alphas)} activation_alpha and "
                              f"{len(betas)} activation_beta value(s) left over are ignored, as ONNX Runtime does")
        if op == "RNN":
            kinds = {f["fn"] for f in functions}
            if kinds == {"tanh"}:
                return "rnn_tanh", None
            if kinds == {"relu"}:
                return "rnn_relu", None
        return plain, functions

    def _sequence_lens(self, value, time_label, problems: list[str]):
        """What a recurrent node's sequence_lens means: None (whole sequences) or the name of the graph input
        holding them."""
        if value is None or isinstance(value, _Error):
            return None
        if isinstance(value, _Extra):
            value.used_as.add("sequence_lens")
            if value.elem != onnx.TensorProto.INT32 or len(value.dims) != 1:
                problems.append(f"sequence_lens is the graph input {value.name!r} of type "
                                f"{onnx.TensorProto.DataType.Name(value.elem)} and rank {len(value.dims)}; ONNX "
                                f"takes int32 (batch,)")
            return value.name
        if isinstance(value, _Const):
            full = self.input_dims[int(time_label)] if time_label in ("0", "1") else None
            lens = value.value.reshape(-1)
            if full is not None and lens.size and (lens == full).all():
                return None  # every sequence runs whole: what rnnedge does anyway
            problems.append(f"sequence_lens is the constant {lens.tolist()[:8]}, not the full length of the input's "
                            f"time axis ({'dynamic' if full is None else full}); rnnedge takes lengths at run time "
                            f"(model.run(X, lengths)): make sequence_lens a graph input")
            return None
        problems.append(f"sequence_lens {_runtime_value(value)}; rnnedge reads it from a graph input only")
        return None

    def _initial_state(self, value, what: str, batch_axis: int, problems: list[str]):
        """A recurrent node's initial_h / initial_c -> (D, H) state every sequence starts from, or None (zeros)."""
        if value is None or isinstance(value, (_Zeros, _Error)):
            return None
        if isinstance(value, _Extra):
            value.used_as.add(what)
            problems.append(f"{what} is the graph input {value.name!r}: a state given at run time; rnnedge starts "
                            f"every sequence from zeros or from a constant initial state (make it an initializer)")
            return None
        if not isinstance(value, (_Const, _Broadcast)):
            problems.append(f"{what} {_runtime_value(value)}; rnnedge's initial state must be a constant")
            return None
        v = value.value.astype(np.float32)
        if not v.any():
            return None
        if isinstance(value, _Broadcast):  # expanded over a run-time shape: its batch axis must have size 1
            v = v.reshape((1,) * (3 - v.ndim) + v.shape) if v.ndim < 3 else v
            if v.ndim != 3 or v.shape[batch_axis] != 1:
                problems.append(f"{what} is a constant of shape {value.value.shape} expanded at run time; rnnedge "
                                f"takes one state for every batch row (batch axis of size 1)")
                return None
        if v.ndim != 3:
            problems.append(f"{what} has shape {v.shape}; ONNX takes (directions, batch, hidden) (layout=1: "
                            f"(batch, directions, hidden))")
            return None
        rows = np.moveaxis(v, batch_axis, 0)  # (B, D, H)
        differ = [b for b in range(1, rows.shape[0]) if not np.array_equal(rows[b], rows[0])]
        if differ:
            problems.append(f"{what} differs between batch rows (row {differ[0]} is not row 0): the graph then "
                            f"works for batch size {rows.shape[0]} only; rnnedge starts every sequence from one "
                            f"state")
            return None
        return rows[0]

    def _layer_input(self, x, layout: int) -> _Tensor:
        order = ("T", "B") if layout == 0 else ("B", "T")
        if not isinstance(x, _Tensor) or x.stage not in ("input", "y"):
            raise _Refuse("X must be the input sequence or the previous recurrent layer's whole output")
        if len(x.axes) != 3 or x.axes[-1] != "F":
            raise _Refuse(f"X has axes {x.axes}; expected ({order[0]}, {order[1]}, features)")
        if x.stage == "input":
            if self.layers:
                raise _Refuse("X is the model input, but a recurrent layer already read it; rnnedge stacks layers")
            self.raw_time = x.axes[0] if layout == 0 else x.axes[1]
            return x
        if x.layer != len(self.layers) - 1 or x.step is not None or x.pieces != tuple(
                range(specs.directions(self.layers[-1]))):
            raise _Refuse("X must be the previous recurrent layer's whole output (every step, all directions, in "
                          "order)")
        if x.axes[:2] != order:
            raise _Refuse(f"X has axes {x.axes[:2]} + features; layout={layout} expects {order}")
        return x

    # -- head -----------------------------------------------------------------------------------------------------
    def op_MatMul(self, node, attrs, args):
        x, w = args
        if not isinstance(x, _Tensor) or not isinstance(w, _Const) or w.value.ndim != 2 or x.stage == "head":
            raise _Refuse("MatMul is supported as the head: features x constant (features, out) matrix")
        return self._head(x, w.value.T, None)

    def op_Gemm(self, node, attrs, args):
        x, b = args[0], args[1]
        c = args[2] if len(args) > 2 else None
        if not isinstance(x, _Tensor) or not isinstance(b, _Const) or not (c is None or isinstance(c, _Const)):
            raise _Refuse("Gemm is supported as the head: features x constant B + constant C")
        if attrs.get("transA", 0):
            raise _Refuse("Gemm with transA=1 is not supported")
        w = b.value if attrs.get("transB", 0) else b.value.T
        w = w * attrs.get("alpha", 1.0)
        bias = None if c is None else np.broadcast_to(c.value * attrs.get("beta", 1.0), (w.shape[0],))
        return self._head(x, w, bias)

    def _head(self, x: _Tensor, weight: np.ndarray, bias):
        if x.stage not in ("y", "final") or "D" in x.axes:
            raise _Refuse("the head must read a recurrent layer's output (directions merged) or final state")
        return _Tensor(x.axes, "head", x.layer, source=x,
                       weight=weight.astype(np.float32), bias=None if bias is None else np.asarray(bias, np.float32))

    def op_Add(self, node, attrs, args):
        a, b = args
        head, const = (a, b) if isinstance(a, _Tensor) else (b, a)
        if not isinstance(head, _Tensor) or head.stage != "head" or not isinstance(const, _Const) or \
                head.activation != "none":
            raise _Refuse("Add is supported as the head's bias (after MatMul)")
        out = head.weight.shape[0]
        if const.value.size != out:
            raise _Refuse(f"the head bias has {const.value.size} values for {out} outputs")
        bias = const.value.reshape(-1).astype(np.float32) + (0 if head.bias is None else head.bias)
        return _Tensor(**{**head.__dict__, "bias": bias})

    def op_Softmax(self, node, attrs, args):
        (x,) = args
        axis = _axis(attrs.get("axis", -1 if self.opset >= 13 else 1), len(x.axes))
        if x.stage != "head" or x.activation != "none" or axis != len(x.axes) - 1:
            raise _Refuse("Softmax is supported over the last axis of the head's output")
        return _Tensor(**{**x.__dict__, "activation": "softmax"})

    def op_Sigmoid(self, node, attrs, args):
        (x,) = args
        if x.stage != "head" or x.activation != "none":
            raise _Refuse("Sigmoid is supported on the head's output")
        return _Tensor(**{**x.__dict__, "activation": "sigmoid"})

    # -- the result -----------------------------------------------------------------------------------------------
    def build(self, value) -> OnnxMapping:
        if not isinstance(value, _Tensor) or value.stage not in ("y", "final", "head"):
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
        if feats.stage == "y" and feats.step is None:
            on = "every_step"
            if feats.pieces != tuple(range(dirs)):
                raise MappingError("an every-step output must read all directions of the last layer, in order")
            columns = list(range(dirs))
        else:
            on = "last_step"
            pieces = feats.pieces if feats.step != "mixed" else [p for p, _ in feats.pieces]
            steps = [feats.step] * len(pieces) if feats.step != "mixed" else [s for _, s in feats.pieces]
            final = ((0, "first"),) if layer.get("reverse") else ((0, "last"), (1, "first"))
            for d, step in zip(pieces, steps):
                if feats.stage == "y" and (d, step) not in final:
                    which = "reverse" if layer.get("reverse") else "backward" if d else "forward"
                    raise MappingError(
                        f"the output reads the {which} direction at the {step} time step: not its final state. "
                        "rnnedge's last_step head reads a forward direction at the last step and a backward (or "
                        "reverse) one at step 0")
                if feats.stage == "y" and self.layer_lengths[last] and step == "last":
                    raise MappingError(
                        f"the output reads Y's last time step while sequence_lens is the graph input "
                        f"{self.layer_lengths[last]!r}: ONNX pads Y with zeros past each sequence's length, so that "
                        f"step is zero for shorter sequences; read the final state Y_h instead")
            columns = list(pieces)
        width = len(columns) * H
        if head is None:
            weight, bias, activation = np.eye(width, dtype=np.float32), np.zeros(width, np.float32), "none"
            self.notes.append("the graph has no head: an identity head was added")
        else:
            weight, activation = head.weight, head.activation
            bias = head.bias if head.bias is not None else np.zeros(weight.shape[0], np.float32)
            if weight.shape[1] != width:
                raise MappingError(f"the head reads {weight.shape[1]} features, the recurrent output has {width}")
        spec_weight = np.zeros((weight.shape[0], dirs * H), np.float32)
        for i, d in enumerate(columns):
            spec_weight[:, d * H:(d + 1) * H] += weight[:, i * H:(i + 1) * H]
        if on == "last_step" and sorted(columns) != list(range(dirs)):
            self.notes.append("the head reads only some directions' final states; the others get zero weight")

        inp = dict(self.input)
        if inp.get("kind") == "dense":
            inp.setdefault("mean", [0.0] * inp["features"])
            inp.setdefault("std", [1.0] * inp["features"])
        spec = {"version": specs.EXTENDED_VERSION, "input": inp, "layers": self.layers,
                "head": {"out": int(weight.shape[0]), "on": on, "activation": activation},
                "task": "classify", "dropout": 0.0}
        spec = specs.validate(spec)
        tensors: dict[str, np.ndarray] = {}
        if self.embedding is not None:
            tensors["embedding.weight"] = np.ascontiguousarray(self.embedding, np.float32)
        for t in self.layer_tensors:
            tensors.update({k: np.ascontiguousarray(v, np.float32) for k, v in t.items()})
        tensors["head.weight"] = spec_weight
        tensors["head.bias"] = np.ascontiguousarray(bias, np.float32)
        input_time_major = self.raw_time == "0"
        out_axes = feats.axes
        output_time_major = on == "every_step" and out_axes[0] == "T"
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
                           input_dims=self.input_dims, lengths_name=lengths_name)


_SUPPORTED_OPS = {"Identity", "Cast", "Dropout", "Shape", "Size", "ConstantOfShape", "Gather", "Slice", "Sub", "Div",
                  "Transpose", "Squeeze", "Unsqueeze", "Reshape", "Concat", "MatMul", "Gemm", "Add", "Mul",
                  "Softmax", "Sigmoid", "Expand", "Range", "Tile", "Constant", "RNN", "LSTM", "GRU", "Equal", "Where",
                  "Max", "Min"}
_LABELS = {"T": "time", "B": "batch", "D": "directions", "F": "features", "t": "one time step"}


class _Refuse(Exception):
    pass


# ONNX's activation function names by the spec's (lowercase) names, and how ONNX Runtime fills their alpha / beta
# (measured: _Mapper._functions)
_ONNX_FNS = {name.lower(): name for name in ("Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
                                             "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus")}
_TAKES_ALPHA = {"affine", "leakyrelu", "thresholdedrelu", "scaledtanh", "hardsigmoid", "elu"}
_TAKES_BETA = {"affine", "scaledtanh", "hardsigmoid"}
_ORT_DEFAULTS = {"affine": (0.0, 0.0), "leakyrelu": (0.01, 0.0), "thresholdedrelu": (0.0, 0.0),
                 "scaledtanh": (0.0, 0.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}
_ORT_DIFFERS = {"affine", "thresholdedrelu", "scaledtanh"}  # ORT's default alpha is not the ONNX operator's


def _decimal(value: float) -> float:
    """An ONNX float attribute (float32) as the shortest decimal that is the same float32: 0.3, not 0.30000001."""
    return float(str(np.float32(value)))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _runtime_value(value) -> str:
    """How a non-constant input of a recurrent node is described in an error."""
    if isinstance(value, _Extra):
        return f"is the graph input {value.name!r}"
    if isinstance(value, _Tensor):
        return "is computed from the input sequence"
    return "is computed at run time (from shapes)"


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _replace(x: _Tensor, axis: int, label, **changes) -> _Tensor:
    axes = list(x.axes)
    if label is None:
        del axes[axis]
    else:
        axes[axis] = label
    fields = {**x.__dict__, **changes, "axes": tuple(axes)}
    if label is None and x.axes[axis] == "D":  # the direction axis is gone: its directions are the features now
        fields["pieces"], fields["dirs"] = fields["dirs"], ()
    return _Tensor(**fields)


def _to_torch_order(family: str, rows: np.ndarray) -> np.ndarray:
    """Gate blocks (axis 0) from ONNX's order to PyTorch's: the reverse of onnx_graphs.to_onnx_gate_order."""
    blocks = np.split(rows, len(ONNX_GATES[family]), axis=0)
    return np.concatenate([blocks[ONNX_GATES[family].index(g)] for g in TORCH_GATES[family]], axis=0)


def _constant_value(node, attrs) -> np.ndarray:
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise _Refuse(f"Constant with {sorted(attrs)} is not supported")


def _evaluate_constant(node, args) -> list:
    """Fold a node whose inputs are all constants with onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if a is not None else "" for i, a in enumerate(args)]
    folded = helper.make_node(node.op_type, names, [f"out{i}" for i in range(len(node.output))],
                              **{a.name: helper.get_attribute_value(a) for a in node.attribute})
    feeds = {n: a.value for n, a in zip(names, args) if a is not None}
    try:
        outs = ReferenceEvaluator(folded).run(None, feeds)
    except Exception as e:  # noqa: BLE001 - the evaluator raises many types
        raise _Refuse(f"cannot fold this node of constants ({type(e).__name__}: {e})") from None
    return [_Const(o) for o in outs]


# -- public API ---------------------------------------------------------------------------------------------------
def load_onnx(path) -> onnx.ModelProto:
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"{path}: file not found")
    try:
        return onnx.load(str(path))
    except Exception as e:  # noqa: BLE001
        raise MappingError(f"{path}: not a readable ONNX model: {type(e).__name__}: {e}") from None


def map_onnx(model: onnx.ModelProto, *, task: str | None = None, prove: bool = True, seed: int = 0) -> OnnxMapping:
    """ONNX model -> OnnxMapping (unpacks as spec, canonical float32 tensors, notes), proven against ONNX Runtime.

    task: the spec's task; None takes it from the graph's `rnnedge.spec` metadata if rnnedge wrote the graph,
    else "classify". Fields that do not change what the graph computes (task, padding_idx, chars) are taken from
    that metadata too. Raises MappingError (every unsupported node in one message) or ProofError.
    """
    mapping = _Mapper(model).run()
    meta = {p.key: p.value for p in model.metadata_props}
    if "rnnedge.spec" in meta:
        try:
            written = json.loads(meta["rnnedge.spec"])
        except json.JSONDecodeError:
            written = None
        if isinstance(written, dict):
            if mapping.spec["input"]["kind"] == "tokens" and isinstance(written.get("input"), dict):
                for key in ("padding_idx", "chars"):
                    if key in written["input"]:
                        mapping.spec["input"][key] = written["input"][key]
            if task is None and written.get("task") in specs.TASKS:
                task = written["task"]
            mapping.notes.append("task and token padding_idx / chars taken from the graph's rnnedge.spec metadata")
    mapping.spec["task"] = task or "classify"
    try:
        mapping.spec = specs.validate(mapping.spec)
    except specs.SpecError as e:
        raise MappingError(f"the mapped model is not a valid rnnedge spec: {e}") from None
    if prove:
        prove_mapping(model, mapping, seed=seed)
    return mapping


def random_input(mapping: OnnxMapping, batch: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    """Random (batch, steps[, features]) input in the rnnedge layout."""
    inp = mapping.spec["input"]
    if inp["kind"] == "tokens":
        return rng.integers(0, inp["vocab"], size=(batch, steps)).astype(np.int64)
    return rng.standard_normal((batch, steps, inp["features"])).astype(np.float32)


def prove_mapping(model: onnx.ModelProto, mapping: OnnxMapping, seed: int = 0, shapes=PROOF_SHAPES) -> float:
    """ONNX Runtime on the original graph vs the rnnedge runtime on the mapped f32 tensors, on random inputs (and
    random lengths, when the graph takes sequence_lens: compared within each length, ONNX pads past it).
    Sets and returns mapping.max_abs_diff; raises ProofError above PROOF_TOLERANCE."""
    from runtime.model import Model

    session, reference = _reference_session(model, mapping)
    mapping.proof_reference = reference
    rt = Model(mapping.spec, "f32", mapping.tensors)
    elem = next(i for i in model.graph.input if i.name == mapping.input_name).type.tensor_type.elem_type
    dims = mapping.input_dims
    time_axis, batch_axis = (0, 1) if mapping.input_time_major else (1, 0)
    fixed_b, fixed_t = dims[batch_axis], dims[time_axis]
    rng = np.random.default_rng(seed)
    worst = 0.0
    seen = set()
    for batch, steps in shapes:
        batch, steps = fixed_b or batch, fixed_t or steps
        if (batch, steps) in seen:
            continue
        seen.add((batch, steps))
        x = random_input(mapping, batch, steps, rng)
        feed = np.swapaxes(x, 0, 1) if mapping.input_time_major else x
        if elem == onnx.TensorProto.INT32:
            feed = feed.astype(np.int32)
        feeds = {mapping.input_name: np.ascontiguousarray(feed)}
        lengths = None
        if mapping.lengths_name:
            lengths = rng.integers(1, steps + 1, size=batch)
            lengths[0] = steps
            feeds[mapping.lengths_name] = lengths.astype(np.int32)
        (want,) = session.run(None, feeds)
        got = rt.run(x, lengths)
        if mapping.output_time_major:
            got = np.swapaxes(got, 0, 1)
        if got.shape != want.shape:
            raise ProofError(f"the mapped model returns shape {got.shape}, the ONNX graph {want.shape} "
                             f"(batch {batch}, {steps} steps)", float("inf"))
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        if lengths is not None and mapping.spec["head"]["on"] == "every_step":
            valid = np.arange(steps)[None, :] < lengths[:, None]  # (B, T): only steps within each length count
            diff = diff[valid.T] if mapping.output_time_major else diff[valid]
        diff = float(np.max(diff)) if diff.size else 0.0
        if not np.isfinite(diff):
            diff = float("inf")
        worst = max(worst, diff)
    mapping.max_abs_diff = worst
    if not worst <= PROOF_TOLERANCE:
        raise ProofError(f"the mapped rnnedge model differs from {reference} on the original graph by {worst:.3g} "
                         f"(max abs, random inputs; tolerance {PROOF_TOLERANCE:g}): refusing to export", worst)
    return worst


def _reference_session(model: onnx.ModelProto, mapping: OnnxMapping):
    """(a session running the original graph, what it is). ONNX Runtime runs recurrent nodes of layout 0 only, so
    a graph with layout=1 nodes runs as ort_graph rewrites it (the same computation); onnx.reference is the
    fallback for graphs ORT cannot load at all, and only for a spec without extensions (its RNN/LSTM/GRU ignore
    clip, activations, sequence_lens, ...)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    graph, rewritten = ort_graph(model)
    try:
        session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - whatever ORT cannot load
        from onnx.reference import ReferenceEvaluator

        why = str(e).split("\n")[0][-200:]
        extended = [k for layer in mapping.spec["layers"] for k in specs.extensions(layer)]
        if extended or mapping.lengths_name:
            raise MappingError(f"ONNX Runtime cannot load the original graph ({why}), and onnx.reference does not "
                               f"implement {sorted(set(extended)) or 'sequence_lens'}: nothing can prove the "
                               f"mapping") from None
        try:
            session = ReferenceEvaluator(model)
        except Exception as e2:  # noqa: BLE001
            raise MappingError(f"neither ONNX Runtime ({why}) nor onnx.reference can load the original graph: "
                               f"{type(e2).__name__}: {e2}") from None
        mapping.notes.append(f"ONNX Runtime cannot run the original graph ({why}); the mapping is proven against "
                             f"onnx.reference.ReferenceEvaluator instead")
        return session, "onnx.reference.ReferenceEvaluator"
    if rewritten:
        note = (f"ONNX Runtime runs recurrent nodes of layout 0 only: the layout=1 node(s) {rewritten} run as layout=0 "
                f"between Transposes (the same computation)")
        if note not in mapping.notes:
            mapping.notes.append(note)
        return session, "ONNX Runtime (layout=1 nodes as layout=0 + Transpose)"
    return session, "ONNX Runtime"


def ort_graph(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """The graph with every layout=1 RNN/LSTM/GRU node as a layout=0 node between Transposes (ORT implements
    layout 0 only): X and initial_h / initial_c (B, T|D, .) -> (T|D, B, .); Y (T, D, B, H) -> (B, T, D, H);
    Y_h / Y_c (D, B, H) -> (B, D, H). Returns (graph, names of the rewritten nodes); the input is not changed."""
    if not any(n.op_type in ("RNN", "LSTM", "GRU") and any(a.name == "layout" and a.i == 1 for a in n.attribute)
               for n in model.graph.node):
        return model, []
    model = onnx.ModelProto.FromString(model.SerializeToString())
    nodes, rewritten = [], []
    for k, node in enumerate(model.graph.node):
        layout = next((a for a in node.attribute if a.name == "layout"), None)
        if node.op_type not in ("RNN", "LSTM", "GRU") or layout is None or layout.i != 1:
            nodes.append(node)
            continue
        name = node.name or f"{node.op_type}_{k}"
        rewritten.append(name)
        layout.i = 0
        for i in (0, 5, 6):  # X, initial_h, initial_c
            if i < len(node.input) and node.input[i] and not (i == 6 and node.op_type != "LSTM"):
                moved = f"{name}__layout0_in{i}"
                nodes.append(helper.make_node("Transpose", [node.input[i]], [moved], perm=[1, 0, 2],
                                              name=f"{name}__layout0_in{i}"))
                node.input[i] = moved
        after = []
        for i, out in enumerate(node.output):
            if out:
                moved = f"{name}__layout0_out{i}"
                after.append(helper.make_node("Transpose", [moved], [out], perm=[2, 0, 1, 3] if i == 0 else [1, 0, 2],
                                              name=f"{name}__layout0_out{i}"))
                node.output[i] = moved
        nodes += [node, *after]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model, rewritten


def state_dict_from_tensors(spec: dict, tensors: dict[str, np.ndarray]):
    """Canonical tensors -> a RecurrentModel (eval mode) holding them (the inverse of weights.canonical_tensors)."""
    import torch

    from train.model import RecurrentModel

    model = RecurrentModel(spec)
    sd = model.state_dict()
    if "embedding.weight" in tensors:
        sd["embedding.weight"] = torch.from_numpy(tensors["embedding.weight"].copy())
    for l, layer in enumerate(spec["layers"]):
        for d, suffix in (("fwd", ""), ("bwd", "_reverse"))[: specs.directions(layer)]:
            for ours, theirs in (("w_ih", "weight_ih"), ("w_hh", "weight_hh"), ("b_ih", "bias_ih"),
                                 ("b_hh", "bias_hh"), ("p", "peephole"), ("h0", "h0"), ("c0", "c0")):
                if f"layers.{l}.{d}.{ours}" in tensors:  # p, h0, c0: extensions (train/model.py's OnnxLayer)
                    sd[f"layers.{l}.{theirs}_l0{suffix}"] = torch.from_numpy(tensors[f"layers.{l}.{d}.{ours}"].copy())
    sd["head.weight"] = torch.from_numpy(tensors["head.weight"].copy())
    sd["head.bias"] = torch.from_numpy(tensors["head.bias"].copy())
    model.load_state_dict(sd)
    return model.eval()


def export_onnx(path, out_dir, *, task: str | None = None, precisions=("f32",), data=None, tolerance: float = 1e-5,
                steps: int = 1000, seed: int = 0, calibration=None) -> dict:
    """Map and prove an ONNX file, write `model.pt` (an rnnedge checkpoint) and `onnx_mapping.json` into out_dir,
    then export_checkpoint it there. Returns the report (report["module"]: the mapping, source "onnx")."""
    from export.pipeline import export_checkpoint, export_file_names, onnx_source, refuse_non_finite
    from train import outputs
    from train.checkpoint import save_checkpoint

    path = Path(path)
    model = load_onnx(path)
    refuse_non_finite({i.name: numpy_helper.to_array(i) for i in model.graph.initializer
                       if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)},
                      str(path))
    mapping = map_onnx(model, task=task, seed=seed)
    reference_graph, why_not = original_graph(model, mapping)
    described = {"onnx_file": str(path), **mapping.describe(), "original_parity": why_not or "measured"}
    # staged beside out_dir and moved in only once verified (export_checkpoint): out_dir is untouched on failure,
    # and the source file is never written over (an input of the export)
    with outputs.Staging(out_dir, outputs.EXPORT, inputs=[path],
                         writes=export_file_names(precisions, CHECKPOINT_FILE, MAPPING_FILE),
                         source=onnx_source(path)) as stage:
        save_checkpoint(stage.dir / CHECKPOINT_FILE, state_dict_from_tensors(mapping.spec, mapping.tensors),
                        metrics={"from_onnx": json.dumps(described)})
        (stage.dir / MAPPING_FILE).write_text(json.dumps(described, indent=2) + "\n")
        result = export_checkpoint(stage.dir / CHECKPOINT_FILE, out_dir, data=data, tolerance=tolerance,
                                   steps=steps, seed=seed, precisions=precisions, calibration=calibration,
                                   module=described, reference_graph=reference_graph, stage=stage)
        with open(stage.dir / "report.md", "a") as f:
            f.write(f"\nSource: ONNX file `{path}`, mapped by export/from_onnx.py; {mapping.proof_reference} on the "
                    f"original graph vs the rnnedge f32 runtime on random inputs: max abs difference "
                    f"{mapping.max_abs_diff:.3g}.\n")
            if why_not:
                f.write(f"\nThe artifacts were not measured against the original graph: {why_not}.\n")
    return result


def original_graph(model: onnx.ModelProto, mapping: OnnxMapping):
    """(export.pipeline.OriginalGraph of the original file, None) for the report's "original ONNX" rows, or
    (None, why not) when the parity streams cannot feed it (a fixed time axis).

    The graph ONNX Runtime runs (ort_graph: layout=1 nodes as layout=0 + Transpose). A graph that takes its
    sequence lengths as an input gets them computed from X's shape instead, every sequence whole: the parity
    streams run the original in groups of equal length, each cut to that length."""
    from export.pipeline import OriginalGraph

    dims = mapping.input_dims
    time_axis, batch_axis = (0, 1) if mapping.input_time_major else (1, 0)
    if dims[time_axis] is not None:
        return None, f"its time axis is fixed at {dims[time_axis]} steps"
    graph, _ = ort_graph(model)
    if mapping.lengths_name:
        graph = _full_lengths_graph(graph, mapping.input_name, mapping.lengths_name, time_axis, batch_axis)
    elem = next(i for i in model.graph.input if i.name == mapping.input_name).type.tensor_type.elem_type
    return OriginalGraph(graph.SerializeToString(), mapping.input_name, mapping.input_time_major,
                         mapping.output_time_major, elem == onnx.TensorProto.INT32, dims[batch_axis]), None


def _full_lengths_graph(model: onnx.ModelProto, x: str, lengths: str, time_axis: int, batch_axis: int):
    """The graph with its lengths input replaced by X's full length for every sequence (int32 (B,))."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    kept = [i for i in g.input if i.name != lengths]
    del g.input[:]
    g.input.extend(kept)
    p = f"{lengths}__full"
    g.initializer.extend([numpy_helper.from_array(np.array(time_axis, np.int64), f"{p}_time_axis"),
                          numpy_helper.from_array(np.array([batch_axis], np.int64), f"{p}_batch_axis")])
    made = [helper.make_node("Shape", [x], [f"{p}_shape"], name=f"{p}_shape"),
            helper.make_node("Gather", [f"{p}_shape", f"{p}_time_axis"], [f"{p}_steps"], name=f"{p}_steps"),
            helper.make_node("Gather", [f"{p}_shape", f"{p}_batch_axis"], [f"{p}_batch"], name=f"{p}_batch"),
            helper.make_node("Expand", [f"{p}_steps", f"{p}_batch"], [f"{p}_int64"], name=f"{p}_expand"),
            helper.make_node("Cast", [f"{p}_int64"], [lengths], to=onnx.TensorProto.INT32, name=f"{p}_cast")]
    nodes = made + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return model
