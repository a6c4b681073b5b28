"""The compute floor of a batched stream-step, per precision, measured on this machine (issue 15's batched target:
within 1.5x of it at B >= 64), for benchmarks.peers.

    floor (us per stream-step) = multiply-adds of one stream-step / peak multiply-adds per second of the instruction
                                 the precision's batched products use on this CPU

    python -m benchmarks.compute_floor [--core N] [--workloads kws,har]   # prints the rates and floors as JSON

Multiply-adds (stream_step_macs): every weight of every recurrent layer and direction, G H (I + H) (G = 4 LSTM,
3 GRU, 1 RNN), and of every dense layer of the head, once per stream-step: the products a step cannot avoid.
Biases, the gates' nonlinearities, requantisation and state updates are not counted: they are what a step spends
above the floor.

The instructions (rates), each timed in a loop of independent accumulator chains (4 to 16, so their latency is
hidden; the best count's rate) with its operands in registers, the best of several runs, pinned to one core by the
caller:

- f32 and int8w: a 16-lane float32 fused multiply-add (`llvm.fma.v16f32`: one zmm `vfmadd` on AVX-512, two ymm
  on AVX2), 16 multiply-adds. int8w's batched sums are float32 FMAs of its weights' float16 copy or of the int8
  weights converted as loaded (runtime/fused_float_fma.py), one per weight, so its floor is f32's.
- int8, path "avx512_vnni" (runtime.vnni.best_path): `vpdpbusd`, 64 byte products into 16 int32 lanes; int8's
  activations are 16-bit, so each weight takes two of them (runtime/vnni_quad.py): 32 multiply-adds an
  instruction. Path "avx2": `vpmaddwd` + `vpaddd` on 16-bit pairs (runtime.vnni.PAIR_DOT["avx2"], the
  instructions that path sums with), 16 lanes x 2 = 32 multiply-adds a 16-lane step. Path "portable": no floor
  (plain loops; nothing to hold them to).

The clock is whatever the core runs at while the loop runs (turbo included), as it is for the engines timed in the
same run; the floor moves with it (a shared machine: one more reason the ratios, not the figures, are compared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# independent accumulator chains per loop iteration, each count timed: the peak is the best of them (a zmm FMA's 4
# cycles of latency need 4+ chains; on Zen 4 8 chains ran 1.14 FMAs a cycle, 12-16 fewer: a measured peak, not a
# data-sheet one)
CHAINS = (4, 8, 12, 16)
MACS_PER_OP = {"fma_f32": 16, "vpdpbusd": 32, "pmaddwd": 32}  # multiply-adds one timed operation stands for
FLOAT_OP, INT8_OPS = "fma_f32", {"avx512_vnni": "vpdpbusd", "avx2": "pmaddwd"}


def stream_step_macs(spec: dict) -> int:
    """Multiply-adds of one stream-step of a model spec (module docstring): its recurrent layers' weights, every
    direction, and its head's dense layers (runtime.spec's sizes)."""
    from rnnedge.runtime import spec as specs

    recurrent = sum(specs.directions(layer) * specs.GATES[layer["cell"]] * layer["hidden"] * (n_in + layer["hidden"])
                    for layer, n_in in zip(spec["layers"], specs.layer_input_sizes(spec)))
    widths = specs.head_input_sizes(spec)
    outs = [dense["units"] for dense in specs.head_hidden(spec)] + [spec["head"]["out"]]
    return recurrent + sum(n_in * n_out for n_in, n_out in zip(widths, outs))


def _timed_loop(op: str, chains_: int):
    """A numba function loop(n) -> int running n iterations of `chains_` independent `op`s (module docstring), its
    accumulators summed into the result so nothing is optimised away."""
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    from rnnedge.runtime.vnni import PAIR_DOT
    from rnnedge.runtime.vnni_quad import _busd

    i32, i64, f32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
    if op == "fma_f32":
        vec = ir.VectorType(f32, 16)
        start = [ir.Constant(vec, [float(c) * 1e-3] * 16) for c in range(chains_)]
        a, b = ir.Constant(vec, [0.999] * 16), ir.Constant(vec, [1e-6] * 16)

        def step(builder, acc):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                                "llvm.fma.v16f32")
            return builder.call(fn, [acc, a, b])
    else:
        vec = ir.VectorType(i32, 16)
        start = [ir.Constant(vec, [c] * 16) for c in range(chains_)]
        a, b = ir.Constant(vec, [0x01020304] * 16), ir.Constant(vec, [0x05060708] * 16)

        def step(builder, acc):
            if op == "vpdpbusd":
                return _busd(builder, acc, a, b)
            # the products of the accumulator's own bits: otherwise loop-invariant, LLVM would hoist them
            pairs = ir.VectorType(ir.IntType(16), 32)
            return PAIR_DOT["avx2"](builder, acc, builder.bitcast(acc, pairs), builder.bitcast(b, pairs))

    @intrinsic
    def chains(typingctx, n):
        def codegen(context, builder, signature, args):
            accs = [cgutils.alloca_once_value(builder, s) for s in start]
            with cgutils.for_range(builder, args[0]):
                for p in accs:  # each op takes its chain's accumulator, so none is folded or hoisted
                    builder.store(step(builder, builder.load(p)), p)
            total = builder.load(accs[0])
            for p in accs[1:]:
                total = (builder.fadd if op == "fma_f32" else builder.add)(total, builder.load(p))
            lane = builder.extract_element(total, ir.Constant(i32, 0))
            return builder.fptosi(lane, i64) if op == "fma_f32" else builder.sext(lane, i64)

        return types.int64(types.int64), codegen

    @njit(cache=False)
    def loop(n):
        return chains(n)

    return loop


def rate(op: str, seconds: float = 0.2, runs: int = 5) -> float:
    """Peak multiply-adds per second of `op` on this core (module docstring): for each count of chains (CHAINS),
    the best of `runs` timed loops of ~seconds / runs; the best of those."""
    best = 0.0
    for chains_ in CHAINS:
        loop = _timed_loop(op, chains_)
        loop(1000)
        n = 1000
        while True:  # iterations for ~seconds / runs a run
            t = time.perf_counter()
            loop(n)
            if time.perf_counter() - t > seconds / runs or n > 1 << 34:
                break
            n *= 4
        best = max(best, n * chains_ * MACS_PER_OP[op] / min(_elapsed(loop, n) for _ in range(runs)))
    return best


def _elapsed(loop, n: int) -> float:
    t = time.perf_counter()
    loop(n)
    return time.perf_counter() - t


def ops_used() -> dict[str, str | None]:
    """The instruction each precision's batched products use on this CPU (module docstring); None: no floor."""
    from rnnedge.runtime.vnni import best_path

    return {"f32": FLOAT_OP, "int8w": FLOAT_OP, "int8": INT8_OPS.get(best_path())}


def measure() -> dict:
    """{"ops": precision -> op, "rates": op -> multiply-adds per second} on this core."""
    ops = ops_used()
    return {"ops": ops, "rates": {op: rate(op) for op in sorted({o for o in ops.values() if o})}}


def floors_us(spec: dict, measured: dict) -> dict[str, float | None]:
    """Per precision: the compute floor of one stream-step of `spec`, us (None where the path has none)."""
    macs = stream_step_macs(spec)
    return {p: (macs / measured["rates"][op] * 1e6 if op else None) for p, op in measured["ops"].items()}


def against_floor(rows: dict, spec: dict, measured: dict, columns=("b64", "b256")) -> dict:
    """Per rnnedge engine of a workload's table rows: its precision's floor (us per stream-step) and each batched
    column's figure over it (None where the engine has no such column or its path no floor)."""
    floors = floors_us(spec, measured)
    out = {}
    for engine, row in rows.items():
        precision = engine.removeprefix("rnnedge_")
        if not engine.startswith("rnnedge_") or precision not in floors:
            continue
        floor = floors[precision]
        out[engine] = {"floor_us": floor, **{c: (row[c] / floor if floor and row.get(c) else None) for c in columns}}
    return out


def summary_line(workload: str, macs: int, gaps: dict) -> str:
    """One line of the harness's report: a workload's floors and rnnedge's batched figures over them."""
    cells = []
    for engine, g in gaps.items():
        if g["floor_us"] is None:
            cells.append(f"{engine} no floor (portable path)")
            continue
        ratios = " ; ".join("-" if g[c] is None else f"{g[c]:.2f}x" for c in ("b64", "b256"))
        cells.append(f"{engine} {g['floor_us']:.3f} us, B = 64 ; 256 at {ratios}")
    return (f"{workload}, against the compute floor ({macs} multiply-adds a stream-step / the instruction's measured "
            "peak; benchmarks/compute_floor.py): " + "; ".join(cells))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compute_floor", description=__doc__.split("\n\n")[0])
    p.add_argument("--core", type=int, default=None, help="pin to this core first")
    p.add_argument("--workloads", default="", help="comma-separated workloads (benchmarks.peers' names or shapes): "
                                                    "also print their floors")
    args = p.parse_args(argv)
    if args.core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    out = measure()
    if args.workloads:
        from benchmarks import peer_build

        out["floors_us"] = {}
        for entry in args.workloads.split(","):
            name, spec = peer_build.workload_spec(entry)
            out["floors_us"][name] = {"macs": stream_step_macs(spec), **floors_us(spec, out)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
