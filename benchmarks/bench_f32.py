"""f32, int8w and int8 runtime vs PyTorch and ONNX Runtime: per-step latency, whole sequences, cold start, memory.

    python -m benchmarks.bench_f32                 # full run: prints a table, writes benchmarks/results/f32.json
    python benchmarks/bench_f32.py --quick         # a few steps and one repetition (smoke test)

Everything runs in one process pinned to one core, with PyTorch and ONNX Runtime single-threaded (on a
small machine their thread pools make a one-step op many times slower, which would flatter the runtime).
Two workloads with seeded random weights:

    kws  dense 40 -> LSTM 128 -> Linear 12 on every step   (keyword spotting on 40 MFCC per frame)
    har  dense 6 -> GRU 64 -> GRU 64 -> Linear 6           (activity recognition on a 6-axis IMU)

Engines, per step (batch 1, inputs preallocated, state carried from one call to the next):

    runtime      stream.step(x)
    torch_eager  the RecurrentModel's own nn.LSTM / nn.GRU layers called on one step, state carried
    torch_cell   nn.LSTMCell / nn.GRUCell + nn.Linear loaded with the same weights
    ort_step     ONNX Runtime on model.step.onnx, state fed back from the outputs

and over a whole sequence: runtime model.run(X), the PyTorch module's forward, ONNX Runtime on model.onnx.
Every engine's outputs are compared with the PyTorch forward: a fast wrong answer is worth nothing.

int8w (weights int8 per output row, export.quantize.quantize_int8w) is measured in the same interleaved
repetitions, in its own section: runtime int8w stream.step / model.run, and PyTorch's dynamic quantisation
(torch.ao.quantization.quantize_dynamic on nn.LSTM / nn.GRU / nn.Linear, qint8) where this torch still has it.
Its ratios read "this / other" the other way round: f32/this > 1 means int8w is faster than f32. Its outputs
are not held to the f32 tolerance; an accuracy anchor (kws, 2000-step stream of random inputs, max abs logit
error vs the float PyTorch model) and a size ratio (int8w tensor bytes / f32 tensor bytes) have targets.
int8 (the integer model, runtime/kernels_int8.py: int8 weights, int16 activations and state, int32 sums;
export.quantize_int8.quantize_int8) is measured in the same interleaved repetitions too, in a third section:
runtime int8 stream.step / model.run, with ratios to runtime f32 (this/f32 and f32/this), to the PyTorch float
engines and to quantize_dynamic (dynq/this: > 1 means int8 is faster than PyTorch's int8 answer). Its
calibration ranges (max |normalised input|, max |h| and max |c| per layer, export.quantize_int8.Ranges) come
from export.calibrate.calibrate, as in export, over a 2000-step stream of Workload.inputs drawn with a seed of
its own (INT8_CALIBRATION_SEED), neither the measured stream's nor the accuracy anchor's. Its targets: step time int8 / f32 <= 1.5; tensor bytes of the whole int8 file
(int8 matrices + int32 biases + requantisation multipliers and shifts + float32 scales) / f32 tensor bytes <= 27%,
printed with the weight matrices' share alone and a byte breakdown; max abs logit error vs the float PyTorch
model over the same 2000-step anchor stream <= 0.01 on kws (har's is reported, with no target). The runtime's
int8 step returns float32 y = act(acc * head_scale); both workloads' heads have activation "none", so y and
PyTorch's forward are both logits (checked). The int8 stream and model.run run the same integer kernels: the
anchor also records whether the two agree exactly.
Timings are medians of --reps repetitions (engines interleaved within each repetition, gc off); the JSON
keeps every repetition. Ratios are other / runtime: "runtime is N x faster". No number here is asserted.
"""

from __future__ import annotations

import os

# before numpy / torch / onnxruntime load their thread pools
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import copy
import gc
import hashlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numba
import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from benchmarks.workloads import dense_inputs
from rnnedge import runtime
from rnnedge.export.calibrate import calibrate, calibration_slice
from rnnedge.export.onnx_graphs import build_sequence_graph, build_step_graph, state_names
from rnnedge.export.quantize import quantize_int8w
from rnnedge.export.quantize_int8 import Ranges, quantize_int8
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import artifact
from rnnedge.train.model import RecurrentModel

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "f32.json"
TOLERANCE = 1e-5  # f32 parity target of the design (max abs error vs PyTorch)

# torch.ao.quantization is deprecated (the dynamic-quantisation baseline still runs): silence only those warnings
warnings.filterwarnings("ignore", message=r"(?s).*torch\.ao\.quantization is deprecated")
warnings.filterwarnings("ignore", message=r"(?s).*quantized tensor creation functions.*deprecated")

INT8W_ACCURACY_STEPS = 2000  # the accuracy anchor's stream length (kws), whatever --steps is
INT8W_ACCURACY_TARGET = 0.0025  # max abs logit error of runtime int8w vs the float PyTorch model
INT8W_SIZE_TARGET = 0.27  # int8w tensor bytes / f32 tensor bytes
INT8W_STEP_SPEED_TARGET = 1.0  # f32 step time / int8w step time: int8w no slower than f32

INT8_ACCURACY_STEPS = INT8W_ACCURACY_STEPS  # int8's anchor: the same 2000-step stream (seed 1)
INT8_ACCURACY_TARGET = 0.01  # max abs logit error of runtime int8 vs the float PyTorch model (kws)
INT8_SIZE_TARGET = 0.27  # int8 tensor bytes (every tensor of the int8 file) / f32 tensor bytes
INT8_STEP_SLOWDOWN_TARGET = 1.5  # int8 step time / f32 step time: int8 no worse than 1.5x f32
INT8_CALIBRATION_STEPS = 2000  # calibration stream for the int8 ranges
INT8_CALIBRATION_SEED = 2  # != 0 (the measured stream) and != 1 (the accuracy anchor)

# The design's targets, as ratios other / runtime (>= means the runtime is at least that many times faster).
TARGETS = [
    # (name, section, engine, required ratio, description)
    ("step_vs_ort_step", "step", "ort_step", 3.0, "stream.step >= 3x faster than ORT step graph"),
    ("step_vs_torch_cell", "step", "torch_cell", 6.0, "stream.step >= 6x faster than PyTorch LSTMCell/GRUCell"),
    ("run_vs_torch_forward", "sequence", "torch", 1.0, "model.run at least as fast as PyTorch whole-sequence call"),
]

# int8w targets: (name, comparison, required, description, workloads it applies to)
INT8W_TARGETS = [
    ("int8w_step_vs_f32_step", ">=", INT8W_STEP_SPEED_TARGET,
     "int8w stream.step no slower than f32 stream.step (f32 time / int8w time)", ("kws", "har")),
    ("int8w_size_ratio", "<=", INT8W_SIZE_TARGET,
     "int8w tensor bytes <= 27% of f32 tensor bytes", ("kws", "har")),
    ("int8w_accuracy", "<=", INT8W_ACCURACY_TARGET,
     (f"int8w max abs logit error vs PyTorch float <= {INT8W_ACCURACY_TARGET:g} "
      f"({INT8W_ACCURACY_STEPS}-step stream)"), ("kws",)),
]

# int8 targets, the same shape as INT8W_TARGETS
INT8_TARGETS = [
    ("int8_step_vs_f32_step", "<=", INT8_STEP_SLOWDOWN_TARGET,
     "int8 stream.step no worse than 1.5x f32 stream.step (int8 time / f32 time)", ("kws", "har")),
    ("int8_size_ratio", "<=", INT8_SIZE_TARGET,
     "int8 tensor bytes (matrices, biases, requant constants, scales) <= 27% of f32 tensor bytes", ("kws", "har")),
    ("int8_accuracy", "<=", INT8_ACCURACY_TARGET,
     (f"int8 max abs logit error vs PyTorch float <= {INT8_ACCURACY_TARGET:g} "
      f"({INT8_ACCURACY_STEPS}-step stream)"), ("kws",)),
]


def workload_specs() -> dict[str, dict]:
    kws_input, har_input = dense_inputs(40, 6)
    return {
        "kws": {"version": 1, "input": kws_input,
                "layers": [{"cell": "lstm", "hidden": 128, "bidirectional": False}],
                "head": {"out": 12, "on": "every_step", "activation": "none"}, "task": "classify"},
        "har": {"version": 1, "input": har_input,
                "layers": [{"cell": "gru", "hidden": 64, "bidirectional": False}] * 2,
                "head": {"out": 6, "on": "every_step", "activation": "none"}, "task": "classify"},
    }


# -- machine and process set-up -----------------------------------------------------------------------
def pin_to_one_core(core: int | None) -> int | None:
    """Pin this process (and the children it starts) to one core; returns the core, or None if unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    core = allowed[-1] if core is None else core
    os.sched_setaffinity(0, {core})
    return core


def single_thread_torch() -> None:
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started
        pass


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(core: int | None) -> dict:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "pinned_core": core,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "ort_threads": {"intra_op": 1, "inter_op": 1},
        # which kernels were measured (runtime/ changes under this benchmark): sha256 of each runtime source
        "runtime_sources_sha256": {
            f.name: hashlib.sha256(f.read_bytes()).hexdigest()[:16]
            for f in sorted(Path(runtime.__file__).parent.glob("*.py"))
        },
    }


def ort_session(path: str) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


# -- building one workload ------------------------------------------------------------------------------
class Workload:
    """A seeded RecurrentModel, its f32 artifact and ONNX graphs in `folder`, and the loaded runtime model."""

    def __init__(self, name: str, spec: dict, folder: Path, seed: int = 0):
        self.name = name
        torch.manual_seed(seed)
        self.torch_model = RecurrentModel(spec).eval()
        self.spec = self.torch_model.spec
        tensors = canonical_tensors(self.torch_model)
        self.artifact = str(folder / f"{name}.f32.safetensors")
        artifact.write(self.artifact, tensors, self.spec)
        self.onnx_seq = str(folder / f"{name}.onnx")
        self.onnx_step = str(folder / f"{name}.step.onnx")
        onnx.save(build_sequence_graph(self.spec, tensors), self.onnx_seq)
        onnx.save(build_step_graph(self.spec, tensors), self.onnx_step)
        self.model = runtime.load(self.artifact)
        self.features = self.spec["input"]["features"]
        qtensors, self.int8w_weight_errors = quantize_int8w(self.spec, tensors)
        self.artifact_int8w = str(folder / f"{name}.int8w.safetensors")
        artifact.write(self.artifact_int8w, qtensors, self.spec, precision="int8w")
        self.model_int8w = runtime.load(self.artifact_int8w)
        # the integer model: ranges from a calibration stream of its own, then export.quantize_int8
        self.int8_ranges = calibration_ranges(self)
        q8tensors, self.int8_info = quantize_int8(self.spec, tensors, self.int8_ranges)
        self.artifact_int8 = str(folder / f"{name}.int8.safetensors")
        artifact.write(self.artifact_int8, q8tensors, self.spec, precision="int8")
        self.model_int8 = runtime.load(self.artifact_int8)
        # PyTorch's own int8 answer, where this torch still has it (deprecated in torch.ao.quantization)
        self.torch_dynq = None
        self.torch_dynq_error = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                q = torch.ao.quantization.quantize_dynamic(
                    copy.deepcopy(self.torch_model), {nn.LSTM, nn.GRU, nn.Linear}, dtype=torch.qint8)
                with torch.inference_mode():
                    q(torch.zeros(1, 2, self.features))  # does it run at all?
            self.torch_dynq = q.eval()
        except Exception as exc:  # noqa: BLE001 -- any failure means "not available", reported with its reason
            self.torch_dynq_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]

    def inputs(self, steps: int, seed: int = 0) -> np.ndarray:
        """Raw (1, steps, F) float32 values around the spec's statistics, as a device would feed them."""
        inp = self.spec["input"]
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((1, steps, self.features)) * np.asarray(inp["std"]) + np.asarray(inp["mean"])
        return x.astype(np.float32)


def calibration_ranges(w: Workload, steps: int = INT8_CALIBRATION_STEPS, seed: int = INT8_CALIBRATION_SEED) -> Ranges:
    """The int8 model's calibration ranges, as export does it (export.calibrate: the float model's largest
    |normalised input|, per layer |h| and |c|), over one stream of random inputs drawn like the measured ones
    (Workload.inputs) with a seed of its own."""
    X, lengths = calibration_slice(w.inputs(steps, seed=seed))  # one stream, well under the slice's budget
    ranges = calibrate(w.torch_model, X, lengths, where=f"{w.name} calibration stream")
    ranges.extra.update({"source": "rnnedge.export.calibrate.calibrate", "seed": seed})
    return ranges


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


class TorchEagerStep:
    """The RecurrentModel's own nn.LSTM / nn.GRU modules, called on a one-step sequence with the state carried."""

    name = "torch_eager"
    label = "PyTorch nn.LSTM/GRU per step"

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

    def reset(self) -> None:
        self.state = []
        for layer in self.spec["layers"]:
            z = torch.zeros(1, 1, layer["hidden"])
            self.state.append((z, z.clone()) if layer["cell"] == "lstm" else z)

    def _step(self, x: torch.Tensor) -> torch.Tensor:
        m, state = self.m, self.state
        v = m.embed(x)
        for i, rnn in enumerate(m.layers):
            v, state[i] = rnn(v, state[i])
        return m.activate(m.head(v))

    def run(self) -> None:
        with torch.inference_mode():
            step = self._step
            for x in self.xs:
                step(x)

    def collect(self) -> np.ndarray:
        self.reset()
        with torch.inference_mode():
            return np.stack([self._step(x)[0, 0].numpy().copy() for x in self.xs])


class TorchDynqStep(TorchEagerStep):
    """The same per-step calls on torch.ao.quantization.quantize_dynamic's model (int8 weights, float activations)."""

    name = "torch_dynq"
    label = "PyTorch quantize_dynamic per step"

    @staticmethod
    def module(w: Workload) -> nn.Module:
        return w.torch_dynq


class TorchCellStep:
    """nn.LSTMCell / nn.GRUCell + nn.Linear with the model's weights: what a latency-minded user writes."""

    name = "torch_cell"
    label = "PyTorch LSTMCell/GRUCell"

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

    def reset(self) -> None:
        self.state = []
        for layer in self.spec["layers"]:
            z = torch.zeros(1, layer["hidden"])
            self.state.append((z, z.clone()) if layer["cell"] == "lstm" else z)

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

    def run(self) -> None:
        with torch.inference_mode():
            step = self._step
            for x in self.xs:
                step(x)

    def collect(self) -> np.ndarray:
        self.reset()
        with torch.inference_mode():
            return np.stack([self._step(x)[0].numpy().copy() for x in self.xs])


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


# -- measurements -------------------------------------------------------------------------------------------
def bench_steps(w: Workload, X: np.ndarray, warmup: int, reps: int, reference: np.ndarray) -> dict:
    """All step engines, f32, int8w and int8, in the same interleaved repetitions; ratios vs runtime f32."""
    engines = [cls(w) for cls in STEP_ENGINES + int8w_step_engines(w) + INT8_STEP_ENGINES]
    result = {}
    for e in engines:
        e.prepare(X[:, :warmup])
        e.reset()
        e.run()  # warm-up: compilation, allocator, caches
        e.prepare(X)
        diff = float(np.max(np.abs(e.collect() - reference)))
        result[e.name] = {"label": e.label, "us_per_step": [], "max_abs_diff_vs_torch": diff}
    steps = X.shape[1]
    gc.disable()
    try:
        for _ in range(reps):
            for e in engines:  # interleaved, so slow drift of the machine hits every engine alike
                e.reset()
                t0 = time.perf_counter()
                e.run()
                dt = time.perf_counter() - t0
                result[e.name]["us_per_step"].append(dt / steps * 1e6)
    finally:
        gc.enable()
    for r in result.values():
        r["median_us_per_step"] = statistics.median(r["us_per_step"])
    base = result["runtime"]["median_us_per_step"]
    for r in result.values():
        r["ratio_vs_runtime"] = r["median_us_per_step"] / base
    return result


def bench_sequence(w: Workload, X: np.ndarray, reps: int, reference: np.ndarray) -> dict:
    X_t = torch.from_numpy(X)
    engines = {**sequence_engines(w), **int8w_sequence_engines(w), **int8_sequence_engines(w)}
    result = {}
    for name, (label, call) in engines.items():
        y = as_numpy(call(X, X_t))  # warm-up (and the compilation of model.run's kernels)
        diff = float(np.max(np.abs(y - reference)))
        result[name] = {"label": label, "ms": [], "max_abs_diff_vs_torch": diff}
    gc.disable()
    try:
        for _ in range(reps):
            for name, (_, call) in engines.items():
                t0 = time.perf_counter()
                call(X, X_t)
                dt = time.perf_counter() - t0
                result[name]["ms"].append(dt * 1e3)
    finally:
        gc.enable()
    steps = X.shape[1]
    for r in result.values():
        r["median_ms"] = statistics.median(r["ms"])
        r["median_us_per_step"] = r["median_ms"] * 1e3 / steps
    base = result["runtime"]["median_ms"]
    for r in result.values():
        r["ratio_vs_runtime"] = r["median_ms"] / base
    return result


COLD_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np
from rnnedge import runtime
t1 = time.perf_counter()
model = runtime.load(sys.argv[1])
stream = model.stream(batch=1)
x = np.zeros((1, int(sys.argv[2])), dtype=np.float32)
t2 = time.perf_counter()
y = stream.step(x)
t3 = time.perf_counter()
ru_maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:  # VmHWM: this process's own peak; ru_maxrss also counts the parent's RSS at fork time (Linux)
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
    maxrss_kb = int(hwm[0].split()[1])
except (OSError, IndexError, ValueError):
    maxrss_kb = ru_maxrss_kb
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_step_s": t3 - t2,
                  "child_total_s": t3 - t0, "maxrss_kb": maxrss_kb, "ru_maxrss_kb": ru_maxrss_kb,
                  "y_first": float(y[0, 0]), "torch_imported": "torch" in sys.modules,
                  "onnx_imported": "onnx" in sys.modules}))
"""


def cold_start_once(w: Workload, cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", COLD_CHILD, w.artifact, str(w.features)],
                          check=False, env=env, capture_output=True, text=True,
                          cwd=str(Path(__file__).resolve().parents[1]))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"cold-start child failed ({proc.returncode}):\n{proc.stderr}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    out["cache_files"] = sum(len(files) for _, _, files in os.walk(cache_dir))
    return out


def bench_cold_start(w: Workload, reps: int) -> dict:
    """Per repetition: a fresh NUMBA_CACHE_DIR (empty: everything compiles), then the same dir again (warm)."""
    runs = {"empty_cache": [], "warm_cache": []}
    for _ in range(reps):
        with tempfile.TemporaryDirectory(prefix="rnnedge-numba-") as cache_dir:
            runs["empty_cache"].append(cold_start_once(w, cache_dir))
            runs["warm_cache"].append(cold_start_once(w, cache_dir))
    result = {}
    for key, rs in runs.items():
        result[key] = {
            "runs": rs,
            "wall_s": [r["wall_s"] for r in rs],
            "median_wall_s": statistics.median(r["wall_s"] for r in rs),
            "median_first_step_s": statistics.median(r["first_step_s"] for r in rs),
            "median_import_s": statistics.median(r["import_s"] for r in rs),
            "maxrss_kb": [r["maxrss_kb"] for r in rs],
            "median_maxrss_mb": statistics.median(r["maxrss_kb"] for r in rs) / 1024,
        }
    return result


def memory(w: Workload) -> dict:
    stream = w.model.stream(batch=1)
    return {
        "model_nbytes": w.model.nbytes,
        "stream_nbytes": stream.nbytes,
        "artifact_file_bytes": os.path.getsize(w.artifact),
        "torch_param_bytes": sum(p.numel() * p.element_size() for p in w.torch_model.parameters()),
        "onnx_step_file_bytes": os.path.getsize(w.onnx_step),
        "onnx_seq_file_bytes": os.path.getsize(w.onnx_seq),
    }


INT8W_ENGINES = ("runtime_int8w", "torch_dynq")
INT8_ENGINES = ("runtime_int8",)


def split_sections(section: dict) -> tuple[dict, dict, dict]:
    """One measured section (every engine together) -> (f32 engines, int8w engines, int8 engines)."""
    f32 = {k: v for k, v in section.items() if k not in INT8W_ENGINES + INT8_ENGINES}
    q = {k: v for k, v in section.items() if k in INT8W_ENGINES}
    q8 = {k: v for k, v in section.items() if k in INT8_ENGINES}
    return f32, q, q8


def int8w_ratios(step_f32: dict, step_q: dict, seq_f32: dict, seq_q: dict) -> None:
    """Adds `<other>_over_this` (other's time / this one's: > 1 means this int8w engine is faster)."""
    for e in step_q.values():
        for other in ("runtime", "torch_cell", "torch_eager"):
            e[f"{other}_over_this"] = step_f32[other]["median_us_per_step"] / e["median_us_per_step"]
    for e in seq_q.values():
        for other in ("runtime", "torch"):
            e[f"{other}_over_this"] = seq_f32[other]["median_ms"] / e["median_ms"]


def int8_ratios(step_f32: dict, step_q: dict, step_8: dict, seq_f32: dict, seq_q: dict, seq_8: dict) -> None:
    """Adds `<other>_over_this` (> 1 means int8 is faster than other; None where other was not measured) and
    `this_over_runtime` (int8 time / f32 runtime time: the step target's unit)."""
    for e in step_8.values():
        t = e["median_us_per_step"]
        e["this_over_runtime"] = t / step_f32["runtime"]["median_us_per_step"]
        for other, section in (("runtime", step_f32), ("torch_cell", step_f32), ("torch_eager", step_f32),
                               ("ort_step", step_f32), ("runtime_int8w", step_q), ("torch_dynq", step_q)):
            e[f"{other}_over_this"] = section[other]["median_us_per_step"] / t if other in section else None
    for e in seq_8.values():
        t = e["median_ms"]
        e["this_over_runtime"] = t / seq_f32["runtime"]["median_ms"]
        for other, section in (("runtime", seq_f32), ("torch", seq_f32), ("ort", seq_f32),
                               ("runtime_int8w", seq_q), ("torch_dynq", seq_q)):
            e[f"{other}_over_this"] = section[other]["median_ms"] / t if other in section else None


def tensor_bytes(path: str) -> int:
    _, _, tensors = artifact.read(path)
    return int(sum(t.nbytes for t in tensors.values()))


def int8w_size(w: Workload) -> dict:
    f32_bytes, q_bytes = tensor_bytes(w.artifact), tensor_bytes(w.artifact_int8w)
    return {
        "f32_tensor_bytes": f32_bytes,
        "int8w_tensor_bytes": q_bytes,
        "tensor_bytes_ratio": q_bytes / f32_bytes,
        "f32_file_bytes": os.path.getsize(w.artifact),
        "int8w_file_bytes": os.path.getsize(w.artifact_int8w),
        "f32_model_nbytes": w.model.nbytes,
        "int8w_model_nbytes": w.model_int8w.nbytes,
        "int8w_stream_nbytes": w.model_int8w.stream(batch=1).nbytes,
    }


INT8_MATRICES = (".w_ih", ".w_hh", "head.weight", "embedding.weight")


def int8_tensor_kind(name: str, arr: np.ndarray) -> str:
    """Where the bytes of an int8 file go (by tensor name, whatever the dtype): weight matrices, biases,
    requantisation constants, float scales, other."""
    if name.endswith(INT8_MATRICES):
        return "matrices"  # int8 w_ih, w_hh, head.weight, embedding.weight
    if name.endswith((".requant", ".shift")):
        return "requant"  # multiplier M and shift S per gate row, x side and h side
    if name.endswith((".b_ih", ".b_hh", "head.bias")):
        return "biases"  # int32
    if arr.dtype == np.float32:
        return "float_scales"  # input / layer / head scales (and any per-row weight scales the file keeps)
    return "other"  # cell_power


def int8_size(w: Workload) -> dict:
    """Every tensor of the int8 file vs the f32 file's tensors, and the weight matrices' share alone."""
    _, _, f32_tensors = artifact.read(w.artifact)
    _, _, q8 = artifact.read(w.artifact_int8)
    f32_bytes = int(sum(t.nbytes for t in f32_tensors.values()))
    breakdown = {k: 0 for k in ("matrices", "biases", "requant", "float_scales", "other")}
    for name, t in q8.items():
        breakdown[int8_tensor_kind(name, t)] += int(t.nbytes)
    q_bytes = sum(breakdown.values())
    matrices = [n for n, t in q8.items() if int8_tensor_kind(n, t) == "matrices"]
    f32_matrix_bytes = int(sum(f32_tensors[n].nbytes for n in matrices))
    return {
        "f32_tensor_bytes": f32_bytes,
        "int8_tensor_bytes": q_bytes,
        "tensor_bytes_ratio": q_bytes / f32_bytes,
        "bytes_by_kind": breakdown,
        "tensors": {name: {"dtype": str(t.dtype), "shape": list(t.shape), "bytes": int(t.nbytes),
                           "kind": int8_tensor_kind(name, t)} for name, t in sorted(q8.items())},
        "weight_matrix_bytes": breakdown["matrices"],
        # the int8 weight matrices alone, over all f32 tensor bytes: the part of the ratio the matrices take
        "weight_matrix_bytes_ratio": breakdown["matrices"] / f32_bytes,
        # the same matrices int8 / f32 (0.25 by construction) and everything else over all f32 tensor bytes
        "weight_matrix_vs_f32_matrix_ratio": breakdown["matrices"] / f32_matrix_bytes,
        "non_matrix_bytes_ratio": (q_bytes - breakdown["matrices"]) / f32_bytes,
        "f32_file_bytes": os.path.getsize(w.artifact),
        "int8_file_bytes": os.path.getsize(w.artifact_int8),
        "f32_model_nbytes": w.model.nbytes,
        "int8_model_nbytes": w.model_int8.nbytes,
        "int8_stream_nbytes": w.model_int8.stream(batch=1).nbytes,
    }


def int8_accuracy(w: Workload, steps: int = INT8_ACCURACY_STEPS, seed: int = 1) -> dict:
    """Max abs logit error of runtime int8 vs the float PyTorch model over the anchor's stream (as int8w's).

    The int8 step returns float32 y = act(acc * head_scale) and PyTorch's forward returns act(logits): with
    activation "none" (both workloads) both are logits, like with like.
    """
    activation = w.spec["head"]["activation"]
    if activation != "none":
        raise ValueError(f"{w.name}: the int8 anchor compares logits; head activation {activation!r} is not 'none'")
    X = w.inputs(steps, seed=seed)
    with torch.inference_mode():
        reference = w.torch_model(torch.from_numpy(X)).numpy()
    e = RuntimeInt8Step(w)
    e.prepare(X)
    y_stream = e.collect()
    y_run = w.model_int8.run(X)
    out = {"steps": steps, "seed": seed, "head_activation": activation}
    out["runtime_int8_stream"] = float(np.max(np.abs(y_stream - reference[0])))
    out["runtime_int8_run"] = float(np.max(np.abs(y_run - reference)))
    out["runtime_int8"] = max(out["runtime_int8_stream"], out["runtime_int8_run"])
    out["runtime_int8_mean_abs"] = float(np.mean(np.abs(y_run - reference)))
    out["stream_equals_run"] = bool(np.array_equal(y_stream, y_run[0]))  # the same integer kernels
    out["argmax_agreement"] = float(np.mean(np.argmax(y_run, -1) == np.argmax(reference, -1)))
    out["reference_max_abs_logit"] = float(np.max(np.abs(reference)))
    return out


def int8w_accuracy(w: Workload, steps: int = INT8W_ACCURACY_STEPS, seed: int = 1) -> dict:
    """Max abs output (logit) error vs the float PyTorch model over one `steps`-step stream of random inputs."""
    X = w.inputs(steps, seed=seed)
    with torch.inference_mode():
        reference = w.torch_model(torch.from_numpy(X)).numpy()
    out = {"steps": steps, "seed": seed}
    e = RuntimeInt8wStep(w)
    e.prepare(X)
    out["runtime_int8w_stream"] = float(np.max(np.abs(e.collect() - reference[0])))
    out["runtime_int8w_run"] = float(np.max(np.abs(w.model_int8w.run(X) - reference)))
    out["runtime_int8w"] = max(out["runtime_int8w_stream"], out["runtime_int8w_run"])
    if w.torch_dynq is not None:
        e = TorchDynqStep(w)
        e.prepare(X)
        out["torch_dynq_stream"] = float(np.max(np.abs(e.collect() - reference[0])))
        with torch.inference_mode():
            y = w.torch_dynq(torch.from_numpy(X)).numpy()
        out["torch_dynq_forward"] = float(np.max(np.abs(y - reference)))
        out["torch_dynq"] = max(out["torch_dynq_stream"], out["torch_dynq_forward"])
    else:
        out["torch_dynq"] = None
    out["reference_max_abs_logit"] = float(np.max(np.abs(reference)))
    return out


def check_int8w_targets(name: str, q: dict) -> list[dict]:
    measured = {
        "int8w_step_vs_f32_step": q["step"]["runtime_int8w"]["runtime_over_this"],
        "int8w_size_ratio": q["size"]["tensor_bytes_ratio"],
        "int8w_accuracy": q["accuracy"]["runtime_int8w"],
    }
    return check_quantised_targets(name, INT8W_TARGETS, measured)


def check_int8_targets(name: str, q8: dict) -> list[dict]:
    measured = {
        "int8_step_vs_f32_step": q8["step"]["runtime_int8"]["this_over_runtime"],
        "int8_size_ratio": q8["size"]["tensor_bytes_ratio"],
        "int8_accuracy": q8["accuracy"]["runtime_int8"],
    }
    return check_quantised_targets(name, INT8_TARGETS, measured)


def check_quantised_targets(name: str, targets: list, measured: dict) -> list[dict]:
    out = []
    for tname, cmp, required, description, workloads in targets:
        if name not in workloads:
            continue
        m = measured[tname]
        met = m >= required if cmp == ">=" else m <= required
        out.append({"name": tname, "description": description, "comparison": cmp, "required": required,
                    "measured": m, "met": bool(met)})
    return out


def target_text(t: dict) -> str:
    """'measured X, required Y' in the target's own unit."""
    if "measured_ratio" in t:
        return f"measured {t['measured_ratio']:.2f}x, required {t['required_ratio']:g}x"
    if t["name"].endswith("_size_ratio"):
        return f"measured {t['measured']:.2%}, required {t['comparison']} {t['required']:.0%}"
    if t["name"].endswith("_accuracy"):
        return f"measured {t['measured']:.2e}, required {t['comparison']} {t['required']:g}"
    return f"measured {t['measured']:.2f}x, required {t['comparison']} {t['required']:g}x"


def check_targets(step: dict, seq: dict) -> list[dict]:
    sections = {"step": step, "sequence": seq}
    out = []
    for name, section, engine, required, description in TARGETS:
        measured = sections[section][engine]["ratio_vs_runtime"]
        out.append({"name": name, "description": description, "required_ratio": required,
                    "measured_ratio": measured, "met": bool(measured >= required)})
    return out


# -- report -----------------------------------------------------------------------------------------------
def print_workload(name: str, spec: dict, r: dict) -> None:
    layers = " -> ".join(f"{layer['cell'].upper()} {layer['hidden']}" for layer in spec["layers"])
    print(f"\n=== {name}: dense {spec['input']['features']} -> {layers} -> Linear {spec['head']['out']} "
          f"(batch 1, {r['steps']} steps, median of {r['reps']} reps) ===")
    print(f"{'per step':34s} {'us/step':>10s} {'min':>9s} {'max':>9s} {'ratio':>8s} {'max|diff|':>10s}")
    for e in r["step"].values():
        us = e["us_per_step"]
        print(f"  {e['label']:32s} {e['median_us_per_step']:10.2f} {min(us):9.2f} {max(us):9.2f} "
              f"{e['ratio_vs_runtime']:7.2f}x {e['max_abs_diff_vs_torch']:10.2e}")
    print(f"{'whole sequence':34s} {'ms/seq':>10s} {'us/step':>9s} {'':>9s} {'ratio':>8s} {'max|diff|':>10s}")
    for e in r["sequence"].values():
        print(f"  {e['label']:32s} {e['median_ms']:10.3f} {e['median_us_per_step']:9.2f} {'':9s} "
              f"{e['ratio_vs_runtime']:7.2f}x {e['max_abs_diff_vs_torch']:10.2e}")
    print("  (ratio = other / runtime: the runtime is that many times faster; max|diff| vs PyTorch forward)")
    mem = r["memory"]
    print(f"memory: model.nbytes {mem['model_nbytes']:,} B, stream.nbytes {mem['stream_nbytes']:,} B "
          f"(artifact file {mem['artifact_file_bytes']:,} B, torch params {mem['torch_param_bytes']:,} B)")
    cold = r.get("cold_start")
    if cold:
        for key in ("empty_cache", "warm_cache"):
            c = cold[key]
            print(f"cold start, {key.replace('_', ' ')}: {c['median_wall_s']:.2f} s wall "
                  f"(import {c['median_import_s']:.2f} s, first step {c['median_first_step_s'] * 1e3:.1f} ms), "
                  f"peak RSS {c['median_maxrss_mb']:.1f} MB")
    agree = r["outputs_agree"]
    print(f"outputs agree with PyTorch (<= {TOLERANCE:g}): {'YES' if agree else 'NO -- TIMINGS ARE MEANINGLESS'}")
    print_int8w(r["int8w"])
    print_int8(r["int8"])
    for t in r["targets"]:
        verdict = "MET" if t["met"] else "NOT MET"
        print(f"  target {t['description']}: {verdict} ({target_text(t)})")


def print_int8w(q: dict) -> None:
    print(f"{'int8w per step':34s} {'us/step':>10s} {'min':>9s} {'max':>9s} {'f32/this':>9s} "
          f"{'cell/this':>9s} {'eager/this':>10s} {'max|diff|':>10s}")
    for e in q["step"].values():
        us = e["us_per_step"]
        print(f"  {e['label']:32s} {e['median_us_per_step']:10.2f} {min(us):9.2f} {max(us):9.2f} "
              f"{e['runtime_over_this']:8.2f}x {e['torch_cell_over_this']:8.2f}x {e['torch_eager_over_this']:9.2f}x "
              f"{e['max_abs_diff_vs_torch']:10.2e}")
    print(f"{'int8w whole sequence':34s} {'ms/seq':>10s} {'us/step':>9s} {'':>9s} {'f32/this':>9s} "
          f"{'torch/this':>10s} {'':>9s} {'max|diff|':>10s}")
    for e in q["sequence"].values():
        print(f"  {e['label']:32s} {e['median_ms']:10.3f} {e['median_us_per_step']:9.2f} {'':9s} "
              f"{e['runtime_over_this']:8.2f}x {e['torch_over_this']:9.2f}x {'':9s} {e['max_abs_diff_vs_torch']:10.2e}")
    if not q["torch_dynq_available"]:
        print(f"  PyTorch quantize_dynamic: not available: {q['torch_dynq_unavailable_reason']}")
    print("  (f32/this = runtime f32 time / this; cell, eager = PyTorch LSTMCell/GRUCell, nn.LSTM/GRU per step;"
          " torch = PyTorch float forward; > 1 means this is faster)")
    a = q["accuracy"]
    dynq = "not available" if a["torch_dynq"] is None else f"{a['torch_dynq']:.2e}"
    print(f"int8w accuracy ({a['steps']}-step stream, max abs logit error vs PyTorch float, logits up to "
          f"{a['reference_max_abs_logit']:.2f}): runtime int8w {a['runtime_int8w']:.2e} "
          f"(stream {a['runtime_int8w_stream']:.2e}, run {a['runtime_int8w_run']:.2e}), "
          f"PyTorch quantize_dynamic {dynq}")
    z = q["size"]
    print(f"int8w size: tensors {z['int8w_tensor_bytes']:,} B / f32 {z['f32_tensor_bytes']:,} B = "
          f"{z['tensor_bytes_ratio']:.2%} (files {z['int8w_file_bytes']:,} / {z['f32_file_bytes']:,} B); "
          f"model.nbytes int8w {z['int8w_model_nbytes']:,} B vs f32 {z['f32_model_nbytes']:,} B")


def _times(x) -> str:
    """A ratio 'N.NNx' in a 9-wide column, or 'n/a' where the other engine was not measured."""
    return f"{x:8.2f}x" if x is not None else f"{'n/a':>9s}"


def print_int8(q8: dict) -> None:
    print(f"{'int8 per step':34s} {'us/step':>10s} {'min':>9s} {'max':>9s} {'this/f32':>9s} "
          f"{'cell/this':>9s} {'dynq/this':>9s} {'max|diff|':>10s}")
    for e in q8["step"].values():
        us = e["us_per_step"]
        print(f"  {e['label']:32s} {e['median_us_per_step']:10.2f} {min(us):9.2f} {max(us):9.2f} "
              f"{_times(e['this_over_runtime'])} {_times(e['torch_cell_over_this'])} "
              f"{_times(e['torch_dynq_over_this'])} {e['max_abs_diff_vs_torch']:10.2e}")
    print(f"{'int8 whole sequence':34s} {'ms/seq':>10s} {'us/step':>9s} {'':>9s} {'this/f32':>9s} "
          f"{'torch/this':>9s} {'dynq/this':>9s} {'max|diff|':>10s}")
    for e in q8["sequence"].values():
        print(f"  {e['label']:32s} {e['median_ms']:10.3f} {e['median_us_per_step']:9.2f} {'':9s} "
              f"{_times(e['this_over_runtime'])} {_times(e['torch_over_this'])} "
              f"{_times(e['torch_dynq_over_this'])} {e['max_abs_diff_vs_torch']:10.2e}")
    print("  (this/f32 = int8 time / runtime f32 time, < 1 means int8 is faster; cell/this, torch/this, dynq/this ="
          " PyTorch LSTMCell/GRUCell, float forward, quantize_dynamic time / int8 time, > 1 means int8 is faster)")
    a = q8["accuracy"]
    print(f"int8 accuracy ({a['steps']}-step stream, max abs logit error vs PyTorch float, logits up to "
          f"{a['reference_max_abs_logit']:.2f}): runtime int8 {a['runtime_int8']:.2e} "
          f"(stream {a['runtime_int8_stream']:.2e}, run {a['runtime_int8_run']:.2e}, "
          f"stream == run: {'yes' if a['stream_equals_run'] else 'NO'}; mean {a['runtime_int8_mean_abs']:.2e}, "
          f"argmax agrees {a['argmax_agreement']:.2%})")
    c = q8["calibration"]
    hidden = ", ".join(f"{v:.3f}" for v in c["hidden_absmax"])
    cells = ", ".join(f"{v:.3f} (scale 2^{L['cell_power']})" for v, L in zip(c["cell_absmax"], q8["scales"])
                      if L["cell_power"] is not None)
    print(f"int8 calibration ({c['steps']}-step stream, seed {c['seed']}): max |x norm| {c['input_absmax']:.3f} "
          f"(input scale {q8['input_scale']:.3g}), max |h| per layer {hidden}" + (f", max |c| {cells}" if cells else ""))
    z = q8["size"]
    kinds = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in z["bytes_by_kind"].items() if v)
    print(f"int8 size: tensors {z['int8_tensor_bytes']:,} B / f32 {z['f32_tensor_bytes']:,} B = "
          f"{z['tensor_bytes_ratio']:.2%}: weight matrices alone {z['weight_matrix_bytes_ratio']:.2%}, everything "
          f"else {z['non_matrix_bytes_ratio']:.2%} ({kinds} B); files {z['int8_file_bytes']:,} / "
          f"{z['f32_file_bytes']:,} B; model.nbytes int8 {z['int8_model_nbytes']:,} B vs f32 "
          f"{z['f32_model_nbytes']:,} B, stream.nbytes {z['int8_stream_nbytes']:,} B")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=7, help="repetitions; medians are reported (default 7)")
    p.add_argument("--steps", type=int, default=2000, help="steps per stream and sequence length (default 2000)")
    p.add_argument("--warmup", type=int, default=200, help="warm-up steps per engine (default 200)")
    p.add_argument("--cold-reps", type=int, default=3, help="cold-start repetitions (default 3)")
    p.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write the results (default {DEFAULT_JSON})")
    p.add_argument("--quick", action="store_true", help="50 steps, 1 repetition, 1 cold start: a smoke test")
    p.add_argument("--no-cold-start", action="store_true", help="skip the cold-start subprocesses")
    p.add_argument("--core", type=int, default=None, help="core to pin to (default: the last allowed one)")
    p.add_argument("--workloads", default="kws,har", help="comma-separated subset of: kws,har")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.steps, args.warmup, args.cold_reps = 1, min(args.steps, 50), 10, 1
    if args.reps < 1 or args.steps < 1 or args.warmup < 1:
        p.error("--reps, --steps and --warmup must be positive")

    core = pin_to_one_core(args.core)
    single_thread_torch()
    info = machine_info(core)
    print(f"rnnedge f32/int8w/int8 benchmark on {info['cpu_model']} (pinned to core {core}); numba {info['numba']}, "
          f"torch {info['torch']} ({info['torch_threads']} thread), onnxruntime {info['onnxruntime']} (1 thread)")

    specs = workload_specs()
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = set(names) - set(specs)
    if unknown:
        p.error(f"unknown workloads {sorted(unknown)}; choose from {sorted(specs)}")

    results = {}
    with tempfile.TemporaryDirectory(prefix="rnnedge-bench-") as tmp:
        for name in names:
            w = Workload(name, specs[name], Path(tmp))
            X = w.inputs(args.steps)
            with torch.inference_mode():
                reference = w.torch_model(torch.from_numpy(X)).numpy()  # (1, T, out): the ground truth
            step, step_q, step_8 = split_sections(bench_steps(w, X, args.warmup, args.reps, reference[0]))
            seq, seq_q, seq_8 = split_sections(bench_sequence(w, X, args.reps, reference))
            int8w_ratios(step, step_q, seq, seq_q)
            int8_ratios(step, step_q, step_8, seq, seq_q, seq_8)
            r = {"spec": w.spec, "steps": args.steps, "reps": args.reps, "step": step, "sequence": seq,
                 "memory": memory(w)}
            diffs = [e["max_abs_diff_vs_torch"] for e in (*step.values(), *seq.values())]
            r["max_abs_diff_vs_torch"] = max(diffs)
            r["outputs_agree"] = bool(max(diffs) <= TOLERANCE)
            if not args.no_cold_start:
                r["cold_start"] = bench_cold_start(w, args.cold_reps)
            r["int8w"] = {
                "step": step_q, "sequence": seq_q,
                "torch_dynq_available": w.torch_dynq is not None,
                "torch_dynq_unavailable_reason": w.torch_dynq_error,
                "accuracy": int8w_accuracy(w),
                "size": int8w_size(w),
                "weight_max_abs_error": w.int8w_weight_errors,
            }
            r["int8"] = {
                "step": step_8, "sequence": seq_8,
                "accuracy": int8_accuracy(w),
                "size": int8_size(w),
                "calibration": w.int8_ranges.as_dict(),
                "input_scale": w.int8_info["input_scale"],
                "scales": w.int8_info["layers"],
                "weight_max_abs_error": w.int8_info["per_matrix"],
            }
            r["targets"] = (check_targets(step, seq) + check_int8w_targets(name, r["int8w"])
                            + check_int8_targets(name, r["int8"]))
            results[name] = r
            print_workload(name, w.spec, r)

    all_targets = [t for r in results.values() for t in r["targets"]]
    report = {
        "benchmark": "rnnedge f32, int8w and int8 runtime vs PyTorch and ONNX Runtime",
        "created_unix": time.time(),
        "machine": info,
        "config": {"reps": args.reps, "steps": args.steps, "warmup": args.warmup, "cold_reps": args.cold_reps,
                   "quick": args.quick, "cold_start": not args.no_cold_start, "batch": 1,
                   "ratio": "other / runtime (time); > 1 means the runtime is faster", "tolerance": TOLERANCE},
        "targets": [{"name": n, "section": s, "engine": e, "required_ratio": req, "description": d}
                    for n, s, e, req, d in TARGETS]
                   + [{"name": n, "comparison": c, "required": req, "description": d, "workloads": list(ws)}
                      for n, c, req, d, ws in INT8W_TARGETS + INT8_TARGETS],
        "workloads": results,
        "all_outputs_agree": all(r["outputs_agree"] for r in results.values()),
        "all_targets_met": all(t["met"] for t in all_targets),
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    missed = [(n, t) for n, r in results.items() for t in r["targets"] if not t["met"]]
    print(f"\ntargets: {len(all_targets) - len(missed)}/{len(all_targets)} met"
          + "".join(f"\n  NOT MET {n}: {t['description']} ({target_text(t)})" for n, t in missed))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
