"""Firmware footprint and cost of two int8 reference models on Cortex-M under QEMU (issue 5).

    python -m benchmarks.bench_firmware            # full run: prints a table, writes benchmarks/results/firmware.json
    python -m benchmarks.bench_firmware --quick    # 16 steps; lstm and gru on an385, lstm on an386 (smoke test)

Two models with seeded random weights (PyTorch's default init), made integer as export does it: the float
model's ranges from export.calibrate.calibrate on random input streams (drawn around the spec's statistics, a
seed of their own), export.quantize_int8.quantize_int8, the weight file, export.firmware.write_model_sources:

    lstm  dense 40 -> LSTM 64 -> Linear 12 on every step         (the issue's target model: keyword spotting)
    gru   dense 6 -> GRU 64 -> GRU 64 -> Linear 6 on every step  (activity recognition on a 6-axis IMU)

Each is measured by export.footprint.measure_footprint: arm-none-eabi-gcc -Os (firmware_ref/arm/arm.mk's flags),
sizes from arm-none-eabi-size / nm and the map file, and firmware_ref/arm/bench/step_bench.c run under QEMU
(-icount shift=0) for --steps steps on LCG inputs. Boards: an385 (Cortex-M3) for both, an386 (Cortex-M4F) too
(the LSTM only with --quick). Targets (the LSTM on the Cortex-M3): library code <= 4 KiB, RAM for state and
scratch <= 1 KiB, model const flash within 5% of the raw int8 parameter count (export/footprint.py defines each
number). Instruction counts are QEMU's executed instructions, not cycles (firmware_ref/arm/README.md).
Both models are PyTorch's cells, so the library is built as their users would build it: without the ONNX layer
extensions' code (-DRNNEDGE_EXTENSIONS=0; the table also gives the library's size with them).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.workloads import dense_inputs
from rnnedge.export import footprint
from rnnedge.export.calibrate import calibrate, calibration_slice
from rnnedge.export.firmware import write_model_sources
from rnnedge.export.quantize_int8 import quantize_int8
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import artifact
from rnnedge.train.model import RecurrentModel

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "firmware.json"
TARGET_MODEL, TARGET_BOARD = "lstm", "an385"  # the model and board the targets are stated for
CALIBRATION_SEED = 2
CALIBRATION_STEPS = 2000


def model_specs() -> dict[str, dict]:
    lstm_input, gru_input = dense_inputs(40, 6)
    return {
        "lstm": {"version": 1, "input": lstm_input,
                 "layers": [{"cell": "lstm", "hidden": 64, "bidirectional": False}],
                 "head": {"out": 12, "on": "every_step", "activation": "none"}, "task": "classify"},
        "gru": {"version": 1, "input": gru_input,
                "layers": [{"cell": "gru", "hidden": 64, "bidirectional": False}] * 2,
                "head": {"out": 6, "on": "every_step", "activation": "none"}, "task": "classify"},
    }


def build_model(name: str, spec: dict, folder: Path, seed: int = 0) -> tuple[Path, int]:
    """Seeded float model -> calibrated int8 weight file -> model_data.{h,c} in folder/<name>/; returns the
    folder and the float model's parameter count."""
    torch.manual_seed(seed)
    model = RecurrentModel(spec).eval()
    tensors = canonical_tensors(model)
    inp = spec["input"]
    rng = np.random.default_rng(CALIBRATION_SEED)
    X = (rng.standard_normal((1, CALIBRATION_STEPS, inp["features"])) * np.asarray(inp["std"])
         + np.asarray(inp["mean"])).astype(np.float32)
    ranges = calibrate(model, *calibration_slice(X), where=f"{name} calibration stream")
    q8, _ = quantize_int8(model.spec, tensors, ranges)
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "model.int8.safetensors"
    artifact.write(weights, q8, model.spec, "int8")
    write_model_sources(weights, out)
    return out, sum(p.numel() for p in model.parameters())


def _fmt(v, digits: int = 0) -> str:
    return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def _or_dash(v):
    return "-" if v is None else v


def print_table(results: list[dict]) -> None:
    rows = [
        ("library with the extensions' code", lambda r: "yes" if r["library"]["extensions"] else "no"),
        ("library code (B)", lambda r: r["library"]["code_bytes"]),
        ("  library code with extensions (B)", lambda r: _or_dash(r["library"]["code_bytes_with_extensions"])),
        ("  library code without them (B)", lambda r: _or_dash(r["library"]["code_bytes_without_extensions"])),
        ("  .text kept for this model (B)", lambda r: r["library"]["linked_code_bytes"]),
        ("  libc/libgcc helpers (B)", lambda r: r["library"]["helper_bytes"]),
        ("library const: sigmoid table (B)", lambda r: r["library"]["const_bytes"]),
        ("model const flash (B)", lambda r: r["model_const"]["flash_bytes"]),
        ("  int8 weight matrices (B)", lambda r: r["model_const"]["by_kind"]["weights"]),
        ("  int32 biases (B)", lambda r: r["model_const"]["by_kind"]["biases"]),
        ("  requant mult/shift (B)", lambda r: r["model_const"]["by_kind"]["requant"]),
        ("  structs (B)", lambda r: r["model_const"]["by_kind"]["structs"]),
        ("raw int8 params", lambda r: r["model_const"]["raw_int8_params"]),
        ("const flash / raw params", lambda r: f"{r['model_const']['flash_over_raw_params']:.3f}"),
        ("weight matrices / raw params", lambda r: f"{r['model_const']['weight_matrices_over_raw_params']:.3f}"),
        ("RAM state (B)", lambda r: r["ram"]["state_bytes"]),
        ("RAM scratch (B)", lambda r: r["ram"]["scratch_bytes"]),
        ("RAM state + scratch (B)", lambda r: r["ram"]["state_plus_scratch_bytes"]),
        ("stack used (B)", lambda r: r["ram"]["stack_used_bytes"]),
        ("image flash text+data (B)", lambda r: r["image"]["flash_bytes"]),
        ("instructions/step median", lambda r: r["icount"]["per_step_median"]),
        ("instructions/step mean", lambda r: _fmt(r["icount"]["per_step_mean"], 1)),
        ("instructions/step min..max", lambda r: f"{r['icount']['per_step_min']:,}..{r['icount']['per_step_max']:,}"),
        ("instructions per MAC", lambda r: f"{r['icount']['per_step_mean'] / r['macs_per_step']:.2f}"),
    ]
    heads = [f"{r['model']} {r['board']} ({r['cpu']})" for r in results]
    width = max(len(h) for h in heads) + 2
    print(f"{'':34}" + "".join(f"{h:>{width}}" for h in heads))
    for label, get in rows:
        cells = []
        for r in results:
            v = get(r)
            cells.append(v if isinstance(v, str) else _fmt(v))
        print(f"{label:34}" + "".join(f"{c:>{width}}" for c in cells))


def macs_per_step(spec: dict) -> int:
    """Multiply-accumulates of one step: every gate row's two dot products and the head."""
    gates = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
    n_in, macs = spec["input"]["features"], 0
    for layer in spec["layers"]:
        g = gates[layer["cell"]] * layer["hidden"]
        macs += g * (n_in + layer["hidden"])
        n_in = layer["hidden"]
    return macs + spec["head"]["out"] * n_in


def finite_numbers(obj) -> bool:
    """Every number in a JSON-like object is finite."""
    if isinstance(obj, dict):
        return all(finite_numbers(v) for v in obj.values())
    if isinstance(obj, list):
        return all(finite_numbers(v) for v in obj)
    if isinstance(obj, float):
        return math.isfinite(obj)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=200, help="measured model steps per image (default 200)")
    p.add_argument("--json", default=str(DEFAULT_JSON), help=f"where to write the results (default {DEFAULT_JSON})")
    p.add_argument("--quick", action="store_true", help="16 steps: a smoke test")
    p.add_argument("--build-dir", default=None, help="keep objects, images and map files here (default: temporary)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps = min(args.steps, 16)
    if args.steps < 1:
        p.error("--steps must be positive")
    ok, reason = footprint.available()
    if not ok:
        print(f"bench_firmware: cannot measure: {reason} (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
              "qemu-system-arm make)", file=sys.stderr)
        return 2

    started = time.perf_counter()
    specs = model_specs()
    plan = [("lstm", "an385"), ("gru", "an385"), ("lstm", "an386"), ("gru", "an386")]
    if args.quick:
        plan = plan[:3]
    results = []
    with tempfile.TemporaryDirectory(prefix="rnnedge-bench-firmware-") as tmp:
        build_root = Path(args.build_dir) if args.build_dir else Path(tmp) / "build"
        folders = {}
        for name, spec in specs.items():
            folders[name] = build_model(name, spec, Path(tmp))
        for name, board in plan:
            folder, params = folders[name]
            r = footprint.measure_footprint(folder, board, steps=args.steps, build_dir=build_root / f"{name}-{board}")
            if r["model_const"]["raw_int8_params"] != params:
                raise SystemExit(f"{name}: footprint counts {r['model_const']['raw_int8_params']} raw parameters, "
                                 f"the PyTorch model has {params}")
            results.append({"model": name, "spec": specs[name], "macs_per_step": macs_per_step(specs[name]),
                            "torch_parameters": params, **r})

    print(f"rnnedge firmware footprint: int8, {results[0]['compiler']}, QEMU -icount shift=0, "
          f"{args.steps} steps per image")
    for r in results:
        print(f"  {r['model']} {r['board']}: library {footprint.library_build(r['library'])}")
    print_table(results)
    target = next(r for r in results if (r["model"], r["board"]) == (TARGET_MODEL, TARGET_BOARD))
    print(f"\ntargets ({TARGET_MODEL} on {TARGET_BOARD}, {target['cpu']}):")
    for t in target["targets"]:
        value = f"{t['value']:.3f}" if isinstance(t["value"], float) else f"{t['value']:,}"
        print(f"  {'MET    ' if t['met'] else 'NOT MET'}  {t['description']}: {value} (limit {t['limit']:g})")

    report = {
        "config": {"steps": args.steps, "quick": args.quick, "target_model": TARGET_MODEL,
                   "target_board": TARGET_BOARD, "calibration_seed": CALIBRATION_SEED,
                   "calibration_steps": CALIBRATION_STEPS},
        "results": results,
        "targets": target["targets"],
        "all_targets_met": all(t["met"] for t in target["targets"]),
        "seconds": time.perf_counter() - started,
    }
    if not finite_numbers(report):
        raise SystemExit("bench_firmware: a measured number is not finite")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out} ({report['seconds']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
