"""Machine and process set-up the benchmarks share: pinning to one core, PyTorch and ONNX Runtime at one thread,
and what was measured on (CPU model, versions, the runtime's sources)."""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

import numba
import numpy as np
import onnx
import onnxruntime as ort
import torch

from rnnedge import runtime


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
