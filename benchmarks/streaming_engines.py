"""benchmarks.bench_streaming's engines: the models' sizes, every model built with seeded weights and checked
against its own whole-sequence forward, each wrapped in an Engine (step, reset, state bytes, parameters, FLOPs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.streaming_models import CausalTCN, CausalTransformer, TCNStream, TorchCellStream, TransformerStream
from rnnedge import runtime
from rnnedge.export.calibrate import calibrate
from rnnedge.export.quantize_int8 import quantize_int8
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import artifact
from rnnedge.train.model import RecurrentModel

FEATURES, OUT = 16, 8
TOLERANCE = 1e-5  # float streams vs their own whole-sequence forward
CHECK_STEPS = 512  # the prefix on which streaming is checked against the whole-sequence forward

RNN_HIDDEN = {"rnn_tanh": 112, "lstm": 56, "gru": 64}
TF = {"d_model": 32, "heads": 2, "layers": 2, "ff": 64}
TCN = {"channels": 28, "kernel": 3, "dilations": (1, 2, 4, 8, 16, 32, 64)}


def rnn_spec(cell: str) -> dict:
    return {"version": 1, "input": {"kind": "dense", "features": FEATURES, "mean": [0.0] * FEATURES,
                                    "std": [1.0] * FEATURES},
            "layers": [{"cell": cell, "hidden": RNN_HIDDEN[cell], "bidirectional": False}],
            "head": {"out": OUT, "on": "every_step", "activation": "none"}, "task": "classify"}


def rnn_flops(cell: str) -> int:
    H, gates = RNN_HIDDEN[cell], {"rnn_tanh": 1, "lstm": 4, "gru": 3}[cell]
    return 2 * (gates * H * (FEATURES + H) + H * OUT)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# -- engines: a uniform step(x_numpy_or_torch) / reset() / state_bytes(t) ----------------------------------------
class Engine:
    def __init__(self, name, label, family, kind, params, flops, step, reset, state_bytes, allocated_bytes,
                 torch_input: bool):
        self.name, self.label, self.family, self.kind = name, label, family, kind
        self.params, self.flops, self.step, self.reset = params, flops, step, reset
        self.state_bytes, self.allocated_bytes, self.torch_input = state_bytes, allocated_bytes, torch_input


def build_engines(folder: Path, capacity: int, calib_X: np.ndarray):
    """(engines, checks): every engine, and the correctness check of each against its whole-sequence forward."""
    engines, checks = [], {}
    rng = np.random.default_rng(7)
    X = rng.standard_normal((1, CHECK_STEPS, FEATURES)).astype(np.float32)
    X_t = torch.from_numpy(X)
    for i, cell in enumerate(RNN_HIDDEN):
        torch.manual_seed(100 + i)
        rm = RecurrentModel(rnn_spec(cell)).eval()
        tensors = canonical_tensors(rm)
        path = folder / f"{cell}.f32.safetensors"
        artifact.write(path, tensors, rm.spec)
        model = runtime.load(path)
        ranges = calibrate(rm, calib_X, None, where=f"{cell} calibration stream")
        q8, _ = quantize_int8(rm.spec, tensors, ranges)
        path8 = folder / f"{cell}.int8.safetensors"
        artifact.write(path8, q8, rm.spec, precision="int8")
        model8 = runtime.load(path8)
        with torch.inference_mode():
            ref = rm(X_t)[0].numpy()
        params, flops = n_params(rm), rnn_flops(cell)
        for prec, mdl in (("f32", model), ("int8", model8)):
            s = mdl.stream(batch=1)
            ys = np.stack([s.step(np.ascontiguousarray(X[:, t]))[0].copy() for t in range(CHECK_STEPS)])
            name = f"runtime_{cell}" + ("" if prec == "f32" else "_int8")
            if prec == "f32":
                diff = float(np.max(np.abs(ys - ref)))
                checks[name] = {"against": "PyTorch RecurrentModel forward", "max_abs_diff": diff,
                                "tolerance": TOLERANCE, "agree": diff <= TOLERANCE}
            else:
                run = mdl.run(X)[0]
                checks[name] = {"against": "runtime int8 model.run (integer kernels: must be equal)",
                                "max_abs_diff": float(np.max(np.abs(ys - run))), "tolerance": 0.0,
                                "agree": bool(np.array_equal(ys, run)),
                                "max_abs_diff_vs_float": float(np.max(np.abs(ys - ref)))}
            s.reset()
            engines.append(Engine(name, f"runtime {cell} {prec}", cell, f"runtime {prec}", params, flops,
                                  s.step, s.reset, (lambda t, s=s: s.state.nbytes), s.nbytes, False))
        tc = TorchCellStream(rm)
        with torch.inference_mode():
            ys = torch.cat([tc.step(X_t[:, t]) for t in range(CHECK_STEPS)]).numpy()
        diff = float(np.max(np.abs(ys - ref)))
        checks[f"torch_{cell}"] = {"against": "PyTorch RecurrentModel forward", "max_abs_diff": diff,
                                   "tolerance": TOLERANCE, "agree": diff <= TOLERANCE}
        tc.reset()
        H = RNN_HIDDEN[cell] * (2 if cell == "lstm" else 1) * 4
        engines.append(Engine(f"torch_{cell}", f"PyTorch {type(tc.cell).__name__}", cell, "torch cell", params,
                              flops, tc.step, tc.reset, (lambda t, H=H: H), H, True))

    torch.manual_seed(200)
    tf = CausalTransformer(FEATURES, OUT, max_len=max(capacity, CHECK_STEPS), **TF).eval()
    ts = TransformerStream(tf, max(capacity, CHECK_STEPS))
    with torch.inference_mode():
        ref = tf(X_t)[0].numpy()
        ys = torch.cat([ts.step(X_t[:, t]) for t in range(CHECK_STEPS)]).numpy()
    diff = float(np.max(np.abs(ys - ref)))
    checks["transformer"] = {"against": "its causal-mask whole-sequence forward", "max_abs_diff": diff,
                             "tolerance": TOLERANCE, "agree": diff <= TOLERANCE}
    ts.reset()
    engines.append(Engine("transformer", "Transformer + KV cache (PyTorch)", "transformer", "torch",
                          n_params(tf), tf.flops_per_step, ts.step, ts.reset, ts.state_bytes, ts.allocated_bytes,
                          True))

    torch.manual_seed(300)
    tcn = CausalTCN(FEATURES, OUT, **TCN).eval()
    cs = TCNStream(tcn)
    with torch.inference_mode():
        ref = tcn(X_t)[0].numpy()
        ys = torch.cat([cs.step(X_t[:, t]) for t in range(CHECK_STEPS)]).numpy()
    diff = float(np.max(np.abs(ys - ref)))
    checks["tcn"] = {"against": "its padded causal Conv1d whole-sequence forward", "max_abs_diff": diff,
                     "tolerance": TOLERANCE, "agree": diff <= TOLERANCE,
                     "receptive_field": tcn.receptive_field, "largest_ring": max(cs.sizes)}
    cs.reset()
    engines.append(Engine("tcn", f"TCN + ring buffers (PyTorch, RF {tcn.receptive_field})", "tcn", "torch",
                          n_params(tcn), tcn.flops_per_step(), cs.step, cs.reset, cs.state_bytes,
                          cs.allocated_bytes, True))
    return engines, checks, {"transformer": tf, "tcn": tcn}
