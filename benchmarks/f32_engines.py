"""The engines benchmarks.bench_f32 times on a Workload: per step (runtime stream.step f32 / int8w / int8, PyTorch
eager, PyTorch cells, quantize_dynamic, ONNX Runtime's step graph) and over a whole sequence."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmarks.f32_workload import Workload
from benchmarks.machine import ort_session
from rnnedge.export.onnx_graphs import state_names


# -- per-step engines: reset(), run(xs) -> last y, collect(xs) -> (T, out) ----------------------------------
class RuntimeStep:
    name = "runtime"
    label = "runtime stream.step"

    def __init__(self, w: Workload):
        self.stream = w.model.stream(batch=1)
        self.xs = None

    def prepare(self, X: np.ndarray) -> None:
        self.xs = [np.ascontiguousarray(X[:, t]) for t in range(X.shape[1])]  # (1, F) float32, C-contiguous

    def reset(self) -> None:
        self.stream.reset()

    def run(self) -> None:
        step = self.stream.step
        for x in self.xs:
            step(x)

    def collect(self) -> np.ndarray:
        self.reset()
        return np.stack([self.stream.step(x)[0].copy() for x in self.xs])


class RuntimeInt8wStep(RuntimeStep):
    name = "runtime_int8w"
    label = "runtime int8w stream.step"

    def __init__(self, w: Workload):
        self.stream = w.model_int8w.stream(batch=1)
        self.xs = None


class RuntimeInt8Step(RuntimeStep):
    name = "runtime_int8"
    label = "runtime int8 stream.step"

    def __init__(self, w: Workload):
        self.stream = w.model_int8.stream(batch=1)
        self.xs = None


class _TorchSteps:
    """What the PyTorch per-step engines share: each layer's state (zeros of shape lead + (hidden,), a pair for an
    LSTM), the timed loop over the prepared inputs, and the outputs of one pass from the initial state."""

    lead: tuple = ()  # the state tensors' leading dimensions

    def reset(self) -> None:
        self.state = []
        for layer in self.spec["layers"]:
            z = torch.zeros(*self.lead, layer["hidden"])
            self.state.append((z, z.clone()) if layer["cell"] == "lstm" else z)

    def run(self) -> None:
        with torch.inference_mode():
            step = self._step
            for x in self.xs:
                step(x)

    def collect(self) -> np.ndarray:
        self.reset()
        with torch.inference_mode():
            return np.stack([self._step(x).reshape(-1).numpy().copy() for x in self.xs])


class TorchEagerStep(_TorchSteps):
    """The RecurrentModel's own nn.LSTM / nn.GRU modules, called on a one-step sequence with the state carried."""

    name = "torch_eager"
    label = "PyTorch nn.LSTM/GRU per step"
    lead = (1, 1)  # (layers, batch): nn.LSTM / nn.GRU's state

    def __init__(self, w: Workload):
        self.m = self.module(w)
        self.spec = w.spec
        self.xs = None
        self.reset()

    @staticmethod
    def module(w: Workload) -> nn.Module:
        return w.torch_model

    def prepare(self, X: np.ndarray) -> None:
        self.xs = [torch.from_numpy(np.ascontiguousarray(X[:, t : t + 1])) for t in range(X.shape[1])]  # (1, 1, F)

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        m, state = self.m, self.state
        v = m.embed(x)
        for i, rnn in enumerate(m.layers):
            v, state[i] = rnn(v, state[i])
        return m.activate(m.head(v))



class TorchDynqStep(TorchEagerStep):
    """The same per-step calls on torch.ao.quantization.quantize_dynamic's model (int8 weights, float activations)."""

    name = "torch_dynq"
    label = "PyTorch quantize_dynamic per step"

    @staticmethod
    def module(w: Workload) -> nn.Module:
        return w.torch_dynq


class TorchCellStep(_TorchSteps):
    """nn.LSTMCell / nn.GRUCell + nn.Linear with the model's weights: what a latency-minded user writes."""

    name = "torch_cell"
    label = "PyTorch LSTMCell/GRUCell"
    lead = (1,)  # (batch,): the cells' state

    def __init__(self, w: Workload):
        m = w.torch_model
        self.spec = w.spec
        self.mean, self.std = m.norm_mean.clone(), m.norm_std.clone()
        self.cells = []
        with torch.no_grad():
            for layer, rnn in zip(self.spec["layers"], m.layers):
                cls = nn.LSTMCell if layer["cell"] == "lstm" else nn.GRUCell
                cell = cls(rnn.input_size, rnn.hidden_size)
                cell.weight_ih.copy_(rnn.weight_ih_l0)
                cell.weight_hh.copy_(rnn.weight_hh_l0)
                cell.bias_ih.copy_(rnn.bias_ih_l0)
                cell.bias_hh.copy_(rnn.bias_hh_l0)
                self.cells.append(cell.eval())
            self.head = nn.Linear(m.head.in_features, m.head.out_features)
            self.head.load_state_dict(m.head.state_dict())
            self.head.eval()
        self.lstm = [layer["cell"] == "lstm" for layer in self.spec["layers"]]
        self.xs = None
        self.reset()

    def prepare(self, X: np.ndarray) -> None:
        self.xs = [torch.from_numpy(np.ascontiguousarray(X[:, t])) for t in range(X.shape[1])]  # (1, F)

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        state = self.state
        v = (x - self.mean) / self.std
        for i, cell in enumerate(self.cells):
            if self.lstm[i]:
                state[i] = cell(v, state[i])
                v = state[i][0]
            else:
                v = state[i] = cell(v, state[i])
        return self.head(v)  # activation "none" in both workloads



class OrtStep:
    """ONNX Runtime on model.step.onnx: state in and out as numpy arrays, outputs fed back as the next inputs."""

    name = "ort_step"
    label = "ONNX Runtime step graph"

    def __init__(self, w: Workload):
        self.sess = ort_session(w.onnx_step)
        self.spec = w.spec
        self.state_in = state_names(w.spec, "in")
        self.out_names = ["y"] + state_names(w.spec, "out")
        self.xs = None
        self.reset()

    def prepare(self, X: np.ndarray) -> None:
        self.xs = [np.ascontiguousarray(X[:, t]) for t in range(X.shape[1])]

    def reset(self) -> None:
        self.feeds = {"x": None}
        for l, layer in enumerate(self.spec["layers"]):
            for name in [f"h{l}_in"] + ([f"c{l}_in"] if layer["cell"] == "lstm" else []):
                self.feeds[name] = np.zeros((1, layer["hidden"]), np.float32)
        assert set(self.feeds) == {"x", *self.state_in}

    def run(self) -> None:
        run, out_names, state_in, feeds = self.sess.run, self.out_names, self.state_in, self.feeds
        for x in self.xs:
            feeds["x"] = x
            outs = run(out_names, feeds)
            for name, value in zip(state_in, outs[1:]):
                feeds[name] = value

    def collect(self) -> np.ndarray:
        self.reset()
        ys = []
        for x in self.xs:
            self.feeds["x"] = x
            outs = self.sess.run(self.out_names, self.feeds)
            for name, value in zip(self.state_in, outs[1:]):
                self.feeds[name] = value
            ys.append(outs[0][0].copy())
        return np.stack(ys)


STEP_ENGINES = [RuntimeStep, TorchEagerStep, TorchCellStep, OrtStep]


def int8w_step_engines(w: Workload) -> list:
    return [RuntimeInt8wStep] + ([TorchDynqStep] if w.torch_dynq is not None else [])


INT8_STEP_ENGINES = [RuntimeInt8Step]


# -- whole-sequence engines: call(X) -> (1, T, out) numpy ------------------------------------------------
def sequence_engines(w: Workload) -> dict:
    sess = ort_session(w.onnx_seq)
    m = w.torch_model

    def torch_forward(X_t: torch.Tensor):
        with torch.inference_mode():
            return m(X_t)

    return {
        "runtime": ("runtime model.run", lambda X, X_t: w.model.run(X)),
        "torch": ("PyTorch module forward", lambda X, X_t: torch_forward(X_t)),
        "ort": ("ONNX Runtime model.onnx", lambda X, X_t: sess.run(["y"], {"x": X})[0]),
    }


def int8w_sequence_engines(w: Workload) -> dict:
    engines = {"runtime_int8w": ("runtime int8w model.run", lambda X, X_t: w.model_int8w.run(X))}
    if w.torch_dynq is not None:
        q = w.torch_dynq

        def dynq_forward(X_t: torch.Tensor):
            with torch.inference_mode():
                return q(X_t)

        engines["torch_dynq"] = ("PyTorch quantize_dynamic forward", lambda X, X_t: dynq_forward(X_t))
    return engines


def int8_sequence_engines(w: Workload) -> dict:
    return {"runtime_int8": ("runtime int8 model.run", lambda X, X_t: w.model_int8.run(X))}


def as_numpy(y) -> np.ndarray:
    return y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
