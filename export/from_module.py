"""A user's own `nn.Module` -> an rnnedge spec and RecurrentModel weights, proven equal on random inputs.

Users write their models the way tutorials do (nn.Embedding -> nn.RNN/LSTM/GRU -> nn.Linear) and should not
rewrite them in our spec. `map_module` traces the module's forward() with torch.fx, reads what the graph does
with each value, maps it to a spec plus a `RecurrentModel` state_dict, and then **proves** the mapping: it runs
the user's forward() and the mapped RecurrentModel on random inputs (several batch sizes and lengths, eval
mode) and refuses (ProofError, with the measured max abs difference) when they differ by more than 1e-5.
`export_module` writes the mapped model as an ordinary rnnedge checkpoint (`model.pt`, train/checkpoint.py)
plus `module_mapping.json` and runs the usual `export_checkpoint` on it.

What maps (anything else is refused with a MappingError naming the node or module):

  input      the forward's first argument; through an nn.Embedding (max_norm unset) -> tokens input (vocab,
             embed_dim, padding_idx); straight into the first RNN -> dense input (mean 0, std 1)
  layers     nn.RNN (tanh, relu), nn.LSTM (proj_size 0), nn.GRU; any num_layers, batch_first, bias (bias=False
             -> zero biases), bidirectional; several recurrent modules chained output -> input; an initial
             state made with torch.zeros / new_zeros (the default) is accepted
  glue       nn.Dropout / F.dropout / nn.Identity (identity at inference), .contiguous() .float() .to(...),
             transpose(0, 1) / permute(1, 0[, 2]) of sequences (the layout is followed: a batch_first=False
             model takes (T, B[, F]) input and, per step, returns (T, B, out), exactly as its forward() does)
  reading    `output` (every step), `output[:, t, a:b]` with t = -1 or 0 (`output[t]` time-major),
             `h_n[k]` of the LAST recurrent layer (h_n[-1], h_n[-2]; c_n is refused), `.squeeze(0)` of a
             one-entry h_n, torch.cat of those along the feature dim
  head       at most one nn.Linear (bias or not); none -> an identity head
  activation softmax over the last dim, sigmoid (torch., F., Tensor methods, nn.Softmax / nn.Sigmoid)

Which head the spec gets. The spec's `last_step` head reads each direction's *final* state: the forward
direction at t = T-1 and, for a bidirectional layer, the backward direction at t = 0 (runtime/spec.py,
RecurrentModel.final_state). So `h_n[-1]`, `torch.cat((h_n[-2], h_n[-1]), 1)`, `output[:, -1, :H]` and
`output[:, 0, H:]` (and any mix) map to `last_step`; the head's weight columns are placed at the spec
columns the user's features come from (columns the user never reads get zero weight).

The pitfall: for a bidirectional RNN, `output[:, -1, :]` is the forward direction at T-1 concatenated with
the backward direction at T-1, and the backward direction at T-1 has seen ONE token (the last). That is not
the spec's `last_step` (backward at 0), and no `last_step` head can express it. We keep the user's semantics
exactly instead of silently "fixing" them: the model is mapped to an `every_step` head with the user's
weights, and the user's forward() is the mapped model's (and the runtime's) output at the LAST step,
`runtime.load(...).run(X)[:, -1]` (`Mapping.read_step == "last"`; `output[:, 0, :]` likewise maps to step 0).
The proof compares exactly that, export's parity report checks the every-step outputs (which include it),
and a warning explains the pitfall and the usual fix (`torch.cat((h_n[-2], h_n[-1]), dim=1)`, or
`output[:, 0, H:]` for the backward half), which would map to `last_step`. The price: such a model's runtime
output has a time axis, and the every-step head does T times the head's work.

Layout: `Mapping.input_time_major` says the user's forward takes (T, B[, F]) and `output_time_major` that a
per-step output comes back (T, B, out); the rnnedge model and the runtime always use (B, T[, F]).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import operator
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import fx, nn

from runtime import spec as specs
from train.checkpoint import save_checkpoint
from train.model import RecurrentModel

PROOF_TOLERANCE = 1e-5
PROOF_SHAPES = ((1, 1), (3, 5), (2, 17), (4, 40))  # (batch, steps) of the random proof inputs
MAPPING_FILE = "module_mapping.json"
CHECKPOINT_FILE = "model.pt"
SUPPORTED = ("rnnedge maps nn.Embedding / nn.RNN / nn.LSTM / nn.GRU / nn.Linear, dropout, and a final softmax "
             "or sigmoid")
_RECURRENT = (nn.RNN, nn.LSTM, nn.GRU)
_MODULES = (*_RECURRENT, nn.Embedding, nn.Linear, nn.Dropout, nn.AlphaDropout, nn.Identity, nn.Softmax, nn.Sigmoid)


class MappingError(ValueError):
    """The module's forward() does something the rnnedge spec cannot express (the message names it)."""


class ProofError(MappingError):
    """The mapped model does not reproduce the user's forward(); carries the measured difference."""

    def __init__(self, message: str, max_abs_diff: float):
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


class PitfallWarning(UserWarning):
    """The user's forward() does something legal but probably unintended; export reproduces it exactly."""


@dataclass
class Mapping:
    """What map_module found; unpacks as (spec, state_dict, warnings)."""

    spec: dict
    state_dict: dict[str, torch.Tensor]
    warnings: list[str]
    read_step: str | None = None  # None: forward() is the mapped model's output; "last"/"first": its [:, -1]/[:, 0]
    input_time_major: bool = False  # forward() takes (T, B[, F])
    output_time_major: bool = False  # forward() returns (T, B, out) (every_step heads only)
    max_abs_diff: float | None = None  # the proof's measured difference
    notes: list[str] = field(default_factory=list)

    def __iter__(self):
        return iter((self.spec, self.state_dict, self.warnings))

    def user_output(self, y: torch.Tensor) -> torch.Tensor:
        """The mapped model's (B, T, out) or (B, out) output -> what the user's forward() returns."""
        if self.read_step == "last":
            return y[:, -1]
        if self.read_step == "first":
            return y[:, 0]
        if y.dim() == 3 and self.output_time_major:
            return y.transpose(0, 1)
        return y

    def describe(self) -> dict:
        return {"spec_head_on": self.spec["head"]["on"], "read_step": self.read_step,
                "input_time_major": self.input_time_major, "output_time_major": self.output_time_major,
                "proof_max_abs_diff": self.max_abs_diff, "proof_tolerance": PROOF_TOLERANCE,
                "warnings": self.warnings, "notes": self.notes}


# -- abstract values of the traced graph -------------------------------------------------------------------------
@dataclass
class _Layer:
    module: str  # the user's module name
    rnn: nn.Module
    index: int  # layer within that module
    cell: str


@dataclass
class _Chain:
    """The recurrent stack a value comes from."""

    input: dict | None = None  # spec["input"]
    embedding: nn.Embedding | None = None
    layers: list[_Layer] = field(default_factory=list)
    input_time_major: bool | None = None
    modules: list[str] = field(default_factory=list)

    @property
    def hidden(self) -> int:
        return self.layers[-1].rnn.hidden_size

    @property
    def dirs(self) -> int:
        return 2 if self.layers[-1].rnn.bidirectional else 1


@dataclass
class _Input:
    swapped: bool = False  # transposed (time <-> batch) relative to the forward's input


@dataclass
class _Seq:
    """A sequence (embedded input, or a recurrent output); pieces: (layer, dir, lo, hi) columns, None = raw."""

    chain: _Chain
    swapped: bool
    pieces: tuple | None

    @property
    def time_major(self) -> bool:
        return bool(self.chain.input_time_major) != self.swapped


@dataclass
class _Vec:
    """One vector per sequence: pieces (layer, dir, time "last"/"first", lo, hi)."""

    chain: _Chain
    pieces: tuple


@dataclass
class _RnnOut:
    chain: _Chain
    first: int  # chain layer index of this module's layer 0
    rnn: nn.Module
    name: str
    part: str | None = None  # None: the (output, state) tuple; "state": (h_n, c_n) of an LSTM


@dataclass
class _Final:
    """h_n (kind "h") or c_n (kind "c") of one recurrent module."""

    out: _RnnOut
    kind: str


@dataclass
class _Head:
    chain: _Chain
    on: str  # "seq" or "vec"
    pieces: tuple
    weight: torch.Tensor
    bias: torch.Tensor
    name: str
    swapped: bool = False
    activation: str = "none"


class _Zeros:
    pass


class _Shape:
    pass


@dataclass
class _Error:
    message: str


def _width(pieces) -> int:
    return sum(p[-1] - p[-2] for p in pieces)


def _select(pieces, lo: int, hi: int):
    """Columns [lo, hi) of a concatenation of pieces."""
    out, offset = [], 0
    for p in pieces:
        a, b = p[-2], p[-1]
        n = b - a
        s, e = max(lo - offset, 0), min(hi - offset, n)
        if s < e:
            out.append((*p[:-2], a + s, a + e))
        offset += n
    return tuple(out)


def _describe_call(node: fx.Node) -> str:
    if node.op == "call_method":
        what = f"Tensor.{node.target}"
    else:
        module = getattr(node.target, "__module__", None) or ""
        name = getattr(node.target, "__name__", str(node.target))
        what = f"torch.{name}" if module.startswith("torch") and "functional" not in module else (
            f"F.{name}" if "functional" in module else name)
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 and isinstance(node.args[1], int) else None)
    return f"{what} over dim {dim}" if dim is not None else what


_IDENTITY_METHODS = {"contiguous", "float", "to", "detach", "clone"}
_DROPOUT_FUNCTIONS = {F.dropout, torch.dropout, F.alpha_dropout}
_SOFTMAX = {F.softmax, torch.softmax}
_SIGMOID = {F.sigmoid, torch.sigmoid}
_ZEROS = {torch.zeros, torch.zeros_like}


class _Mapper:
    def __init__(self, module: nn.Module):
        self.module = module
        self.modules = dict(module.named_modules())
        self.warnings: list[str] = []
        self.used_rnns: set[str] = set()
        self.linears = 0

    # -- tracing -----------------------------------------------------------------------------------------------
    def trace(self) -> fx.Graph:
        params = list(inspect.signature(self.module.forward).parameters.values())
        if not params:
            raise MappingError(f"{type(self.module).__name__}.forward() takes no input")
        concrete = {p.name: p.default for p in params[1:] if p.default is not inspect.Parameter.empty}
        required = [p.name for p in params[1:] if p.default is inspect.Parameter.empty
                    and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if required:
            raise MappingError(f"{type(self.module).__name__}.forward() needs more than one input ({params[0].name}, "
                               f"{', '.join(required)}); rnnedge models take one input sequence")
        try:
            return fx.symbolic_trace(self.module, concrete_args=concrete or None).graph
        except Exception as e:  # noqa: BLE001 - fx raises many types; name what failed
            raise MappingError(f"could not trace {type(self.module).__name__}.forward() with torch.fx "
                               f"({type(e).__name__}: {e}); rnnedge needs a forward() without Python control flow "
                               f"on tensor values") from None

    def run(self) -> tuple[_Head, str]:
        env: dict[fx.Node, object] = {}
        placeholders = 0
        output = None
        for node in self.trace().nodes:
            if node.op == "placeholder":
                env[node] = _Input() if placeholders == 0 else _Error(
                    f"forward() argument {node.name!r} is used; rnnedge models take one input sequence")
                placeholders += 1
                continue
            if node.op == "output":
                output = node.args[0]
                break
            args = fx.node.map_arg(node.args, lambda n: env[n])
            kwargs = fx.node.map_arg(node.kwargs, lambda n: env[n])
            try:
                env[node] = self.evaluate(node, args, kwargs)
            except MappingError as e:
                env[node] = _Error(str(e))
        if isinstance(output, fx.Node):
            value = env[output]
        else:
            value = _Error("forward() returns a tuple or constant; rnnedge models return one tensor (the head's "
                           "output)")
        if isinstance(value, _Error):
            raise MappingError(value.message)
        head = self.as_head(value, "forward()'s result")
        return head, type(self.module).__name__

    # -- one node ----------------------------------------------------------------------------------------------
    def evaluate(self, node: fx.Node, args, kwargs):
        if node.op == "call_module" and not isinstance(self.modules[node.target], _MODULES):
            raise MappingError(f"module {node.target!r} (nn.{type(self.modules[node.target]).__name__}) is not "
                               f"supported: {SUPPORTED}")
        for v in list(args) + list(kwargs.values()):
            for item in (v if isinstance(v, (tuple, list)) else [v]):
                if isinstance(item, _Error):
                    raise MappingError(item.message)
        if node.op == "call_module":
            return self.call_module(node, self.modules[node.target], args, kwargs)
        if node.op == "get_attr":
            raise MappingError(f"node {node.name!r} reads the attribute self.{node.target} in forward(), which "
                               f"rnnedge cannot map; {SUPPORTED}")
        target = node.target
        first = args[0] if args else None
        if node.op == "call_function" and target is operator.getitem:
            return self.getitem(node, first, args[1])
        if node.op == "call_function" and target is getattr:
            return _Shape() if args[1] in ("shape", "device", "dtype") else self.unsupported(node, first)
        if node.op == "call_function" and target in _ZEROS or node.op == "call_method" and target == "new_zeros":
            return _Zeros()
        if node.op == "call_method" and target == "size":
            return _Shape()
        if isinstance(first, (_Shape, int)):
            return _Shape()
        if node.op == "call_method" and target in _IDENTITY_METHODS and isinstance(
                first, (_Input, _Seq, _Vec, _Head, _Zeros, _Final)):
            return first
        if node.op == "call_function" and target in _DROPOUT_FUNCTIONS:
            return first
        if node.op == "call_function" and target is torch.cat:
            return self.cat(node, args, kwargs)
        if (node.op == "call_function" and target in _SOFTMAX) or (node.op == "call_method" and target == "softmax"):
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
            return self.activate(node, first, "softmax", dim)
        if (node.op == "call_function" and target in _SIGMOID) or (node.op == "call_method" and target == "sigmoid"):
            return self.activate(node, first, "sigmoid", None)
        if node.op == "call_method" and target in ("transpose", "permute"):
            return self.transpose(node, first, args[1:])
        if node.op == "call_method" and target == "squeeze":
            return self.squeeze(node, first, args[1:] or tuple(kwargs.values()))
        return self.unsupported(node, first)

    def unsupported(self, node: fx.Node, first):
        what = _describe_call(node)
        if isinstance(first, (_Seq, _RnnOut)):
            reason = "rnnedge heads read one time step or every step"
        elif isinstance(first, (_Vec, _Final)):
            reason = "rnnedge feeds the recurrent state straight into one nn.Linear head"
        elif isinstance(first, _Head):
            reason = "rnnedge's head is one nn.Linear followed by softmax, sigmoid or nothing"
        else:
            reason = SUPPORTED
        raise MappingError(f"node {node.name!r} ({what}) in forward() is not supported: {reason}")

    def call_module(self, node, mod, args, kwargs):
        first = args[0] if args else None
        kind = type(mod).__name__
        if isinstance(mod, (nn.Dropout, nn.Identity, nn.AlphaDropout)):
            return first
        if isinstance(mod, nn.Embedding):
            if not isinstance(first, _Input):
                raise MappingError(f"module {node.target!r} (nn.Embedding) must read forward()'s input directly")
            if mod.max_norm is not None:
                raise MappingError(f"module {node.target!r} (nn.Embedding) has max_norm={mod.max_norm}: it rewrites "
                                   f"its weights during forward(), which rnnedge cannot reproduce")
            chain = _Chain(input={"kind": "tokens", "vocab": mod.num_embeddings, "embed_dim": mod.embedding_dim,
                                  "padding_idx": mod.padding_idx}, embedding=mod)
            return _Seq(chain, first.swapped, None)
        if isinstance(mod, _RECURRENT):
            return self.recurrent(node, mod, first, args[1:], kwargs)
        if isinstance(mod, nn.Linear):
            return self.linear(node, mod, first)
        if isinstance(mod, nn.Softmax):
            return self.activate(node, first, "softmax", mod.dim)
        if isinstance(mod, nn.Sigmoid):
            return self.activate(node, first, "sigmoid", None)
        raise MappingError(f"module {node.target!r} (nn.{kind}) is not supported: {SUPPORTED}")

    def recurrent(self, node, rnn, first, rest, kwargs):
        name = node.target
        kind = type(rnn).__name__
        if getattr(rnn, "proj_size", 0):
            raise MappingError(f"module {name!r} (nn.LSTM with proj_size={rnn.proj_size}) is not supported: rnnedge "
                               f"LSTM layers have no projection")
        if name in self.used_rnns:
            raise MappingError(f"module {name!r} (nn.{kind}) is called twice in forward(); rnnedge stacks each "
                               f"recurrent layer once")
        hx = rest[0] if rest else kwargs.get("hx")
        states = hx if isinstance(hx, (tuple, list)) else [hx]
        if hx is not None and not all(isinstance(s, _Zeros) for s in states):
            raise MappingError(f"module {name!r} (nn.{kind}) is given an initial state in forward(); rnnedge "
                               f"starts every sequence from zeros (only torch.zeros initial states map)")
        if isinstance(first, _Input):
            chain = _Chain(input={"kind": "dense", "features": rnn.input_size})
            seq = _Seq(chain, first.swapped, None)
        elif isinstance(first, _Seq):
            seq = first
            chain = seq.chain
            if chain.layers and seq.pieces != self.full_pieces(chain):
                raise MappingError(f"module {name!r} (nn.{kind}) reads part of the previous recurrent output; "
                                   f"rnnedge stacks whole layers")
        else:
            raise MappingError(f"module {name!r} (nn.{kind}) reads {self.what(first)}; rnnedge feeds each recurrent "
                               f"layer the input sequence or the previous layer's whole output")
        if chain.layers and chain.layers[-1].module not in self.used_rnns:
            raise MappingError(f"module {name!r} (nn.{kind}) does not read the output of the layer before it")
        expects_time_major = not rnn.batch_first
        if chain.input_time_major is None:
            chain.input_time_major = expects_time_major != seq.swapped
        elif seq.time_major != expects_time_major:
            raise MappingError(f"module {name!r} (nn.{kind}, batch_first={rnn.batch_first}) is fed a sequence in the "
                               f"other layout")
        if isinstance(rnn, nn.LSTM):
            cell = "lstm"
        elif isinstance(rnn, nn.GRU):
            cell = "gru"
        else:
            cell = "rnn_tanh" if rnn.nonlinearity == "tanh" else "rnn_relu"
        self.used_rnns.add(name)
        first_layer = len(chain.layers)
        chain.layers += [_Layer(name, rnn, k, cell) for k in range(rnn.num_layers)]
        chain.modules.append(name)
        return _RnnOut(chain, first_layer, rnn, name)

    def full_pieces(self, chain: _Chain):
        layer, h = len(chain.layers) - 1, chain.hidden
        return tuple((layer, d, 0, h) for d in ("fwd", "bwd")[: chain.dirs])

    def what(self, value) -> str:
        return {_Vec: "one vector per sequence", _Head: "the head's output", _Final: "a final state",
                _RnnOut: "a recurrent module's (output, state) tuple"}.get(type(value), "a value it cannot map")

    def getitem(self, node, value, index):
        if isinstance(value, _RnnOut):
            if value.part is None:
                if index == 0:
                    return _Seq(value.chain, value.chain.input_time_major != (not value.rnn.batch_first),
                                self.full_pieces_of(value))
                if index == 1:
                    if isinstance(value.rnn, nn.LSTM):
                        return _RnnOut(value.chain, value.first, value.rnn, value.name, part="state")
                    return _Final(value, "h")
            elif index in (0, 1):
                return _Final(value, "h" if index == 0 else "c")
            raise MappingError(f"node {node.name!r} indexes {value.name!r}'s result with {index!r}")
        if isinstance(value, _Final):
            return self.final(node, value, index)
        if isinstance(value, _Seq):
            return self.index_seq(node, value, index)
        if isinstance(value, _Vec):
            index = index if isinstance(index, tuple) else (index,)
            if len(index) > 2 or not _is_all(index[0]):
                raise MappingError(f"node {node.name!r} indexes a per-sequence vector with {index!r}: rnnedge maps "
                                   f"feature slices [:, a:b] only")
            return _Vec(value.chain, self.slice_pieces(node, value.pieces, index[1] if len(index) > 1 else None))
        if isinstance(value, (_Shape, tuple, list)):
            return _Shape()
        raise MappingError(f"node {node.name!r} (indexing) in forward() is not supported on {self.what(value)}")

    def full_pieces_of(self, out: _RnnOut):
        last = out.first + out.rnn.num_layers - 1
        h = out.rnn.hidden_size
        return tuple((last, d, 0, h) for d in ("fwd", "bwd")[: (2 if out.rnn.bidirectional else 1)])

    def final(self, node, value: _Final, index):
        out = value.out
        name = "c_n" if value.kind == "c" else "h_n"
        if value.kind == "c":
            raise MappingError(f"node {node.name!r} reads {out.name!r}'s cell state c_n: rnnedge heads read the "
                               f"hidden state (h_n or the output)")
        rest = ()
        if isinstance(index, tuple):
            index, rest = index[0], index[1:]
        dirs = 2 if out.rnn.bidirectional else 1
        entries = out.rnn.num_layers * dirs
        if not isinstance(index, int) or not -entries <= index < entries:
            raise MappingError(f"node {node.name!r} indexes {out.name!r}'s {name} with {index!r}; rnnedge maps "
                               f"{name}[k] for one k (e.g. {name}[-1], or torch.cat of {name}[-2] and {name}[-1])")
        k = index % entries
        layer, direction = out.first + k // dirs, ("fwd", "bwd")[k % dirs]
        time = "last" if direction == "fwd" else "first"
        vec = _Vec(out.chain, ((layer, direction, time, 0, out.rnn.hidden_size),))
        if rest:
            if len(rest) > 2 or not _is_all(rest[0]):
                raise MappingError(f"node {node.name!r} indexes {name} with {(index, *rest)!r}")
            vec = _Vec(vec.chain, self.slice_pieces(node, vec.pieces, rest[1] if len(rest) > 1 else None))
        return vec

    def squeeze(self, node, value, dims):
        if isinstance(value, _Final) and value.kind == "h" and dims in ((), (0,)):
            entries = value.out.rnn.num_layers * (2 if value.out.rnn.bidirectional else 1)
            if entries == 1:
                return self.final(node, value, 0)
        if isinstance(value, (_Seq, _Vec, _Head, _Input)) and dims == ():
            return value  # a squeeze of a batch of one; the proof runs several batch sizes
        raise MappingError(f"node {node.name!r} ({_describe_call(node)}) in forward() is not supported on "
                           f"{self.what(value)}")

    def slice_pieces(self, node, pieces, s):
        if s is None or _is_all(s):
            return pieces
        width = _width(pieces)
        if not isinstance(s, slice) or s.step not in (None, 1):
            raise MappingError(f"node {node.name!r} selects features with {s!r}; rnnedge maps contiguous slices a:b")
        lo, hi, _ = s.indices(width)
        return _select(pieces, lo, hi)

    def index_seq(self, node, seq: _Seq, index):
        if seq.chain.input_time_major is None or not seq.chain.layers:
            raise MappingError(f"node {node.name!r} indexes the input sequence before any recurrent layer")
        index = index if isinstance(index, tuple) else (index,)
        if any(i is Ellipsis for i in index) or len(index) > 3:
            raise MappingError(f"node {node.name!r} indexes a sequence with {index!r}")
        index = tuple(index) + (slice(None),) * (3 - len(index))
        time, batch = (index[0], index[1]) if seq.time_major else (index[1], index[0])
        if not _is_all(batch):
            raise MappingError(f"node {node.name!r} selects part of the batch; rnnedge treats every sequence alike")
        pieces = self.slice_pieces(node, seq.pieces, index[2])
        if _is_all(time):
            return _Seq(seq.chain, seq.swapped, pieces)
        if time in (-1, 0):
            where = "last" if time == -1 else "first"
            return _Vec(seq.chain, tuple((layer, d, where, lo, hi) for layer, d, lo, hi in pieces))
        raise MappingError(f"node {node.name!r} reads time step {time!r} of {seq.chain.layers[-1].module!r}'s output: "
                           f"rnnedge heads read every step, the last step (-1) or the first (0)")

    def transpose(self, node, value, dims):
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else tuple(dims)
        swap = dims in ((0, 1), (1, 0), (1, 0, 2), (1, 0, -1))
        if isinstance(value, (_Input, _Seq)) and swap:
            if isinstance(value, _Input):
                return _Input(not value.swapped)
            return _Seq(value.chain, not value.swapped, value.pieces)
        if isinstance(value, _Head) and value.on == "seq" and swap:
            value.swapped = not value.swapped
            return value
        raise MappingError(f"node {node.name!r} ({_describe_call(node)} {dims}) in forward() is not supported: rnnedge "
                           f"follows a time <-> batch swap only")

    def cat(self, node, args, kwargs):
        parts = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        if not parts:
            raise MappingError(f"node {node.name!r} (torch.cat) has nothing to concatenate")
        if all(isinstance(p, _Vec) for p in parts) and dim in (1, -1):
            chains = {id(p.chain) for p in parts}
            if len(chains) == 1:
                return _Vec(parts[0].chain, tuple(x for p in parts for x in p.pieces))
        if (all(isinstance(p, _Seq) and p.pieces is not None for p in parts) and dim in (2, -1)
                and len({id(p.chain) for p in parts}) == 1 and len({p.swapped for p in parts}) == 1):
            return _Seq(parts[0].chain, parts[0].swapped, tuple(x for p in parts for x in p.pieces))
        raise MappingError(f"node {node.name!r} (torch.cat over dim {dim}) in forward() is not supported: rnnedge "
                           f"concatenates final states or outputs of one recurrent stack along the feature dim")

    def linear(self, node, lin: nn.Linear, value):
        if isinstance(value, _Head):
            raise MappingError(f"module {node.target!r} (nn.Linear) is a second linear layer after "
                               f"{value.name!r}: rnnedge's head is one nn.Linear")
        if not isinstance(value, (_Seq, _Vec)) or (isinstance(value, _Seq) and not value.chain.layers):
            raise MappingError(f"module {node.target!r} (nn.Linear) reads {self.what(value)}; rnnedge's head reads "
                               f"the recurrent output")
        if _width(value.pieces) != lin.in_features:
            raise MappingError(f"module {node.target!r} (nn.Linear) has in_features={lin.in_features} but reads "
                               f"{_width(value.pieces)} features")
        weight = lin.weight.detach().float().clone()
        bias = lin.bias.detach().float().clone() if lin.bias is not None else torch.zeros(lin.out_features)
        on = "seq" if isinstance(value, _Seq) else "vec"
        return _Head(value.chain, on, value.pieces, weight, bias, node.target,
                     swapped=value.swapped if on == "seq" else False)

    def as_head(self, value, where: str) -> _Head:
        if isinstance(value, _Head):
            return value
        if isinstance(value, (_Seq, _Vec)) and value.chain.layers:
            n = _width(value.pieces)
            on = "seq" if isinstance(value, _Seq) else "vec"
            return _Head(value.chain, on, value.pieces, torch.eye(n), torch.zeros(n), "(identity)",
                         swapped=value.swapped if on == "seq" else False)
        if isinstance(value, _Final):
            raise MappingError(f"{where} is {value.out.name!r}'s whole h_n stack; rnnedge maps one entry "
                               f"(e.g. h_n[-1]) or torch.cat of entries")
        raise MappingError(f"{where} is {self.what(value)}, which rnnedge cannot map; {SUPPORTED}")

    def activate(self, node, value, activation: str, dim):
        if isinstance(value, _Head) and value.activation != "none":
            raise MappingError(f"node {node.name!r} applies {activation} after {value.activation}: rnnedge heads "
                               f"have one activation")
        head = self.as_head(value, f"the input of node {node.name!r} ({activation})")
        if activation == "softmax":
            last = 2 if head.on == "seq" else 1
            if dim not in (-1, last):
                raise MappingError(f"node {node.name!r} (softmax over dim {dim}) is not supported: rnnedge's softmax "
                                   f"runs over the classes (dim=-1)")
        head.activation = activation
        return head


def _is_all(s) -> bool:
    return isinstance(s, slice) and s.start is None and s.stop is None and s.step is None


# -- from the abstract head to a spec and weights -----------------------------------------------------------------
def _build(head: _Head, name: str, task: str) -> Mapping:
    chain = head.chain
    last = len(chain.layers) - 1
    H, dirs = chain.hidden, chain.dirs
    for layer, *_ in head.pieces:
        if layer != last:
            src = chain.layers[layer]
            raise MappingError(f"{name}'s head reads layer {src.index} of {src.module!r}, which is not the last "
                               f"recurrent layer; rnnedge's head reads the last layer only")
    warnings_, notes = [], []
    read_step = None
    if head.on == "seq":
        on = "every_step"
    else:
        at = {(d, t) for _, d, t, _, _ in head.pieces}
        if at <= {("fwd", "last"), ("bwd", "first")}:
            on = "last_step"
        elif len({t for _, t in at}) == 1:
            on = "every_step"
            read_step = next(iter(at))[1]
            where = "T-1" if read_step == "last" else "0"
            cols = ", ".join(f"{d} at t={where}" for d, _ in sorted(at))
            notes.append(f"the head reads {cols}: mapped to an every_step head; {name}.forward() equals the rnnedge "
                         f"model's and the runtime's output at step {where} (run(X)[:, {-1 if read_step == 'last' else 0}])")
            rnn = chain.layers[-1].module
            if ("bwd", "last") in at:
                warnings_.append(
                    f"{name}.forward() reads output[:, -1, :] of the bidirectional {rnn!r}: its backward half at "
                    f"t=T-1 has seen only the last token, not the sequence. rnnedge reproduces this exactly (the "
                    f"exported model has an every_step head; your forward() is its output at the last step, "
                    f"runtime run(X)[:, -1]). The usual fix: read each direction's final state, "
                    f"torch.cat((hidden[-2], hidden[-1]), dim=1), or "
                    f"torch.cat((output[:, -1, :H], output[:, 0, H:]), dim=1) (output[:, 0, H:] is the backward "
                    f"half's final state); that maps to rnnedge's last_step head.")
            if ("fwd", "first") in at:
                warnings_.append(f"{name}.forward() reads the forward direction of {rnn!r} at t=0, where it has seen "
                                 f"only the first token; the usual fix is output[:, -1] or hidden[-1]")
        else:
            raise MappingError(f"{name}'s head reads {sorted(at)} (direction, step): rnnedge heads read each "
                               f"direction's final state or one step of the output")
    out = head.weight.shape[0]
    weight = torch.zeros(out, H * dirs)
    offset = 0
    for _, d, *_rest in head.pieces:
        lo, hi = _rest[-2], _rest[-1]
        base = 0 if d == "fwd" else H
        weight[:, base + lo: base + hi] += head.weight[:, offset: offset + hi - lo]
        offset += hi - lo
    layers = [{"cell": layer.cell, "hidden": layer.rnn.hidden_size, "bidirectional": bool(layer.rnn.bidirectional)}
              for layer in chain.layers]
    dropout = max([float(layer.rnn.dropout) for layer in chain.layers] + [0.0])
    spec = specs.validate({"version": 1, "input": chain.input, "layers": layers,
                           "head": {"out": out, "on": on, "activation": head.activation}, "task": task,
                           "dropout": dropout if dropout < 1 else 0.0})
    sd: dict[str, torch.Tensor] = {}
    if chain.input["kind"] == "dense":
        sd["norm_mean"] = torch.zeros(chain.input["features"])
        sd["norm_std"] = torch.ones(chain.input["features"])
    else:
        sd["embedding.weight"] = chain.embedding.weight.detach().float().clone()
    for l, layer in enumerate(chain.layers):
        rnn, k = layer.rnn, layer.index
        for suffix in ("", "_reverse")[: (2 if rnn.bidirectional else 1)]:
            for kind in ("ih", "hh"):
                w = getattr(rnn, f"weight_{kind}_l{k}{suffix}").detach().float()
                sd[f"layers.{l}.weight_{kind}_l0{suffix}"] = w.clone()
                b = getattr(rnn, f"bias_{kind}_l{k}{suffix}", None) if rnn.bias else None
                sd[f"layers.{l}.bias_{kind}_l0{suffix}"] = (b.detach().float().clone() if b is not None
                                                             else torch.zeros(w.shape[0]))
    sd["head.weight"] = weight
    sd["head.bias"] = head.bias.clone()
    head_swapped = head.on == "seq" and head.swapped
    output_time_major = head.on == "seq" and (bool(chain.input_time_major) != head_swapped)
    return Mapping(spec, sd, warnings_, read_step=read_step, input_time_major=bool(chain.input_time_major),
                   output_time_major=output_time_major, notes=notes)


# -- the public API ----------------------------------------------------------------------------------------------
def map_module(module: nn.Module, *, task: str = "classify", prove: bool = True, seed: int = 0) -> Mapping:
    """Map a user's module to (spec, RecurrentModel state_dict, warnings) and prove it (see the module docstring).

    Raises MappingError naming what cannot be mapped, ProofError (a MappingError) when the mapped model differs
    from the module's forward() by more than PROOF_TOLERANCE. The returned Mapping unpacks as
    `spec, state_dict, warnings = map_module(m)` and carries the proof's `max_abs_diff`.
    """
    if not isinstance(module, nn.Module):
        raise MappingError(f"expected a torch.nn.Module, got {type(module).__name__}")
    mapper = _Mapper(module)
    head, name = mapper.run()
    mapping = _build(head, name, task)
    if prove:
        mapping.max_abs_diff = prove_mapping(module, mapping, seed=seed)
    return mapping


def mapped_model(mapping: Mapping) -> RecurrentModel:
    model = RecurrentModel(mapping.spec)
    model.load_state_dict(mapping.state_dict)
    return model.eval()


def random_input(spec: dict, batch: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    """(B, T, F) float32 or (B, T) int64 ids in [0, vocab)."""
    inp = spec["input"]
    if inp["kind"] == "dense":
        return torch.randn(batch, steps, inp["features"], generator=generator)
    return torch.randint(0, inp["vocab"], (batch, steps), generator=generator)


@torch.no_grad()
def prove_mapping(module: nn.Module, mapping: Mapping, seed: int = 0, shapes=PROOF_SHAPES,
                  tolerance: float = PROOF_TOLERANCE) -> float:
    """Run the user's forward() and the mapped model on random inputs; the max abs difference, or ProofError."""
    model = mapped_model(mapping)
    was_training = module.training
    module.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    try:
        for batch, steps in shapes:
            x = random_input(mapping.spec, batch, steps, generator)
            user_x = x.transpose(0, 1).contiguous() if mapping.input_time_major else x
            try:
                want = module(user_x)
            except Exception as e:  # noqa: BLE001 - the user's own forward failed on a valid input
                raise ProofError(f"{type(module).__name__}.forward() failed on a random input of shape "
                                 f"{tuple(user_x.shape)}: {type(e).__name__}: {e}", float("inf")) from None
            got = mapping.user_output(model(x))
            if not isinstance(want, torch.Tensor) or tuple(want.shape) != tuple(got.shape):
                shape = tuple(want.shape) if isinstance(want, torch.Tensor) else type(want).__name__
                raise ProofError(f"{type(module).__name__}.forward() returned {shape} on input "
                                 f"{tuple(user_x.shape)}; the mapped model gives {tuple(got.shape)}", float("inf"))
            diff = float((want.float() - got).abs().max()) if want.numel() else 0.0
            if not diff <= tolerance:
                raise ProofError(f"the mapped rnnedge model does not reproduce {type(module).__name__}.forward(): "
                                 f"max abs difference {diff:.3g} > {tolerance:g} on random input of shape "
                                 f"{tuple(user_x.shape)}; nothing was exported", diff)
            worst = max(worst, diff)
    finally:
        torch.set_num_threads(threads)
        module.train(was_training)
    return worst


def export_module(module: nn.Module, out_dir, *, task: str = "classify", precisions=("f32",), data=None,
                  tolerance: float = 1e-5, steps: int = 1000, seed: int = 0, calibration=None, on_warning=None,
                  source: str | None = None) -> dict:
    """Map and prove a user's module, write `model.pt` (an rnnedge checkpoint) and `module_mapping.json` into
    out_dir, then export_checkpoint it there. Returns the report (with report["module"] = the mapping).

    on_warning(message) receives each pitfall warning; default: warnings.warn(message, PitfallWarning).
    """
    from export.pipeline import export_checkpoint, export_file_names, module_source, refuse_non_finite
    from train import outputs

    refuse_non_finite(module.state_dict(), source or type(module).__name__)
    mapping = map_module(module, task=task, seed=seed)
    for message in mapping.warnings:
        if on_warning is None:
            warnings.warn(message, PitfallWarning, stacklevel=2)
        else:
            on_warning(message)
    described = {"module": source or type(module).__name__, **mapping.describe()}
    # staged beside out_dir and moved in only once verified (export_checkpoint): out_dir is untouched on failure
    with outputs.Staging(out_dir, outputs.EXPORT, writes=export_file_names(precisions, CHECKPOINT_FILE, MAPPING_FILE),
                         source=module_source(source or f"{type(module).__module__}:{type(module).__qualname__}")) as stage:
        save_checkpoint(stage.dir / CHECKPOINT_FILE, mapped_model(mapping),
                        metrics={"from_module": json.dumps(described)})
        (stage.dir / MAPPING_FILE).write_text(json.dumps(described, indent=2) + "\n")
        return export_checkpoint(stage.dir / CHECKPOINT_FILE, out_dir, data=data, tolerance=tolerance, steps=steps,
                                 seed=seed, precisions=precisions, calibration=calibration, module=described,
                                 stage=stage)


# -- loading a user's class (the CLI) ----------------------------------------------------------------------------
def load_user_module(target: str, checkpoint, init_args: str | dict | None) -> nn.Module:
    """`pkg.mod:Class` or `path/to/file.py:Class`, built with init_args (a JSON object) and loaded with the
    state_dict in `checkpoint` (torch.load(weights_only=True); a bare state_dict, or a dict holding one under
    'state_dict' or 'model_state_dict'). Raises MappingError with a clear message on any bad input."""
    where, sep, cls_name = target.rpartition(":")
    if not sep or not where or not cls_name:
        raise MappingError(f"--module {target!r}: expected 'package.module:Class' or 'path/to/file.py:Class'")
    if isinstance(init_args, str):
        try:
            init_args = json.loads(init_args)
        except json.JSONDecodeError as e:
            raise MappingError(f"--init-args is not valid JSON: {e}") from None
    init_args = init_args or {}
    if not isinstance(init_args, dict):
        raise MappingError(f"--init-args must be a JSON object of keyword arguments, got {type(init_args).__name__}")
    try:
        if where.endswith(".py") or os.sep in where:
            path = Path(where)
            if not path.is_file():
                raise MappingError(f"--module {target!r}: file {path} not found")
            name = f"rnnedge_user_{abs(hash(str(path.resolve())))}"
            spec = importlib.util.spec_from_file_location(name, path)
            py = importlib.util.module_from_spec(spec)
            sys.modules[name] = py
            spec.loader.exec_module(py)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            py = importlib.import_module(where)
    except MappingError:
        raise
    except Exception as e:  # noqa: BLE001 - a user's module may raise anything on import
        raise MappingError(f"--module {target!r}: cannot import {where!r}: {type(e).__name__}: {e}") from None
    cls = getattr(py, cls_name, None)
    if cls is None:
        raise MappingError(f"--module {target!r}: {where!r} has no {cls_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise MappingError(f"--module {target!r}: {cls_name!r} is not a torch.nn.Module class")
    try:
        module = cls(**init_args)
    except Exception as e:  # noqa: BLE001
        raise MappingError(f"cannot build {cls_name}(**{json.dumps(init_args)}): {type(e).__name__}: {e}") from None
    path = Path(checkpoint)
    if not path.is_file():
        raise MappingError(f"--checkpoint {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise MappingError(f"--checkpoint {path}: not a loadable state_dict: {type(e).__name__}: {e}") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MappingError(f"--checkpoint {path}: not a state_dict (a dict of tensors)")
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise MappingError(f"--checkpoint {path} does not fit {cls_name}(**{json.dumps(init_args)}): {e}") from None
    return module.eval()
