"""The parity report: report.json for tools, report.md and report.html (export/report_html.py, with plots) for
people. All three say the same thing.

report.json keys:

    format          REPORT_FORMAT (version of this layout)
    checkpoint, out_dir, spec, model (one line)
    precisions      the runtime weight files' precisions, f32 first ("f32", "int8w", "int8")
    tolerance       the float rule's atol: float32 artifacts (PyTorch step, ONNX, f32) pass when
                    |diff| <= tolerance + rtol * |PyTorch| at every value (export/rules.py FloatRule)
    rtol            the float rule's rtol
    float64_floor   PyTorch float32's own max abs difference from the same model in float64 on the same streams:
                    {"forward", "every_prefix" (None: not streamable), "max"}; a float32 artifact also passes
                    within floor_factor times "max"
    floor_factor    rules.FLOOR_FACTOR
    warnings        one sentence per row whose rule the test set is too small to resolve (rows' "warning"), and
                    one per int8 tensor whose test values saturate where that changes the result
                    (export/saturation.py warnings)
    criteria        {precision: its pass rule, one sentence} (int8w, int8: the task metric, or a max abs bound)
    quantization    {precision: {"max_abs_weight_error", "per_matrix": {name: error}}} for quantised ones;
                    int8 adds "input_scale", "layers" [{"cell", "hidden_scale", "cell_power"}] and
                    "calibration" {"statistic", "steps", "sequences", "input_absmax", "hidden_absmax",
                    "cell_absmax", "source" (dataset | calibration | random), "dataset", "split" or "seed",
                    "available_sequences", "available_steps"} (export/quantize_int8.py, export/pipeline.py), and
                    "saturation": one row per layer and tensor the integer step forms (export/saturation.py table:
                    layer, tensor, format, limit, calibrated_absmax, test_absmax, test_values, saturated (fraction),
                    harmless)
    inputs          source "random" (seed) or "dataset" (dataset), sequences, shortest, longest, total_steps, and
                    for a data set "split" (train/splits.py's record and how export checked it)
    reference       {"name": "PyTorch forward", "metric": {"name", "value"} | null}
    files           {file name: bytes} of the artifacts the rows measure
    manifest        {file name: {"bytes", "sha256"}}: every file the export wrote except the three reports
                    (its model.pt and mapping too, for a module or ONNX export); the folder's rnnedge-manifest.json
                    (train/outputs.py) lists those two as well
    removed         files of the previous export in the folder that this one did not write again, removed when it
                    was moved into place (train/outputs.py: stale)
    artifacts       one row per comparison: name, file, bytes, precision, comparison, stepped, criterion,
                    max_abs_diff, mean_abs_diff, metric, passed, error, seconds, and what the rules measured
                    (None where a rule does not apply): max_scaled_diff (float rule: max |diff| / (atol + rtol *
                    |ref|), 1 is the edge), vs_floor (max_abs_diff / float64_floor max), flips and decisions
                    (quantised, classification: decisions whose argmax differs from PyTorch's, of all), interval
                    (quantised on a data set: the 95% bootstrap interval [low, high] of metric(artifact) -
                    metric(PyTorch), paired, over test sequences), warning; rows measured against
                    the original ONNX file of an ONNX export (export/from_onnx.py) add "reference":
                    "original ONNX (ORT)" or "original ONNX (onnx.reference)"
    passed          every row passed
    failures        one sentence per failed row, naming the artifact and the measured difference
    seconds         wall time of the whole export
    firmware        only with firmware/int8/ sources (int8, streamable): {"measured": true, ...export/footprint.py's
                    measure_footprint: board, cpu, library, model_const, ram, image, icount, targets} on a
                    Cortex-M3 (an385) under QEMU, or {"measured": false, "reason": why not}; a model with ONNX
                    layer extensions that a precision's C step does not implement adds "refused": {precision:
                    the layers and extensions} (int8 among them: "measured" and "written" false)
"""

from __future__ import annotations

import json
from pathlib import Path

from rnnedge.export import footprint, rules, saturation
from rnnedge.runtime import spec as specs
from rnnedge.train import splits

REPORT_FORMAT = 5  # 3: "manifest" and "removed"; 4: rtol, float64_floor, warnings and the rows' rule fields;
# 5: quantization.int8.saturation
FILES = ("report.json", "report.md", "report.html")
REFERENCE = "PyTorch forward"


def build(*, checkpoint: str, out_dir: str, spec: dict, tolerance: float, rtol: float, float64_floor: dict,
          inputs: dict, reference_metric,
          files: dict[str, int], rows: list[dict], seconds: float, criteria: dict[str, str],
          quantization: dict, manifest: dict[str, dict], removed: list[str], firmware: dict | None = None) -> dict:
    failures = [_failure(row) for row in rows if not row["passed"]]
    result = {
        "format": REPORT_FORMAT,
        "checkpoint": checkpoint,
        "out_dir": out_dir,
        "spec": spec,
        "model": describe_model(spec),
        "precisions": list(criteria),
        "tolerance": tolerance,
        "rtol": rtol,
        "float64_floor": float64_floor,
        "floor_factor": rules.FLOOR_FACTOR,
        "criteria": criteria,
        "quantization": quantization,
        "inputs": inputs,
        "reference": {"name": REFERENCE, "metric": reference_metric},
        "files": files,
        "manifest": manifest,
        "removed": removed,
        "artifacts": rows,
        "passed": not failures,
        "failures": failures,
        "warnings": [f"{row['file'] or row['name']} ({row['comparison']}): {row['warning']}"
                     for row in rows if row.get("warning")]
        + saturation.warnings(quantization.get("int8", {}).get("saturation", [])),
        "seconds": seconds,
    }
    if firmware is not None:  # only exports that wrote firmware/int8/ sources have the key
        result["firmware"] = firmware
    return result


def _failure(row: dict) -> str:
    what = row["file"] or row["name"]
    if row["error"]:
        return f"{what} ({row['comparison']}): could not be checked: {row['error']}"
    metric = f", {row['metric']['name']} {row['metric']['value']:.4g}" if row["metric"] else ""
    if row.get("vs_floor") is not None:
        metric += f" ({row['vs_floor']:.3g}x PyTorch's float32-vs-float64 error)"
    if row.get("interval") is not None:
        metric += f", 95% interval of the difference [{row['interval'][0]:.3g}, {row['interval'][1]:.3g}]"
    return (f"{what} ({row['comparison']}): max abs difference {row['max_abs_diff']:.3g}{metric}; "
            f"fails its rule: {row['criterion']}")


def write(result: dict, out_dir, traces: dict | None = None) -> None:
    """report.json, report.md and report.html (export/report_html.py; traces: its stream plot's outputs)."""
    from rnnedge.export import report_html  # it imports this module

    out_dir = Path(out_dir)
    json_file, md_file, html_file = FILES
    (out_dir / json_file).write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / md_file).write_text(markdown(result))
    (out_dir / html_file).write_text(report_html.render(result, traces), encoding="utf-8")


def summary(result: dict) -> list[str]:
    """The report's facts before its table, one sentence each (report.md's bullets, report.html's list)."""
    inputs = result["inputs"]
    source = (f"random streams (seed {inputs['seed']})" if inputs["source"] == "random"
              else f"held-out test sequences of data set {inputs['dataset']!r}")
    steps = (f"{inputs['longest']} steps" if inputs["shortest"] == inputs["longest"]
             else f"{inputs['shortest']}..{inputs['longest']} steps")
    lines = [
        f"checkpoint: `{result['checkpoint']}`",
        f"model: {result['model']}",
        f"parity inputs: {inputs['sequences']} {source}, {steps}, {inputs['total_steps']} steps in all"
        + _split(inputs.get("split")),
        f"pass rules: float32 artifacts (PyTorch step, ONNX, f32): {result['criteria']['f32']}"
        + "".join(f"; {p}: {rule}" for p, rule in result["criteria"].items() if p != "f32"),
        "float64 floor: PyTorch float32 vs the same model in float64 on these streams: max abs difference "
        + _floor(result["float64_floor"]),
    ]
    if result.get("removed"):
        lines.append(f"removed from the folder (the previous export's, not written again): "
                     f"{', '.join(result['removed'])}")
    for precision, q in result["quantization"].items():
        table = ("; the embedding table: one scale, max|table| / 127"
                 if "calibration" in q and "embedding.weight" in q["per_matrix"] else "")
        lines.append(f"{precision} weights: max abs quantisation error {q['max_abs_weight_error']:.3g} "
                     f"(symmetric int8 per output row, scale = max|row| / 127{table})")
        if "calibration" in q:
            lines.append(f"{precision} activations (int16): {_calibration(q)}")
    if result.get("firmware") is not None:
        fw = result["firmware"]
        if fw.get("written") is not False:
            lines.append(f"firmware/int8 footprint: {_firmware(fw)}")
        for precision, reason in fw.get("refused", {}).items():
            lines.append(f"firmware/{precision}: not written: {reason}")
    return lines


def markdown(result: dict) -> str:
    metric = result["reference"]["metric"]
    metric_name = metric["name"] if metric else None
    lines = ["# rnnedge export report", "", *(f"- {line}" for line in summary(result))]
    lines += [
        "",
        "| artifact | bytes | comparison | max abs diff | mean abs diff | x float64 floor | flips |"
        + (f" {metric_name} | 95% interval of the difference |" if metric else "") + " result |",
        "|---|---:|---|---:|---:|---:|---:|" + ("---:|---:|" if metric else "") + "---|",
    ]
    if metric:
        lines.append(f"| PyTorch model | | reference: {REFERENCE} | | | | | {_number(metric['value'])} | | |")
    for row in result["artifacts"]:
        cells = [row["file"] or "(PyTorch step)", "" if row["bytes"] is None else str(row["bytes"]),
                 row["comparison"], _number(row["max_abs_diff"]), _number(row["mean_abs_diff"]),
                 _number(row.get("vs_floor")),
                 "" if row.get("flips") is None else f"{row['flips']} / {row['decisions']}"]
        if metric:
            cells.append(_number(row["metric"]["value"]) if row["metric"] else "")
            interval = row.get("interval")
            cells.append("" if interval is None else f"[{_number(interval[0])}, {_number(interval[1])}]")
        cells.append(("pass" + (" (warning)" if row.get("warning") else "")) if row["passed"] else "**FAIL**")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if result["quantization"].get("int8", {}).get("saturation"):
        lines += _saturation(result["quantization"]["int8"]["saturation"])
    if result.get("warnings"):
        lines.append("Warnings:")
        lines += [f"- {warning}" for warning in result["warnings"]]
        lines.append("")
    if result["passed"]:
        lines.append("PASS: every artifact meets its precision's pass rule against the PyTorch forward"
                     + (" (rows \"original ONNX ...\": against the original ONNX graph)"
                        if any(row.get("reference") for row in result["artifacts"]) else "") + ".")
    else:
        lines.append("FAIL:")
        lines += [f"- {failure}" for failure in result["failures"]]
    lines.append("")
    return "\n".join(lines)


def _split(split: dict | None) -> str:
    """How the data set was split into train and test (train/splits.py's record), if it says."""
    if not split:
        return ""
    held = f"{split['test_sequences']} of {split['sequences']} sequences held out" if "test_sequences" in split else ""
    check = split.get("check", "not checked against the checkpoint")
    return f" ({'; '.join(part for part in (splits.describe(split), held, check) if part)})"


def _saturation(rows: list[dict]) -> list[str]:
    """The int8 ranges table (export/saturation.py): per layer and tensor, calibrated and test ranges, the format
    and how much of the test streams saturates."""
    lines = ["int8 ranges (float64 reference; calibrated on the calibration slice, tested on the parity streams):", "",
             ("| layer | tensor | int8 format | holds abs up to | calibrated max abs | test max abs | test values "
              "saturated |"), "|---|---|---|---:|---:|---:|---:|"]
    for row in rows:
        saturated = f"{100 * row['saturated']:.3g}%"
        if row["saturated"] and row["harmless"]:
            saturated += f" (harmless: {row['harmless']})"
        elif row["saturated"]:
            saturated = f"**{saturated}**"
        lines.append(f"| {row['layer']} | {row['tensor']} | {row['format']} | {_number(row['limit'])} | "
                     f"{_number(row['calibrated_absmax'])} | {_number(row['test_absmax'])} | {saturated} |")
    return lines + [""]


def _floor(floor: dict) -> str:
    text = f"{floor['forward']:.3g} (forward)"
    if floor.get("every_prefix") is not None:
        text += f", {floor['every_prefix']:.3g} (every prefix)"
    return text


def _firmware(fw: dict) -> str:
    """One sentence: the measured footprint of firmware/int8/ (export/footprint.py), or why it was not measured."""
    return footprint.summary_line(fw) if fw["measured"] else f"not measured: {fw['reason']}"


def _calibration(q: dict) -> str:
    """One sentence: what int8 was calibrated on, and the ranges and scales that came of it."""
    cal = q["calibration"]
    if cal["source"] == "random":
        source = f"random streams (seed {cal['seed']})"
    elif cal.get("dataset"):
        which = "calibration data set" if cal["source"] == "calibration" else "data set"
        source = f"the {cal['split']} split of {which} {cal['dataset']!r}"
    else:
        source = "the given calibration data"
    ranges = [] if cal["input_absmax"] is None else [
        f"input |x| <= {cal['input_absmax']:.3g} (scale {q['input_scale']:.3g})"]
    for l, layer in enumerate(q["layers"]):
        scale = "Q0.15" if layer["hidden_scale"] == 2.0**-15 else f"scale {layer['hidden_scale']:.3g}"
        ranges.append(f"layer {l} {layer['cell']} |h| <= {cal['hidden_absmax'][l]:.3g} ({scale})")
        if layer["cell_power"] is not None:
            ranges[-1] += f", |c| <= {cal['cell_absmax'][l]:.3g} (scale 2^{layer['cell_power']})"
    for k, dense in enumerate(q.get("head_hidden", [])):
        scale = "Q0.15" if dense["output_scale"] == 2.0**-15 else f"scale {dense['output_scale']:.3g}"
        ranges.append(f"head.hidden[{k}] {dense['activation']} |out| <= {cal['head_absmax'][k]:.3g} ({scale})")
    return (f"calibrated on {cal['sequences']} sequences ({cal['steps']} steps) of {source}, "
            f"{cal['statistic']}: " + "; ".join(ranges))


def _number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and (abs(value) < 1e-3 or abs(value) >= 1e5) and value != 0:
        return f"{value:.2e}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _extensions(layer: dict) -> str:
    """A layer's ONNX extensions (runtime/spec.py) in brackets, or nothing for PyTorch's cell."""
    parts = []
    for key in specs.extensions(layer):
        if key == "clip":
            parts.append(f"clip {layer['clip']:g}")
        elif key == "activations":
            parts.append("activations " + "/".join(a["fn"] for a in layer["activations"]))
        elif key == "linear_before_reset":
            parts.append("linear_before_reset=0")
        else:
            parts.append(key)
    return f" [{', '.join(parts)}]" if parts else ""


def describe_model(spec: dict) -> str:
    """One line: input, layers, head, whether it streams."""
    inp = spec["input"]
    source = (f"dense {inp['features']}" if inp["kind"] == "dense"
              else f"tokens {inp['vocab']} -> embed {inp['embed_dim']}")
    layers = ", ".join(f"{'bi' if layer['bidirectional'] else ''}{layer['cell']} {layer['hidden']}"
                       + _extensions(layer) for layer in spec["layers"])
    head = spec["head"]
    dense = "".join(f"dense {d['units']} {d['activation']} -> " for d in specs.head_hidden(spec))
    why = "bidirectional" if any(layer["bidirectional"] for layer in spec["layers"]) else "reverse"
    streams = "streamable" if specs.can_stream(spec) else f"whole sequences only ({why})"
    return (f"{spec['task']}: {source} -> {layers} -> head {dense}{head['out']} ({head['activation']}) "
            f"on {head['on']}; {streams}")
