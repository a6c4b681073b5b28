"""benchmarks.bench_f32's workloads: the specs of kws and har, and Workload, one seeded RecurrentModel with its
f32 / int8w / int8 artifacts, ONNX graphs, loaded runtime models and PyTorch's quantize_dynamic twin."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from benchmarks.workloads import dense_inputs
from rnnedge import runtime
from rnnedge.export.calibrate import calibrate, calibration_slice
from rnnedge.export.onnx_graphs import build_sequence_graph, build_step_graph
from rnnedge.export.quantize import quantize_int8w
from rnnedge.export.quantize_int8 import Ranges, quantize_int8
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import artifact
from rnnedge.train.model import RecurrentModel

# torch.ao.quantization is deprecated (the dynamic-quantisation baseline still runs): silence only those warnings
warnings.filterwarnings("ignore", message=r"(?s).*torch\.ao\.quantization is deprecated")
warnings.filterwarnings("ignore", message=r"(?s).*quantized tensor creation functions.*deprecated")

INT8_CALIBRATION_STEPS = 2000  # calibration stream for the int8 ranges
INT8_CALIBRATION_SEED = 2  # != 0 (the measured stream) and != 1 (the accuracy anchor)


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
