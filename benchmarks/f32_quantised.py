"""benchmarks.bench_f32's int8w and int8 sections beyond timing: tensor bytes against f32 and the accuracy anchor
(max abs logit error vs the float PyTorch model over one long stream of random inputs)."""

from __future__ import annotations

import os

import numpy as np
import torch

from benchmarks.f32_engines import RuntimeInt8Step, RuntimeInt8wStep, TorchDynqStep
from benchmarks.f32_workload import Workload
from rnnedge.runtime import artifact

INT8W_ACCURACY_STEPS = 2000  # the accuracy anchor's stream length (kws), whatever --steps is
INT8_ACCURACY_STEPS = INT8W_ACCURACY_STEPS  # int8's anchor: the same 2000-step stream (seed 1)


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
