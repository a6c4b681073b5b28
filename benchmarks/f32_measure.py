"""benchmarks.bench_f32's measured sections: per-step and whole-sequence timings (every engine interleaved), cold
start in fresh processes, memory, and the split of the timings into f32, int8w and int8 sections with their ratios."""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.f32_engines import (
    INT8_STEP_ENGINES,
    STEP_ENGINES,
    as_numpy,
    int8_sequence_engines,
    int8w_sequence_engines,
    int8w_step_engines,
    sequence_engines,
)
from benchmarks.f32_workload import Workload


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
