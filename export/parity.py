"""Run the PyTorch model and every artifact on the same streams, and measure how far each is from PyTorch.

Every runner takes one group of equal-length sequences x (B, T, F) float32 or (B, T) int64 and returns
numpy float32. Sequence runners return what RecurrentModel.forward returns ((B, T, out), or (B, out) for
a last_step head). Stepping runners feed one time step per call and return y at every step (B, T, out);
they are compared with `torch_every_prefix`, which is forward's answer had the sequence ended at t.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import torch

from rnnedge.export.onnx_graphs import read_initial_state, state_names


@dataclass
class Group:
    """Sequences of one true length, run as one batch."""

    index: np.ndarray  # (B,) positions in the parity set
    x: np.ndarray  # (B, T, F) float32 or (B, T) int64, no padding


def equal_length_groups(X: np.ndarray, lengths: np.ndarray) -> list[Group]:
    """Split padded sequences into groups of equal true length, each cut to that length."""
    lengths = np.asarray(lengths).reshape(-1)
    return [Group(index, np.ascontiguousarray(X[index, :length]))
            for length in np.unique(lengths)
            for index in [np.flatnonzero(lengths == length)]]


HISTOGRAM_DECADES = (-12, 4)  # |diff| histogram: 10^-12 .. 10^4, HISTOGRAM_PER_DECADE bins a decade
HISTOGRAM_PER_DECADE = 4


class Difference:
    """Running max and mean of |artifact - reference| over every value compared, the max of
    |artifact - reference| / (atol + rtol * |reference|) (export/rules.py FloatRule: 1 is the rule's edge), and a
    histogram of |artifact - reference| on log-spaced bins (`histogram`: the report's error distribution)."""

    def __init__(self, atol: float = 0.0, rtol: float = 0.0):
        self.atol, self.rtol = atol, rtol
        self.max_scaled = 0.0
        self.max_abs = 0.0
        self.sum_abs = 0.0
        self.count = 0
        low, high = HISTOGRAM_DECADES
        self.edges = np.linspace(low, high, (high - low) * HISTOGRAM_PER_DECADE + 1)  # log10 |diff|
        self.counts = np.zeros(len(self.edges) + 1, dtype=np.int64)  # [below | the bins | above or not finite]

    def add(self, got: np.ndarray, want: np.ndarray) -> None:
        if got.shape != want.shape:
            raise ValueError(f"output shape {got.shape} differs from PyTorch's {want.shape}")
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        if not np.all(np.isfinite(diff)):
            self.max_abs = self.max_scaled = float("inf")
        elif diff.size:
            self.max_abs = max(self.max_abs, float(diff.max()))
            bound = self.atol + self.rtol * np.abs(want.astype(np.float64))
            scaled = np.divide(diff, bound, out=np.where(diff > 0, np.inf, 0.0), where=bound > 0)
            self.max_scaled = max(self.max_scaled, float(scaled.max()))
        self.sum_abs += float(diff[np.isfinite(diff)].sum())
        self.count += diff.size
        with np.errstate(divide="ignore", invalid="ignore"):
            where = np.searchsorted(self.edges, np.log10(diff.ravel()), side="right")  # 0 below, len(edges) above
        where[~np.isfinite(diff.ravel())] = len(self.edges)
        self.counts += np.bincount(where, minlength=len(self.counts))

    def histogram(self) -> dict:
        """{"log10_edges": bin edges of log10 |diff|, "counts": values below the first edge (0 included), in each
        bin, and at or past the last edge or not finite}: JSON for the report."""
        return {"log10_edges": [float(e) for e in self.edges], "counts": [int(c) for c in self.counts]}

    @property
    def mean_abs(self) -> float:
        return self.sum_abs / self.count if self.count else 0.0


# -- PyTorch -----------------------------------------------------------------------------------------------------
@contextmanager
def torch_single_thread():
    """Run PyTorch on one thread inside the block, then restore its thread count.

    The parity models are tiny: intra-op threads buy nothing, and on a busy machine their synchronisation
    made a step loop 200x slower (measured on 2 loaded cores: 300 steps of 28 streams, 35 s vs 0.15 s).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def torch_sequence(model, x: np.ndarray) -> np.ndarray:
    """The reference: RecurrentModel.forward on whole sequences."""
    return model(torch.from_numpy(x)).numpy()


@torch.no_grad()
def torch_every_prefix(model, x: np.ndarray) -> np.ndarray:
    """(B, T, out): forward's output for the sequence cut after each step t (forward-only models).

    For a forward-only model the last layer's output at t is the final state of the prefix x[:, :t+1],
    so the head on it at every t is what forward(x[:, :t+1]) returns for a last_step head.
    """
    return model.activate(model.head(model.features(torch.from_numpy(x)))).numpy()


@torch.no_grad()
def torch_step_loop(model, x: np.ndarray) -> np.ndarray:
    """RecurrentModel.step, the golden float step, one time step per call."""
    state = model.initial_state(x.shape[0])
    xt = torch.from_numpy(x)
    ys = []
    for t in range(x.shape[1]):
        y, state = model.step(xt[:, t], state)
        ys.append(y.numpy())
    return np.stack(ys, axis=1)


# -- ONNX Runtime ------------------------------------------------------------------------------------------------
def ort_session(model_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # small recurrent graphs: threads add overhead and run-to-run noise
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def ort_sequence(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """model.onnx on whole sequences."""
    return session.run(["y"], {"x": x})[0]


def ort_step_loop(session: ort.InferenceSession, spec: dict, x: np.ndarray) -> np.ndarray:
    """model.step.onnx, one time step per call, its state outputs fed back as the next inputs. Each stream starts
    from the initial state the step graph carries in its metadata (onnx_graphs.read_initial_state: a layer's
    h0 / c0), zeros where it carries none, as a caller of model.step.onnx would."""
    state_in, state_out = state_names(spec, "in"), state_names(spec, "out")
    widths = [layer["hidden"] for layer in spec["layers"] for _ in range(2 if layer["cell"] == "lstm" else 1)]
    initial = read_initial_state(session.get_modelmeta().custom_metadata_map)
    state = {name: np.tile(initial.get(name, np.zeros(width, np.float32)), (x.shape[0], 1))
             for name, width in zip(state_in, widths)}
    ys = []
    for t in range(x.shape[1]):
        y, *new_state = session.run(["y", *state_out], {"x": np.ascontiguousarray(x[:, t]), **state})
        state = dict(zip(state_in, new_state))
        ys.append(y)
    return np.stack(ys, axis=1)


# -- rnnedge runtime ---------------------------------------------------------------------------------------------
def runtime_step_loop(rt_model, x: np.ndarray) -> np.ndarray:
    """runtime stream().step(), one time step per call (the streams stay in one batch)."""
    stream = rt_model.stream(batch=x.shape[0])
    ys = np.empty((x.shape[0], x.shape[1], rt_model.spec["head"]["out"]), np.float32)
    for t in range(x.shape[1]):
        ys[:, t] = stream.step(np.ascontiguousarray(x[:, t]))  # copied out of the stream's buffer
    return ys


def runtime_sequence(rt_model, x: np.ndarray) -> np.ndarray:
    """runtime run() on whole sequences."""
    return np.asarray(rt_model.run(x))


# -- parity inputs -----------------------------------------------------------------------------------------------
def random_streams(spec: dict, batch: int, steps: int, seed: int) -> np.ndarray:
    """Raw inputs as a device would see them: dense values around the spec's mean and std, or uniform token ids."""
    rng = np.random.default_rng(seed)
    inp = spec["input"]
    if inp["kind"] == "tokens":
        return rng.integers(0, inp["vocab"], size=(batch, steps), dtype=np.int64)
    mean, std = np.asarray(inp["mean"]), np.asarray(inp["std"])
    return (rng.standard_normal((batch, steps, inp["features"])) * std + mean).astype(np.float32)


def check_inputs_fit(spec: dict, X: np.ndarray, where: str) -> None:
    """Raise ValueError if parity inputs cannot feed this model."""
    inp = spec["input"]
    if inp["kind"] == "tokens":
        if X.ndim != 2 or X.dtype.kind not in "iu":
            raise ValueError(f"{where}: the model reads token ids (N, T) of integers, got {X.dtype} {X.shape}")
        if X.size and (X.min() < 0 or X.max() >= inp["vocab"]):
            raise ValueError(f"{where}: token ids span [{X.min()}, {X.max()}], the model's vocabulary is "
                             f"[0, {inp['vocab']})")
    elif X.ndim != 3 or X.shape[2] != inp["features"] or X.dtype.kind != "f":
        raise ValueError(f"{where}: the model reads (N, T, {inp['features']}) float values, got {X.dtype} {X.shape}")

