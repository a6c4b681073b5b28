"""Glue between the input, the recurrent layers and the head: embedding, normalisation, time-step and direction
selection (Gather / Slice), Squeeze, Transpose, Reshape, Concat of directions, and their sum and scaling (Keras'
Bidirectional merge_mode "sum" / "ave": Add, then Mul by 0.5 or Div by 2)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from rnnedge.export.onnx_in.values import (
    BIG,
    LABELS,
    SAMPLE_POINTS,
    Const,
    Monomial,
    Pinned,
    Refuse,
    Sampled,
    Tensor,
    axis_index,
    monomials,
    replace_axis,
    select_dirs,
    settle,
)


class GlueOps:
    """The Mapper's handlers of glue nodes on the sequence (mixed into export.onnx_in.mapper.Mapper)."""

    def op_Gather(self, node, attrs, args):
        data, index = args
        axis = attrs.get("axis", 0)
        if isinstance(data, Const) and isinstance(index, Tensor) and index.stage == "ids":
            if axis != 0 or data.value.ndim != 2:
                raise Refuse("an embedding must gather rows (axis 0) of a 2-D table")
            table = data.value.astype(np.float32)
            self.embedding = table
            self.input = {"kind": "tokens", "vocab": int(table.shape[0]), "embed_dim": int(table.shape[1]),
                          "padding_idx": None}
            return Tensor((*index.axes, "F"), "input")
        if not isinstance(data, Tensor) or not isinstance(index, (Const, Sampled)):
            raise Refuse("Gather is supported as an embedding (table, ids) or with a constant index")
        axis = axis_index(axis, len(data.axes))
        label = data.axes[axis]
        indices = _points(index)
        if any(i.size != 1 for i in indices):
            raise Refuse(f"Gather of {indices[0].size} entries of axis {label!r}; rnnedge reads one time step or "
                         f"direction")
        scalar = indices[0].ndim == 0
        ranges = [(int(i.reshape(-1)[0]), None) for i in indices]
        return self._select(data, axis, ranges, drop=scalar, what="Gather of index")

    def _select(self, data: Tensor, axis: int, ranges: list, drop: bool, what: str) -> Tensor:
        """data with one axis cut to [start, end) (end None: the one entry at start), given at every sample point
        (indices may follow the run-time length): every step, the last or first step, or some directions."""
        label = data.axes[axis]
        cuts, sizes = [], []
        for (start, end), point in zip(ranges, SAMPLE_POINTS):
            n = self.sizes(data, point)[axis]
            sizes.append(n)
            if end is None:
                i = start + n if start < 0 else start
                if not 0 <= i < n:
                    raise Refuse(f"{what} {start} is outside axis {axis} ({LABELS.get(label, label)}) of size {n}")
                cuts.append((i, i + 1))
            else:
                cuts.append(slice(start, end).indices(n)[:2])
        if not drop and all(c == (0, n) for c, n in zip(cuts, sizes)):
            return data
        if label == "L":  # torch's h_n.view(layers, directions, B, H)[i]: one layer's final states
            if not drop or len(set(cuts)) != 1:
                raise Refuse(f"{what} several layers of h_n.view(layers, directions, ...); rnnedge reads one layer's "
                             f"states: index one layer")
            layer = sorted({l for l, _ in data.dirs})[cuts[0][0]]
            changes = select_dirs(data, tuple(e for e in data.dirs if e[0] == layer))
            return replace_axis(data, axis, None, **changes)
        if label == "D":
            if len(set(cuts)) != 1:
                raise Refuse("selecting directions by the run-time sizes is not supported")
            start, end = cuts[0]
            chosen = tuple(data.dirs[start:end])
            if not chosen:
                raise Refuse(f"{what} selects no direction")
            changes = select_dirs(data, chosen)
            return replace_axis(data, axis, None if drop else "D", **changes)
        if label == "F" and data.stage in ("y", "final") and "D" not in data.axes and len(set(cuts)) == 1:
            return self._feature_directions(data, cuts[0], drop, what)
        if data.stage == "head" and label in ("T", "0", "1") and len(set(cuts)) == 1 and cuts[0][1] == cuts[0][0] + 1:
            return self.input_step(data, axis, cuts[0], drop)
        if label == "T":
            if all(c == (n - 1, n) for c, n in zip(cuts, sizes)):
                return self._step(data, axis, -1, drop)
            if all(c == (0, 1) for c in cuts):
                return self._step(data, axis, 0, drop)
            raise Refuse(f"reads time steps [{cuts[0][0]}:{cuts[0][1]}] of {sizes[0]}; rnnedge heads read every "
                         f"step, the last or the first")
        raise Refuse(f"{what} on axis {axis} ({LABELS.get(label, label)}) is not supported")

    def _feature_directions(self, data: Tensor, cut: tuple, drop: bool, what: str) -> Tensor:
        """Features [start, end) of directions laid side by side (torch's output[..., :H] / output[..., H:]): the
        whole directions they cover."""
        start, end = cut
        H = data.hidden
        if drop or start % H or end % H or end <= start or data.terms != 1:
            raise Refuse(f"{what} features [{start}:{end}] of {data.width()} cuts inside a direction of {H} units (or "
                         f"a sum of directions); rnnedge reads whole directions")
        pairs = list(data.pieces) if data.step == "mixed" else [(p, data.step) for p in data.pieces]
        chosen = pairs[start // H:end // H]
        steps = {step for _, step in chosen}
        if len(steps) == 1:
            return Tensor(**{**data.__dict__, "pieces": tuple(p for p, _ in chosen), "step": steps.pop()})
        return Tensor(**{**data.__dict__, "pieces": tuple(chosen), "step": "mixed"})

    def _step(self, data: Tensor, axis: int, i: int, drop: bool) -> Tensor:
        if data.stage != "y":
            raise Refuse("selecting a time step is supported on a recurrent layer's output Y only")
        return replace_axis(data, axis, None if drop else "t", step="last" if i == -1 else "first")

    def op_Slice(self, node, attrs, args):
        data = args[0]
        if self.opset >= 10:
            for a, what in zip(args[1:], ("starts", "ends", "axes", "steps")):
                if a is not None and not isinstance(a, (Const, Sampled)):
                    raise Refuse(f"Slice {what} must be constants or computed from the input's sizes")
            starts, ends = _points(args[1]), _points(args[2])
            axes = self.const(node, args[3], "Slice axes") if len(args) > 3 and args[3] is not None else None
            steps = self.const(node, args[4], "Slice steps") if len(args) > 4 and args[4] is not None else None
        else:
            starts = [np.array(attrs["starts"])] * len(SAMPLE_POINTS)
            ends = [np.array(attrs["ends"])] * len(SAMPLE_POINTS)
            axes, steps = attrs.get("axes"), None
        count = starts[0].size
        axes = np.arange(count) if axes is None else np.asarray(axes).reshape(-1)
        steps = np.ones(count, dtype=np.int64) if steps is None else np.asarray(steps).reshape(-1)
        for k, (ax, step) in enumerate(zip(axes.tolist(), steps.tolist())):
            ax = axis_index(ax, len(data.axes))
            if step == -1 and all(int(s.reshape(-1)[k]) == -1 and int(e.reshape(-1)[k]) <= -BIG
                                  for s, e in zip(starts, ends)):  # torch.flip: the whole axis backwards
                data = self.reversed_steps(data)
                continue
            if step != 1:
                raise Refuse(f"Slice with step {step} is not supported")
            ranges = [(int(np.clip(s.reshape(-1)[k], -BIG, BIG)), int(np.clip(e.reshape(-1)[k], -BIG, BIG)))
                      for s, e in zip(starts, ends)]
            data = self._select(data, ax, ranges, drop=False, what="Slice from")
        return data

    def op_Sub(self, node, attrs, args):
        x, mean = args
        if isinstance(x, Tensor) and x.stage == "input" and self.input.get("kind") == "dense" and isinstance(
                mean, Const) and "mean" not in self.input and "std" not in self.input:
            f = self.input["features"]
            self.input["mean"] = [float(v) for v in np.broadcast_to(mean.value.astype(np.float32), (f,))]
            return x
        raise Refuse("Sub is supported only as the dense input's normalisation (x - mean)")

    def op_Div(self, node, attrs, args):
        x, std = args
        if isinstance(x, Tensor) and x.stage == "input" and self.input.get("kind") == "dense" and isinstance(
                std, Const) and "std" not in self.input:
            f = self.input["features"]
            self.input["std"] = [float(v) for v in np.broadcast_to(std.value.astype(np.float32), (f,))]
            return x
        if _scalable(x, std) and std.value.reshape(-1)[0] != 0:
            return Tensor(**{**x.__dict__, "scale": x.scale / float(std.value.reshape(-1)[0])})
        raise Refuse("Div is supported as the dense input's normalisation ((x - mean) / std), or of a recurrent "
                     "layer's output by a constant scalar (Keras' merge_mode 'ave')")

    def op_Mul(self, node, attrs, args):
        x, c = args if isinstance(args[0], Tensor) else args[::-1]
        if _scalable(x, c):
            return Tensor(**{**x.__dict__, "scale": x.scale * float(c.value.reshape(-1)[0])})
        raise Refuse("Mul of the sequence is supported of a recurrent layer's output by a constant scalar (Keras' "
                     "merge_mode 'ave'), or between a head's dense layers")

    def sum_of_directions(self, a, b) -> Tensor:
        """Add of one recurrent layer's directions, each along the features (Keras' Bidirectional merge_mode "sum",
        torch's h_n[-2] + h_n[-1]): a Tensor summing their blocks (Tensor.terms), which a dense head or the next
        recurrent layer reads as the concatenation with its weight repeated per block (values.spread_weight)."""
        tensors = [v for v in (a, b) if isinstance(v, Tensor) and v.stage in ("y", "final")]
        if len(tensors) != 2 or a.layer != b.layer or not isinstance(a.layer, int) or a.axes != b.axes or (
                "D" in a.axes or a.width() != b.width() or a.scale != b.scale):
            raise Refuse("Add of the sequence is supported as the head's bias, or as the sum of one recurrent "
                         "layer's directions along the features, of equal width (Keras' Bidirectional merge_mode "
                         "'sum' / 'ave', torch's h_n[-2] + h_n[-1]), read by a dense head or the next recurrent "
                         "layer")
        note = ("the graph adds the directions of a recurrent layer (Keras' Bidirectional merge_mode 'sum' / 'ave'): "
                "what reads the sum gets the concatenated directions and its weight repeated for each (scaled for "
                "'ave'), which computes the same")
        if note not in self.notes:
            self.notes.append(note)
        return Tensor(**{**a.__dict__, **joined_pieces([a, b]), "terms": a.terms + b.terms})

    def op_Transpose(self, node, attrs, args):
        (x,) = args
        perm = attrs.get("perm", list(range(len(x.axes)))[::-1])
        axes = tuple(x.axes[p] for p in perm)
        if x.stage == "head" or axes[-1] != "F":
            raise Refuse(f"Transpose perm={list(perm)} moves the feature axis; rnnedge keeps features last")
        return Tensor(**{**x.__dict__, "axes": axes})

    def op_Squeeze(self, node, attrs, args):
        x = args[0]
        if self.opset >= 13:
            axes = self.const(node, args[1], "Squeeze axes").tolist() if len(args) > 1 and args[1] is not None else None
        else:
            axes = attrs.get("axes")
        if axes is None:
            axes = [i for i, a in enumerate(x.axes) if a == "t" or (a == "D" and len(x.dirs) == 1)]
        axes = sorted(axis_index(a, len(x.axes)) for a in np.reshape(axes, -1).tolist())
        if x.stage == "h" and len(axes) == 1:
            return self.unrolled_final(x, axes[0])
        for ax in reversed(axes):
            label = x.axes[ax]
            if label == "t" or (label == "D" and len(x.dirs) == 1):
                x = replace_axis(x, ax, None)
            else:
                raise Refuse(f"Squeeze of axis {ax} ({LABELS.get(label, label)}), which may not have size 1")
        return x

    def op_Unsqueeze(self, node, attrs, args):
        x = args[0]
        axes = (self.const(node, args[1], "Unsqueeze axes") if self.opset >= 13 else np.array(attrs["axes"]))
        axes = np.reshape(axes, -1).tolist()
        if x.stage != "final" or "D" in x.axes or len(axes) != 1 or axis_index(axes[0], len(x.axes) + 1) != 0 or (
                x.layer is None):
            raise Refuse("Unsqueeze is supported as a direction axis in front of a final state (torch's h_n)")
        return Tensor(**{**x.__dict__, "axes": ("D", *x.axes), "dirs": x.pieces, "pieces": ()})

    def op_Reshape(self, node, attrs, args):
        x, shape = args
        if not isinstance(shape, (Const, Sampled)):
            raise Refuse("Reshape's shape must be a constant or computed from the input's sizes")
        source = self.monomials_of(x)
        target = monomials(shape, self.dynamic_axes())
        if None in target:
            raise Refuse("Reshape's shape is computed from the input's sizes in a way rnnedge cannot follow")
        self._pin_fixed_sizes(node, source, target)
        if not attrs.get("allowzero", 0):  # 0 copies the input's size
            target = [source[i] if t == Monomial(0) and i < len(source) else t for i, t in enumerate(target)]
        if target.count(Monomial(-1)) == 1:
            known = _product([t for t in target if t != Monomial(-1)])
            total = _product(source)
            if not known.divides(total):
                raise Refuse(f"Reshape of {_dims(source)} to {_dims(target)}: the sizes do not fit")
            target[target.index(Monomial(-1))] = total / known
        one = Monomial(1)
        big_in = [i for i, m in enumerate(source) if m != one]
        big_out = [j for j, m in enumerate(target) if m != one]
        groups = _groups([source[i] for i in big_in], [target[j] for j in big_out])
        if groups is None:
            raise Refuse(f"Reshape of {_dims(source)} to {_dims(target)} moves values between axes; rnnedge "
                         f"follows reshapes that merge or split the direction axis, or drop a size-1 axis")
        fields = dict(x.__dict__)
        ones = [x.axes[i] for i, m in enumerate(source) if m == one]
        for _ in range(len(ones) - (len(target) - len(big_out))):  # size-1 axes dropped: squeezed
            gone = next((a for a in ones if a in ("t", "D")), None)
            if gone is None:
                raise Refuse(f"Reshape of {_dims(source)} to {_dims(target)} drops the size-1 axis {ones[0]!r}")
            ones.remove(gone)
            if gone == "D":  # its one direction is a feature now
                if x.layer is None:
                    raise Refuse("Reshape drops the direction axis of a stack of several layers' states")
                fields["pieces"], fields["dirs"] = x.dirs, ()
        if len(ones) < len(target) - len(big_out):
            raise Refuse(f"Reshape of {_dims(source)} to {_dims(target)} adds an axis of size 1")
        made = []
        for ins, outs in groups:
            labels = [x.axes[big_in[i]] for i in ins]
            sizes = [target[big_out[j]] for j in outs]
            if len(labels) == len(sizes) == 1:
                made.append(labels[0])
            elif labels == ["D", "F"] and len(sizes) == 1 and x.layer is not None:
                made.append("F")
                fields["pieces"], fields["dirs"] = x.dirs, ()
            elif labels == ["F"] and len(sizes) == 2 and "D" not in x.axes and x.step != "mixed" and x.stage in (
                    "y", "final") and sizes == [Monomial(len(x.pieces)), Monomial(x.hidden)]:
                made += ["D", "F"]
                fields["dirs"], fields["pieces"] = x.pieces, ()
            elif labels == ["D"] and len(sizes) == 2 and x.layer is None and sizes == [
                    self.label_size(replace(x, axes=("L", "D")), a) for a in ("L", "D")] and _layer_major(x.dirs):
                made += ["L", "D"]  # torch's h_n.view(num_layers, num_directions, B, H)
            elif labels in (["B", "T"], ["T", "B"]) and len(sizes) == 1:  # a per-row head over every step
                made.append("*".join(labels))
            elif len(labels) == 1 and "*" in labels[0] and sizes == [self.label_size(x, a) for a in
                                                                     labels[0].split("*")]:
                made += labels[0].split("*")
            else:
                raise Refuse(f"Reshape of {_dims(source)} ({', '.join(LABELS.get(a, a) for a in x.axes)}) to "
                             f"{_dims(target)} mixes {' and '.join(LABELS.get(a, a) for a in labels)}; rnnedge "
                             f"follows reshapes that merge or split the direction axis, or drop a size-1 axis")
        axes = tuple(ones.pop(0) if m == one else made.pop(0) for m in target)
        if axes[-1] != "F" and x.stage != "ids":
            raise Refuse("Reshape moves the feature axis")
        return Tensor(**{**fields, "axes": axes})

    def op_Flatten(self, node, attrs, args):
        """Flatten(axis) is Reshape to [product of the dims before axis, product of the rest] (torch's flatten(1)
        as the TorchScript exporter writes it)."""
        (x,) = args
        axis = axis_index(attrs.get("axis", 1), len(x.axes))
        shape = settle([np.array([np.prod(dims[:axis]), np.prod(dims[axis:])], np.int64)
                        for dims in (self.sizes(x, point) for point in SAMPLE_POINTS)])
        return self.op_Reshape(node, {}, [x, shape])

    def _pin_fixed_sizes(self, node, source: list[Monomial], target: list[Monomial]):
        """A reshape target that spells a dynamic input size as a number (torch's dynamo exporter specialises the
        time axis of some graphs this way: Reshape(Y, [6, -1, 10])) fixes that axis: raise Pinned."""
        for have, want in zip(source, target):  # leading axes: time / batch of the sequence
            if len(have.sizes) == 1 and not want.sizes and want.coef > 0 and want.coef % have.coef == 0:
                raise Pinned(have.sizes[0], want.coef // have.coef, node)
            if have != want:
                return

    def op_Concat(self, node, attrs, args):
        if not all(isinstance(a, Tensor) for a in args):
            raise Refuse("Concat of the sequence with constants is not supported")
        axis = axis_index(attrs["axis"], len(args[0].axes))
        first = args[0]
        if all(a.stage == "h" for a in args):
            return self.unrolled_output(list(args), axis)
        if first.axes[axis] == "D" and all(a.stage == "final" and a.axes == first.axes and a.hidden == first.hidden
                                           for a in args):
            entries = tuple(e for a in args for e in (a.dirs if a.layer is None else ((a.layer, d) for d in a.dirs)))
            return Tensor(**{**first.__dict__, "layer": None, **select_dirs(replace(first, layer=None), entries)})
        if first.axes[axis] != "F" or any(a.axes != first.axes or a.stage != first.stage or a.layer != first.layer
                                          or "D" in a.axes for a in args):
            layers = sorted({a.layer for a in args if isinstance(a.layer, int)})
            if first.axes[axis] == "F" and len(layers) > 1 and all(a.stage == "final" for a in args):
                raise Refuse(
                    f"Concat joins the final states of recurrent layers {layers} (torch's h_n[-2] of a "
                    f"unidirectional stack is the layer below's state, not a direction); an rnnedge head reads the "
                    f"last layer only, so no spec computes this. What maps instead: h_n[-1] alone (the last layer's "
                    f"final state), or a bidirectional last layer, whose h_n[-2] and h_n[-1] are its two directions")
            if first.axes[axis] == "F" and len(layers) > 1:
                raise Refuse(f"Concat joins the outputs of recurrent layers {layers}; an rnnedge head reads the last "
                             f"layer only (skip connections from lower layers have no place in the spec). What maps "
                             f"instead: a head on the last layer's output alone")
            raise Refuse("Concat is supported of one layer's directions along the features, or of final states "
                         "along the direction axis")
        if any(a.terms != 1 or a.scale != 1 for a in args):
            raise Refuse("Concat of a sum (or a scaled copy) of recurrent outputs is not supported; rnnedge's head "
                         "reads each direction once, or their sum alone")
        return Tensor(**{**first.__dict__, **joined_pieces(args)})


def _layer_major(entries: tuple) -> bool:
    """A stack of (layer, direction) entries ordered layer by layer, each layer with the same directions."""
    layers = sorted({l for l, _ in entries})
    per = len(entries) // len(layers)
    return list(entries) == [(l, d) for l in layers for _, d in entries[:per]]


def joined_pieces(args: list[Tensor]) -> dict:
    """pieces and step of args' feature blocks one after the other: (direction, step) pairs, step "mixed", when the
    blocks were read at different time steps."""
    pairs = [pair for a in args for pair in (a.pieces if a.step == "mixed" else [(p, a.step) for p in a.pieces])]
    steps = {step for _, step in pairs}
    if len(steps) == 1:
        return {"pieces": tuple(p for p, _ in pairs), "step": steps.pop()}
    return {"pieces": tuple(pairs), "step": "mixed"}


def _scalable(x, c) -> bool:
    """x is a recurrent layer's output or final state, c a constant scalar."""
    return isinstance(x, Tensor) and x.stage in ("y", "final") and isinstance(c, Const) and c.value.size == 1


def _points(value) -> list[np.ndarray]:
    """A Const or Sampled value at every sample point."""
    return value.samples if isinstance(value, Sampled) else [value.value] * len(SAMPLE_POINTS)


def _product(dims: list[Monomial]) -> Monomial:
    total = Monomial(1)
    for d in dims:
        total = total * d
    return total


def _dims(dims: list[Monomial]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


def _groups(source: list[Monomial], target: list[Monomial]):
    """Pair runs of source axes with runs of target axes of equal size (how a reshape merges and splits axes), or
    None when values would move between axes."""
    groups, i, j = [], 0, 0
    while i < len(source) and j < len(target):
        ins, outs, a, b = [i], [j], source[i], target[j]
        i, j = i + 1, j + 1
        while a != b:
            if a.divides(b) and i < len(source):
                a, i = a * source[i], i + 1
                ins.append(i - 1)
            elif b.divides(a) and j < len(target):
                b, j = b * target[j], j + 1
                outs.append(j - 1)
            else:
                return None
        groups.append((ins, outs))
    if i != len(source) or j != len(target):
        return None
    return groups
