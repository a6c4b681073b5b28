"""Measure varied shapes under QEMU and fit runtime/cost_model.py's coefficients (issue 17): `make cost-fit`.

    python -m benchmarks.cost_fit                 # every measurable target: writes runtime/cost_coefficients.py
    python -m benchmarks.cost_fit --check         # measure and fit, print the residuals, write nothing
    python -m benchmarks.cost_fit --targets cortex-m3 rv32

For each target x precision of runtime/cost_model.py's TARGETS that firmware_ref builds for (a target whose board
arm/arm.mk does not define, or whose tools are missing, is reported and left without coefficients), every shape of
FIT_SHAPES is measured with benchmarks/cost_measure.py and the formulas of runtime/cost_model.py are fitted:

- instructions per step: weighted least squares with weights 1 / measured, i.e. the relative residuals are
  minimised (a 10% error means the same on a 3,000- and a 300,000-instruction step);
- model constants: ordinary least squares on const_features (exact up to alignment padding);
- library code and constants, stack: the largest measured over the shapes (what a model of any fitted cell needs).

runtime/cost_coefficients.py records, per target x precision, the coefficients, every shape's measured and predicted
figures, the largest relative residual, the compiler and QEMU versions and the date. VALIDATION_SHAPES are the
held-out shapes tests/firmware/test_cost_model.py measures; none of them is in FIT_SHAPES (checked here).
"""

from __future__ import annotations

import argparse
import datetime
import pprint
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.cost_measure import MeasureError, family, make_vars, measure, missing_tools
from benchmarks.workloads import dense_inputs
from rnnedge.runtime import cost_model
from rnnedge.runtime.cost_model import CONST_FEATURES, INSTRUCTION_FEATURES, SAME_AS, TARGETS

ROOT = Path(__file__).resolve().parents[1]
COEFFICIENTS_PY = ROOT / "runtime" / "cost_coefficients.py"

# (cell, input features or ("tokens", vocab, embed_dim), hidden, layers, head outputs): odd and even widths, 1 to 3
# layers, small to wide, dense and token inputs
FIT_SHAPES = [
    *[(cell, *shape) for cell in ("lstm", "gru", "rnn_tanh") for shape in [
        (4, 16, 1, 3), (11, 32, 1, 5), (40, 64, 1, 12), (6, 64, 2, 6), (24, 40, 1, 8), (16, 25, 3, 4),
        (9, 96, 1, 10), (32, 17, 2, 2), (3, 8, 1, 1), (50, 56, 1, 16), (("tokens", 50, 16), 40, 1, 50),
        (("tokens", 30, 9), 20, 2, 30)]],
    ("rnn_relu", 12, 30, 1, 4), ("rnn_relu", 5, 64, 2, 6), ("rnn_relu", ("tokens", 40, 12), 33, 1, 40),
    # vectors past the DSP kernel's 256 packed values (cost_model.DSP_PACKED_VALUES)
    ("lstm", 40, 272, 1, 8), ("gru", 260, 32, 1, 4), ("rnn_tanh", 12, 300, 1, 5),
]
# held out: tests/firmware/test_cost_model.py measures these and compares them with the prediction
VALIDATION_SHAPES = [("lstm", 13, 48, 1, 6), ("gru", 20, 32, 2, 5), ("rnn_tanh", 7, 24, 1, 3)]


def shape_spec(cell: str, inp, hidden: int, layers: int, out: int) -> dict:
    """A spec of `layers` equal forward layers and a linear head on every step (dense input: seeded statistics)."""
    if isinstance(inp, tuple):
        _, vocab, embed = inp
        spec_input = {"kind": "tokens", "vocab": vocab, "embed_dim": embed, "padding_idx": None}
    else:
        spec_input = dense_inputs(inp)[0]
    return {"version": 1, "input": spec_input,
            "layers": [{"cell": cell, "hidden": hidden, "bidirectional": False}] * layers,
            "head": {"out": out, "on": "every_step", "activation": "none"}, "task": "classify"}


def shape_name(cell: str, inp, hidden: int, layers: int, out: int) -> str:
    source = f"tokens {inp[1]}x{inp[2]}" if isinstance(inp, tuple) else str(inp)
    return f"{cell}({source}->{hidden})x{layers}+{out}"


def measurable() -> list[tuple[str, str]]:
    """Every (target, precision) with its own coefficients (SAME_AS pairs share another's)."""
    return [(t, p) for t, info in TARGETS.items() for p in info["precisions"] if (t, p) not in SAME_AS]


def tool_versions(target: str) -> dict[str, str]:
    cc, qemu = (("riscv64-unknown-elf-gcc", "qemu-system-riscv32") if family(target) == "riscv"
                else ("arm-none-eabi-gcc", "qemu-system-arm"))
    return {tool: subprocess.run([tool, "--version"], check=False, capture_output=True,
                                 text=True).stdout.splitlines()[0] for tool in (cc, qemu)}


def fit(rows: list[dict]) -> dict:
    """Coefficients from measured rows ({"spec", "instructions_per_step", "flash", "ram", ...})."""
    X = np.array([[cost_model.features(r["spec"])[f] for f in INSTRUCTION_FEATURES] for r in rows], dtype=float)
    y = np.array([r["instructions_per_step"] for r in rows])
    used = X.any(axis=0)  # a cell no shape measured keeps coefficient 0 (none today)
    w = 1.0 / y
    beta = np.zeros(X.shape[1])
    beta[used] = np.linalg.lstsq(X[:, used] * w[:, None], y * w, rcond=None)[0]
    C = np.array([[cost_model.const_features(r["spec"])[f] for f in CONST_FEATURES] for r in rows], dtype=float)
    c = np.array([r["flash"]["model_const"] for r in rows], dtype=float)
    gamma = np.linalg.lstsq(C, c, rcond=None)[0]
    predicted, predicted_const = X @ beta, C @ gamma
    shapes = [{"shape": r["name"], "measured": r["instructions_per_step"], "predicted": round(float(p), 1),
               "model_const": int(r["flash"]["model_const"]), "model_const_predicted": round(float(q), 1)}
              for r, p, q in zip(rows, predicted, predicted_const)]
    relative = np.abs(predicted - y) / y
    return {
        "instructions": {f: round(float(b), 6) for f, b in zip(INSTRUCTION_FEATURES, beta)},
        "model_const": {f: round(float(g), 6) for f, g in zip(CONST_FEATURES, gamma)},
        "library_code_bytes": max(r["flash"]["library_code"] for r in rows),
        "library_const_bytes": max(r["flash"]["library_const"] for r in rows),
        "stack_bytes": max(r["ram"]["stack"] for r in rows),
        "fit": {"shapes": shapes, "max_width": max(max(specs_widths(r["spec"])) for r in rows),
                "max_layers": max(len(r["spec"]["layers"]) for r in rows),
                "max_relative_residual": round(float(relative.max()), 5),
                "mean_relative_residual": round(float(relative.mean()), 5)},
    }


def specs_widths(spec: dict) -> list[int]:
    """Every vector length a step's dot products run over: the input (or embedding) width and each hidden size."""
    return [cost_model.features(spec)["dense_inputs"] or spec["input"].get("embed_dim", 0),
            *(layer["hidden"] for layer in spec["layers"])]


def refit(entry: dict) -> dict:
    """`fit` again on the measurements a stored entry holds (FIT_SHAPES in order)."""
    stored = {s["shape"]: s for s in entry["fit"]["shapes"]}
    rows = []
    for shape in FIT_SHAPES:
        s = stored[shape_name(*shape)]
        rows.append({"spec": shape_spec(*shape), "name": s["shape"], "instructions_per_step": s["measured"],
                     "flash": {"model_const": s["model_const"], "library_code": entry["library_code_bytes"],
                               "library_const": entry["library_const_bytes"]},
                     "ram": {"stack": entry["stack_bytes"]}})
    new = fit(rows)
    new["fit"] |= {k: v for k, v in entry["fit"].items() if k in ("measured", "steps", "tools")}
    return new


def measure_shapes(target: str, precision: str, shapes: list[tuple], folder: Path, steps: int) -> list[dict]:
    rows = []
    for i, shape in enumerate(shapes):
        spec = shape_spec(*shape)
        r = measure(spec, target, precision, folder / f"{target}-{precision}-{i}", steps=steps)
        rows.append({**r, "spec": spec, "name": shape_name(*shape)})
    return rows


def write_coefficients(entries: dict, path: Path = COEFFICIENTS_PY) -> None:
    text = ('"""runtime/cost_model.py\'s coefficients, written by benchmarks/cost_fit.py (`make cost-fit`) from QEMU\n'
            "measurements: per target/precision the fitted instruction and model-constant formulas, the library's\n"
            "code and constants and the largest stack measured, and the fit itself (every shape measured and predicted,\n"
            'the largest relative residual, the tools, the date). Do not edit by hand: rerun the fit."""\n\n'
            f"COEFFICIENTS = {pprint.pformat(entries, width=116, sort_dicts=False)}\n")
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS),
                   help="targets to measure (default: all); the others keep their coefficients")
    p.add_argument("--steps", type=int, default=8, help="measured steps per shape (default 8)")
    p.add_argument("--check", action="store_true", help="measure and fit, print the residuals, write nothing")
    p.add_argument("--refit", action="store_true",
                   help="no QEMU: fit again to the measurements runtime/cost_coefficients.py holds (after a change of "
                        "the formula's features)")
    args = p.parse_args(argv)
    overlap = {shape_name(*s) for s in VALIDATION_SHAPES} & {shape_name(*s) for s in FIT_SHAPES}
    if overlap:
        raise SystemExit(f"cost_fit: validation shapes in the fit: {', '.join(sorted(overlap))}")
    from rnnedge.runtime.cost_coefficients import COEFFICIENTS

    entries = dict(COEFFICIENTS)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rnnedge-cost-fit-") as tmp:
        for target, precision in measurable():
            if target not in args.targets:
                continue
            key = f"{target}/{precision}"
            if args.refit:
                if key in entries:
                    entries[key] = refit(entries[key])
                    print(f"{key}: refitted, largest relative residual "
                          f"{entries[key]['fit']['max_relative_residual']:.2%}")
                continue
            missing = missing_tools(target)
            try:
                if missing:
                    raise MeasureError(f"{', '.join(missing)} not installed")
                make_vars(target)
            except MeasureError as e:
                print(f"{key}: not measured: {e}", file=sys.stderr)
                continue
            rows = measure_shapes(target, precision, FIT_SHAPES, Path(tmp), args.steps)
            entry = fit(rows)
            entry["fit"] |= {"measured": datetime.date.today().isoformat(), "steps": args.steps,
                             "tools": tool_versions(target)}
            entries[key] = entry
            worst = max(entry["fit"]["shapes"], key=lambda s: abs(s["predicted"] - s["measured"]) / s["measured"])
            print(f"{key}: {len(rows)} shapes, largest relative residual {entry['fit']['max_relative_residual']:.2%} "
                  f"({worst['shape']}: measured {worst['measured']:,.0f}, predicted {worst['predicted']:,.0f}), "
                  f"mean {entry['fit']['mean_relative_residual']:.2%}")
    if not args.check:
        write_coefficients(entries)
        print(f"wrote {COEFFICIENTS_PY} ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
