"""Streaming cost against stream position t: RNN / LSTM / GRU (rnnedge runtime) vs a KV-cache Transformer and a
ring-buffer TCN (PyTorch), one step per call, per-step latency and memory held, for t up to 10,000.

    python -m benchmarks.bench_streaming           # full run (10,000 steps, 7 repetitions): table, JSON, plot
    python -m benchmarks.bench_streaming --quick   # 300 steps, 1 repetition: a smoke test

Every model takes 16 features in and gives 8 outputs per step, with seeded random weights (this is a cost
benchmark) and about the same number of parameters (printed; each within 20% of their median):

    runtime rnn_tanh   RNN(16 -> 112) + Linear(8), rnnedge runtime stream.step, f32 and int8
    runtime lstm       LSTM(16 -> 56) + Linear(8), idem
    runtime gru        GRU(16 -> 64) + Linear(8), idem
    torch cells        the same three models as nn.RNNCell / nn.LSTMCell / nn.GRUCell + nn.Linear, per step in
                       PyTorch eager: the recurrent models under the same framework overhead as the two below
    transformer        decoder-only causal self-attention: Linear(16 -> 32) + sinusoidal positions, 2 pre-LN blocks
                       (2 heads of 16, GELU MLP 32 -> 64 -> 32), LayerNorm, Linear(8). Per step it appends the
                       step's K and V to a preallocated cache and attends over every past position (softmax(q K^T
                       / sqrt(dh)) V, written out): per-step cost and memory grow with t (memory reported = bytes
                       of the t cached positions; the cache is allocated once for --steps positions)
    tcn                causal TCN: Linear(16 -> 28), 7 residual layers h + relu(Conv1d(28, 28, k=3, dilation d)),
                       d = 1, 2, ..., 64 (receptive field 255 steps), Linear(8). Per step each layer keeps a ring
                       buffer of its last (k-1) d + 1 inputs: constant cost, memory fixed by the receptive field

Correctness first (a fast wrong answer is worth nothing): each model's streamed outputs are compared with its own
whole-sequence forward on a prefix (512 steps: the TCN's largest ring wraps around; the KV cache is read at every
length): the runtime's f32 stream against the PyTorch RecurrentModel forward (<= 1e-5), the int8 stream against
the int8 model.run (equal) and against float (reported), the PyTorch cells against the forward (<= 1e-5), the
Transformer's cached step against its causal-mask forward (<= 1e-5), the TCN's ring buffers against the padded
causal convolutions (<= 1e-5). The process exits 1 if any disagree.

Timing: one process pinned to one core, PyTorch single-threaded, batch 1, inputs prepared before timing, gc off.
Every step of a stream is timed on its own (time.perf_counter_ns; ~0.1 us of it is the clock); a model streams
--steps steps per repetition, the models take turns within each repetition (order rotated each time). At each
sampled position t (10, 100, every --every steps, and 1,000) the latency is the median over the steps
(t - window, t] pooled over the repetitions. Memory held by the stream (not the weights): the RNN's state (h, and
c for the LSTM; the runtime's int8 state is int16 values kept in int32), the KV cache's t positions, the TCN's
ring buffers. FLOPs per step (2 per multiply-accumulate, matrix products and attention only) are computed from
the shapes. Writes benchmarks/results/streaming.json and streaming.png. No timing is asserted.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import gc
import itertools
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.bench_f32 import cpu_model, pin_to_one_core, single_thread_torch
from rnnedge import runtime
from rnnedge.export.calibrate import calibrate
from rnnedge.export.quantize_int8 import quantize_int8
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import artifact
from rnnedge.train.model import RecurrentModel

RESULTS = Path(__file__).resolve().parent / "results"
FEATURES, OUT = 16, 8
TOLERANCE = 1e-5  # float streams vs their own whole-sequence forward
PARAM_SPREAD = 0.20  # every model's parameter count within 20% of the median count
CHECK_STEPS = 512  # the prefix on which streaming is checked against the whole-sequence forward
REPORT_AT = (100, 1000, 10000)

RNN_HIDDEN = {"rnn_tanh": 112, "lstm": 56, "gru": 64}
TF = {"d_model": 32, "heads": 2, "layers": 2, "ff": 64}
TCN = {"channels": 28, "kernel": 3, "dilations": (1, 2, 4, 8, 16, 32, 64)}


# -- the models ------------------------------------------------------------------------------------------------
def sinusoidal(n: int, d: int) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe.float()


class Block(nn.Module):
    def __init__(self, d: int, heads: int, ff: int):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)

    def mlp(self, h: torch.Tensor) -> torch.Tensor:
        return self.ff2(F.gelu(self.ff1(self.ln2(h))))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Whole sequences (B, T, d), causal mask."""
        B, T, d = h.shape
        q, k, v = self.qkv(self.ln1(h)).view(B, T, 3, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, heads, T, dh)
        h = h + self.proj(o.transpose(1, 2).reshape(B, T, d))
        return h + self.mlp(h)


class CausalTransformer(nn.Module):
    """Decoder-only causal self-attention with sinusoidal positions (no parameters for positions)."""

    def __init__(self, n_in: int, n_out: int, d_model: int, heads: int, layers: int, ff: int, max_len: int):
        super().__init__()
        self.d, self.heads, self.dh, self.n_layers = d_model, heads, d_model // heads, layers
        self.inp = nn.Linear(n_in, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, ff) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, n_out)
        self.register_buffer("pe", sinusoidal(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) + self.pe[: x.shape[1]]
        for b in self.blocks:
            h = b(h)
        return self.out(self.norm(h))

    def flops_per_step(self, t: int) -> int:
        """Matrix products of one step at stream position t (t cached positions, this one included)."""
        d, ff = self.d, self.blocks[0].ff1.out_features
        per_layer = 2 * (3 * d * d + d * d + 2 * d * ff) + 2 * 2 * d * t  # projections, MLP; scores + weighted sum
        return 2 * (self.inp.in_features * d + d * self.out.out_features) + self.n_layers * per_layer


class TransformerStream:
    """One step per call; K and V of every layer appended to a preallocated cache (layers, heads, capacity, dh)."""

    def __init__(self, m: CausalTransformer, capacity: int):
        self.m = m
        self.capacity = capacity
        self.K = torch.zeros(m.n_layers, m.heads, capacity, m.dh)
        self.V = torch.zeros_like(self.K)
        self.bytes_per_position = 2 * m.n_layers * m.d * self.K.element_size()
        self.scale = 1.0 / math.sqrt(m.dh)
        self.t = 0

    def reset(self) -> None:
        self.t = 0  # positions past t are never read: no need to clear them

    def state_bytes(self, t: int) -> int:
        return t * self.bytes_per_position

    @property
    def allocated_bytes(self) -> int:
        return self.K.nbytes + self.V.nbytes

    def step(self, x: torch.Tensor) -> torch.Tensor:  # x (1, F)
        m, t = self.m, self.t
        h = m.inp(x) + m.pe[t]  # (1, d)
        for i, b in enumerate(m.blocks):
            q, k, v = b.qkv(b.ln1(h)).view(3, m.heads, 1, m.dh)
            K, V = self.K[i], self.V[i]
            K[:, t : t + 1] = k
            V[:, t : t + 1] = v
            scores = torch.matmul(q, K[:, : t + 1].transpose(1, 2)).mul_(self.scale)  # (heads, 1, t + 1)
            o = torch.matmul(torch.softmax(scores, dim=-1), V[:, : t + 1])  # (heads, 1, dh)
            h = h + b.proj(o.reshape(1, m.d))
            h = h + b.mlp(h)
        self.t = t + 1
        return m.out(m.norm(h))


class CausalTCN(nn.Module):
    """Linear in, residual dilated causal convolutions h + relu(conv(h)), Linear out."""

    def __init__(self, n_in: int, n_out: int, channels: int, kernel: int, dilations):
        super().__init__()
        self.kernel, self.dilations = kernel, tuple(dilations)
        self.inp = nn.Linear(n_in, channels)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, kernel, dilation=d) for d in self.dilations)
        self.out = nn.Linear(channels, n_out)

    @property
    def receptive_field(self) -> int:
        return 1 + (self.kernel - 1) * sum(self.dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x).transpose(1, 2)  # (B, C, T)
        for conv, d in zip(self.convs, self.dilations):
            h = h + F.relu(conv(F.pad(h, ((self.kernel - 1) * d, 0))))  # left padding only: causal
        return self.out(h.transpose(1, 2))

    def flops_per_step(self) -> int:
        C = self.inp.out_features
        return 2 * (self.inp.in_features * C + len(self.convs) * C * C * self.kernel + C * self.out.out_features)


class TCNStream:
    """One step per call; each layer keeps its last (k-1) d + 1 inputs (this step's included) in a ring buffer."""

    def __init__(self, m: CausalTCN):
        self.m = m
        k, C = m.kernel, m.inp.out_features
        self.sizes = [(k - 1) * d + 1 for d in m.dilations]
        self.rings = [torch.zeros(n, C) for n in self.sizes]
        # conv weight (C_out, C_in, k) -> (C_out, k * C_in): tap j (0 = oldest) times the input at t - (k-1-j) d
        self.weights = [c.weight.detach().permute(0, 2, 1).reshape(C, k * C).contiguous() for c in m.convs]
        self.biases = [c.bias.detach() for c in m.convs]
        self.t = 0

    def reset(self) -> None:
        for r in self.rings:
            r.zero_()  # steps before the start read zeros, as the whole-sequence forward's padding
        self.t = 0

    def state_bytes(self, t: int) -> int:
        return sum(r.nbytes for r in self.rings)

    allocated_bytes = property(lambda self: self.state_bytes(0))

    def step(self, x: torch.Tensor) -> torch.Tensor:  # x (1, F)
        m, t, k = self.m, self.t, self.m.kernel
        h = m.inp(x)[0]  # (C,)
        for ring, n, d, W, b in zip(self.rings, self.sizes, m.dilations, self.weights, self.biases):
            ring[t % n] = h
            taps = torch.cat([ring[(t - (k - 1 - j) * d) % n] for j in range(k)])
            h = h + F.relu(F.linear(taps, W, b))
        self.t = t + 1
        return m.out(h)[None]


class TorchCellStream:
    """A RecurrentModel (one layer) as nn.RNNCell / LSTMCell / GRUCell + Linear, stepped in PyTorch eager."""

    def __init__(self, rm: RecurrentModel):
        spec = rm.spec
        layer, rnn = spec["layers"][0], rm.layers[0]
        self.lstm = layer["cell"] == "lstm"
        cls = {"rnn_tanh": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[layer["cell"]]
        self.cell = cls(rnn.input_size, rnn.hidden_size)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(self.cell, name).copy_(getattr(rnn, name + "_l0"))
        self.mean, self.std, self.head = rm.norm_mean, rm.norm_std, rm.head
        self.hidden = layer["hidden"]
        self.reset()

    def reset(self) -> None:
        z = torch.zeros(1, self.hidden)
        self.state = (z, z.clone()) if self.lstm else z

    def step(self, x: torch.Tensor) -> torch.Tensor:
        v = (x - self.mean) / self.std
        self.state = self.cell(v, self.state)
        return self.head(self.state[0] if self.lstm else self.state)


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


# -- measurement -------------------------------------------------------------------------------------------------
def sample_points(steps: int, every: int) -> list[int]:
    pts = {10, 100, 1000, *range(every, steps + 1, every), steps}
    return sorted(p for p in pts if 1 <= p <= steps)


def stream_times(e: Engine, xs_np, xs_t, out: np.ndarray) -> None:
    """Time every step of one stream from t = 1 into out (ns)."""
    xs = xs_t if e.torch_input else xs_np
    step, clock = e.step, time.perf_counter_ns
    e.reset()
    for i, x in enumerate(xs):
        t0 = clock()
        step(x)
        out[i] = clock() - t0


def measure(engines, steps: int, reps: int, warmup: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((steps, 1, FEATURES)).astype(np.float32)
    xs_np = [np.ascontiguousarray(X[t]) for t in range(steps)]
    xs_t = [torch.from_numpy(x) for x in xs_np]
    times = {e.name: np.zeros((reps, steps), dtype=np.int64) for e in engines}
    scratch = np.zeros(steps, dtype=np.int64)
    with torch.inference_mode():
        for e in engines:  # warm-up: compilation, allocator, caches
            stream_times(e, xs_np[:warmup], xs_t[:warmup], scratch)
        gc.collect()
        gc.disable()
        try:
            for r in range(reps):
                order = engines[r % len(engines):] + engines[: r % len(engines)]
                for e in order:
                    stream_times(e, xs_np, xs_t, times[e.name][r])
                    print(f"  rep {r + 1}/{reps}: {e.name:22s} {np.median(times[e.name][r]) / 1e3:8.2f} us/step "
                          "(median over the stream)", flush=True)
        finally:
            gc.enable()
    return times


def summarise(e: Engine, ns: np.ndarray, points: list[int], window: int) -> dict:
    lat = []
    for t in points:
        lo = max(0, t - window)
        lat.append(float(np.median(ns[:, lo:t])) / 1e3)
    flops = [e.flops(t) if callable(e.flops) else e.flops for t in points]
    return {"label": e.label, "family": e.family, "kind": e.kind, "params": e.params,
            "latency_us": lat, "latency_us_per_rep": [[float(np.median(r[max(0, t - window):t])) / 1e3
                                                        for t in points] for r in ns],
            "stream_median_us": float(np.median(ns)) / 1e3,
            "state_bytes": [int(e.state_bytes(t)) for t in points], "allocated_bytes": int(e.allocated_bytes),
            "flops_per_step": [int(f) for f in flops]}


# -- output -------------------------------------------------------------------------------------------------------
def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = report["positions"]
    colors = {"rnn_tanh": "tab:blue", "lstm": "tab:orange", "gru": "tab:green", "transformer": "tab:red",
              "tcn": "tab:purple"}
    styles = {"runtime f32": "-", "runtime int8": ":", "torch cell": "--", "torch": "-"}
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(18, 5.5))
    for m in report["models"].values():
        lw = 2.5 if m["kind"] == "torch" else 1.5
        a1.plot(t, m["latency_us"], styles[m["kind"]], color=colors[m["family"]], lw=lw, label=m["label"])
    a1.set_ylabel(f"per-step latency, us (median of {report['config']['window']} steps x "
                  f"{report['config']['reps']} reps)")
    a1.set_title("latency per step (1 core, batch 1, PyTorch 1 thread)")
    a1.legend(fontsize=7, loc="center left")
    for m in report["models"].values():
        if m["kind"] in ("runtime f32", "torch"):
            last = fmt_bytes(m["state_bytes"][-1])
            a2.plot(t, m["state_bytes"], color=colors[m["family"]], lw=2 if m["family"] != "lstm" else 3,
                    ls="-" if m["family"] != "lstm" else "--",
                    label=m["label"].replace(" f32", " f32 state") + f" ({last} at t={t[-1]:,})")
    a2.set_ylabel("memory held by the stream, bytes (weights excluded)")
    a2.set_title("state / KV cache / ring buffers")
    a2.legend(fontsize=7, loc="upper left")
    for m in report["models"].values():
        if m["kind"] in ("runtime f32", "torch"):
            a3.plot(t, m["flops_per_step"], color=colors[m["family"]], lw=2, label=m["label"].replace(" f32", ""))
    a3.set_ylabel("FLOPs per step (2 per multiply-add)")
    a3.set_title("arithmetic per step")
    a3.legend(fontsize=7, loc="upper left")
    for a in (a1, a2, a3):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("stream position t (steps)")
        a.grid(True, which="both", alpha=0.3)
    params = ", ".join(f"{m['family']} {m['params']:,}" for m in report["models"].values()
                       if m["kind"] in ("runtime f32", "torch"))
    fig.suptitle(f"Streaming one step per call, 16 features in, 8 out; parameters: {params}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)

def fmt_bytes(b: int) -> str:
    return f"{b / 1e6:.2f} MB" if b >= 1e6 else f"{b / 1e3:.1f} kB" if b >= 1e3 else f"{b} B"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=10000, help="stream length (default 10000)")
    p.add_argument("--reps", type=int, default=7, help="repetitions of every stream (default 7)")
    p.add_argument("--every", type=int, default=250, help="sample the latency every N steps (default 250)")
    p.add_argument("--window", type=int, default=50, help="steps per latency sample (default 50)")
    p.add_argument("--warmup", type=int, default=300, help="warm-up steps per model (default 300)")
    p.add_argument("--json", default=str(RESULTS / "streaming.json"), help="results JSON")
    p.add_argument("--plot", default=str(RESULTS / "streaming.png"), help="plot (PNG)")
    p.add_argument("--quick", action="store_true", help="300 steps, 1 repetition, samples every 50: a smoke test")
    p.add_argument("--core", type=int, default=None, help="core to pin to (default: the last allowed one)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.reps, args.every, args.window, args.warmup = 300, 1, 50, 25, 50
    if min(args.steps, args.reps, args.every, args.window, args.warmup) < 1:
        p.error("--steps, --reps, --every, --window and --warmup must be positive")

    core = pin_to_one_core(args.core)
    single_thread_torch()
    started = time.perf_counter()
    load_at_start = list(os.getloadavg())  # the machine may be shared: how busy it was
    print(f"rnnedge streaming benchmark on {cpu_model()} (pinned to core {core}); torch {torch.__version__} "
          f"({torch.get_num_threads()} thread); {args.steps} steps x {args.reps} reps")
    calib = np.random.default_rng(2).standard_normal((1, 2000, FEATURES)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="rnnedge-streaming-") as tmp:
        engines, checks, _ = build_engines(Path(tmp), args.steps, calib)

    counts = {e.family: e.params for e in engines}
    median = statistics.median(counts.values())
    params_ok = all(abs(c / median - 1) <= PARAM_SPREAD for c in counts.values())
    print("parameters: " + ", ".join(f"{k} {v:,} ({v / median - 1:+.0%})" for k, v in counts.items())
          + f" vs median {median:,.0f}: within {PARAM_SPREAD:.0%} {'MET' if params_ok else 'NOT MET'}")
    agree = all(c["agree"] for c in checks.values())
    print(f"streamed outputs vs each model's whole-sequence forward ({CHECK_STEPS} steps):")
    for name, c in checks.items():
        extra = f", vs float {c['max_abs_diff_vs_float']:.2e}" if "max_abs_diff_vs_float" in c else ""
        print(f"  {name:22s} max |diff| {c['max_abs_diff']:.2e} (<= {c['tolerance']:g}) vs {c['against']}{extra}: "
              f"{'agree' if c['agree'] else 'DISAGREE'}")

    times = measure(engines, args.steps, args.reps, min(args.warmup, args.steps))
    points = sample_points(args.steps, args.every)
    models = {e.name: summarise(e, times[e.name], points, args.window) for e in engines}
    tf_mem = models["transformer"]["state_bytes"]
    rnn_mem = [m["state_bytes"] for m in models.values() if m["kind"].startswith("runtime")]
    tcn_mem = models["tcn"]["state_bytes"]
    shape_checks = {
        "params_within_20pct": params_ok,
        "outputs_agree": agree,
        "kv_cache_grows_with_t": all(b > a for a, b in itertools.pairwise(tf_mem)),
        "rnn_state_constant": all(len(set(m)) == 1 for m in rnn_mem),
        "tcn_ring_constant": len(set(tcn_mem)) == 1,
    }
    report = {
        "benchmark": "streaming cost vs stream position: rnnedge RNN/LSTM/GRU vs KV-cache Transformer vs TCN",
        "created_unix": time.time(),
        "machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "pinned_core": core,
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "numpy": np.__version__, "python": sys.version.split()[0],
                    "loadavg_at_start": load_at_start, "loadavg_at_end": list(os.getloadavg())},
        "config": {"steps": args.steps, "reps": args.reps, "every": args.every, "window": args.window,
                   "warmup": args.warmup, "quick": args.quick, "features": FEATURES, "out": OUT,
                   "check_steps": CHECK_STEPS, "tolerance": TOLERANCE, "rnn_hidden": RNN_HIDDEN,
                   "transformer": TF, "tcn": {**TCN, "dilations": list(TCN["dilations"])}},
        "params": counts,
        "checks": checks,
        "shape_checks": shape_checks,
        "positions": points,
        "models": models,
        "all_outputs_agree": agree,
        "wall_s": None,
    }

    print(f"\n{'model':42s} {'params':>7s} " + " ".join(f"{'t=' + str(t):>20s}" for t in REPORT_AT if t in points))
    for m in models.values():
        cells = []
        for t in REPORT_AT:
            if t in points:
                i = points.index(t)
                cells.append(f"{m['latency_us'][i]:7.2f} us {fmt_bytes(m['state_bytes'][i]):>9s}")
        print(f"{m['label']:42s} {m['params']:7,d} " + " ".join(f"{c:>20s}" for c in cells))
    tf_flops = models["transformer"]["flops_per_step"]
    print("FLOPs per step: transformer " + ", ".join(f"t={t}: {tf_flops[points.index(t)]:,}" for t in REPORT_AT
                                                      if t in points)
          + "; " + ", ".join(f"{m['family']} {m['flops_per_step'][0]:,}" for m in models.values()
                              if m["kind"] == "runtime f32" or m["family"] == "tcn"))
    for name, ok in shape_checks.items():
        print(f"  {name}: {'MET' if ok else 'NOT MET'}")

    report["wall_s"] = time.perf_counter() - started
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, Path(args.plot))
    print(f"results written to {out} and {args.plot} ({report['wall_s']:.1f} s)")
    if not agree:
        print("STREAMED OUTPUTS DISAGREE WITH THE WHOLE-SEQUENCE FORWARD: the timings are meaningless")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
