"""Glue between the input, the recurrent layers and the head: embedding, normalisation, time-step and direction
selection (Gather / Slice), Squeeze, Transpose, Reshape and Concat of directions."""

from __future__ import annotations

import numpy as np

from export.onnx_in.values import BIG, LABELS, Const, Refuse, Shape, Tensor, axis_index, replace_axis


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
        if not isinstance(data, Tensor) or not isinstance(index, Const):
            raise Refuse("Gather is supported as an embedding (table, ids) or with a constant index")
        axis = axis_index(axis, len(data.axes))
        label = data.axes[axis]
        idx = index.value
        scalar = idx.ndim == 0
        if not scalar and idx.size != 1:
            raise Refuse(f"Gather of {idx.size} entries of axis {label!r}; rnnedge reads one time step or direction")
        i = int(idx.reshape(-1)[0])
        if label == "D":
            d = data.dirs[i]
            return replace_axis(data, axis, None if scalar else "D", dirs=(d,))
        if label == "T":
            return self._step(data, axis, i, scalar)
        raise Refuse(f"Gather on axis {axis} ({LABELS.get(label, label)}) is not supported")

    def _step(self, data: Tensor, axis: int, i: int, drop: bool) -> Tensor:
        if data.stage != "y":
            raise Refuse("selecting a time step is supported on a recurrent layer's output Y only")
        if i not in (-1, 0):
            raise Refuse(f"reads time step {i}; rnnedge heads read every step, the last (-1) or the first (0)")
        return replace_axis(data, axis, None if drop else "t", step="last" if i == -1 else "first")

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
            ax = axis_index(ax, len(data.axes))
            label = data.axes[ax]
            if step != 1:
                raise Refuse(f"Slice with step {step} is not supported")
            if start == 0 and end >= BIG:
                continue
            if label == "T" and start == -1 and end >= BIG:
                data = self._step(data, ax, -1, False)
            elif label == "T" and start == 0 and end == 1:
                data = self._step(data, ax, 0, False)
            elif label == "D":
                data = replace_axis(data, ax, "D", dirs=tuple(data.dirs[start:end]))
            else:
                raise Refuse(f"Slice [{start}:{end}] of axis {ax} ({LABELS.get(label, label)}) is not supported")
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
        raise Refuse("Div is supported only as the dense input's normalisation ((x - mean) / std)")

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
        for ax in reversed(axes):
            label = x.axes[ax]
            if label == "t" or (label == "D" and len(x.dirs) == 1):
                x = replace_axis(x, ax, None)
            else:
                raise Refuse(f"Squeeze of axis {ax} ({LABELS.get(label, label)}), which may not have size 1")
        return x

    def op_Reshape(self, node, attrs, args):
        x, shape = args
        axes = x.axes
        if "D" in axes:
            d = axes.index("D")
            if d + 1 == len(axes) - 1 and axes[-1] == "F":
                merged = axes[:d] + ("F",)
                if isinstance(shape, Const):
                    target = shape.value.reshape(-1).tolist()
                    ok = len(target) == len(merged) and all(t in (0, -1) for t in target[:-1]) and (
                        target[-1] in (-1, len(x.dirs) * x.hidden) and target.count(-1) <= 1)
                    if not ok:
                        raise Refuse(f"Reshape to {target} is not supported (only merging the direction axis into "
                                      f"the features, e.g. [0, 0, -1])")
                elif not isinstance(shape, Shape):
                    raise Refuse("Reshape's shape must be a constant or computed from shapes")
                return Tensor(**{**x.__dict__, "axes": merged, "pieces": x.dirs, "dirs": ()})
        if isinstance(shape, Const):
            target = shape.value.reshape(-1).tolist()
            if len(target) == len(axes) and all(t == 0 or (t == -1 and i == len(axes) - 1) for i, t in enumerate(target)):
                return x
        raise Refuse("Reshape is supported only to merge the direction axis into the features")

    def op_Concat(self, node, attrs, args):
        if not all(isinstance(a, Tensor) for a in args):
            raise Refuse("Concat of the sequence with constants is not supported")
        axis = axis_index(attrs["axis"], len(args[0].axes))
        first = args[0]
        if first.axes[axis] != "F" or any(a.axes != first.axes or a.stage != first.stage or a.layer != first.layer
                                          or "D" in a.axes for a in args):
            raise Refuse("Concat is supported only of one layer's directions along the features")
        steps = {a.step for a in args}
        pieces = tuple(p for a in args for p in a.pieces)
        if len(steps) != 1:
            pieces = tuple((p, a.step) for a in args for p in a.pieces)
            return Tensor(**{**first.__dict__, "pieces": pieces, "step": "mixed"})
        return Tensor(**{**first.__dict__, "pieces": pieces})
