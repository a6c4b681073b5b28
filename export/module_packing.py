"""Packed sequences in a user's forward(x, lengths): nn.utils.rnn.pack_padded_sequence before the recurrent
modules, pad_packed_sequence after them. rnnedge's runtime takes the same lengths (run(X, lengths)): each
sequence's state stops at its length, a backward direction starts at its last true step, and h_n is each
sequence's final state. The lengths argument is followed only into pack_padded_sequence (through conversions
such as .cpu() or .tolist()) and into output[torch.arange(B), lengths - 1], each sequence's last true step (of
forward directions: the same as the runtime's last_step head with lengths); any other use is refused, saying
what is supported.
"""

from __future__ import annotations

import operator

from rnnedge.export.module_values import (
    BatchIndex,
    Head,
    Input,
    LastIndex,
    Lengths,
    Mapping,
    MappingError,
    Packed,
    PaddedPair,
    Seq,
    Shape,
    Vec,
    describe_call,
)

PACKING = ("rnnedge takes a second forward() argument only as the sequence lengths given to "
           "nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=..., enforce_sorted=True or False) in front of "
           "the recurrent modules (packing is supported: forward(x, lengths) maps to the runtime's run(X, lengths)), "
           "with pad_packed_sequence's output or h_n read as usual, or as the last true step "
           "output[torch.arange(x.size(0)), lengths - 1] of forward-only layers")
# Conversions of the lengths that keep them the lengths (pack_padded_sequence wants them on the CPU).
_LENGTHS_METHODS = {"cpu", "to", "long", "int", "tolist", "detach", "clone", "contiguous", "numpy"}


def _bound(args, kwargs, names: tuple[str, ...]) -> dict:
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


class Packing:
    def lengths_use(self, node, args, kwargs, lengths: Lengths):
        """A node that reads the lengths: a conversion (still the lengths), else refused."""
        first = args[0] if args else None
        if first is lengths and node.op == "call_method" and node.target in _LENGTHS_METHODS:
            return lengths
        if node.op == "call_function" and node.target is operator.sub and args == (lengths, 1):
            return LastIndex(lengths)
        what = f"Tensor.{node.target}" if node.op == "call_method" else getattr(node.target, "__name__", node.target)
        raise MappingError(f"forward() argument {lengths.name!r} is used by node {node.name!r} ({what}): {PACKING}")

    def index_use(self, node, index: LastIndex):
        """A conversion of lengths - 1 (.long(), .to(...)) is still that index."""
        if node.op == "call_method" and node.target in _LENGTHS_METHODS:
            return index
        raise MappingError(f"forward() argument {index.lengths.name!r} (as lengths - 1) is used by node "
                           f"{node.name!r} ({describe_call(node)}): {PACKING}")

    def gather_last(self, node, seq: Seq, index: tuple):
        """output[torch.arange(B), lengths - 1] (time-major: output[lengths - 1, torch.arange(B)]): each
        sequence's last true step; rnnedge's last_step head with lengths, for forward directions."""
        time, batch = (index[0], index[1]) if seq.time_major else (index[1], index[0])
        if not (isinstance(time, LastIndex) and isinstance(batch, BatchIndex)):
            raise MappingError(f"node {node.name!r} indexes a sequence with {index!r}: rnnedge maps each sequence's "
                               f"last true step as output[torch.arange(x.size(0)), lengths - 1]")
        pieces = self.slice_pieces(node, seq.pieces, index[2])
        if any(d != "fwd" for _, d, _, _ in pieces):
            raise MappingError(f"node {node.name!r} reads the backward direction of {seq.chain.layers[-1].module!r} "
                               f"at each sequence's last true step, where it has seen one token; read its final "
                               f"state from h_n (torch.cat((h_n[-2], h_n[-1]), dim=1)) instead")
        self.gathered = True
        return Vec(seq.chain, tuple((layer, d, "last", lo, hi) for layer, d, lo, hi in pieces))

    def pack(self, node, args, kwargs):
        bound = _bound(args, kwargs, ("input", "lengths", "batch_first", "enforce_sorted"))
        value, lengths = bound.get("input"), bound.get("lengths")
        batch_first, enforce_sorted = bound.get("batch_first", False), bound.get("enforce_sorted", True)
        if not isinstance(lengths, Lengths):
            raise MappingError(f"node {node.name!r} (pack_padded_sequence) packs with lengths that are not forward()'s "
                               f"lengths argument: {PACKING}")
        if not isinstance(value, (Input, Seq)) or (isinstance(value, Seq) and value.pieces is not None
                                                   and not value.padded):
            raise MappingError(f"node {node.name!r} (pack_padded_sequence) packs {self.what(value)}; rnnedge packs "
                               f"the input sequence (or its embedding), or a padded recurrent output to re-pack")
        if not isinstance(batch_first, bool) or not isinstance(enforce_sorted, bool):
            raise MappingError(f"node {node.name!r} (pack_padded_sequence) sets batch_first / enforce_sorted from "
                               f"run-time values; rnnedge needs them written as True or False")
        self.enforce_sorted.append(enforce_sorted)
        return Packed(value, batch_first)

    def pad(self, node, args, kwargs):
        bound = _bound(args, kwargs, ("sequence", "batch_first", "padding_value", "total_length"))
        packed, batch_first = bound.get("sequence"), bound.get("batch_first", False)
        total_length = bound.get("total_length")
        if not isinstance(packed, Packed) or packed.batch_first is not None:
            raise MappingError(f"node {node.name!r} (pad_packed_sequence) pads {self.what(packed)}; rnnedge pads a "
                               f"recurrent module's packed output")
        if not isinstance(batch_first, bool):
            raise MappingError(f"node {node.name!r} (pad_packed_sequence) sets batch_first from a run-time value; "
                               f"rnnedge needs it written as True or False")
        if total_length is not None and not isinstance(total_length, Shape):
            raise MappingError(f"node {node.name!r} (pad_packed_sequence) pads to total_length={total_length!r}: "
                               f"rnnedge's output has the input's length (total_length=x.size(1)) or, without "
                               f"total_length, the longest sequence's")
        seq = packed.value
        swapped = bool(seq.chain.input_time_major) != (not batch_first)
        padded = Seq(seq.chain, swapped, seq.pieces, padded="longest" if total_length is None else "input")
        return PaddedPair(padded, self.lengths)

    def packing_problems(self) -> str | None:
        """A model that packs must pack the input of every recurrent module: the runtime's lengths apply to all."""
        if self.gathered and self.unpacked_rnns:
            both = [name for name in self.unpacked_rnns if self.modules[name].bidirectional]
            if both:
                return (f"module {both[0]!r} is bidirectional and reads an unpacked sequence: its backward direction "
                        f"runs over the padding before each sequence's last true step; pack its input with "
                        f"nn.utils.rnn.pack_padded_sequence(..., lengths, ...)")
        if self.lengths_required and not (self.packed_rnns or self.gathered):
            return (f"{type(self.module).__name__}.forward() requires the argument {self.lengths_name!r} but never "
                    f"packs with it; {PACKING}")
        if self.packed_rnns and self.unpacked_rnns:
            name = self.unpacked_rnns[0]
            return (f"module {name!r} reads a padded, unpacked sequence while forward() packs the input of "
                    f"{', '.join(repr(n) for n in self.packed_rnns)}: rnnedge applies the lengths to every recurrent "
                    f"layer (run(X, lengths)); pack {name!r}'s input with nn.utils.rnn.pack_padded_sequence too")
        return None

    def apply_packing(self, mapping: Mapping, head: Head) -> None:
        """Record on the mapping that forward(x, lengths) packs: the runtime then takes run(X, lengths)."""
        if not (self.packed_rnns or self.gathered):
            return
        mapping.lengths = self.lengths.name
        mapping.enforce_sorted = any(self.enforce_sorted)
        mapping.padded_to = head.padded if head.on == "seq" else None
        how = "packs its sequences" if self.packed_rnns else "reads each sequence's last true step"
        note = (f"forward(x, {self.lengths.name}) {how}: the rnnedge model and the runtime take the same lengths, "
                f"run(X, lengths) (X padded)")
        if head.on == "seq":
            note += ("; per-step outputs agree within each length (past it the runtime's are zero, forward()'s the "
                     "head applied to pad_packed_sequence's zero padding)")
        mapping.notes.append(note)
