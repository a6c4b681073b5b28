"""The head of a user's forward(): its nn.Linear and activation, then the spec and RecurrentModel weights
built from the abstract head (which spec head it is, and where its weight columns go)."""

from __future__ import annotations

import torch
from torch import nn

from export.module_values import SUPPORTED, Final, Head, Mapping, MappingError, Seq, Vec, width
from runtime import spec as specs


class Heads:
    def linear(self, node, lin: nn.Linear, value):
        if isinstance(value, Head):
            raise MappingError(f"module {node.target!r} (nn.Linear) is a second linear layer after "
                               f"{value.name!r}: rnnedge's head is one nn.Linear")
        if not isinstance(value, (Seq, Vec)) or (isinstance(value, Seq) and not value.chain.layers):
            raise MappingError(f"module {node.target!r} (nn.Linear) reads {self.what(value)}; rnnedge's head reads "
                               f"the recurrent output")
        if width(value.pieces) != lin.in_features:
            raise MappingError(f"module {node.target!r} (nn.Linear) has in_features={lin.in_features} but reads "
                               f"{width(value.pieces)} features")
        weight = lin.weight.detach().float().clone()
        bias = lin.bias.detach().float().clone() if lin.bias is not None else torch.zeros(lin.out_features)
        on = "seq" if isinstance(value, Seq) else "vec"
        return Head(value.chain, on, value.pieces, weight, bias, node.target,
                    swapped=value.swapped if on == "seq" else False, padded=getattr(value, "padded", None))

    def as_head(self, value, where: str) -> Head:
        if isinstance(value, Head):
            return value
        if isinstance(value, (Seq, Vec)) and value.chain.layers:
            n = width(value.pieces)
            on = "seq" if isinstance(value, Seq) else "vec"
            return Head(value.chain, on, value.pieces, torch.eye(n), torch.zeros(n), "(identity)",
                        swapped=value.swapped if on == "seq" else False, padded=getattr(value, "padded", None))
        if isinstance(value, Final):
            raise MappingError(f"{where} is {value.out.name!r}'s whole h_n stack; rnnedge maps one entry "
                               f"(e.g. h_n[-1]) or torch.cat of entries")
        raise MappingError(f"{where} is {self.what(value)}, which rnnedge cannot map; {SUPPORTED}")

    def activate(self, node, value, activation: str, dim):
        if isinstance(value, Head) and value.activation != "none":
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



# -- from the abstract head to a spec and weights -----------------------------------------------------------------
def build(head: Head, name: str, task: str) -> Mapping:
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


