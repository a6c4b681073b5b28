"""`rnnedge inspect FILE`: what a deployer needs to know about a model file before deploying it.

FILE is recognised by its first bytes (runtime/sniff.py): an rnnedge weight file (model.<precision>.safetensors,
read and verified whole by runtime/artifact.py), an ONNX file (needs onnx) or an rnnedge checkpoint (model.pt,
needs torch; read with torch.load(weights_only=True)). The facts (runtime/inspect_facts.py; the last two
export/inspect_models.py) are printed as aligned lines, or with --json as one JSON object.

Exit status (runtime/command.py): 0 described, 2 a file it refuses (not a model file, damaged, or its reader not
installed: one line naming why), 3 an internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys

from rnnedge.runtime import cost_model, sniff
from rnnedge.runtime.command import OK, bad_input, guarded, regular_file
from rnnedge.runtime.cost_model import TARGETS
from rnnedge.runtime.options import RawHelpFormatter

PROG = "rnnedge inspect"
BOARDS = ("an385", "an386", "an547")  # export/footprint.py's boards: Cortex-M3, Cortex-M4F, Cortex-M55
TARGET_NAMES = tuple(TARGETS)

DESCRIPTION = """\
Describe a model file before deploying it: its spec (cells, layers, hidden sizes, directions, input, head,
task), precision, parameter count, multiply-accumulates per time step, bytes of weights and of a stream's
state, which kernels run it on this machine (numba, the CPU it compiles for), and the firmware_ref flash and
RAM of the model (from the C sources rnnedge export would generate for it). --target TARGET adds the cost of
one firmware_ref step on that microcontroller predicted from the shape (instructions per step and per MAC:
QEMU instruction counts, not cycles; flash; RAM).

FILE: model.<precision>.safetensors (rnnedge export's weight files: f32, int8w, int8), an ONNX file (needs
onnx; the rnnedge spec it maps to needs torch too), or an rnnedge checkpoint (rnnedge train's model.pt,
needs torch). Any other file is refused, saying what it is.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, formatter_class=RawHelpFormatter)
    parser.add_argument("file", metavar="FILE", help="a weight file, an ONNX file or an rnnedge checkpoint")
    parser.add_argument("--json", action="store_true", help="print the facts as one JSON object")
    parser.add_argument("--measure-footprint", action="store_true",
                        help="int8 weight files: also build firmware_ref and the model with arm-none-eabi-gcc and "
                             "run it under QEMU (export/footprint.py) for the library's code bytes, the stack and "
                             "the instructions per step (seconds; needs the ARM toolchain and qemu-system-arm)")
    parser.add_argument("--board", choices=BOARDS, default="an385",
                        help="with --measure-footprint: an385 (Cortex-M3), an386 (Cortex-M4F) or an547 (Cortex-M55)")
    parser.add_argument("--target", choices=TARGET_NAMES, metavar="TARGET",
                        help=("predict one firmware_ref step on this microcontroller from the model's shape alone "
                              "(runtime/cost_model.py, a formula fitted to QEMU instruction counts): instructions per "
                              "step and per MAC, flash and RAM, for the file's precision (a checkpoint or ONNX file: "
                              f"every precision the target runs). One of {', '.join(TARGET_NAMES)}. Exit 2 when the "
                              "target has not been measured yet or does not run the precision"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command; returns its exit status (module docstring). Bad options exit 2 through argparse."""
    args = build_parser().parse_args(argv)
    return guarded(PROG, lambda: _main(args), pipe=True)


def _main(args: argparse.Namespace) -> int:
    from rnnedge.runtime.inspect_facts import InspectError, weight_file_facts

    try:
        path = str(regular_file(args.file, "FILE"))
        kind = sniff.kind(path)
        if kind == "safetensors":
            facts = weight_file_facts(path, args.board if args.measure_footprint else None, args.target)
        elif kind == "onnx" or (kind == "unknown" and path.lower().endswith(".onnx")):
            from rnnedge.export.inspect_models import onnx_facts

            facts = onnx_facts(path, args.target)
        elif kind == "pytorch":
            from rnnedge.export.inspect_models import checkpoint_facts

            facts = checkpoint_facts(path, args.target)
        else:
            described = {"npy": "a numpy .npy array", "npz": "a numpy .npz archive", "zip": "a zip archive",
                         "text": "a text file", "empty": "empty"}.get(kind, "not a file rnnedge knows")
            raise InspectError(f"{path} is {described}: rnnedge inspect reads weight files "
                               "(model.<precision>.safetensors), ONNX files and rnnedge checkpoints (model.pt)")
    except (OSError, ValueError) as e:  # InspectError is a ValueError
        return bad_input(PROG, str(e))
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        print("\n".join(lines(facts)))
    return OK


def lines(facts: dict) -> list[str]:
    """The facts as aligned "name  value" lines, the file first."""
    f = facts["file"]
    head = f"{f['path']}: {f['kind']}, {f['bytes']:,} bytes"
    if "sha256" in facts:
        head += f", sha256 {facts['sha256'][:16]}..."
    rows: list[tuple[str, str]] = []
    if "onnx" in facts:
        o = facts["onnx"]
        rows += [("onnx", f"IR {o['ir_version']}, opsets {_pairs(o['opsets'])}, producer {o['producer'] or '-'}"),
                 ("nodes", _pairs(o["nodes"])), ("initialisers", f"{o['initializer_values']:,} values"),
                 ("mapping", facts["mapping"])]
    if "layers" in facts:
        rows += _spec_rows(facts)
    if "bytes" in facts:
        rows.append(("bytes", _bytes(facts)))
    if "kernel" in facts:
        k = facts["kernel"]
        features = " ".join(k["cpu_features"]) or "no vector extensions found"
        cache = "cached" if k["compiled_cache"] else "not cached yet: the first step compiles them"
        rows.append(("kernel", (f"{k['module']}: {k['what']}; numba {k['numba']} compiling for {k['cpu']} "
                                f"({features}); compiled kernels {cache}")))
        step = k.get("step")
        if step is not None:
            rows.append(("step", _step_line(step)))
    if "firmware" in facts:
        rows += _firmware_rows(facts["precision"], facts["firmware"])
    if "export_report" in facts:
        rows += _report_rows(facts["export_report"])
    if "firmware_ram" in facts:
        ram = ", ".join(f"{p} {b:,} B" for p, b in facts["firmware_ram"].items())
        rows.append(("firmware", (f"RAM per stream once exported (state + scratch): {ram}; its flash: inspect the "
                                 f"exported weight file")))
    for p in facts.get("cost", []):
        rows.append(("cost", cost_model.summary(p)))
        fit = p["fit"]
        rows.append(("", (f"predicted by runtime/cost_model.py ({p['cpu']}: {TARGETS[p['target']]['build']}), "
                          f"fitted to {fit['shapes']} shapes measured under QEMU on {fit['measured']}, largest "
                          f"residual {fit['max_relative_residual']:.1%}")))
    if facts.get("metrics"):
        m = {"kept_epoch": "?", "metric": "metric", "val_metric": float("nan"), "test_metric": float("nan"),
             **facts["metrics"]}
        rows.append(("trained", (f"kept epoch {m['kept_epoch']}: validation {m['metric']} {m['val_metric']:.4g}, "
                                f"test {m['test_metric']:.4g}")))
    if "next" in facts:
        rows.append(("to deploy", facts["next"]))
    width = max(len(name) for name, _ in rows) if rows else 0
    return [head] + [f"  {name:<{width}}  {value}" for name, value in rows]


def _spec_rows(facts: dict) -> list[tuple[str, str]]:
    inp, head, macs = facts["input"], facts["head"], facts["macs_per_step"]
    if inp["kind"] == "dense":
        what = f"dense, {inp['features']} features"
    else:
        what = (f"tokens, vocabulary {inp['vocab']:,}, embedding {inp['embed_dim']}"
                + (" (characters: --generate takes text)" if inp["chars"] else ""))
    layers = ", ".join(f"{layer['cell']} {layer['hidden']} ({layer['directions']}"
                       + (f"; {', '.join(layer['extensions'])}" if layer["extensions"] else "") + ")"
                       for layer in facts["layers"])
    dense = "".join(f"dense {d['units']} {d['activation']} -> " for d in head["hidden"])
    return [
        ("precision", facts["precision"]),
        ("task", facts["task"]),
        ("input", what),
        ("layers", f"{len(facts['layers'])}: {layers}"),
        ("head", f"{dense}{head['out']} outputs, {head['activation']}, on {head['on'].replace('_', ' ')}"),
        ("streams", "yes, one step per call" if facts["streams"] else
         "no: a bidirectional or reverse layer needs the whole sequence (model.run)"),
        ("parameters", f"{facts['parameters']:,} (the float model's weights and biases)"),
        ("MACs/step", f"{macs['total']:,} (recurrent layers {macs['layers']:,}, head {macs['head']:,})"),
    ]


def _bytes(facts: dict) -> str:
    b = facts["bytes"]
    parts = [f"weights {b['weights_in_file']:,} in the file"]
    if "runtime_model" in b:
        stream = f", a stream {b['runtime_stream']:,} (state, output, scratch)" if b["runtime_stream"] else ""
        parts.append(f"runtime: model {b['runtime_model']:,}{stream}")
    if "state_on_device" in b:
        parts.append(f"state on a device {b['state_on_device']:,} per stream ({facts['state_values']:,} values of "
                     "h and c)")
    return "; ".join(parts)


def _firmware_rows(precision: str, fw: dict) -> list[tuple[str, str]]:
    if not fw["runs"]:
        return [("firmware", f"firmware_ref cannot run it: {fw['reason']}")]
    library = ("needs the library built with its extensions (RNNEDGE_EXTENSIONS 1, the default)"
               if fw["uses_extensions"] else "runs on the library built without extensions (-DRNNEDGE_EXTENSIONS=0)")
    rows = [("firmware", (f"firmware_ref {precision}: flash {fw['const_bytes']:,} B of model constants + the "
                         f"library's code; RAM {fw['ram_bytes']:,} B per stream (state {fw['state_bytes']:,} + "
                         f"scratch {fw['scratch_bytes']:,}) + the call stack; {library}"))]
    measured = fw.get("measured")
    if measured is not None:
        rows.append(("measured", measured.get("summary") or f"not measured: {measured['error']}"))
    return rows


def _report_rows(report: dict) -> list[tuple[str, str]]:
    """The parity rows of the export's report.json beside the file (inspect_facts.export_report)."""
    if report["stale"] is None:
        return [("parity", f"{report['path']}: {report['error']}")]
    if report["stale"]:
        return [("parity", f"{report['path']} describes another file of this name (its SHA-256 differs): stale")]
    reference = report["reference"]["metric"]
    rows = [("parity", (f"{'PASS' if report['passed'] else 'FAIL'} in {report['path']} "
                       f"(reference: {report['reference']['name']}, {_metric(reference)})"))]
    for r in report["rows"]:
        rows.append(("", (f"{r['comparison']}: max abs diff {r['max_abs_diff']:.3g}, {_metric(r['metric'])}, "
                         f"{'passed' if r['passed'] else 'FAILED'}")))
    if "firmware" in report:
        rows.append(("measured", f"{report['firmware']} (report.json)"))
    return rows


def _metric(metric) -> str:
    return f"{metric['name']} {metric['value']:.4g}" if isinstance(metric, dict) else "no task metric"


def _pairs(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


if __name__ == "__main__":
    sys.exit(main())


def _step_line(step: dict) -> str:
    """model.kernel_info as one line: the step compiled for this model and its mat-vec path, or why the generic."""
    if step["step"] != "specialised":
        return f"generic kernels above ({step.get('why', '')})"
    where = step.get("matvec") or step.get("path", "")
    return f"compiled for this model ({where}); generated source {step.get('source', '-')}"
