"""The fx walk of a user's forward(): each node's abstract value (export/module_values.py), recurrent modules
stacked into one chain; what a node does that rnnedge cannot express becomes a MappingError naming it."""

from __future__ import annotations

import inspect
import math
import operator

import torch
import torch.nn.utils.rnn as rnn_utils
from torch import fx, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnedge.export.module_heads import HEAD_FORM, Heads
from rnnedge.export.module_indexing import Indexing
from rnnedge.export.module_packing import PACKING, Packing
from rnnedge.export.module_values import (
    ACTIVATION_FUNCTIONS,
    ACTIVATION_METHODS,
    ACTIVATION_MODULES,
    DROPOUT_FUNCTIONS,
    IDENTITY_METHODS,
    MODULES,
    RECURRENT,
    SUPPORTED,
    ZEROS,
    BatchIndex,
    Chain,
    Error,
    Final,
    Head,
    Input,
    LastIndex,
    Layer,
    Lengths,
    MappingError,
    Packed,
    RnnOut,
    Seq,
    Shape,
    Vec,
    Zeros,
    describe_call,
)


class Mapper(Indexing, Heads, Packing):
    def __init__(self, module: nn.Module):
        self.module = module
        self.modules = dict(module.named_modules())
        self.warnings: list[str] = []
        self.used_rnns: set[str] = set()
        self.linears = 0
        self.lengths_name: str | None = None  # the forward() argument traced as the lengths
        self.lengths: Lengths | None = None
        self.lengths_required = False
        self.enforce_sorted: list[bool] = []  # per pack_padded_sequence
        self.packed_rnns: list[str] = []
        self.unpacked_rnns: list[str] = []
        self.gathered = False  # the head reads output[torch.arange(B), lengths - 1]

    # -- tracing -----------------------------------------------------------------------------------------------
    def trace(self) -> fx.Graph:
        """The forward()'s graph; its second argument, when required or an optional `...len...` one, stays an
        input (the lengths, see export/module_packing.py); other optional arguments keep their defaults."""
        cls = type(self.module).__name__
        params = [p for p in inspect.signature(self.module.forward).parameters.values()
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not params:
            raise MappingError(f"{cls}.forward() takes no input")
        rest = params[1:]
        if rest and (rest[0].default is inspect.Parameter.empty
                     or (rest[0].default is None and "len" in rest[0].name.lower())):
            self.lengths_name = rest[0].name
            self.lengths_required = rest[0].default is inspect.Parameter.empty
        concrete = {p.name: p.default for p in rest if p.default is not inspect.Parameter.empty
                    and p.name != self.lengths_name}
        required = [p.name for p in rest if p.default is inspect.Parameter.empty]
        if len(required) > 1:
            raise MappingError(f"{cls}.forward() needs {len(params)} inputs ({params[0].name}, {', '.join(required)}); "
                               f"rnnedge models take one input sequence and, optionally, its lengths: {PACKING}")
        try:
            return self.traced(concrete)
        except MappingError:
            if self.lengths_name is None or self.lengths_required:
                raise
        self.lengths_name = None  # an optional lengths the trace cannot follow: map forward(x) alone
        return self.traced(concrete | {rest[0].name: None})

    def traced(self, concrete: dict) -> fx.Graph:
        tracer = fx.Tracer(autowrap_modules=(math, rnn_utils))  # pack/pad_packed_sequence become graph nodes
        try:
            return tracer.trace(self.module, concrete_args=concrete or None)
        except Exception as e:  # noqa: BLE001 - fx raises many types; name what failed
            raise MappingError(f"could not trace {type(self.module).__name__}.forward() with torch.fx "
                               f"({type(e).__name__}: {e}); rnnedge needs a forward() without Python control flow "
                               f"on tensor values") from None

    def run(self) -> tuple[Head, str]:
        env: dict[fx.Node, object] = {}
        placeholders = 0
        output = None
        for node in self.trace().nodes:
            if node.op == "placeholder":
                if placeholders == 0:
                    env[node] = Input()
                elif node.target == self.lengths_name:
                    env[node] = self.lengths = Lengths(node.target)
                else:
                    env[node] = Error(f"forward() argument {node.name!r} is used; rnnedge models take one input "
                                      f"sequence and, optionally, its lengths: {PACKING}")
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
                env[node] = Error(str(e))
        if isinstance(output, fx.Node):
            value = env[output]
        else:
            value = Error("forward() returns a tuple or constant; rnnedge models return one tensor (the head's "
                           "output)")
        if isinstance(value, Error):
            raise MappingError(value.message)
        problem = self.packing_problems()
        if problem:
            raise MappingError(problem)
        head = self.as_head(value, "forward()'s result")
        return head, type(self.module).__name__

    # -- one node ----------------------------------------------------------------------------------------------
    def evaluate(self, node: fx.Node, args, kwargs):
        if node.op == "call_module" and not isinstance(self.modules[node.target], MODULES):
            after_linear = bool(args) and isinstance(args[0], Head) and args[0].dense
            raise MappingError(f"module {node.target!r} (nn.{type(self.modules[node.target]).__name__}) is not "
                               f"supported: {HEAD_FORM if after_linear else SUPPORTED}")
        first = args[0] if args else None
        for v in list(args) + list(kwargs.values()):
            for item in (v if isinstance(v, (tuple, list)) else [v]):
                if isinstance(item, Error):
                    raise MappingError(item.message)
                if isinstance(item, Lengths) and not (node.op == "call_function" and node.target is
                                                      pack_padded_sequence and item is not first):
                    return self.lengths_use(node, args, kwargs, item)
        if node.op == "call_module":
            return self.call_module(node, self.modules[node.target], args, kwargs)
        if node.op == "get_attr":
            raise MappingError(f"node {node.name!r} reads the attribute self.{node.target} in forward(), which "
                               f"rnnedge cannot map; {SUPPORTED}")
        target = node.target
        if node.op == "call_function" and target is pack_padded_sequence:
            return self.pack(node, args, kwargs)
        if node.op == "call_function" and target is pad_packed_sequence:
            return self.pad(node, args, kwargs)
        if isinstance(first, BatchIndex):
            raise MappingError(f"node {node.name!r} ({describe_call(node)}) uses torch.arange(...) other than as the "
                               f"batch index of output[torch.arange(x.size(0)), lengths - 1]: {PACKING}")
        if node.op == "call_function" and target is operator.getitem:
            return self.getitem(node, first, args[1])
        if node.op == "call_function" and target is getattr:
            return Shape() if args[1] in ("shape", "device", "dtype") else self.unsupported(node, first)
        if node.op == "call_function" and target in ZEROS or node.op == "call_method" and target == "new_zeros":
            return Zeros()
        if node.op == "call_method" and target == "size":
            return Shape()
        if node.op == "call_function" and target is torch.arange and len(args) == 1 and isinstance(first, Shape):
            return BatchIndex()
        if isinstance(first, LastIndex):
            return self.index_use(node, first)
        if isinstance(first, (Shape, int)):
            return Shape()
        if node.op == "call_method" and target in IDENTITY_METHODS and isinstance(
                first, (Input, Seq, Vec, Head, Zeros, Final)):
            return first
        if node.op == "call_function" and target in DROPOUT_FUNCTIONS:
            return first
        if node.op == "call_function" and target is torch.cat:
            return self.cat(node, args, kwargs)
        if node.op == "call_function" and target in ACTIVATION_FUNCTIONS or (
                node.op == "call_method" and target in ACTIVATION_METHODS):
            name = ACTIVATION_FUNCTIONS[target] if node.op == "call_function" else target
            if name == "gelu" and kwargs.get("approximate", args[1] if len(args) > 1 else "none") == "tanh":
                name = "gelu_tanh"
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None) if "softmax" in name else None
            return self.activate(node, first, name, dim)
        if node.op == "call_method" and target in ("transpose", "permute"):
            return self.transpose(node, first, args[1:])
        if node.op == "call_method" and target == "squeeze":
            return self.squeeze(node, first, args[1:] or tuple(kwargs.values()))
        return self.unsupported(node, first)

    def unsupported(self, node: fx.Node, first):
        what = describe_call(node)
        if isinstance(first, (Seq, RnnOut)):
            reason = "rnnedge heads read one time step or every step"
        elif isinstance(first, (Vec, Final)):
            reason = "rnnedge feeds the recurrent state straight into the head's first nn.Linear"
        elif isinstance(first, Head):
            reason = HEAD_FORM
        else:
            reason = SUPPORTED
        raise MappingError(f"node {node.name!r} ({what}) in forward() is not supported: {reason}")

    def call_module(self, node, mod, args, kwargs):
        first = args[0] if args else None
        kind = type(mod).__name__
        if isinstance(mod, (nn.Dropout, nn.Identity, nn.AlphaDropout)):
            return first
        if isinstance(mod, nn.Embedding):
            if not isinstance(first, Input):
                raise MappingError(f"module {node.target!r} (nn.Embedding) must read forward()'s input directly")
            if mod.max_norm is not None:
                raise MappingError(f"module {node.target!r} (nn.Embedding) has max_norm={mod.max_norm}: it rewrites "
                                   f"its weights during forward(), which rnnedge cannot reproduce")
            chain = Chain(input={"kind": "tokens", "vocab": mod.num_embeddings, "embed_dim": mod.embedding_dim,
                                  "padding_idx": mod.padding_idx}, embedding=mod)
            return Seq(chain, first.swapped, None)
        if isinstance(mod, RECURRENT):
            return self.recurrent(node, mod, first, args[1:], kwargs)
        if isinstance(mod, nn.Linear):
            return self.linear(node, mod, first)
        if type(mod) in ACTIVATION_MODULES:
            name = ACTIVATION_MODULES[type(mod)]
            if name == "gelu" and mod.approximate == "tanh":
                name = "gelu_tanh"
            return self.activate(node, first, name, getattr(mod, "dim", None))
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
        if hx is not None and not all(isinstance(s, Zeros) for s in states):
            raise MappingError(f"module {name!r} (nn.{kind}) is given an initial state in forward(); rnnedge "
                               f"starts every sequence from zeros (only torch.zeros initial states map)")
        packed = isinstance(first, Packed)
        expects_time_major = not rnn.batch_first
        if packed:  # a PackedSequence's layout is pack_padded_sequence's batch_first (none once packed by a module)
            expects_time_major = None if first.batch_first is None else not first.batch_first
            first = first.value
        if isinstance(first, Input):
            chain = Chain(input={"kind": "dense", "features": rnn.input_size})
            seq = Seq(chain, first.swapped, None)
        elif isinstance(first, Seq):
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
        if expects_time_major is None:
            pass
        elif chain.input_time_major is None:
            chain.input_time_major = expects_time_major != seq.swapped
        elif seq.time_major != expects_time_major:
            fed = f"packed with batch_first={not expects_time_major}" if packed else f"batch_first={rnn.batch_first}"
            raise MappingError(f"module {name!r} (nn.{kind}, {fed}) is fed a sequence in the other layout")
        if isinstance(rnn, nn.LSTM):
            cell = "lstm"
        elif isinstance(rnn, nn.GRU):
            cell = "gru"
        else:
            cell = "rnn_tanh" if rnn.nonlinearity == "tanh" else "rnn_relu"
        self.used_rnns.add(name)
        first_layer = len(chain.layers)
        chain.layers += [Layer(name, rnn, k, cell) for k in range(rnn.num_layers)]
        chain.modules.append(name)
        (self.packed_rnns if packed else self.unpacked_rnns).append(name)
        return RnnOut(chain, first_layer, rnn, name, packed=packed)

