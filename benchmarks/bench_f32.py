"""f32, int8w and int8 runtime vs PyTorch and ONNX Runtime: per-step latency, whole sequences, cold start, memory.

    python -m benchmarks.bench_f32                 # full run: prints a table, writes benchmarks/results/f32.json
    python -m benchmarks.bench_f32 --quick         # a few steps and one repetition (smoke test)

Everything runs in one process pinned to one core, with PyTorch and ONNX Runtime single-threaded (on a
small machine their thread pools make a one-step op many times slower, which would flatter the runtime).
Two workloads with seeded random weights:

    kws  dense 40 -> LSTM 128 -> Linear 12 on every step   (keyword spotting on 40 MFCC per frame)
    har  dense 6 -> GRU 64 -> GRU 64 -> Linear 6           (activity recognition on a 6-axis IMU)

Engines, per step (batch 1, inputs preallocated, state carried from one call to the next):

    runtime      stream.step(x)
    torch_eager  the RecurrentModel's own nn.LSTM / nn.GRU layers called on one step, state carried
    torch_cell   nn.LSTMCell / nn.GRUCell + nn.Linear loaded with the same weights
    ort_step     ONNX Runtime on model.step.onnx, state fed back from the outputs

and over a whole sequence: runtime model.run(X), the PyTorch module's forward, ONNX Runtime on model.onnx.
Every engine's outputs are compared with the PyTorch forward: a fast wrong answer is worth nothing.

int8w (weights int8 per output row, export.quantize.quantize_int8w) is measured in the same interleaved
repetitions, in its own section: runtime int8w stream.step / model.run, and PyTorch's dynamic quantisation
(torch.ao.quantization.quantize_dynamic on nn.LSTM / nn.GRU / nn.Linear, qint8) where this torch still has it.
Its ratios read "this / other" the other way round: f32/this > 1 means int8w is faster than f32. Its outputs
are not held to the f32 tolerance; an accuracy anchor (kws, 2000-step stream of random inputs, max abs logit
error vs the float PyTorch model) and a size ratio (int8w tensor bytes / f32 tensor bytes) have targets.
int8 (the integer model, runtime/kernels_int8.py: int8 weights, int16 activations and state, int32 sums;
export.quantize_int8.quantize_int8) is measured in the same interleaved repetitions too, in a third section:
runtime int8 stream.step / model.run, with ratios to runtime f32 (this/f32 and f32/this), to the PyTorch float
engines and to quantize_dynamic (dynq/this: > 1 means int8 is faster than PyTorch's int8 answer). Its
calibration ranges (max |normalised input|, max |h| and max |c| per layer, export.quantize_int8.Ranges) come
from export.calibrate.calibrate, as in export, over a 2000-step stream of Workload.inputs drawn with a seed of
its own (INT8_CALIBRATION_SEED), neither the measured stream's nor the accuracy anchor's. Its targets: step time int8 / f32 <= 1.5; tensor bytes of the whole int8 file
(int8 matrices + int32 biases + requantisation multipliers and shifts + float32 scales) / f32 tensor bytes <= 27%,
printed with the weight matrices' share alone and a byte breakdown; max abs logit error vs the float PyTorch
model over the same 2000-step anchor stream <= 0.01 on kws (har's is reported, with no target). The runtime's
int8 step returns float32 y = act(acc * head_scale); both workloads' heads have activation "none", so y and
PyTorch's forward are both logits (checked). The int8 stream and model.run run the same integer kernels: the
anchor also records whether the two agree exactly.
Timings are medians of --reps repetitions (engines interleaved within each repetition, gc off); the JSON
keeps every repetition. Ratios are other / runtime: "runtime is N x faster". No number here is asserted.
"""

from __future__ import annotations

import os

# before numpy / torch / onnxruntime load their thread pools
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.f32_measure import (
    bench_cold_start,
    bench_sequence,
    bench_steps,
    int8_ratios,
    int8w_ratios,
    memory,
    split_sections,
)
from benchmarks.f32_quantised import int8_accuracy, int8_size, int8w_accuracy, int8w_size
from benchmarks.f32_report import print_workload
from benchmarks.f32_targets import (
    INT8_TARGETS,
    INT8W_TARGETS,
    TARGETS,
    TOLERANCE,
    check_int8_targets,
    check_int8w_targets,
    check_targets,
    target_text,
)
from benchmarks.f32_workload import Workload, workload_specs
from benchmarks.machine import machine_info, pin_to_one_core, single_thread_torch

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "f32.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=7, help="repetitions; medians are reported (default 7)")
    p.add_argument("--steps", type=int, default=2000, help="steps per stream and sequence length (default 2000)")
    p.add_argument("--warmup", type=int, default=200, help="warm-up steps per engine (default 200)")
    p.add_argument("--cold-reps", type=int, default=3, help="cold-start repetitions (default 3)")
    p.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write the results (default {DEFAULT_JSON})")
    p.add_argument("--quick", action="store_true", help="50 steps, 1 repetition, 1 cold start: a smoke test")
    p.add_argument("--no-cold-start", action="store_true", help="skip the cold-start subprocesses")
    p.add_argument("--core", type=int, default=None, help="core to pin to (default: the last allowed one)")
    p.add_argument("--workloads", default="kws,har", help="comma-separated subset of: kws,har")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.steps, args.warmup, args.cold_reps = 1, min(args.steps, 50), 10, 1
    if args.reps < 1 or args.steps < 1 or args.warmup < 1:
        p.error("--reps, --steps and --warmup must be positive")

    core = pin_to_one_core(args.core)
    single_thread_torch()
    info = machine_info(core)
    print(f"rnnedge f32/int8w/int8 benchmark on {info['cpu_model']} (pinned to core {core}); numba {info['numba']}, "
          f"torch {info['torch']} ({info['torch_threads']} thread), onnxruntime {info['onnxruntime']} (1 thread)")

    specs = workload_specs()
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = set(names) - set(specs)
    if unknown:
        p.error(f"unknown workloads {sorted(unknown)}; choose from {sorted(specs)}")

    results = {}
    with tempfile.TemporaryDirectory(prefix="rnnedge-bench-") as tmp:
        for name in names:
            w = Workload(name, specs[name], Path(tmp))
            X = w.inputs(args.steps)
            with torch.inference_mode():
                reference = w.torch_model(torch.from_numpy(X)).numpy()  # (1, T, out): the ground truth
            step, step_q, step_8 = split_sections(bench_steps(w, X, args.warmup, args.reps, reference[0]))
            seq, seq_q, seq_8 = split_sections(bench_sequence(w, X, args.reps, reference))
            int8w_ratios(step, step_q, seq, seq_q)
            int8_ratios(step, step_q, step_8, seq, seq_q, seq_8)
            r = {"spec": w.spec, "steps": args.steps, "reps": args.reps, "step": step, "sequence": seq,
                 "memory": memory(w)}
            diffs = [e["max_abs_diff_vs_torch"] for e in (*step.values(), *seq.values())]
            r["max_abs_diff_vs_torch"] = max(diffs)
            r["outputs_agree"] = bool(max(diffs) <= TOLERANCE)
            if not args.no_cold_start:
                r["cold_start"] = bench_cold_start(w, args.cold_reps)
            r["int8w"] = {
                "step": step_q, "sequence": seq_q,
                "torch_dynq_available": w.torch_dynq is not None,
                "torch_dynq_unavailable_reason": w.torch_dynq_error,
                "accuracy": int8w_accuracy(w),
                "size": int8w_size(w),
                "weight_max_abs_error": w.int8w_weight_errors,
            }
            r["int8"] = {
                "step": step_8, "sequence": seq_8,
                "accuracy": int8_accuracy(w),
                "size": int8_size(w),
                "calibration": w.int8_ranges.as_dict(),
                "input_scale": w.int8_info["input_scale"],
                "scales": w.int8_info["layers"],
                "weight_max_abs_error": w.int8_info["per_matrix"],
            }
            r["targets"] = (check_targets(step, seq) + check_int8w_targets(name, r["int8w"])
                            + check_int8_targets(name, r["int8"]))
            results[name] = r
            print_workload(name, w.spec, r)

    all_targets = [t for r in results.values() for t in r["targets"]]
    report = {
        "benchmark": "rnnedge f32, int8w and int8 runtime vs PyTorch and ONNX Runtime",
        "created_unix": time.time(),
        "machine": info,
        "config": {"reps": args.reps, "steps": args.steps, "warmup": args.warmup, "cold_reps": args.cold_reps,
                   "quick": args.quick, "cold_start": not args.no_cold_start, "batch": 1,
                   "ratio": "other / runtime (time); > 1 means the runtime is faster", "tolerance": TOLERANCE},
        "targets": [{"name": n, "section": s, "engine": e, "required_ratio": req, "description": d}
                    for n, s, e, req, d in TARGETS]
                   + [{"name": n, "comparison": c, "required": req, "description": d, "workloads": list(ws)}
                      for n, c, req, d, ws in INT8W_TARGETS + INT8_TARGETS],
        "workloads": results,
        "all_outputs_agree": all(r["outputs_agree"] for r in results.values()),
        "all_targets_met": all(t["met"] for t in all_targets),
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    missed = [(n, t) for n, r in results.items() for t in r["targets"] if not t["met"]]
    print(f"\ntargets: {len(all_targets) - len(missed)}/{len(all_targets)} met"
          + "".join(f"\n  NOT MET {n}: {t['description']} ({target_text(t)})" for n, t in missed))
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
