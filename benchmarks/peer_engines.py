"""The engines benchmarks.peers compares, as the worker process loads them: each imports its own library when
it is built (a cold start pays for its own imports only) and offers

    streamer(B) -> (reset, step)   one step per call on (B, F) inputs, state carried; None if the model cannot
                                   stream (bidirectional) or the engine has no step model
    run(X) -> Y                    whole sequences (B, T, F)
    prepare(x) / output(y)         engine-native inputs and numpy outputs (conversions stay outside timing)
    model_bytes                    bytes of the model file a device would hold: the step model where the engine
                                   has one (ONNX Runtime and LiteRT keep a second file for whole sequences;
                                   rnnedge's one file serves both), else the sequence model
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

PRECISION = {"rnnedge_f32": "f32", "rnnedge_int8w": "int8w", "rnnedge_int8": "int8"}


class Engine:
    context = contextlib.nullcontext

    def __init__(self, folder: Path, workload: str):
        self.spec = json.loads((folder / f"{workload}.spec.json").read_text())
        self.files: list[Path] = []

    @property
    def model_bytes(self) -> int:
        return sum(os.path.getsize(f) for f in self.files)

    def prepare(self, x: np.ndarray):
        return np.ascontiguousarray(x)

    def output(self, y) -> np.ndarray:
        return np.asarray(y)


class Rnnedge(Engine):
    def __init__(self, folder: Path, workload: str, engine: str):
        super().__init__(folder, workload)
        from rnnedge import runtime

        path = folder / f"{workload}.{PRECISION[engine]}.safetensors"
        self.files = [path]
        self.model = runtime.load(str(path))
        self.streams = not any(layer["bidirectional"] for layer in self.spec["layers"])

    def streamer(self, batch: int):
        if not self.streams:
            return None
        s = self.model.stream(batch=batch)
        return s.reset, s.step

    def run(self, X):
        return self.model.run(X)


class Torch(Engine):
    """PyTorch eager: the RecurrentModel's own nn.LSTM / nn.GRU / nn.RNN layers, one step per call with the
    state carried, or the module's forward on whole sequences."""

    def __init__(self, folder: Path, workload: str):
        super().__init__(folder, workload)
        import torch
        from safetensors.torch import load_file

        from rnnedge.train.model import RecurrentModel

        torch.set_num_threads(1)
        self.torch = torch
        path = folder / f"{workload}.torch.safetensors"
        self.files = [path]
        self.m = RecurrentModel(self.spec).eval()
        self.m.load_state_dict(load_file(str(path)))
        self.context = torch.inference_mode

    def prepare(self, x):
        return self.torch.from_numpy(np.ascontiguousarray(x))

    def output(self, y):
        return y.numpy()

    def streamer(self, batch: int):
        if any(layer["bidirectional"] for layer in self.spec["layers"]):
            return None
        m, torch = self.m, self.torch
        state = []

        def reset():
            state.clear()
            for layer in self.spec["layers"]:
                z = torch.zeros(1, batch, layer["hidden"])
                state.append((z, z.clone()) if layer["cell"] == "lstm" else z)

        def step(x):  # x (B, F)
            v = m.embed(x[:, None])
            for i, rnn in enumerate(m.layers):
                v, state[i] = rnn(v, state[i])
            return m.activate(m.head(v))[:, 0]

        reset()
        return reset, step

    def run(self, X):
        return self.m(X)


class Ort(Engine):
    """ONNX Runtime, one intra-op and one inter-op thread, on the exporter's graphs (fp32) or on the same graphs
    after onnxruntime.quantization.quantize_dynamic (int8 weights, activations quantised on the fly)."""

    def __init__(self, folder: Path, workload: str, engine: str):
        super().__init__(folder, workload)
        import onnxruntime as ort

        self.ort = ort
        suffix = ".qdq.onnx" if engine == "ort_int8" else ".onnx"
        self.seq = self.session(folder / f"{workload}{suffix}")
        step_path = folder / f"{workload}.step{suffix}"
        self.step_sess = self.session(step_path) if step_path.exists() else None
        self.files = [step_path if self.step_sess is not None else folder / f"{workload}{suffix}"]
        self.state_names = [i.name for i in (self.step_sess.get_inputs() if self.step_sess else []) if i.name != "x"]
        self.out_names = ["y"] + [n.replace("_in", "_out") for n in self.state_names]

    def session(self, path: Path):
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return self.ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])

    def streamer(self, batch: int):
        if self.step_sess is None:
            return None
        run, out_names, state_names = self.step_sess.run, self.out_names, self.state_names
        sizes = {i.name: i.shape[1] for i in self.step_sess.get_inputs()}
        feeds = {}

        def reset():
            for n in state_names:
                feeds[n] = np.zeros((batch, sizes[n]), np.float32)

        def step(x):
            feeds["x"] = x
            outs = run(out_names, feeds)
            for n, v in zip(state_names, outs[1:]):
                feeds[n] = v
            return outs[0]

        reset()
        return reset, step

    def run(self, X):
        return self.seq.run(["y"], {"x": X})[0]


class LiteRT(Engine):
    """The LiteRT (TensorFlow Lite) interpreter, one thread, on .tflite files converted from the same weights by
    benchmarks.tflite_convert: a step model (state as inputs and outputs, batch resized per stream) and a
    whole-sequence model per (batch, T). fp32; or int8: full-int8 step models (int8 weights and activations,
    float inputs and outputs) and dynamic-range sequence models (int8 weights)."""

    def __init__(self, folder: Path, workload: str, engine: str):
        super().__init__(folder, workload)
        from ai_edge_litert.interpreter import Interpreter

        self.Interpreter = Interpreter
        self.folder, self.workload = folder, workload
        self.kind = "int8" if engine == "litert_int8" else "fp32"
        step = folder / f"{workload}.step.{self.kind}.tflite"
        self.files = [step] if step.exists() else sorted(folder.glob(f"{workload}.seq_b1_*.{self.kind}.tflite"))
        if not self.files:
            raise FileNotFoundError(f"no {self.kind} .tflite files for {workload} in {folder}")
        self.seqs = {}

    def interpreter(self, path: Path, batch: int | None = None):
        it = self.Interpreter(model_path=str(path), num_threads=1)
        if batch is not None:  # step models are converted with a dynamic batch
            for d in it.get_input_details():
                it.resize_tensor_input(d["index"], [batch, *d["shape_signature"][1:]])
        it.allocate_tensors()
        runner = it.get_signature_runner()
        ins = {k: v["index"] for k, v in runner.get_input_details().items()}
        outs = {k: v["index"] for k, v in runner.get_output_details().items()}
        return it, ins, outs

    def streamer(self, batch: int):
        path = self.folder / f"{self.workload}.step.{self.kind}.tflite"
        if not path.exists():
            return None
        it, ins, outs = self.interpreter(path, batch)
        state = [k for k in ins if k != "x"]
        set_tensor, get_tensor, invoke = it.set_tensor, it.get_tensor, it.invoke
        pairs = [(ins[k], outs[k.replace("_in", "_out")]) for k in state]
        zeros = {k: np.zeros(it.get_tensor(ins[k]).shape, np.float32) for k in state}
        x_index, y_index = ins["x"], outs["y"]

        def reset():
            for k in state:
                set_tensor(ins[k], zeros[k])

        def step(x):
            set_tensor(x_index, x)
            invoke()
            for i, o in pairs:
                set_tensor(i, get_tensor(o))
            return get_tensor(y_index)

        reset()
        return reset, step

    def run(self, X):
        key = (X.shape[0], X.shape[1])
        if key not in self.seqs:
            path = self.folder / f"{self.workload}.seq_b{key[0]}_t{key[1]}.{self.kind}.tflite"
            if not path.exists():
                raise FileNotFoundError(f"no {self.kind} sequence model for batch {key[0]}, {key[1]} steps")
            self.seqs[key] = self.interpreter(path)
        it, ins, outs = self.seqs[key]
        it.set_tensor(ins["x"], X)
        it.invoke()
        return it.get_tensor(outs["y"])


class NumbaFloor(Engine):
    """Not an engine: the smallest numba program (benchmarks.numba_floor), whose first output and RSS are the
    floor a numba runtime's cold start is held to."""

    def __init__(self, folder: Path, workload: str):
        super().__init__(folder, workload)
        from benchmarks.numba_floor import tiny

        self.tiny = tiny

    def streamer(self, batch: int):
        return (lambda: None), (lambda x: np.full((1, 1), self.tiny(x), np.float32))


def load(engine: str, folder: Path, workload: str) -> Engine:
    if engine == "numba_floor":
        return NumbaFloor(folder, workload)
    if engine in PRECISION:
        return Rnnedge(folder, workload, engine)
    if engine == "torch":
        return Torch(folder, workload)
    if engine in ("ort_fp32", "ort_int8"):
        return Ort(folder, workload, engine)
    if engine in ("litert_fp32", "litert_int8"):
        return LiteRT(folder, workload, engine)
    raise ValueError(f"unknown engine {engine!r}")
