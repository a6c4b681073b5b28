"""Indexing and glue in a user's forward(): getitem on recurrent results, h_n entries, time steps and feature
slices of sequences, squeeze, time <-> batch swaps and torch.cat, each followed on the abstract values."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from rnnedge.export.module_values import (
    BatchIndex,
    Chain,
    Final,
    Head,
    Input,
    LastIndex,
    MappingError,
    Packed,
    PaddedPair,
    RnnOut,
    Seq,
    Shape,
    Vec,
    describe_call,
    is_all,
    select,
    width,
)


class Indexing:
    def full_pieces(self, chain: Chain):
        layer, h = len(chain.layers) - 1, chain.hidden
        return tuple((layer, d, 0, h) for d in ("fwd", "bwd")[: chain.dirs])

    def what(self, value) -> str:
        return {Vec: "one vector per sequence", Head: "the head's output", Final: "a final state",
                RnnOut: "a recurrent module's (output, state) tuple"}.get(type(value), "a value it cannot map")

    def getitem(self, node, value, index):
        if isinstance(value, RnnOut):
            if value.part is None:
                if index == 0 and value.packed:
                    return Packed(Seq(value.chain, False, self.full_pieces_of(value)), None)
                if index == 0:
                    return Seq(value.chain, value.chain.input_time_major != (not value.rnn.batch_first),
                                self.full_pieces_of(value))
                if index == 1:
                    if isinstance(value.rnn, nn.LSTM):
                        return RnnOut(value.chain, value.first, value.rnn, value.name, part="state")
                    return Final(value, "h")
            elif index in (0, 1):
                return Final(value, "h" if index == 0 else "c")
            raise MappingError(f"node {node.name!r} indexes {value.name!r}'s result with {index!r}")
        if isinstance(value, Final):
            return self.final(node, value, index)
        if isinstance(value, PaddedPair) and index in (0, 1):
            return value.seq if index == 0 else value.lengths
        if isinstance(value, Seq):
            return self.index_seq(node, value, index)
        if isinstance(value, Vec):
            index = index if isinstance(index, tuple) else (index,)
            if len(index) > 2 or not is_all(index[0]):
                raise MappingError(f"node {node.name!r} indexes a per-sequence vector with {index!r}: rnnedge maps "
                                   f"feature slices [:, a:b] only")
            return Vec(value.chain, self.slice_pieces(node, value.pieces, index[1] if len(index) > 1 else None))
        if isinstance(value, (Shape, tuple, list)):
            return Shape()
        raise MappingError(f"node {node.name!r} (indexing) in forward() is not supported on {self.what(value)}")

    def full_pieces_of(self, out: RnnOut):
        last = out.first + out.rnn.num_layers - 1
        h = out.rnn.hidden_size
        return tuple((last, d, 0, h) for d in ("fwd", "bwd")[: (2 if out.rnn.bidirectional else 1)])

    def final(self, node, value: Final, index):
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
        vec = Vec(out.chain, ((layer, direction, time, 0, out.rnn.hidden_size),))
        if rest:
            if len(rest) > 2 or not is_all(rest[0]):
                raise MappingError(f"node {node.name!r} indexes {name} with {(index, *rest)!r}")
            vec = Vec(vec.chain, self.slice_pieces(node, vec.pieces, rest[1] if len(rest) > 1 else None))
        return vec

    def squeeze(self, node, value, dims):
        if isinstance(value, Final) and value.kind == "h" and dims in ((), (0,)):
            entries = value.out.rnn.num_layers * (2 if value.out.rnn.bidirectional else 1)
            if entries == 1:
                return self.final(node, value, 0)
        if isinstance(value, (Seq, Vec, Head, Input)) and dims == ():
            return value  # a squeeze of a batch of one; the proof runs several batch sizes
        raise MappingError(f"node {node.name!r} ({describe_call(node)}) in forward() is not supported on "
                           f"{self.what(value)}")

    def slice_pieces(self, node, pieces, s):
        if s is None or is_all(s):
            return pieces
        total = width(pieces)
        if not isinstance(s, slice) or s.step not in (None, 1):
            raise MappingError(f"node {node.name!r} selects features with {s!r}; rnnedge maps contiguous slices a:b")
        lo, hi, _ = s.indices(total)
        return select(pieces, lo, hi)

    def index_seq(self, node, seq: Seq, index):
        if seq.chain.input_time_major is None or not seq.chain.layers:
            raise MappingError(f"node {node.name!r} indexes the input sequence before any recurrent layer")
        index = index if isinstance(index, tuple) else (index,)
        if any(i is Ellipsis for i in index) or len(index) > 3:
            raise MappingError(f"node {node.name!r} indexes a sequence with {index!r}")
        index = tuple(index) + (slice(None),) * (3 - len(index))
        if any(isinstance(i, (LastIndex, BatchIndex)) for i in index):
            return self.gather_last(node, seq, index)
        time, batch = (index[0], index[1]) if seq.time_major else (index[1], index[0])
        if not is_all(batch):
            raise MappingError(f"node {node.name!r} selects part of the batch; rnnedge treats every sequence alike")
        pieces = self.slice_pieces(node, seq.pieces, index[2])
        if is_all(time):
            return replace(seq, pieces=pieces)
        if time == -1 and seq.padded:
            raise MappingError(
                f"node {node.name!r} reads step -1 of {seq.chain.layers[-1].module!r}'s padded output "
                f"(pad_packed_sequence): for each sequence shorter than the padded length that step is padding "
                f"(zeros), not its last step; read each sequence's final state from h_n instead (h_n[-1], or "
                f"torch.cat((h_n[-2], h_n[-1]), dim=1) when bidirectional), which maps to rnnedge's last_step head "
                f"(run(X, lengths))")
        if time in (-1, 0):
            where = "last" if time == -1 else "first"
            return Vec(seq.chain, tuple((layer, d, where, lo, hi) for layer, d, lo, hi in pieces))
        raise MappingError(f"node {node.name!r} reads time step {time!r} of {seq.chain.layers[-1].module!r}'s output: "
                           f"rnnedge heads read every step, the last step (-1) or the first (0)")

    def transpose(self, node, value, dims):
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else tuple(dims)
        swap = dims in ((0, 1), (1, 0), (1, 0, 2), (1, 0, -1))
        if isinstance(value, (Input, Seq)) and swap:
            if isinstance(value, Input):
                return Input(not value.swapped)
            return replace(value, swapped=not value.swapped)
        if isinstance(value, Head) and value.on == "seq" and swap:
            value.swapped = not value.swapped
            return value
        raise MappingError(f"node {node.name!r} ({describe_call(node)} {dims}) in forward() is not supported: rnnedge "
                           f"follows a time <-> batch swap only")

    def cat(self, node, args, kwargs):
        parts = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        if not parts:
            raise MappingError(f"node {node.name!r} (torch.cat) has nothing to concatenate")
        if all(isinstance(p, Vec) for p in parts) and dim in (1, -1):
            chains = {id(p.chain) for p in parts}
            if len(chains) == 1:
                return Vec(parts[0].chain, tuple(x for p in parts for x in p.pieces))
        if (all(isinstance(p, Seq) and p.pieces is not None for p in parts) and dim in (2, -1)
                and len({id(p.chain) for p in parts}) == 1 and len({p.swapped for p in parts}) == 1):
            return Seq(parts[0].chain, parts[0].swapped, tuple(x for p in parts for x in p.pieces),
                       padded=parts[0].padded)
        raise MappingError(f"node {node.name!r} (torch.cat over dim {dim}) in forward() is not supported: rnnedge "
                           f"concatenates final states or outputs of one recurrent stack along the feature dim")

