"""What `rnnedge inspect` reports about a weight file, as a dict: its spec in short, parameters, MACs per step,
bytes of model and state, the kernels that run it here and its firmware_ref footprint. runtime/inspect_file.py
prints it; export/inspect_models.py gathers the same for checkpoints and ONNX files (torch, onnx).

The firmware figures come from export/firmware.py and export/footprint.py (numpy and the stdlib, no torch),
imported when a weight file is inspected.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path

from rnnedge.runtime import spec as specs

KERNELS = {  # what runs one step of each precision (runtime/model.py picks them)
    "f32": "runtime/kernels_f32.py: float32, fused multiply-add and reordered sums (runtime/jit.py FAST_MATH)",
    "int8w": "runtime/kernels_int8w.py: int8 weights with a float32 scale per row, float32 arithmetic",
    "int8": "runtime/kernels_int8.py: integers only, int8 weights x int16 activations summed in int32 (TFLM 16x8)",
}
STATE_ITEM_BYTES = {"f32": 4, "int8w": 4, "int8": 2}  # a value of h or c on a device (firmware_ref)
REPORT_MAX_BYTES = 64 * 2**20  # an export's report.json is kilobytes; a larger file is not one
CPU_FEATURES = ("sse4.2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vnni", "avxvnni", "neon", "sve")


class InspectError(ValueError):
    """The file cannot be inspected (not a model file, refused by its reader, or its reader not installed)."""


def spec_facts(spec: dict) -> dict:
    """The spec in short, and the sizes that follow from it alone."""
    inp, head = spec["input"], spec["head"]
    layers = [{"cell": layer["cell"], "hidden": layer["hidden"],
               "directions": "bidirectional" if layer["bidirectional"]
               else "reverse" if specs.option(layer, "reverse") else "forward",
               "extensions": [e for e in specs.extensions(layer) if e != "reverse"]} for layer in spec["layers"]]
    state_values = sum(layer["hidden"] * (2 if layer["cell"] == "lstm" else 1) * specs.directions(layer)
                       for layer in spec["layers"])
    return {
        "task": spec["task"],
        "input": ({"kind": "dense", "features": inp["features"]} if inp["kind"] == "dense" else
                  {"kind": "tokens", "vocab": inp["vocab"], "embed_dim": inp["embed_dim"],
                   "chars": "chars" in inp}),
        "layers": layers,
        "head": {"hidden": [{"units": d["units"], "activation": d["activation"]} for d in specs.head_hidden(spec)],
                 "out": head["out"], "activation": head["activation"], "on": head["on"]},
        "streams": specs.can_stream(spec),
        "parameters": specs.parameter_count(spec),
        "macs_per_step": macs_per_step(spec),
        "state_values": state_values,
    }


def macs_per_step(spec: dict) -> dict:
    """Multiply-accumulates of one time step: every matrix a step multiplies (W_ih, W_hh per layer direction, the
    head's dense layers and its output layer; an embedding is a lookup), plus an LSTM's peephole products."""
    shapes = specs.tensor_shapes(spec)
    layers = sum(math.prod(shape) for name, shape in shapes.items()
                 if name.endswith((".w_ih", ".w_hh", ".p")))
    head = sum(math.prod(shape) for name, shape in shapes.items()
               if name.startswith("head.") and name.endswith(".weight"))
    return {"layers": layers, "head": head, "total": layers + head}


def weight_file_facts(path: str, footprint_board: str | None = None, target: str | None = None) -> dict:
    """Facts about an rnnedge weight file (runtime.artifact.read checks it whole: a refusal is InspectError)."""
    from rnnedge.runtime import artifact
    from rnnedge.runtime.model import Model

    try:
        spec, precision, tensors = artifact.read(path)
    except artifact.ArtifactError as e:
        raise InspectError(str(e)) from None
    model = Model(spec, precision, tensors)
    facts = {"file": file_facts(path, "rnnedge weight file"), "precision": precision,
             "sha256": artifact.sha256(spec, precision, tensors), **spec_facts(spec)}
    stream_bytes = model.stream(1).nbytes if facts["streams"] else None
    facts["bytes"] = {"weights_in_file": sum(t.nbytes for t in tensors.values()), "runtime_model": model.nbytes,
                      "runtime_stream": stream_bytes,
                      "state_on_device": facts["state_values"] * STATE_ITEM_BYTES[precision]}
    facts["kernel"] = {**kernel_facts(precision), "step": model.kernel_info}  # the step a stream runs here
    facts["firmware"] = firmware_facts(path, spec, precision, footprint_board)
    if target is not None:
        facts["cost"] = cost_facts(spec, target, [precision])
    report = export_report(path, precision)
    if report is not None:
        facts["export_report"] = report
    return facts


def export_report(path: str, precision: str) -> dict | None:
    """What the report.json of the export beside the file says about it: its parity rows (what was compared, the
    largest difference, the task metric, passed) and, for int8, the measured firmware footprint. Only when the
    report's manifest holds this file's SHA-256 (a report of another export of that name is stale: it says so);
    None without a report.json."""
    report_path = Path(path).parent / "report.json"
    if not report_path.is_file():
        return None
    try:
        if report_path.stat().st_size > REPORT_MAX_BYTES:
            raise ValueError(f"larger than {REPORT_MAX_BYTES:,} bytes")
        report = json.loads(report_path.read_text(encoding="utf-8"))
        listed = report["manifest"][Path(path).name]["sha256"]
        if listed != hashlib.sha256(Path(path).read_bytes()).hexdigest():
            return {"path": str(report_path), "stale": True}
        rows = [{"comparison": a["comparison"], "passed": a["passed"], "max_abs_diff": a["max_abs_diff"],
                 "metric": a["metric"]} for a in report["artifacts"] if a["file"] == Path(path).name]
        facts = {"path": str(report_path), "stale": False, "passed": all(r["passed"] for r in rows), "rows": rows,
                 "reference": report["reference"]}
        firmware = report.get("firmware") or {}
        if precision == "int8" and firmware.get("measured"):
            from rnnedge.export import footprint

            facts["firmware"] = footprint.summary_line(firmware)
    except (OSError, ValueError, KeyError, TypeError, ImportError) as e:
        return {"path": str(report_path), "stale": None, "error": f"not readable as an rnnedge export report ({e!r})"}
    return facts


def kernel_facts(precision: str) -> dict:
    """Which kernels run a step here: the precision's kernel module, numba and the CPU LLVM compiles for."""
    import llvmlite.binding as llvm
    import numba

    from rnnedge.runtime.jit import target_cpu

    cpu = target_cpu()
    host = llvm.get_host_cpu_features()
    module = KERNELS[precision].split(":")[0]
    cache = Path(__file__).resolve().parent / "__pycache__"
    stem = Path(module).stem
    cached = cache.is_dir() and any(p.name.startswith(stem + ".") and p.suffix == ".nbi" for p in cache.iterdir())
    return {"module": module, "what": KERNELS[precision].split(": ", 1)[1], "numba": numba.__version__,
            "cpu": cpu, "cpu_features": [f for f in CPU_FEATURES if host.get(f)], "compiled_cache": cached}


def firmware_facts(path: str, spec: dict, precision: str, board: str | None) -> dict:
    """firmware_ref's flash and RAM for this model: the const bytes of the C arrays export/firmware.py generates
    from the file and the state + scratch a stream needs (its MODEL_*_BYTES macros); with `board`, the int8
    footprint measured by export/footprint.py (the toolchain and QEMU built and ran it)."""
    try:
        from rnnedge.export import firmware
    except ImportError as e:
        return {"runs": None, "reason": f"export/firmware.py cannot be imported here ({e})"}
    missing = firmware.firmware_unsupported(spec, precision)
    if missing or not specs.can_stream(spec):
        reason = (f"firmware_ref's {precision} step does not implement {', '.join(missing)}" if missing else
                  "a bidirectional or reverse layer cannot run one step at a time")
        return {"runs": False, "reason": reason}
    writer = firmware.write_model_sources if precision == "int8" else firmware.write_float_model_sources
    with tempfile.TemporaryDirectory(prefix="rnnedge-inspect-") as tmp:
        writer(path, tmp)
        macros = dict(re.findall(r"^#define MODEL_(\w+) (\d+)\b", Path(tmp, "model_data.h").read_text(), re.MULTILINE))
        facts = {"runs": True, "const_bytes": int(macros["CONST_BYTES"]), "state_bytes": int(macros["STATE_BYTES"]),
                 "scratch_bytes": int(macros["SCRATCH_BYTES"]),
                 "ram_bytes": int(macros["STATE_BYTES"]) + int(macros["SCRATCH_BYTES"]),
                 "uses_extensions": macros.get("USES_EXTENSIONS") == "1"}
        if board is not None:
            facts["measured"] = _measure(tmp, precision, board)
    return facts


def firmware_ram(spec: dict) -> dict[str, int]:
    """firmware_ref's RAM per stream (state + scratch, export/firmware.py model_sizes) in each precision whose C step
    runs the spec; {} when export/firmware.py is not importable or the model cannot stream."""
    try:
        from rnnedge.export import firmware
    except ImportError:
        return {}
    if not specs.can_stream(spec):
        return {}
    return {precision: STATE_ITEM_BYTES[precision] * sum(firmware.model_sizes(spec, precision).values())
            for precision in KERNELS if not firmware.firmware_unsupported(spec, precision)}


def _measure(sources: str, precision: str, board: str) -> dict:
    from rnnedge.export import footprint

    if precision != "int8":
        return {"error": "the footprint is measured for int8 weight files (firmware_ref's int8 library)"}
    try:
        result = footprint.measure_footprint(sources, board)
    except footprint.FootprintError as e:
        return {"error": str(e)}
    return {"board": result["board"], "cpu": result["cpu"], "library_code_bytes": result["library"]["code_bytes"],
            "library_const_bytes": result["library"]["const_bytes"],
            "model_flash_bytes": result["model_const"]["flash_bytes"],
            "ram_state_scratch_bytes": result["ram"]["state_plus_scratch_bytes"],
            "stack_bytes": result["ram"]["stack_used_bytes"],
            "instructions_per_step": result["icount"]["per_step_mean"], "summary": footprint.summary_line(result)}


def cost_facts(spec: dict, target: str, precisions: list[str] | None = None) -> list[dict]:
    """runtime/cost_model.py's prediction for one step of `spec` on `target`, one per precision (None: every precision
    the target runs that has been measured); InspectError when there is none to give (an unknown target, a
    precision the target does not run, a target not measured yet, a model the fit does not cover)."""
    from rnnedge.runtime import cost_model

    try:
        if precisions is None:
            # none measured: predicting the first one raises the error that says so
            precisions = cost_model.measured_precisions(target) or list(cost_model.TARGETS[target]["precisions"][:1])
        return [cost_model.predict(spec, target, precision) for precision in precisions]
    except cost_model.CostModelError as e:
        raise InspectError(f"--target {target}: {e}") from None


def file_facts(path: str, kind: str) -> dict:
    return {"path": os.fspath(path), "kind": kind, "bytes": os.path.getsize(path)}
