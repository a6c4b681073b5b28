"""A Loop whose body is one plain tanh RNN step (tf2onnx writes Keras SimpleRNN this way: a TF while-loop that
reads x[t] from the outer scope, carries (t, h, T, kernel, bias, recurrent) and scans h).

The body is recognised by evaluation, not by its nodes: run on probe rows it must give h' = tanh(x W^T + h R^T + b)
for every probe (W, R, b read off unit probes through atanh, then checked on random rows), read x at the step it
is given, count that step up by one, and stop after the input's last step. Anything else stays refused by name."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export.onnx_in.values import SAMPLE_POINTS, Const, Failed, Refuse, Sampled, Tensor

_PROBE = 0.05  # small enough that tanh's inverse is well conditioned


class LoopOps:
    """The Mapper's handling of Loop nodes (mixed into export.onnx_in.mapper.Mapper)."""

    def op_Loop(self, node, attrs, args, why: str) -> list:
        body = attrs["body"]
        outer = sorted(_outer_names(body))
        seqs = [n for n in outer if isinstance(self.env.get(n), Tensor)]
        carried = args[2:]
        if len(seqs) != 1 or not carried or any(not isinstance(a, (Const, Sampled)) for a in carried) or (
                node.input[0] and not isinstance(args[0], Const)):
            raise Refuse(why)
        seq = self.env[seqs[0]]
        if seq.stage not in ("input", "y") or len(seq.axes) != 3 or seq.axes[-1] != "F" or seq.step is not None:
            raise Refuse(why)
        cell = _CellProbe(self, body, seqs[0], seq, carried, outer)
        found = cell.recognise()
        if found is None:
            raise Refuse(why)
        state, W, R, b = found
        if seq.stage == "y" and (seq.layer != len(self.layers) - 1 or seq.pieces != (0,)):
            raise Refuse(why + "; its sequence is not the previous layer's whole output")
        if seq.stage == "input":
            if self.layers:
                raise Refuse(why)
            self.raw_time = seq.axes[0]
        layer = len(self.layers)
        H = R.shape[0]
        self.layers.append({"cell": "rnn_tanh", "hidden": H, "bidirectional": False})
        self.layer_lengths.append(None)
        self.layer_tensors.append({f"layers.{layer}.fwd.w_ih": W, f"layers.{layer}.fwd.w_hh": R,
                                   f"layers.{layer}.fwd.b_ih": b, f"layers.{layer}.fwd.b_hh": np.zeros(H, np.float32)})
        self.notes.append(f"node {node.name or '(unnamed)'!r} (Loop): its body is a tanh RNN step (recognised by "
                          f"evaluating it): mapped to an rnn_tanh layer")
        n_carried = len(carried)
        outs = []
        for k in range(len(node.output)):
            if k == state:
                outs.append(Tensor(("B", "F"), "final", layer, pieces=(0,), hidden=H))
            elif k >= n_carried and cell.scans_state(k - n_carried):
                outs.append(Tensor(("T", "B", "F"), "y", layer, pieces=(0,), hidden=H))
            elif k < n_carried and isinstance(carried[k], Const) and k != cell.counter:
                outs.append(carried[k])  # passed through unchanged (checked)
            else:
                outs.append(Failed("Loop", node.name or "(unnamed)", f"its output {k} is used; rnnedge reads the "
                                   f"state and its scan only"))
        return outs


class _CellProbe:
    """Runs a Loop body on chosen values: the step counter, the state and the sequence's rows."""

    def __init__(self, mapper, body: onnx.GraphProto, seq_name: str, seq: Tensor, carried: list, outer: list):
        self.mapper, self.body, self.seq_name, self.seq, self.carried = mapper, body, seq_name, seq, carried
        self.constants = {n: mapper.env[n].value for n in outer if isinstance(mapper.env.get(n), Const)}
        self.counter = next((k for k, a in enumerate(carried) if isinstance(a, Const) and a.value.ndim == 0
                             and a.value.dtype.kind == "i" and int(a.value) == 0), None)
        self.features = mapper.sizes(seq, SAMPLE_POINTS[0])[2]
        self.scan = None

    def run(self, t: int, h: np.ndarray, rows: np.ndarray, steps: int) -> list[np.ndarray]:
        """The body's outputs at step t with state h, the sequence's row t = rows (others NaN), `steps` steps."""
        from onnx.reference import ReferenceEvaluator

        seq = np.full((steps, rows.shape[0], self.features), np.nan, np.float32)
        seq[t] = rows
        feeds = {self.body.input[0].name: np.array(t, np.int64), self.body.input[1].name: np.array(True)}
        for k, (inp, value) in enumerate(zip(self.body.input[2:], self.carried)):
            if k == self.counter:
                feeds[inp.name] = np.array(t, value.value.dtype)
            elif k == self.state:
                feeds[inp.name] = h.astype(np.float32)
            elif isinstance(value, Sampled):  # the trip length: the sequence's steps
                feeds[inp.name] = np.array(steps, value.samples[0].dtype).reshape(value.samples[0].shape)
            else:
                feeds[inp.name] = value.value
        graph = helper.make_graph(list(self.body.node), "body", [
            *self.body.input, helper.make_tensor_value_info(self.seq_name, onnx.TensorProto.FLOAT, None)],
            list(self.body.output), initializer=[numpy_helper.from_array(np.asarray(v), k)
                                                 for k, v in self.constants.items()] + list(self.body.initializer))
        model = helper.make_model(graph, opset_imports=self.mapper.model.opset_import)
        return ReferenceEvaluator(model).run(None, {**feeds, self.seq_name: seq})

    def recognise(self):
        """(index of the state among the carried values, W, R, b) if the body is a tanh RNN step, else None."""
        zero_states = [k for k, a in enumerate(self.carried) if isinstance(a, Sampled) and a.samples[0].ndim == 2
                       and not any(s.any() for s in a.samples)]
        if self.counter is None or len(zero_states) != 1:
            return None
        self.state = zero_states[0]
        for k, a in enumerate(self.carried):  # any other size-dependent value is the trip length: the steps
            if isinstance(a, Sampled) and k != self.state and not all(
                    s.size == 1 and int(s) == self.mapper.sizes(self.seq, p)[0] for s, p in zip(a.samples,
                                                                                                SAMPLE_POINTS)):
                return None
        H = self.carried[self.state].samples[0].shape[1]
        F = self.features
        try:
            probes = np.zeros((1 + F + H, F + H), np.float32)
            probes[1:] = np.eye(F + H) * _PROBE
            got = self._step(1, probes, steps=3)
            if got is None or np.abs(got).max() >= 1:
                return None
            z = np.arctanh(got.astype(np.float64))
            b = z[0]
            W = ((z[1:1 + F] - b) / _PROBE).T
            R = ((z[1 + F:] - b) / _PROBE).T
            W, R, b = (self._exact(v) for v in (W, R, b))
            rows = np.random.default_rng(0).normal(size=(8, F + H)).astype(np.float32) * 0.5
            want = np.tanh(rows[:, :F] @ W.T + rows[:, F:] @ R.T + b)
            for t, steps in ((0, 2), (2, 4)):
                out = self._step(t, rows, steps)
                if out is None or not np.allclose(out, want, rtol=0, atol=1e-5):
                    return None
        except Exception:  # noqa: BLE001 - a body the evaluator cannot run is no cell step
            return None
        return self.state, W.astype(np.float32), R.astype(np.float32), b.astype(np.float32)

    def _exact(self, estimate: np.ndarray) -> np.ndarray:
        """The body's own constant (or its transpose) that a probed estimate is, else the estimate: probing
        through atanh in float32 is good to about 1e-6, the constant is exact."""
        values = [a.value for a in self.carried if isinstance(a, Const)] + list(self.constants.values())
        for value in values:
            for candidate in (value, value.T) if value.ndim == 2 else (value,):
                if candidate.shape == estimate.shape and np.allclose(candidate, estimate, rtol=0, atol=1e-4):
                    return np.asarray(candidate, np.float64)
        return estimate

    def _step(self, t: int, rows: np.ndarray, steps: int):
        """The new state for probe rows (x, h), after checking the counter, the stop condition and the scan."""
        F = self.features
        outs = self.run(t, rows[:, F:], rows[:, :F], steps)
        cond, carried_out, scans = outs[0], outs[1:1 + len(self.carried)], outs[1 + len(self.carried):]
        if int(carried_out[self.counter]) != t + 1 or bool(cond) != (t + 1 < steps):
            return None
        new = carried_out[self.state]
        if self.scan is None:
            self.scan = [k for k, s in enumerate(scans) if s.shape == new.shape and np.array_equal(s, new)]
        for k, (before, after) in enumerate(zip(self.carried, carried_out)):
            if isinstance(before, Const) and k != self.counter and not np.array_equal(before.value, after):
                return None
        return new

    def scans_state(self, k: int) -> bool:
        return k in (self.scan or [])


def _outer_names(graph: onnx.GraphProto) -> set[str]:
    """Names a (sub)graph reads that it does not make itself."""
    made = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    read = set()
    for node in graph.node:
        read |= {n for n in node.input if n and n not in made}
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                read |= _outer_names(a.g) - made
        made |= set(node.output)
    return read
