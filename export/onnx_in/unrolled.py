"""Plain RNN layers unrolled over a fixed number of time steps (torch.onnx.export's dynamo exporter writes nn.RNN
this way: no ONNX RNN node, but per step)

    x_proj = X W_ih^T + b_ih                         (every step at once; reversed by a Slice of step -1 backwards)
    h_1 = act(c + x_proj[t_1])                       c: h_0 W_hh^T + b_hh folded (h_0 = 0: the rows of b_hh)
    h_n = act(h_{n-1} W_hh^T + b_hh + x_proj[t_n])   act: Tanh or Relu
    Y = Concat(h_1 .. h_T, axis 0), h_n = Squeeze(h_T)

Each direction is a Chain, followed step by step (every step must read the next time step with the same weights);
a finished chain is one direction of a layer (the chains that read the same sequence make one layer)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnnedge.export.onnx_in.values import SAMPLE_POINTS, Const, Refuse, Sampled, Tensor


@dataclass(eq=False)
class Chain:
    """One direction of an unrolled RNN layer."""

    proj: Tensor  # x_proj: stage head over the sequence it reads (weight W_ih, bias b_ih)
    steps: int  # the fixed number of time steps
    reverse: bool
    b_hh: np.ndarray
    times: list = field(default_factory=list)  # the time step each step read, in order
    w_hh: np.ndarray | None = None  # (H, H) as torch's weight_hh; None until a step multiplies by it
    act: str | None = None
    layer: int | None = None

    @property
    def hidden(self) -> int:
        return int(self.proj.weight.shape[0])

    def check_next(self, time: int):
        want = (self.steps - 1 - len(self.times)) if self.reverse else len(self.times)
        if time != want:
            raise Refuse(f"an unrolled recurrent step reads time step {time} where step {want} comes next")


class UnrolledOps:
    """The Mapper's handling of unrolled RNN steps (mixed into export.onnx_in.mapper.Mapper)."""

    def input_step(self, proj: Tensor, axis: int, cut: tuple, drop: bool) -> Tensor:
        """x_proj at one time step (a Slice / Gather of the time axis of X W_ih^T + b_ih)."""
        if proj.activation != "none" or proj.source.stage not in ("input", "y") or proj.source.step is not None:
            raise Refuse("selecting a time step of a linear layer is supported as an unrolled RNN's input only")
        label = proj.axes[axis]
        if label in ("0", "1"):
            if self.raw_time not in (None, label):
                raise Refuse(f"an unrolled RNN steps over input axis {label}, another layer over {self.raw_time}")
            self.raw_time = label
        steps = self.sizes(proj, SAMPLE_POINTS[0])[axis]
        if steps != self.sizes(proj, SAMPLE_POINTS[1])[axis]:
            raise Refuse("an unrolled RNN over a time axis of run-time length")
        time = steps - 1 - cut[0] if proj.unrolled == "reversed" else cut[0]
        axes = tuple(a for k, a in enumerate(proj.axes) if k != axis) if drop else tuple(
            "t" if k == axis else a for k, a in enumerate(proj.axes))
        return Tensor(axes, "xstep", source=proj, unrolled=(steps, time), hidden=int(proj.weight.shape[0]))

    def reversed_steps(self, proj: Tensor) -> Tensor:
        """x_proj read backwards in time (torch.flip: Slice(start -1, step -1) over the whole time axis)."""
        if proj.stage != "head" or proj.unrolled is not None:
            raise Refuse("Slice with step -1 is supported as an unrolled RNN's backward direction only")
        return Tensor(**{**proj.__dict__, "unrolled": "reversed"})

    def recurrent_product(self, h: Tensor, w: np.ndarray) -> Tensor:
        """h_{n-1} W_hh^T."""
        chain, n = h.unrolled
        if n != len(chain.times):
            raise Refuse("an unrolled recurrent step reads a state that is not its chain's latest")
        weight = w.T.astype(np.float32)
        if chain.w_hh is not None and not np.array_equal(chain.w_hh, weight):
            raise Refuse("the steps of an unrolled RNN multiply the state by different matrices")
        chain.w_hh = weight
        return Tensor(h.axes, "rec", unrolled=(chain, n), bias=np.zeros(chain.hidden, np.float32),
                      hidden=chain.hidden)

    def unrolled_add(self, a, b) -> Tensor:
        tensors = [v for v in (a, b) if isinstance(v, Tensor)]
        other = next((v for v in (a, b) if not isinstance(v, Tensor)), None)
        stages = sorted(t.stage for t in tensors)
        if stages == ["rec"] and isinstance(other, Const):  # + b_hh
            (rec,) = tensors
            return Tensor(**{**rec.__dict__, "bias": rec.bias + _row(other, rec.unrolled[0].hidden)})
        if stages == ["rec", "xstep"]:
            rec, xstep = sorted(tensors, key=lambda t: t.stage)
            chain, _ = rec.unrolled
            if xstep.source is not chain.proj and not _same_projection(xstep.source, chain.proj):
                raise Refuse("an unrolled recurrent step adds another layer's input")
            if not np.array_equal(rec.bias, chain.b_hh):
                raise Refuse("the steps of an unrolled RNN add different recurrent biases (or it starts from a "
                             "non-zero state)")
            time = xstep.unrolled[1]
            chain.check_next(time)
            return Tensor(_wider(rec.axes, xstep.axes), "pre", unrolled=(chain, time), hidden=chain.hidden)
        if stages == ["xstep"] and isinstance(other, (Const, Sampled)):  # the first step: h_0 W_hh^T + b_hh folded
            (xstep,) = tensors
            proj = xstep.source
            steps, time = xstep.unrolled
            chain = Chain(proj, steps, proj.unrolled == "reversed", _row(other, xstep.hidden))
            chain.check_next(time)
            axes = _wider(("t", "B", "F")[-np.ndim(_first(other)):], xstep.axes)
            return Tensor(axes, "pre", unrolled=(chain, time), hidden=chain.hidden)
        raise Refuse("Add is supported as the head's bias or within an unrolled RNN step")

    def activate_step(self, node, x: Tensor) -> Tensor:
        """h_n = act(pre): Tanh / Relu of an unrolled step."""
        if x.stage != "pre":
            where = {"y": "a recurrent layer's output", "final": "a recurrent layer's final state",
                     "head": "the head's output", "input": "the input"}.get(x.stage, "this value")
            raise Refuse(f"operator {node.op_type} on {where} is not supported (rnnedge follows it only as the "
                         f"activation of an unrolled RNN step)")
        chain, time = x.unrolled
        act = node.op_type.lower()
        if chain.act not in (None, act):
            raise Refuse(f"an unrolled RNN mixes {chain.act} and {act} steps")
        chain.act = act
        chain.times.append(time)
        if len(chain.times) > chain.steps:
            raise Refuse("an unrolled RNN runs more steps than its input has")
        return Tensor(x.axes, "h", unrolled=(chain, len(chain.times)), hidden=chain.hidden)

    def unrolled_output(self, states: list[Tensor], axis: int) -> Tensor:
        """Y of one direction: Concat of every step's state along the (size-1) step axis, in time order."""
        chain = states[0].unrolled[0]
        if any(s.unrolled[0] is not chain for s in states) or states[0].axes[axis] != "t":
            raise Refuse("Concat of unrolled RNN states is supported of one chain's steps along the step axis")
        order = [s.unrolled[1] for s in states]
        want = list(range(chain.steps, 0, -1)) if chain.reverse else list(range(1, chain.steps + 1))
        if order != want:
            raise Refuse(f"Concat of an unrolled RNN's states {order}: not every step in time order")
        layer = self._register(chain)
        axes = tuple("T" if k == axis else a for k, a in enumerate(states[0].axes))
        return Tensor(axes, "y", layer, pieces=(int(chain.reverse),), hidden=chain.hidden)

    def unrolled_final(self, h: Tensor, axis: int) -> Tensor:
        """h_n of one direction: the last step's state without its step axis."""
        chain, n = h.unrolled
        if n != chain.steps or h.axes[axis] != "t":
            raise Refuse("Squeeze of an unrolled RNN state is supported of the final step's step axis")
        layer = self._register(chain)
        axes = tuple(a for k, a in enumerate(h.axes) if k != axis)
        return Tensor(axes, "final", layer, pieces=(int(chain.reverse),), hidden=chain.hidden)

    def _register(self, chain: Chain) -> int:
        """The layer a finished chain is a direction of: chains reading the same sequence make one layer."""
        if chain.layer is not None:
            return chain.layer
        source = chain.proj.source
        for group in self.unrolled:
            if group["source"] is source or _same_sequence(group["source"], source):
                break
        else:
            if source.stage == "input" and self.layers or source.stage == "y" and (
                    source.layer != len(self.layers) - 1 or source.pieces != tuple(
                        range(2 if self.layers[-1]["bidirectional"] else 1))):
                raise Refuse("an unrolled RNN layer must read the input or the previous layer's whole output")
            group = {"source": source, "chains": {}, "layer": len(self.layers)}
            self.unrolled.append(group)
            self.layers.append({"cell": f"rnn_{chain.act}", "hidden": chain.hidden, "bidirectional": False})
            self.layer_lengths.append(None)
        d = int(chain.reverse)
        if d in group["chains"]:
            raise Refuse("an unrolled RNN layer has two chains of the same direction")
        group["chains"][d] = chain
        chain.layer = group["layer"]
        layer = self.layers[chain.layer]
        if layer["cell"] != f"rnn_{chain.act}" or layer["hidden"] != chain.hidden:
            raise Refuse("the directions of an unrolled RNN layer differ in activation or size")
        layer["bidirectional"] = len(group["chains"]) == 2
        return chain.layer

    def unrolled_tensors(self) -> list[dict]:
        """The canonical tensors of every unrolled layer (once the graph is walked)."""
        found = []
        for group in self.unrolled:
            chains = group["chains"]
            if 0 not in chains:
                raise Refuse("an unrolled RNN layer has a backward direction only")
            for d, chain in sorted(chains.items()):
                name = f"layers.{group['layer']}.{('fwd', 'bwd')[d]}"
                H = chain.hidden
                found.append({f"{name}.w_ih": chain.proj.weight,
                              f"{name}.w_hh": chain.w_hh if chain.w_hh is not None else np.zeros((H, H), np.float32),
                              f"{name}.b_ih": chain.proj.bias if chain.proj.bias is not None else np.zeros(H),
                              f"{name}.b_hh": chain.b_hh})
        return found


def _row(value, hidden: int) -> np.ndarray:
    """The one (hidden,) row a constant (or a value built from the batch size) repeats."""
    samples = value.samples if isinstance(value, Sampled) else [value.value]
    rows = np.concatenate([np.broadcast_to(s, s.shape[:-1] + (hidden,)).reshape(-1, hidden) for s in samples]
                          ) if all(s.shape and s.shape[-1] in (1, hidden) for s in samples) else None
    if rows is None or not (rows == rows[0]).all():
        raise Refuse("an unrolled RNN step adds a value that differs between batch rows")
    return rows[0].astype(np.float32)


def _first(value) -> np.ndarray:
    return value.samples[0] if isinstance(value, Sampled) else value.value


def _wider(a: tuple, b: tuple) -> tuple:
    return a if len(a) >= len(b) else b


def _same_projection(a: Tensor, b: Tensor) -> bool:
    return a.source is b.source and np.array_equal(a.weight, b.weight)


def _same_sequence(a: Tensor, b: Tensor) -> bool:
    """Two values of the sequence that hold the same thing (the dynamo exporter transposes X once per direction)."""
    return a.stage == b.stage and a.layer == b.layer and a.pieces == b.pieces and a.step == b.step
