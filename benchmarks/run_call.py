"""What one `model.run()` call costs: rnnedge's whole-sequence call at B = 1 on short windows, per precision.

    python -m benchmarks.run_call                        # kws, har and seed; 7 repetitions of 2000 calls
    python -m benchmarks.run_call --workloads har --reps 1 --calls 50 --json out.json   # a smoke test

A device that classifies windows (a keyword in ~50 frames, an activity in 128 samples) calls run() once per
window, so the call's fixed part -- its checks, its arrays and the compiled call -- is paid every window, next to
T steps. The models are benchmarks.peers' own (benchmarks.peer_build: the same seeded weights, quantised as export
does, in a temporary folder), the inputs around each spec's statistics. Per workload and precision the median
time of one call at T = 1 (almost only the fixed part: one step) and at T = 50, its steps, in microseconds; the
precisions take turns within each repetition. One process pinned to one core; nothing is asserted about time.
Prints a table and writes JSON (artifacts/run_call.json unless --json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import cpu_model, pin_to_one_core
from benchmarks.peer_build import build, raw_inputs, workload_spec
from rnnedge import runtime

WINDOWS = (1, 50)  # T of the measured calls
PRECISIONS = ("f32", "int8w", "int8")


def measure(models: dict, windows: dict, reps: int, calls: int) -> dict:
    """{precision: {T: median us per call}}: reps rounds, in each every precision and T for `calls` calls."""
    times = {p: {T: [] for T in windows} for p in models}
    for p, m in models.items():  # warm: compiled code loaded, first-call costs out of the way
        for X in windows.values():
            m.run(X)
    for _ in range(reps):
        for p, m in models.items():
            for T, X in windows.items():
                start = time.perf_counter()
                for _ in range(calls):
                    m.run(X)
                times[p][T].append((time.perf_counter() - start) / calls * 1e6)
    return {p: {T: statistics.median(v) for T, v in per.items()} for p, per in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="kws,har,seed", help="comma-separated: kws, har, seed (peers')")
    parser.add_argument("--reps", type=int, default=7, help="repetitions (rounds over the precisions)")
    parser.add_argument("--calls", type=int, default=2000, help="calls timed together per repetition")
    parser.add_argument("--core", type=int, default=None, help="core to pin to (default: the last allowed)")
    parser.add_argument("--json", type=Path, default=Path("artifacts/run_call.json"))
    args = parser.parse_args(argv)
    if args.reps < 1 or args.calls < 1:
        parser.error("--reps and --calls must be at least 1")
    try:
        workloads = [workload_spec(entry.strip()) for entry in args.workloads.split(",")]
    except ValueError as e:  # an unknown name, a malformed shape, a file that is not a model: said, exit 2
        parser.error(str(e))
    core = pin_to_one_core(args.core)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnedge-run-call-") as tmp:
        for name, spec in workloads:
            build(Path(tmp), name, spec, steps=1, seq_steps=1, batch_steps=1)
            models = {p: runtime.load(str(Path(tmp) / f"{name}.{p}.safetensors")) for p in PRECISIONS
                      if (Path(tmp) / f"{name}.{p}.safetensors").exists()}
            windows = {T: raw_inputs(spec, 1, T, seed=0) for T in WINDOWS}
            for p, per in measure(models, windows, args.reps, args.calls).items():
                rows.append({"workload": name, "precision": p, **{f"T{T}_us": round(us, 3) for T, us in per.items()}})
    lines = ["| workload | precision | " + " | ".join(f"run() at T = {T}, us a call" for T in WINDOWS) + " |",
             "|---|---|" + "---|" * len(WINDOWS)]
    lines += [f"| {r['workload']} | {r['precision']} | " + " | ".join(f"{r[f'T{T}_us']:.2f}" for T in WINDOWS) + " |"
              for r in rows]
    print("\n".join(lines))
    report = {"command": " ".join(["python -m benchmarks.run_call", *(argv if argv is not None else sys.argv[1:])]),
              "machine": cpu_model(), "core": core, "reps": args.reps, "calls": args.calls, "windows": list(WINDOWS),
              "rows": rows, "markdown": "\n".join(lines)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
