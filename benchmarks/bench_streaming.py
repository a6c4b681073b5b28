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
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import cpu_model, pin_to_one_core, single_thread_torch
from benchmarks.streaming_engines import CHECK_STEPS, FEATURES, OUT, RNN_HIDDEN, TCN, TF, TOLERANCE, build_engines
from benchmarks.streaming_measure import measure, sample_points, summarise
from benchmarks.streaming_plot import fmt_bytes, plot

RESULTS = Path(__file__).resolve().parent / "results"
PARAM_SPREAD = 0.20  # every model's parameter count within 20% of the median count
REPORT_AT = (100, 1000, 10000)


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
