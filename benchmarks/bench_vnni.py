"""The int8 mat-vec alone: runtime/vnni.py (AVX512-VNNI and its portable loop) and the specialised steps' one-row
product (runtime/vnni_quad.py, `vpdpbusd`) against kernels_int8.gemv_t_int8.

    python -m benchmarks.bench_vnni            # prints a table, writes artifacts/bench/vnni.json
    python -m benchmarks.bench_vnni --quick    # fewer calls

Shapes (K inputs, N outputs): kws's fused [x; h] step (168 -> 4 x 128), its W_hh alone (128 -> 512), har's GRU
layer 2 fused (128 -> 192) and layer 1 (70 -> 192), and 168 -> 128. Per shape, us per mat-vec: inside a numba
loop (the kernel alone) and called from Python (with numba's dispatch). Pinned to one core; medians of --reps
timings of --calls calls; every path's result is first checked equal to gemv_t_int8's. No timing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from numba import njit

from rnnedge.runtime import vnni, vnni_quad
from rnnedge.runtime.kernels_int8 import gemv_t_int8

SHAPES = [(168, 512), (128, 512), (128, 192), (70, 192), (168, 128)]
OUT = Path(__file__).resolve().parents[1] / "artifacts" / "bench" / "vnni.json"


@njit(cache=True)
def _loop_plain(acc, w_t, v, calls):
    for _ in range(calls):
        gemv_t_int8(acc, w_t, v)


@njit(cache=True)
def _loop_vnni(acc, wp, v, calls):
    for _ in range(calls):
        vnni.gemv_t_vnni(acc, wp, v)


@njit(cache=True)
def gemv_t_quad(acc, wq, v):
    """acc (N,) int32 += w_t^T @ v from vnni_quad.pack_quad(w_t), N a multiple of 16: matvec_quad_at with acc as the
    bias (each block's sums start from it and are stored back over it)."""
    vnni_quad.matvec_quad_at(acc, 0, wq, 0, acc, 0, v, 0, v.shape[0], acc.shape[0] // 16)


@njit(cache=True)
def _loop_quad(acc, wq, v, calls):
    for _ in range(calls):
        gemv_t_quad(acc, wq, v)


@njit(cache=True)
def _loop_portable(acc, wp, v, calls):
    for _ in range(calls):
        vnni.gemv_t_portable(acc, wp, v)


def per_call_us(fn, reps: int, calls: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(calls)
        times.append((time.perf_counter() - t) / calls * 1e6)
    return statistics.median(times)


def python_calls(gemv, acc, w, v):
    def run(calls):
        for _ in range(calls):
            gemv(acc, w, v)
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_vnni", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--core", type=int, default=None)
    p.add_argument("--json", type=Path, default=OUT)
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.calls = 3, 500
    core = max(os.sched_getaffinity(0)) if args.core is None else args.core
    os.sched_setaffinity(0, {core})
    rng = np.random.default_rng(0)
    paths = {"gemv_t_int8": (_loop_plain, gemv_t_int8, np.ascontiguousarray),
             "portable": (_loop_portable, vnni.gemv_t_portable, vnni.pack_portable)}
    if vnni.has_avx512_vnni():
        paths["avx512_vnni"] = (_loop_vnni, vnni.gemv_t_vnni, vnni.pack_vnni)
        paths["quad_vpdpbusd"] = (_loop_quad, gemv_t_quad, vnni_quad.pack_quad)
    rows = []
    print(f"| K -> N | {' | '.join(f'{n} loop / call us' for n in paths)} | gemv_t_int8 / vnni (loop) |")
    print("|---|" + "---|" * (len(paths) + 1))
    for K, N in SHAPES:
        w_t = rng.integers(-128, 128, (K, N), dtype=np.int8)
        v = rng.integers(-32768, 32768, K).astype(np.int32)
        expected = np.zeros(N, np.int32)
        gemv_t_int8(expected, w_t, v)
        row = {"K": K, "N": N}
        for name, (loop, gemv, pack) in paths.items():
            w = pack(w_t)
            acc = np.zeros(N, np.int32)
            gemv(acc, w, v)
            if not np.array_equal(acc, expected):
                raise SystemExit(f"{name} differs from gemv_t_int8 on {K} -> {N}")
            loop(acc, w, v, 10)
            row[name] = {"loop_us": per_call_us(lambda c, loop=loop, acc=acc, w=w, v=v: loop(acc, w, v, c), args.reps,
                                                args.calls),
                         "call_us": per_call_us(python_calls(gemv, acc, w, v), args.reps, args.calls // 10)}
        rows.append(row)
        cells = " | ".join(f"{row[n]['loop_us']:.3f} / {row[n]['call_us']:.3f}" for n in paths)
        speedup = (f"{row['gemv_t_int8']['loop_us'] / row['avx512_vnni']['loop_us']:.2f}x"
                   if "avx512_vnni" in row else "-")
        print(f"| {K} -> {N} | {cells} | {speedup} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"kernel": vnni.KERNEL, "core": core, "reps": args.reps, "calls": args.calls,
                                     "load_average": os.getloadavg(), "rows": rows}, indent=1))
    print(f"kernel chosen at load: {vnni.KERNEL}; wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
