"""benchmarks.bench_streaming's measurement: every step of every stream timed on its own, the models taking turns
within each repetition, and the latency at sampled stream positions."""

from __future__ import annotations

import gc
import time

import numpy as np
import torch

from benchmarks.streaming_engines import FEATURES, Engine


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
