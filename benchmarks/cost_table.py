"""The firmware cost table (issue 17): every target x precision firmware_ref runs, on three models, measured under
QEMU; run by `make bench` after the peers benchmark (`make bench-cost` alone).

    python -m benchmarks.cost_table            # markdown table on stdout, JSON in artifacts/bench/cost_table.json
    python -m benchmarks.cost_table --save     # also benchmarks/results/cost_table.{json,md} (tracked)

Rows (runtime/cost_model.py TARGETS): Cortex-M3 int8 (plain C, mps2-an385), Cortex-M4 int8 with the DSP extension
(mps2-an386), Cortex-M4F f32 (FPU, fused multiply-add) and int8w, RV32IMAC int8 (qemu-system-riscv32 virt), and
Cortex-M55 int8 (Helium, mps3-an547); a row whose tools are missing says "not measured yet" and why. Models, seeded
PyTorch init (the costs depend on the shapes, not on the values):

    kws    dense 40 -> LSTM 64 -> Linear 12 on every step       (keyword spotting; benchmarks/bench_firmware.py's lstm)
    har    dense 6 -> GRU 64 -> GRU 64 -> Linear 6 on every step (activity recognition; bench_firmware.py's gru)
    demo   dense 6 -> GRU 48 -> Linear 7, softmax, on every step (the watch model `make demo` trains: rnnedge train
           watch's defaults, --cell gru --hidden 48 --layers 1, 6 IMU features and 7 classes; built untrained)

Columns, each from one bench image per cell (benchmarks/cost_measure.py: the library built with the target's flags
from firmware_ref's makefiles, -Os, -DRNNEDGE_EXTENSIONS=0; --steps steps on LCG inputs):
instructions per step (mean over the steps) and per MAC; the cost model's prediction (runtime/cost_model.py, what
`rnnedge inspect --target` prints) and its error; flash: library code (its .text linked for the model + the
libc/libgcc routines it calls), library constants (the int8 sigmoid table), model constants; RAM: state and
scratch of one stream (static arrays) and the stack the step used (the startup paints the stack; the deepest byte
overwritten after the steps, the bench's main frame included).
QEMU counts instructions, not cycles: -icount shift=0 retires one instruction per virtual nanosecond whatever it is;
a real core takes more cycles for loads, multiplies and taken branches, and flash wait states on top.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import bench_firmware
from benchmarks.cost_measure import MeasureError, make_vars, measure, missing_tools
from benchmarks.workloads import dense_inputs
from rnnedge.runtime import cost_model
from rnnedge.runtime.cost_model import TARGETS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ROWS = [("cortex-m3", "int8"), ("cortex-m4", "int8"), ("cortex-m4f", "f32"), ("cortex-m4f", "int8w"),
        ("rv32", "int8"), ("cortex-m55", "int8")]
ROW_LABELS = {("cortex-m3", "int8"): "Cortex-M3 int8 (plain C)", ("cortex-m4", "int8"): "Cortex-M4 int8 (DSP)",
              ("cortex-m4f", "f32"): "Cortex-M4F f32 (FPU, FMA)", ("cortex-m4f", "int8w"): "Cortex-M4F int8w",
              ("rv32", "int8"): "RV32IMAC int8", ("cortex-m55", "int8"): "Cortex-M55 int8 (Helium)"}
DEMO_SEED = 7  # the demo's input statistics (its costs do not depend on them)
CAPTION = ("Instructions are QEMU's executed-instruction counts (-icount shift=0), not cycles: a real core spends "
           "more cycles on loads, multiplies, taken branches and flash wait states.")


def model_specs() -> dict[str, dict]:
    """kws and har: benchmarks/bench_firmware.py's lstm and gru; demo: the watch model's shape."""
    firmware = bench_firmware.model_specs()
    demo = {"version": 1, "input": dense_inputs(6, seed=DEMO_SEED)[0],
            "layers": [{"cell": "gru", "hidden": 48, "bidirectional": False}],
            "head": {"out": 7, "on": "every_step", "activation": "softmax"}, "task": "classify"}
    return {"kws LSTM(40->64)+Linear(12)": firmware["lstm"], "har GRU(6->64)x2+Linear(6)": firmware["gru"],
            "demo GRU(6->48)+Linear(7)": demo}


def row_status(target: str) -> str | None:
    """None when the target can be measured here, else why not."""
    missing = missing_tools(target)
    if missing:
        return f"{', '.join(missing)} not installed"
    try:
        make_vars(target)
    except MeasureError as e:
        return str(e)
    return None


def run(steps: int, folder: Path) -> list[dict]:
    results = []
    for target, precision in ROWS:
        why = row_status(target)
        for name, spec in model_specs().items():
            r = {"row": ROW_LABELS[(target, precision)], "target": target, "precision": precision, "model": name}
            if why is not None:
                results.append({**r, "measured": False, "reason": why})
                continue
            m = measure(spec, target, precision, folder / f"{target}-{precision}-{len(results)}", steps=steps)
            macs = cost_model.features(spec)
            macs = sum(macs[f"{g}_macs"] for g in ("lstm", "gru", "rnn")) + macs["head_macs"]
            try:
                predicted = cost_model.predict(spec, target, precision)["instructions_per_step"]
            except cost_model.CostModelError:
                predicted = None
            results.append({**r, "measured": True, **m, "macs_per_step": macs,
                            "instructions_per_mac": m["instructions_per_step"] / macs, "predicted": predicted})
            print(f"  {r['row']}, {name}: {m['instructions_per_step']:,.0f} instructions per step", file=sys.stderr,
                  flush=True)
    return results


def markdown(results: list[dict], machine: str) -> str:
    head = ("| target | model | instructions/step | per MAC | predicted (error) | code B | lib const B | model const B "
            "| state B | scratch B | stack B |")
    lines = [f"Firmware cost per model step, {machine}. {CAPTION}", "", head, "|" + "---|" * 11]
    for r in results:
        if not r["measured"]:
            lines.append(f"| {r['row']} | {r['model']} | not measured yet: {r['reason']} | | | | | | | | |")
            continue
        f, ram = r["flash"], r["ram"]
        pred = ("-" if r["predicted"] is None else
                f"{r['predicted']:,} ({(r['predicted'] - r['instructions_per_step']) / r['instructions_per_step']:+.1%})")
        lines.append(f"| {r['row']} | {r['model']} | {r['instructions_per_step']:,.0f} | {r['instructions_per_mac']:.2f} "
                     f"| {pred} | {f['library_code']:,} | {f['library_const']:,} | {f['model_const']:,} "
                     f"| {ram['state']:,} | {ram['scratch']:,} | {ram['stack']:,} |")
    lines += ["", ("code: the library's .text linked for the model plus the libc/libgcc routines it calls; lib const: "
                   "its sigmoid table (int8); stack: painted stack high-water mark of the step (bench frame included); "
                   "predicted: runtime/cost_model.py (`rnnedge inspect MODEL --target TARGET`).")]
    return "\n".join(lines)


def machine() -> str:
    def first_line(*command: str) -> str:
        try:
            out = subprocess.run(command, check=False, capture_output=True, text=True).stdout
        except OSError:
            return "not installed"
        return out.split("\n")[0].strip()

    qemu = first_line("qemu-system-arm", "--version").replace("QEMU emulator version", "QEMU")
    return (f"arm-none-eabi-gcc {first_line('arm-none-eabi-gcc', '-dumpversion')} and riscv64-unknown-elf-gcc "
            f"{first_line('riscv64-unknown-elf-gcc', '-dumpversion')} -Os, {qemu}, host "
            f"{host_cpu()} ({platform.machine()} {platform.system()}; the counts do not depend on the host)")


def host_cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown CPU")
    except OSError:
        return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=32, help="measured steps per image (default 32)")
    p.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench", help="where the JSON goes")
    p.add_argument("--save", action="store_true", help="also write benchmarks/results/cost_table.{json,md}")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be positive")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rnnedge-cost-table-") as tmp:
        results = run(args.steps, Path(tmp))
    desc = machine()
    table = markdown(results, desc)
    print(table)
    report = {"machine": desc, "caption": CAPTION, "steps": args.steps, "targets": TARGETS, "results": results,
              "seconds": round(time.perf_counter() - started, 1)}
    outs = [args.out] + ([RESULTS] if args.save else [])
    for out in outs:
        out.mkdir(parents=True, exist_ok=True)
        (out / "cost_table.json").write_text(json.dumps(report, indent=2) + "\n")
        if out == RESULTS:
            (out / "cost_table.md").write_text(table + "\n")
        print(f"wrote {out / 'cost_table.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
