"""Shared builders for tests: specs, seeded models, their artifacts and matching random inputs."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import torch

from rnnedge.export.calibrate import calibrate
from rnnedge.export.quantize import quantize_int8w
from rnnedge.export.quantize_int8 import quantize_int8
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import artifact
from rnnedge.train.model import RecurrentModel

# One table of tolerances per precision (max abs difference of outputs vs the PyTorch model).
# int8w: each weight is off by at most scale / 2 = max|row| / 254 (0.4 % of its row's largest), so outputs
# of these seeded test models (PyTorch's default init, hidden 12, head without activation) move by ~1e-3;
# the largest measured over every cell, depth, input kind and direction (1000 steps) is 6.4e-3. 2e-2 leaves 3x margin and
# still catches a wrong or missing scale, which moves outputs by O(0.1..1). Trained models are held to the
# task metric instead (export/pipeline.py), not to this number.
# int8: weights as int8w, plus int16 activations and fixed-point gates (runtime/kernels_int8.py); the largest
# measured over tests/runtime/test_int8.py's cases (every cell, depth, direction, input kind; 1000 steps) is
# 1.1e-2 (rnn_tanh on tokens: the embedding table has one scale, not one per row); 2e-2 holds for it too.
RUNTIME_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runtime")
TOLERANCE = {"f32": 1e-5, "int8w": 2e-2, "int8": 2e-2}
CALIBRATION_SEED = 99  # int8 test artifacts calibrate on other random streams than the ones they are tested on


def make_spec(cell="lstm", layers=1, bidirectional=False, kind="dense", on="every_step",
              activation="softmax", hidden=12, features=5, vocab=40, embed_dim=7, out=4, head_hidden=()) -> dict:
    """head_hidden: the head's hidden dense layers as (units, activation) pairs."""
    inp = ({"kind": "dense", "features": features, "mean": [0.5] * features, "std": [2.0] * features}
           if kind == "dense" else {"kind": "tokens", "vocab": vocab, "embed_dim": embed_dim, "padding_idx": 0})
    return {"version": 1, "input": inp,
            "layers": [{"cell": cell, "hidden": hidden, "bidirectional": bidirectional}] * layers,
            "head": {"out": out, "on": on, "activation": activation,
                     "hidden": [{"units": u, "activation": a} for u, a in head_hidden]}, "task": "classify"}


def make_model(spec: dict, seed: int = 0) -> RecurrentModel:
    torch.manual_seed(seed)
    return RecurrentModel(spec).eval()


def write_artifact(model: RecurrentModel, path, precision: str = "f32") -> str:
    tensors = canonical_tensors(model)
    if precision == "int8w":
        tensors, _ = quantize_int8w(model.spec, tensors)
    elif precision == "int8":
        ranges = calibrate(model, random_inputs(model.spec, 4, 300, seed=CALIBRATION_SEED))
        tensors, _ = quantize_int8(model.spec, tensors, ranges)
    artifact.write(path, tensors, model.spec, precision)
    return str(path)


def random_inputs(spec: dict, batch: int, steps: int, seed: int = 0) -> np.ndarray:
    """Raw inputs as a device would see them: dense values around the spec's statistics, or token ids."""
    rng = np.random.default_rng(seed)
    inp = spec["input"]
    if inp["kind"] == "dense":
        x = rng.standard_normal((batch, steps, inp["features"])) * np.asarray(inp["std"]) + np.asarray(inp["mean"])
        return x.astype(np.float32)
    return rng.integers(0, inp["vocab"], size=(batch, steps)).astype(np.int64)


def torch_forward(model: RecurrentModel, X: np.ndarray, lengths=None) -> np.ndarray:
    with torch.no_grad():
        lens = None if lengths is None else torch.as_tensor(lengths)
        return model(torch.as_tensor(X), lens).numpy()


def stream_all(stream, X: np.ndarray) -> np.ndarray:
    """Feed (B, T, ...) one step at a time; (B, T, out) outputs."""
    return np.stack([stream.step(np.ascontiguousarray(X[:, t])).copy() for t in range(X.shape[1])], axis=1)


def bytes_allocated_in_runtime(run) -> int:
    """Bytes Python memory grew by while run() ran, counting only allocations made from runtime/ code (any frame
    of the allocation's traceback in runtime/): what the runtime allocates, not what another thread of the test
    process (ONNX Runtime's, torch's, a finished subprocess reader) happens to allocate meanwhile. 0 is the goal."""
    tracemalloc.start(64)
    before = tracemalloc.take_snapshot()
    run()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    ours = [tracemalloc.Filter(True, os.path.join(RUNTIME_DIR, "*"), all_frames=True)]
    diff = after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename")
    return sum(s.size_diff for s in diff if s.size_diff > 0)


def bytes_allocated_by_steps(stream, X: np.ndarray) -> int:
    """Bytes the runtime allocated while stepping (B, T, ...) after a first warm-up step; 0 is the goal."""
    xs = [np.ascontiguousarray(X[:, t]) for t in range(X.shape[1])]
    stream.step(xs[0])

    def steps():
        for x in xs:
            stream.step(x)

    return bytes_allocated_in_runtime(steps)


def int8_paths() -> list:
    """The specialised int8 step's mat-vec paths the tests run: this CPU's blocked one (AVX512-VNNI, else AVX2;
    the two share every line of generated code but the pair-dot instruction, which
    test_blocked_matvec_at_offsets_equals_gemv_t_int8 and test_blocked_matmat_equals_gemv_t_int8_row_by_row
    check on both where the CPU has them), and the portable loops."""
    from rnnedge.runtime import vnni

    blocked = vnni.best_path()
    return [blocked, "portable"] if blocked != "portable" else ["portable"]


def with_paths(cases: list, portable_every: int = 4) -> list[tuple]:
    """(*case, path) for the specialised int8 tests: every case on this CPU's blocked path, and every
    `portable_every`-th case on the portable loops too (each case compiles a model's own step, 10-30 s: the two
    paths differ only in how the generator writes a mat-vec, so a few cases test the portable one)."""
    blocked = [p for p in int8_paths() if p != "portable"]
    out = [(*case, path) for case in cases for path in blocked]
    return out + [(*case, "portable") for case in cases[::portable_every]]


def pairwise_cases() -> list[tuple[str, str, str, int]]:
    """(cell, precision, input kind, layers) for the f32 / int8w specialised steps: 8 cases in which every pair of
    values of any two of the four appears (4 cells x 2 precisions x 2 kinds x 2 depths would be 32 compiles)."""
    cells = ("rnn_tanh", "rnn_relu", "lstm", "gru")
    return [(cells[c], ("f32", "int8w")[p], ("dense", "tokens")[(c + p) % 2], 1 + (c // 2 + p) % 2)
            for p in (0, 1) for c in range(4)]
