"""The parity report: report.json for tools, report.md for people. Both say the same thing.

report.json keys:

    format          REPORT_FORMAT (version of this layout)
    checkpoint, out_dir, precision, spec, model (one line)
    tolerance       largest max abs difference that passes
    inputs          source "random" (seed) or "dataset" (dataset), sequences, shortest, longest, total_steps
    reference       {"name": "PyTorch forward", "metric": {"name", "value"} | null}
    files           {file name: bytes}
    artifacts       one row per comparison: name, file, bytes, comparison, stepped, max_abs_diff, mean_abs_diff,
                    metric, passed, error, seconds
    passed          every row passed
    failures        one sentence per failed row, naming the artifact and the measured difference
    seconds         wall time of the whole export
"""

from __future__ import annotations

import json
from pathlib import Path

from runtime import spec as specs

REPORT_FORMAT = 1
REFERENCE = "PyTorch forward"


def build(*, checkpoint: str, out_dir: str, spec: dict, tolerance: float, inputs: dict, reference_metric,
          files: dict[str, int], rows: list[dict], seconds: float) -> dict:
    failures = [_failure(row, tolerance) for row in rows if not row["passed"]]
    return {
        "format": REPORT_FORMAT,
        "checkpoint": checkpoint,
        "out_dir": out_dir,
        "precision": "f32",
        "spec": spec,
        "model": describe_model(spec),
        "tolerance": tolerance,
        "inputs": inputs,
        "reference": {"name": REFERENCE, "metric": reference_metric},
        "files": files,
        "artifacts": rows,
        "passed": not failures,
        "failures": failures,
        "seconds": seconds,
    }


def _failure(row: dict, tolerance: float) -> str:
    what = row["file"] or row["name"]
    if row["error"]:
        return f"{what} ({row['comparison']}): could not be checked: {row['error']}"
    return (f"{what} ({row['comparison']}): max abs difference {row['max_abs_diff']:.3g} "
            f"exceeds the tolerance {tolerance:.3g}")


def write(result: dict, out_dir) -> None:
    out_dir = Path(out_dir)
    (out_dir / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "report.md").write_text(markdown(result))


def markdown(result: dict) -> str:
    inputs = result["inputs"]
    source = (f"random streams (seed {inputs['seed']})" if inputs["source"] == "random"
              else f"held-out test sequences of data set {inputs['dataset']!r}")
    steps = (f"{inputs['longest']} steps" if inputs["shortest"] == inputs["longest"]
             else f"{inputs['shortest']}..{inputs['longest']} steps")
    metric = result["reference"]["metric"]
    metric_name = metric["name"] if metric else None
    lines = [
        "# rnnedge export report",
        "",
        f"- checkpoint: `{result['checkpoint']}`",
        f"- model: {result['model']}",
        f"- parity inputs: {inputs['sequences']} {source}, {steps}, {inputs['total_steps']} steps in all",
        f"- tolerance: max abs difference <= {result['tolerance']:.3g} (precision {result['precision']})",
        "",
        "| artifact | bytes | comparison | max abs diff | mean abs diff |"
        + (f" {metric_name} |" if metric else "") + " result |",
        "|---|---:|---|---:|---:|" + ("---:|" if metric else "") + "---|",
    ]
    if metric:
        lines.append(f"| PyTorch model | | reference: {REFERENCE} | | | {_number(metric['value'])} | |")
    for row in result["artifacts"]:
        cells = [row["file"] or "(PyTorch step)", "" if row["bytes"] is None else str(row["bytes"]),
                 row["comparison"], _number(row["max_abs_diff"]), _number(row["mean_abs_diff"])]
        if metric:
            cells.append(_number(row["metric"]["value"]) if row["metric"] else "")
        cells.append("pass" if row["passed"] else "**FAIL**")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if result["passed"]:
        lines.append(f"PASS: every artifact is within {result['tolerance']:.3g} of the PyTorch forward.")
    else:
        lines.append("FAIL:")
        lines += [f"- {failure}" for failure in result["failures"]]
    lines.append("")
    return "\n".join(lines)


def _number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and (abs(value) < 1e-3 or abs(value) >= 1e5) and value != 0:
        return f"{value:.2e}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def describe_model(spec: dict) -> str:
    """One line: input, layers, head, whether it streams."""
    inp = spec["input"]
    source = (f"dense {inp['features']}" if inp["kind"] == "dense"
              else f"tokens {inp['vocab']} -> embed {inp['embed_dim']}")
    layers = ", ".join(f"{'bi' if layer['bidirectional'] else ''}{layer['cell']} {layer['hidden']}"
                       for layer in spec["layers"])
    head = spec["head"]
    streams = "streamable" if specs.can_stream(spec) else "whole sequences only (bidirectional)"
    return (f"{spec['task']}: {source} -> {layers} -> head {head['out']} ({head['activation']}) "
            f"on {head['on']}; {streams}")
