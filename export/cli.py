"""`rnnedge export CHECKPOINT`: write every artifact of a trained model and prove each one against PyTorch.

`rnnedge export --module pkg.mod:Class --state-dict state_dict.pt --init-args '{...}'` exports a user's own
nn.Module instead (export/from_module.py): mapped to a spec, proven equal to its forward() on random inputs,
written as an rnnedge checkpoint (model.pt) next to the artifacts, then exported as above.

`rnnedge export model.onnx` (a positional name ending in .onnx) exports an ONNX graph made by any tool
(export/from_onnx.py): its RNN / LSTM / GRU nodes and glue are mapped to a spec, proven equal to ONNX Runtime on
the original graph on random inputs, written as model.pt, then exported as above.

Where it writes (train/outputs.py), never over or next to an input file unless --out says so:
- `--out DIR`: DIR, if it is new, empty, or holds only files rnnedge wrote (its rnnedge-manifest.json lists each one
  with its SHA-256). A DIR with other files is refused unless --force, which writes rnnedge's files beside them but
  never over them: a file of yours named like one rnnedge writes (model.pt, model.onnx, report.json, ...) is refused
  even then. An export never overwrites what rnnedge train wrote (its model.pt).
- no --out, a positional rnnedge checkpoint: the checkpoint's folder when rnnedge wrote it (rnnedge train's output),
  under the same rules; a checkpoint rnnedge did not write needs --out.
- no --out, --module or an .onnx file: ./rnnedge-out/<name>/, named after the class or the file's stem; a re-run
  of the same MODULE:CLASS or file updates that folder, another model of the same name gets <name>-2, -3, ...
With --data and an rnnedge checkpoint, the parity streams are the test sequences the model never trained on: the
checkpoint records its split (train/splits.py: method, seed, SHA-256 of the data and of the test indices), export
re-derives that split from --data (with the checkpoint's seed; an explicit --seed that differs is refused) and
refuses (exit 2) when the data or the test sequences differ, unless --split-check off. A checkpoint without the
record (written before rnnedge kept one) gets a warning: its held-out part cannot be verified. int8 is calibrated
on the training part only. The model must fit the data (export/fit.py): classes or targets vs
head.out, task, input kind, vocabulary; refused before anything is written.

The export is atomic: it is written and verified in a staging folder beside DIR, then moved in, replacing the
previous export's files (those it did not write again are removed and named in the report). On any failure DIR is
left exactly as it was, and the command says so. A parity failure (exit 1) is a completed export.

Exit status: 0 every artifact meets its pass rule, 1 a parity failure (the report is still written),
2 bad input (missing or corrupt checkpoint, NaN or inf weights, unknown data set, unsupported precision,
calibration data that do not fit the model, --data that is not the data or split the checkpoint was trained on,
a model that does not fit --data, an output folder refused as above; with --module: a module that cannot
be imported, built or loaded, one whose forward() rnnedge cannot map, or a mapping that does not reproduce its
forward()), 3 an internal error (a short message; the traceback goes to a log file it names).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rnnedge.export.from_module import CHECKPOINT_FILE, MappingError, export_module, load_user_module
from rnnedge.export.from_module import MAPPING_FILE as MODULE_MAPPING_FILE
from rnnedge.export.from_onnx import MAPPING_FILE as ONNX_MAPPING_FILE
from rnnedge.export.from_onnx import export_onnx
from rnnedge.export.pipeline import (
    PRECISIONS,
    ExportInputError,
    export_checkpoint,
    export_file_names,
    module_source,
    onnx_source,
)
from rnnedge.export.report import markdown
from rnnedge.export.rules import FLOAT_RTOL
from rnnedge.runtime.command import OK, PARITY_FAILED, bad_input, guarded, internal_error, regular_file
from rnnedge.runtime.options import HelpFormatter, add_renamed, renamed_epilog
from rnnedge.train import outputs, splits
from rnnedge.train.checkpoint import CheckpointError, load_split
from rnnedge.train.data import load_dataset

PROG = "rnnedge export"
MAX_STEPS = 1_000_000  # random parity streams are held whole: 3 streams x steps x features, float64, per artifact
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds agree on this range
# --checkpoint named a user's state_dict while the positional MODEL is an rnnedge checkpoint; --steps meant the
# length of the parity streams here and the adding problem's length in rnnedge train
RENAMED = {"--checkpoint": "--state-dict", "--steps": "--stream-steps"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Export a trained rnnedge checkpoint to model.onnx, model.step.onnx (streamable models) and "
                    "model.<precision>.safetensors (f32, plus int8w and int8 with --precision f32,int8w,int8), "
                    "then run each artifact against the PyTorch model on long streams and write report.json, "
                    "report.md and report.html (with plots) with every file's size and its max abs difference.",
        epilog="Output folder: never over or next to an input file unless --out says so. Without --out: a "
               "positional checkpoint's own folder when rnnedge train wrote it; --module and .onnx exports go to "
               "./rnnedge-out/<class or file stem>/ (a re-run of the same model updates it; another model of that "
               "name gets <name>-2, ...). A folder holding files rnnedge did not write (per its "
               "rnnedge-manifest.json) is refused unless --force. The export is written and verified beside the "
               "folder and moved in only when complete: on failure the folder is unchanged. "
               "Exit status: 0 parity holds, 1 an artifact fails its precision's pass rule (f32: |diff| <= tolerance "
               "+ rtol * |PyTorch|, or within 4x PyTorch's own float32-vs-float64 error; int8w: task metric within "
               "0.5 point or a drop that is not significant; int8: likewise within 1 point) and "
               "the report names it, 2 bad input (including calibration data that do not fit the model, NaN or inf "
               "weights, --data that is not what the checkpoint was trained on or that the model does not fit, "
               "and a refused output folder), 3 an internal error (the traceback goes to a log file). "
               + renamed_epilog(RENAMED),
        formatter_class=HelpFormatter,
    )
    p.add_argument("checkpoint", nargs="?", metavar="MODEL",
                   help="what to export: an rnnedge checkpoint (model.pt written by rnnedge train: state_dict + "
                   "spec), or an ONNX file (a name ending in .onnx) with RNN / LSTM / GRU nodes, mapped and proven "
                   "against ONNX Runtime by export/from_onnx.py")
    p.add_argument("--module", metavar="MODULE:CLASS",
                   help="export your own nn.Module instead of an rnnedge checkpoint: 'package.module:Class' or "
                        "'path/to/file.py:Class'; needs --state-dict and usually --init-args")
    state_dict = p.add_argument("--state-dict", metavar="STATE_DICT",
                                help="with --module: the module's state_dict (torch.save(model.state_dict(), ...))")
    add_renamed(p, "--checkpoint", state_dict, PROG)
    p.add_argument("--init-args", metavar="JSON", default="{}",
                   help="with --module: the class's keyword arguments as a JSON object (default: {})")
    p.add_argument("--task", choices=("classify", "tag", "forecast", "generate"),
                   help="with --module or an .onnx file: the spec's task, used for the metric with --data "
                        "(default: classify; an ONNX file written by rnnedge keeps its own)")
    p.add_argument("--out", metavar="DIR",
                   help="folder for the artifacts and report: new, empty, or written by rnnedge (default: a "
                        "positional checkpoint's folder when rnnedge train wrote it, else ./rnnedge-out/<name>/)")
    p.add_argument("--force", action="store_true",
                   help="write into a --out folder that holds files rnnedge did not write, beside them; they are "
                        "never overwritten or removed (a file of yours with a name rnnedge writes is refused)")
    p.add_argument("--data", metavar="NAME_OR_PATH",
                   help="check parity on this data set's held-out test sequences and report the task metric "
                        "(a name such as 'watch' or 'synthetic-sum', or a .npz/.csv path); the split is the one the "
                        "checkpoint recorded, re-derived and verified (see --split-check), and the model must fit "
                        "the data (classes or targets vs head.out, task, input kind); default: random streams")
    p.add_argument("--tolerance", type=float, default=1e-5,
                   help="float32 artifacts: the absolute part (atol) of the pass rule |diff| <= tolerance + rtol * "
                        "|PyTorch| (default: %(default)g)")
    p.add_argument("--rtol", type=float, default=FLOAT_RTOL,
                   help="float32 artifacts: the relative part of that rule (default: %(default)g); an artifact "
                        "within 4x PyTorch's own float32-vs-float64 error on the same streams passes too")
    steps = p.add_argument("--stream-steps", dest="steps", metavar="N", type=int, default=1000,
                           help="length of each random parity stream when no --data is given (default: %(default)d)")
    add_renamed(p, "--steps", steps, PROG)
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the random streams (default: 0); with --data, the data split's seed, which defaults "
                        "to the one the checkpoint recorded (a different one is refused unless --split-check off)")
    p.add_argument("--split-check", choices=("on", "off"), default="on",
                   help="with --data: 'on' re-derives the checkpoint's recorded split from --data and refuses (exit 2) "
                        "data that are not what the model was trained on, or a split whose test sequences differ; "
                        "'off' scores --data split with --seed (or the checkpoint's seed) however the model was "
                        "trained: its test part may then hold training sequences (default: %(default)s)")
    p.add_argument("--precision", default="f32",
                   help="runtime weight files to write, a comma list of f32, int8w, int8 (e.g. f32,int8w,int8); "
                        "f32 is always written, it is the reference. int8w: int8 weights, a float32 scale per "
                        "row, passing when its task metric is within 0.5 point of the float model's. int8: full "
                        "integer (int8 weights, int16 activations, calibrated scales), passing when its task "
                        "metric is within 1 point (with no --data: max abs difference <= 0.1) (default: f32)")
    p.add_argument("--calibration", metavar="NAME_OR_PATH",
                   help="int8 only: calibrate the activation ranges on this data set's TRAIN split (a name or a "
                        ".npz/.csv path, as --data); default: --data's train split, else random streams")
    p.add_argument("--firmware", choices=("sources", "single-header"), default="sources",
                   help="C for firmware_ref/, per exported precision its C step runs: 'sources' writes "
                        "firmware/<precision>/model_data.{h,c} and vectors_data.h (build them with firmware_ref/); "
                        "'single-header' also writes firmware/<precision>/rnnedge_model.h, the library, the model and "
                        "rnnedge_model_step() in one C99 header that compiles alone "
                        "(firmware_ref/examples/single_header/main.c) (default: sources)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress lines (one per stage on stderr: calibration, writing, each parity check, the "
                        "footprint); the report, warnings and errors still print")
    return p


def show_progress(on: bool) -> None:
    """The pipeline's stage lines (logger "rnnedge.export") on stderr as `rnnedge export: <stage>`, or none."""
    log = logging.getLogger("rnnedge.export")
    log.handlers.clear()
    log.propagate = False
    log.setLevel(logging.INFO if on else logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
    log.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    """The command; returns its exit status (module docstring; runtime/command.py). Bad options exit 2 (argparse)."""
    args = parser().parse_args(argv)
    show_progress(not args.quiet)
    return guarded(PROG, lambda: _main(args), "; nothing was written")


def _main(args: argparse.Namespace) -> int:
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    for precision in precisions:
        if precision not in PRECISIONS:
            return bad_input(PROG, f"precision {precision!r} is unknown; supported: {', '.join(PRECISIONS)}")
    if args.calibration and "int8" not in precisions:
        return bad_input(PROG, "--calibration is used by the int8 precision only; add int8 to --precision")
    if not 1 <= args.steps <= MAX_STEPS:
        return bad_input(PROG, f"--stream-steps must be an integer from 1 to {MAX_STEPS:,}, got {args.steps}")
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        return bad_input(PROG, f"--seed must be an integer from 0 to {MAX_SEED}, got {args.seed}")
    if not args.tolerance >= 0:
        return bad_input(PROG, f"--tolerance must be a non-negative number, got {args.tolerance}")
    if not args.rtol >= 0:
        return bad_input(PROG, f"--rtol must be a non-negative number, got {args.rtol}")
    if args.out is not None and "\0" in args.out:
        return bad_input(PROG, f"--out {args.out!r} holds a NUL byte, which no file name can")
    if args.module and args.checkpoint:
        return bad_input(PROG, f"give either a positional rnnedge CHECKPOINT ({args.checkpoint}) or --module with "
                          f"--state-dict STATE_DICT, not both")
    if args.module and not args.state_dict:
        return bad_input(PROG, "--module needs --state-dict STATE_DICT (the module's saved state_dict)")
    if not args.module and (args.state_dict or args.init_args.strip() != "{}"):
        return bad_input(PROG, "--state-dict and --init-args go with --module; an rnnedge checkpoint is given "
                          "positionally: rnnedge export model.pt")
    if not args.module and not args.checkpoint:
        return bad_input(PROG, "give a CHECKPOINT written by rnnedge train or an ONNX file (MODEL), or --module "
                          "MODULE:CLASS --state-dict STATE_DICT")
    try:
        _check_input_files(args)
        args.init_args = _init_args(args.init_args)
        data = _checked_data(args) if args.data else None
        if args.calibration and data is not None and args.calibration == args.data:
            calibration = data  # the same split: calibrated on exactly the sequences the model trained on
        elif args.calibration:
            calibration = _load_data(args.calibration, _seed(args), "calibration ")
        else:
            calibration = None
        args.seed = 0 if args.seed is None else args.seed
        out_dir = _out_dir(args, precisions)
    except (ExportInputError, outputs.OutputFolderError) as e:
        return bad_input(PROG, f"{e}; nothing was written")
    try:
        result = _export(args, out_dir, precisions, data, calibration)
    except (ExportInputError, MappingError, outputs.OutputFolderError) as e:
        return bad_input(PROG, f"{e}{_unchanged(out_dir)}")
    except outputs.CommitError as e:
        return bad_input(PROG, str(e))
    except OSError as e:
        return bad_input(PROG, f"cannot export to {out_dir}: {e}{_unchanged(out_dir)}")
    except Exception as e:  # noqa: BLE001 - a bug, not bad input: a short message and the traceback in a log
        return internal_error(PROG, e, _unchanged(out_dir))
    print(markdown(result))
    split = result["inputs"].get("split")
    if split:
        print(f"held-out part: {split['test_sequences']} test sequences of {split['sequences']} "
              f"({splits.describe(split)}; {split.get('check', 'not checked against the checkpoint')})")
    removed = result["removed"]
    removed = f"; removed {len(removed)} files of the previous export: {outputs.some(removed)}" if removed else ""
    print(f"wrote {', '.join(result['files'])}, report.json, report.md and report.html to {out_dir} (each file and "
          f"its SHA-256 in {out_dir / outputs.MANIFEST}){removed}")
    if not result["passed"]:
        print(f"{PROG}: parity FAILED:", file=sys.stderr)
        for failure in result["failures"]:
            print(f"  {failure}", file=sys.stderr)
        return PARITY_FAILED
    return OK


def _init_args(text: str) -> dict:
    """--init-args as a dict: JSON of bounded depth (a deep nesting is a RecursionError, a 5000-digit integer a
    ValueError in json.loads)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ExportInputError("--init-args nests too deeply") from None
    except ValueError as e:
        raise ExportInputError(f"--init-args is not valid JSON: {str(e).split(';')[0][:200]}") from None
    if not isinstance(value, dict):
        raise ExportInputError(f"--init-args must be a JSON object of keyword arguments, got {type(value).__name__}")
    return value


def _check_input_files(args) -> None:
    """Every file the command reads is a regular file: a FIFO would block it and /dev/zero feed it forever."""
    named = [("checkpoint", args.checkpoint), ("--state-dict", args.state_dict)]
    if args.module and args.module.rpartition(":")[0].endswith(".py"):
        named.append(("--module file", args.module.rpartition(":")[0]))
    for what, path in named:
        if path:
            try:
                regular_file(path, what)
            except (OSError, ValueError) as e:
                raise ExportInputError(str(e)) from None


def _out_dir(args, precisions: list[str]) -> Path:
    """The folder to write (see the module docstring), checked against train/outputs.py's rules."""
    if args.module:
        inputs = [args.state_dict, args.module.rpartition(":")[0]]
        writes = export_file_names(precisions, CHECKPOINT_FILE, MODULE_MAPPING_FILE)
        name, source = args.module.rpartition(":")[2], module_source(args.module)
    elif args.checkpoint.lower().endswith(".onnx"):
        inputs = [args.checkpoint]
        writes = export_file_names(precisions, CHECKPOINT_FILE, ONNX_MAPPING_FILE)
        name, source = Path(args.checkpoint).stem, onnx_source(args.checkpoint)
    else:
        inputs, writes, name, source = [args.checkpoint], export_file_names(precisions), None, None
    if args.out:
        out_dir = Path(args.out)
    elif name is not None:
        out_dir = outputs.default_folder(name, outputs.EXPORT, source)
        print(f"{PROG}: no --out given: writing into {out_dir}", file=sys.stderr)
    else:
        checkpoint = Path(args.checkpoint)
        if not checkpoint.is_file():
            raise ExportInputError(f"checkpoint not found: {checkpoint}")
        if outputs.owner(checkpoint) is None:
            raise outputs.OutputFolderError(
                f"{checkpoint} was not written by rnnedge ({checkpoint.parent / outputs.MANIFEST} does not list it), "
                f"so {PROG} does not write beside it: give --out DIR (a new folder; or that folder with --force to "
                f"write beside your files, never over them)")
        out_dir = checkpoint.parent
    outputs.check_folder(out_dir, outputs.EXPORT, writes=writes, inputs=[p for p in inputs if p], force=args.force)
    return out_dir


def _export(args, out_dir: Path, precisions: list[str], data, calibration) -> dict:
    if args.module:
        module = load_user_module(args.module, args.state_dict, args.init_args)
        result = export_module(module, out_dir, task=args.task or "classify", data=data, tolerance=args.tolerance,
                               rtol=args.rtol, steps=args.steps, seed=args.seed, precisions=precisions,
                               calibration=calibration, on_warning=_warn, source=args.module,
                               single_header=args.firmware == "single-header")
        print(f"{args.module}: mapped to an rnnedge {result['module']['spec_head_on']} model; its forward() and "
              f"the mapped model differ by at most {result['module']['proof_max_abs_diff']:.3g} on random inputs")
    elif args.checkpoint.lower().endswith(".onnx"):
        result = export_onnx(args.checkpoint, out_dir, task=args.task, data=data, tolerance=args.tolerance,
                             rtol=args.rtol, steps=args.steps, seed=args.seed, precisions=precisions,
                             calibration=calibration, on_warning=_warn,
                             single_header=args.firmware == "single-header")
        print(f"{args.checkpoint}: ONNX graph mapped to an rnnedge {result['module']['spec_head_on']} model; "
              f"ONNX Runtime on it and the rnnedge runtime differ by at most "
              f"{result['module']['proof_max_abs_diff']:.3g} on random inputs")
    else:
        return export_checkpoint(args.checkpoint, out_dir, data=data, tolerance=args.tolerance, rtol=args.rtol,
                                 steps=args.steps, seed=args.seed, precisions=precisions, calibration=calibration,
                                 single_header=args.firmware == "single-header")
    for note in result["module"]["notes"]:
        print(f"note: {note}")
    return result


def _unchanged(out_dir: Path) -> str:
    return f"; nothing was written: {out_dir} is as it was" if out_dir.exists() else "; nothing was written"


def _load_data(name: str, seed: int, role: str = "", split: str | None = None):
    try:
        return load_dataset(name, seed=seed, split=split)
    except (ValueError, OSError) as e:
        raise ExportInputError(f"cannot load {role}data set {name!r}: {e}") from None


def _seed(args) -> int:
    return 0 if args.seed is None else args.seed


def _checked_data(args):
    """--data split as the checkpoint's record says, refused when it is not the split the model was trained on."""
    record = None
    if args.module or args.checkpoint.lower().endswith(".onnx"):
        _warn(f"{args.module or args.checkpoint} was not trained by rnnedge train, so which sequences it trained on is "
              f"unknown: the test part of --data {args.data} is held out only if it was held out in training")
    else:
        try:
            record = load_split(args.checkpoint)
        except FileNotFoundError:
            raise ExportInputError(f"checkpoint not found: {args.checkpoint}") from None
        except CheckpointError as e:
            raise ExportInputError(str(e)) from None
        if record is None:
            _warn(f"{args.checkpoint} records no split (written before rnnedge recorded one): the held-out part of "
                  f"--data {args.data} cannot be verified, and its test sequences may include training sequences")
    if record is None:
        return _load_data(args.data, _seed(args))
    trained_seed, method = record.get("seed"), record["method"]
    seeded = method in ("random", "by-group") and trained_seed is not None
    if args.split_check == "off":
        seed = args.seed if args.seed is not None else trained_seed or 0
        try:  # the checkpoint's method where the data allow it, else the data's default
            data = load_dataset(args.data, seed=seed, split=method)
        except (ValueError, OSError):
            data = _load_data(args.data, seed)
        problems = splits.differences(record, data.split) if data.split else []
        if problems:
            _warn(f"--split-check off: {'; '.join(problems)}; the report may score training sequences")
        return data
    if seeded and args.seed is not None and args.seed != trained_seed:
        raise ExportInputError(
            f"--seed {args.seed} differs from the seed of the checkpoint's {method} split ({trained_seed}): its test "
            f"sequences would include training sequences. Leave --seed out (the checkpoint's is used), pass --seed "
            f"{trained_seed}, or --split-check off to score this split anyway")
    seed = trained_seed if trained_seed is not None else _seed(args)
    try:
        data = load_dataset(args.data, seed=seed, split=method)
    except (ValueError, OSError) as e:
        raise ExportInputError(f"cannot re-derive the checkpoint's {splits.describe(record)} from --data "
                               f"{args.data}: {e} (--split-check off scores it anyway)") from None
    problems = splits.differences(record, data.split) if data.split else ["the data set carries no split record"]
    if problems:
        raise ExportInputError(f"--data {args.data} is not what {args.checkpoint} was trained on: {'; '.join(problems)}"
                               f"; its test part would not be held out (--split-check off scores it anyway)")
    data.split = {**data.split, "check": "verified: the checkpoint's test sequences"}
    return data


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
