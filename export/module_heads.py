"""The head of a user's forward(): its nn.Linear and activation, then the spec and RecurrentModel weights
built from the abstract head (which spec head it is, and where its weight columns go)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from rnnedge.export.module_values import (
    SUPPORTED,
    Chain,
    Dense,
    Final,
    Head,
    Mapping,
    MappingError,
    Seq,
    Vec,
    describe_call,
    width,
)
from rnnedge.runtime import spec as specs

# The head's activations: output ones may end it, hidden ones (the spec's) sit between two linear layers
OUTPUT_ACTIVATIONS = ("softmax", "log_softmax", "sigmoid")
HIDDEN_ACTIVATIONS = tuple(a for a in specs.HIDDEN_ACTIVATIONS if a != "none")
HIDDEN_ONLY = tuple(a for a in HIDDEN_ACTIVATIONS if a not in OUTPUT_ACTIVATIONS)
HEAD_FORM = ("rnnedge's head is nn.Linear layers with ReLU, Tanh, GELU, Sigmoid or nothing (Dropout, Identity) "
             "between them, then softmax / log_softmax over the last axis, sigmoid or nothing")


class Heads:
    def linear(self, node, lin: nn.Linear, value):
        if isinstance(value, Head) and not value.dense:
            raise MappingError(f"module {node.target!r} (nn.Linear) reads {value.activation} of the recurrent "
                               f"output: rnnedge's head starts with an nn.Linear reading the recurrent state "
                               f"({HEAD_FORM})")
        if isinstance(value, Head) and value.activation not in ("none", *HIDDEN_ACTIVATIONS):
            raise MappingError(f"module {node.target!r} (nn.Linear) reads {value.activation} of "
                               f"{value.dense[-1].name!r}: {value.activation} is not a supported activation between "
                               f"linear layers; {HEAD_FORM}")
        if not isinstance(value, (Seq, Vec, Head)) or (isinstance(value, Seq) and not value.chain.layers):
            raise MappingError(f"module {node.target!r} (nn.Linear) reads {self.what(value)}; rnnedge's head reads "
                               f"the recurrent output")
        n_in = value.dense[-1].weight.shape[0] if isinstance(value, Head) else width(value.pieces)
        if n_in != lin.in_features:
            raise MappingError(f"module {node.target!r} (nn.Linear) has in_features={lin.in_features} but reads "
                               f"{n_in} features")
        bias = lin.bias.detach().float().clone() if lin.bias is not None else torch.zeros(lin.out_features)
        dense = Dense(lin.weight.detach().float().clone(), bias, node.target)
        if isinstance(value, Head):
            return replace(value, dense=[*value.dense, dense], hidden=[*value.hidden, value.activation],
                           activation="none")
        on = "seq" if isinstance(value, Seq) else "vec"
        return Head(value.chain, on, value.pieces, [dense], swapped=value.swapped if on == "seq" else False,
                    padded=getattr(value, "padded", None))

    def as_head(self, value, where: str) -> Head:
        if isinstance(value, Head):
            return value
        if isinstance(value, (Seq, Vec)) and value.chain.layers:
            on = "seq" if isinstance(value, Seq) else "vec"
            return Head(value.chain, on, value.pieces, [], swapped=value.swapped if on == "seq" else False,
                        padded=getattr(value, "padded", None))
        if isinstance(value, Final):
            raise MappingError(f"{where} is {value.out.name!r}'s whole h_n stack; rnnedge maps one entry "
                               f"(e.g. h_n[-1]) or torch.cat of entries")
        raise MappingError(f"{where} is {self.what(value)}, which rnnedge cannot map; {SUPPORTED}")

    def activate(self, node, value, activation: str, dim=None):
        """softmax / log_softmax / sigmoid (the head's output, or sigmoid between linear layers) or a hidden
        activation (relu, tanh, gelu, gelu_tanh) after an nn.Linear."""
        if isinstance(value, Head) and value.activation != "none":
            raise MappingError(f"node {node.name!r} applies {activation} after {value.activation}: rnnedge maps one "
                               f"activation after each linear layer ({HEAD_FORM})")
        if activation in HIDDEN_ONLY and not (isinstance(value, Head) and value.dense):
            raise MappingError(f"node {node.name!r} ({describe_call(node)}) in forward() is not supported on "
                               f"{self.what(value)}: {activation} comes after an nn.Linear; {HEAD_FORM}")
        head = self.as_head(value, f"the input of node {node.name!r} ({activation})")
        if activation in ("softmax", "log_softmax"):
            last = 2 if head.on == "seq" else 1
            if dim not in (-1, last) and not (dim is None and head.on == "vec"):  # implicit dim of a 2-D input: 1
                raise MappingError(f"node {node.name!r} ({activation} over dim {dim}) is not supported: rnnedge's "
                                   f"{activation} runs over the classes, the last axis (dim=-1)")
        return replace(head, activation=activation)


# -- from the abstract head to a spec and weights -----------------------------------------------------------------
def build(head: Head, name: str, task: str) -> Mapping:
    chain = head.chain
    last = len(chain.layers) - 1
    for layer, *_ in head.pieces:
        if layer != last:
            src = chain.layers[layer]
            raise MappingError(f"{name}'s head reads layer {src.index} of {src.module!r}, which is not the last "
                               f"recurrent layer; rnnedge's head reads the last layer only")
    if head.activation not in ("none", *OUTPUT_ACTIVATIONS):
        raise MappingError(f"{name}.forward() returns {head.activation} of {head.dense[-1].name!r}: {head.activation} "
                           f"goes between linear layers; {HEAD_FORM}")
    on, read_step, warnings_, notes = _head_on(head, name)
    hidden, head_tensors = _head_tensors(head)
    layers = [{"cell": layer.cell, "hidden": layer.rnn.hidden_size, "bidirectional": bool(layer.rnn.bidirectional)}
              for layer in chain.layers]
    dropout = max([float(layer.rnn.dropout) for layer in chain.layers] + [0.0])
    spec = specs.validate({"version": 1, "input": chain.input, "layers": layers,
                           "head": {"out": head_tensors["head.weight"].shape[0], "on": on,
                                    "activation": head.activation, "hidden": hidden},
                           "task": task, "dropout": dropout if dropout < 1 else 0.0})
    head_swapped = head.on == "seq" and head.swapped
    output_time_major = head.on == "seq" and (bool(chain.input_time_major) != head_swapped)
    return Mapping(spec, _recurrent_tensors(chain) | head_tensors, warnings_, read_step=read_step,
                   input_time_major=bool(chain.input_time_major), output_time_major=output_time_major, notes=notes)


def _head_on(head: Head, name: str) -> tuple[str, str | None, list[str], list[str]]:
    """The spec head's "on", Mapping.read_step, and the pitfall warnings and notes of what the head reads."""
    if head.on == "seq":
        return "every_step", None, [], []
    at = {(d, t) for _, d, t, _, _ in head.pieces}
    if at <= {("fwd", "last"), ("bwd", "first")}:
        return "last_step", None, [], []
    if len({t for _, t in at}) != 1:
        raise MappingError(f"{name}'s head reads {sorted(at)} (direction, step): rnnedge heads read each "
                           f"direction's final state or one step of the output")
    warnings_, notes = [], []
    read_step = next(iter(at))[1]
    where = "T-1" if read_step == "last" else "0"
    cols = ", ".join(f"{d} at t={where}" for d, _ in sorted(at))
    notes.append(f"the head reads {cols}: mapped to an every_step head; {name}.forward() equals the rnnedge "
                 f"model's and the runtime's output at step {where} (run(X)[:, {-1 if read_step == 'last' else 0}])")
    rnn = head.chain.layers[-1].module
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
    return "every_step", read_step, warnings_, notes


def _head_tensors(head: Head) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """The spec head's "hidden" list and its tensors; the first layer's weight columns go to the spec's columns
    of what it reads (columns it does not read get zero weight)."""
    H = head.chain.hidden
    dense = head.dense or [Dense(torch.eye(width(head.pieces)), torch.zeros(width(head.pieces)), "(identity)")]
    first = torch.zeros(dense[0].weight.shape[0], H * head.chain.dirs)
    offset = 0
    for _, d, *_rest in head.pieces:
        lo, hi = _rest[-2], _rest[-1]
        base = 0 if d == "fwd" else H
        first[:, base + lo: base + hi] += dense[0].weight[:, offset: offset + hi - lo]
        offset += hi - lo
    weights = [first] + [layer.weight for layer in dense[1:]]
    hidden = [{"units": w.shape[0], "activation": a} for w, a in zip(weights[:-1], head.hidden)]
    tensors = {}
    for k, (w, layer) in enumerate(zip(weights[:-1], dense)):
        tensors[f"head.hidden.{k}.weight"] = w
        tensors[f"head.hidden.{k}.bias"] = layer.bias.clone()
    tensors["head.weight"] = weights[-1]
    tensors["head.bias"] = dense[-1].bias.clone()
    return hidden, tensors


def _recurrent_tensors(chain: Chain) -> dict[str, torch.Tensor]:
    """The input (normalisation or embedding) and recurrent layers' RecurrentModel tensors (bias=False: zeros)."""
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
    return sd
