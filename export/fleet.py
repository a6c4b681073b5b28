"""rnnedge eval: fleet parity, an artifact against its reference over many recorded device streams.

    rnnedge eval model.int8.safetensors recordings/ --out eval/           # this process
    rnnedge eval model.int8.safetensors recordings/ --ray local           # Ray Data on this machine
    rnnedge eval model.int8.safetensors recordings/ --ray ray://head:10001

The reference is the f32 weight file of the same export folder (model.f32.safetensors beside ARTIFACT, or
--reference FILE): the float model in numpy and numba, so eval runs on a device install without torch, and the
export already proved that file equal to the PyTorch model (its report's runtime_stream row, by the float rule).
Or the PyTorch model itself, --reference model.pt (rnnedge train's checkpoint; needs the `train` extra,
export/fleet_torch.py): compared as export compares, and an f32 artifact then also passes within FLOOR_FACTOR of
PyTorch float32's own error against float64 on the recording (export/rules.py).

Each recording is one file in RECORDINGS (a folder, read in the order of its sorted file names):
    .npy  (T, F) or (B, T, F) float for a dense model, (T,) or (B, T) token ids (runtime/cli.py's reader)
    .npz  X (B, T, F) or (B, T) [+ lengths (B,): stream b is X[b, :lengths[b]]]; other keys (y, ...) are ignored
    .csv  one stream (one row per step), or rnnedge train's CSV with a sequence_id column (runtime/cli.py)
Every stream is stepped one step per call through both models from a fresh state, as a device runs it (a model
that cannot stream, bidirectional or reverse, is run over whole sequences instead); run() gives the same numbers
(tests/runtime: stepping equals run() at every t), but stepping is what the fleet does.

The verdict is the artifact precision's rule without a data set (export/rules.py criterion): int8w and int8 by
their max abs bound, f32 by the float rule against the reference. Each recording gets its own verdict; the
report passes when all do. With --ray the recordings are evaluated by Ray Data workers (export/fleet_ray.py), each
loading the two models once; the rows are gathered, sorted by recording, and aggregated by the same code, so the
report equals the serial one except for report["run"] (engine, workers, seconds).

Exit status (runtime/command.py): 0 every recording passes, 1 one fails (the report is still written), 2 bad input
(one line naming the file; a model.pt reference without torch installed: one line naming the extra), 3 an
internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnedge.export import rules
from rnnedge.runtime import sniff
from rnnedge.runtime.command import OK, PARITY_FAILED, bad_input, guarded, regular_file
from rnnedge.runtime.options import RawHelpFormatter
from rnnedge.runtime.umbrella import TRAIN_EXTRA, importable
from rnnedge.train import outputs
from rnnedge.train.metrics import CLASS_TASKS

PROG = "rnnedge eval"
REPORT_FORMAT = "rnnedge-eval-report"
REPORT_FILES = ("report.json", "report.md")
SUFFIXES = (".npy", ".npz", ".csv")
DEFAULT_TOLERANCE = 1e-5  # f32 artifacts: the float rule's atol, as rnnedge export's --tolerance


class FleetInputError(ValueError):
    """An artifact, reference or recording eval refuses; the message names the file."""


class NeedsTrainExtra(FleetInputError):
    """--reference model.pt where torch is not installed."""


@dataclass
class Pair:
    """The artifact, its reference and the rule judging one against the other; loaded once per process."""

    artifact: object  # runtime.Model
    reference: object  # runtime.Model, or a fleet_torch.TorchReference (--reference model.pt)
    rule: rules.Criterion

    @classmethod
    def load(cls, artifact: str, reference: str, tolerance: float = DEFAULT_TOLERANCE) -> Pair:
        got, want = load_weights(artifact, "ARTIFACT"), load_reference(reference)
        if json.dumps(got.spec, sort_keys=True) != json.dumps(want.spec, sort_keys=True):
            raise FleetInputError(f"{artifact} and its reference {reference} hold different models (their specs "
                                  "differ); the reference must be the same model or an export of it")
        return cls(got, want, rules.criterion(got.precision, tolerance, None))

    @property
    def pytorch(self) -> bool:
        return self.reference.precision == "pytorch"

    def reference_outputs(self, X: np.ndarray) -> tuple[np.ndarray, float | None]:
        """The reference's outputs for X, and PyTorch float32's error against float64 on X (None: a weight file)."""
        if self.pytorch:
            return self.reference.outputs(X)
        return outputs_of(self.reference, X), None

    def describe(self) -> str:
        text = self.rule.describe()
        if self.pytorch and isinstance(self.rule, rules.FloatRule):
            text += f", or <= {self.rule.factor:g}x PyTorch's own float32-vs-float64 error on the recording"
        return text


def load_reference(path: str):
    """--reference: a weight file (load_weights), or an rnnedge checkpoint read with torch (export/fleet_torch.py)."""
    try:
        pytorch = sniff.kind(regular_file(path, f"{PROG}'s --reference")) == "pytorch"
    except (OSError, ValueError) as e:
        raise FleetInputError(str(e)) from None
    if not pytorch:
        return load_weights(path, "--reference")
    missing = next((module for module in TRAIN_EXTRA if not importable(module)), None)
    if missing is not None:
        raise NeedsTrainExtra(f"--reference {path} is a PyTorch checkpoint: reading it needs the training extra "
                              f'({missing} is not installed here): pip install "rnnedge[train]"')
    from rnnedge.export.fleet_torch import TorchReference
    from rnnedge.train.checkpoint import CheckpointError

    try:
        return TorchReference(path)
    except CheckpointError as e:
        raise FleetInputError(str(e)) from None


def load_weights(path: str, what: str):
    """runtime.load, after runtime/sniff.py has named a file that is no rnnedge weight file (ONNX, PyTorch, ...)."""
    from rnnedge import runtime

    try:
        path = str(regular_file(path, f"{PROG}'s {what}"))
        message = sniff.advice(path, f"{PROG}'s {what}")
        if message:
            raise FleetInputError(message)
        return runtime.load(path)
    except FleetInputError:
        raise
    except ValueError as e:
        raise FleetInputError(f"{path}: {e}") from None


def default_reference(artifact: str) -> str:
    """model.f32.safetensors beside ARTIFACT: the float model of the same export."""
    return str(Path(artifact).with_name("model.f32.safetensors"))


def recordings_in(folder: str) -> list[str]:
    """The recording files in `folder` (SUFFIXES), sorted by name; a single file is a fleet of one."""
    path = Path(folder)
    if path.is_file():
        names = [path] if path.suffix in SUFFIXES else []
    elif path.is_dir():
        names = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
    else:
        raise FleetInputError(f"RECORDINGS not found: {folder}")
    if not names:
        raise FleetInputError(f"{folder} holds no recording ({', '.join(SUFFIXES)} files)")
    return [str(p) for p in names]


def read_recording(path: str, model) -> list[np.ndarray]:
    """The streams of one recording, each batch (B, T, F) float32 or (B, T) int64 of streams of equal length."""
    from rnnedge.runtime.cli import _read_input, _read_sequences_csv

    try:
        if path.endswith(".npz"):
            streams = _read_npz(path, model.dense)
        else:
            sequences = _read_sequences_csv(path) if path.endswith(".csv") else None
            streams = sequences[1] if sequences is not None else [_read_input(path, model.dense)]
    except (OSError, ValueError, EOFError) as e:
        message = str(e)
        raise FleetInputError(message if path in message else f"{path}: {message}") from None
    for X in streams:
        if model.dense and X.shape[-1] != model.features:
            raise FleetInputError(f"{path}: {X.shape[-1]} features per step, the model reads {model.features}")
        if X.shape[1] == 0:
            raise FleetInputError(f"{path}: a stream of 0 steps")
    return streams


def _read_npz(path: str, dense: bool) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        if "X" not in f.files:
            raise ValueError(f"{path}: no array X (the file has: {', '.join(f.files) or 'nothing'})")
        X, lengths = f["X"], f["lengths"] if "lengths" in f.files else None
    want = 3 if dense else 2
    if X.ndim != want or not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{path}: X must be numeric {'(B, T, F)' if dense else '(B, T) token ids'}, got "
                         f"{X.dtype} {X.shape}")
    X = X.astype(np.float32 if dense else np.int64)
    if lengths is None:
        return [X]
    lengths = np.asarray(lengths)
    if lengths.shape != X.shape[:1] or lengths.dtype.kind not in "iu" or (lengths < 1).any() \
            or (lengths > X.shape[1]).any():
        raise ValueError(f"{path}: lengths must be {X.shape[0]} integers in [1, {X.shape[1]}], got {lengths.dtype} "
                         f"{lengths.shape}")
    return [np.ascontiguousarray(X[b: b + 1, : int(n)]) for b, n in enumerate(lengths)]


def outputs_of(model, X: np.ndarray) -> np.ndarray:
    """(B, T, out): X stepped one step per call from a fresh state; run() for a model that cannot stream."""
    from rnnedge.runtime.cli import _stream
    from rnnedge.runtime.spec import can_stream

    return _stream(model, X) if can_stream(model.spec) else np.asarray(model.run(X))


def evaluate_recording(pair: Pair, path: str) -> dict:
    """One report row: how far the artifact is from the reference on every step of the recording's streams."""
    streams = read_recording(path, pair.artifact)
    classify = pair.artifact.spec["task"] in CLASS_TASKS
    row = {"recording": path, "streams": 0, "steps": 0, "values": 0, "sum_abs_diff": 0.0, "max_abs_diff": 0.0,
           "max_scaled_diff": None, "float64_floor": None, "flips": 0 if classify else None,
           "decisions": 0 if classify else None}
    for X in streams:
        try:
            got = outputs_of(pair.artifact, X)  # the artifact first: it refuses what a device refuses
            want, floor = pair.reference_outputs(X)
        except (ValueError, TypeError) as e:  # a value the model refuses (NaN, a token id out of range)
            raise FleetInputError(f"{path}: {e}") from None
        if floor is not None:
            row["float64_floor"] = max(row["float64_floor"] or 0.0, floor)
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        finite = np.isfinite(diff)
        row["max_abs_diff"] = max(row["max_abs_diff"], float(diff.max()) if finite.all() else math.inf)
        row["sum_abs_diff"] += float(diff[finite].sum())
        if isinstance(pair.rule, rules.FloatRule):
            bound = pair.rule.atol + pair.rule.rtol * np.abs(want.astype(np.float64))
            scaled = np.divide(diff, bound, out=np.where(diff > 0, np.inf, 0.0), where=bound > 0)
            row["max_scaled_diff"] = max(row["max_scaled_diff"] or 0.0, float(scaled.max()))
        if classify:  # every step's output is the decision had the stream ended there
            row["flips"] += int((got.argmax(-1) != want.argmax(-1)).sum())
            row["decisions"] += int(got.shape[0] * got.shape[1])
        row["streams"] += X.shape[0]
        row["steps"] += X.shape[0] * X.shape[1]
        row["values"] += diff.size
    return row


def evaluate(artifact: str, recordings: str, reference: str | None = None, ray_address: str | None = None,
             tolerance: float = DEFAULT_TOLERANCE, log=None) -> dict:
    """The fleet report of `artifact` against `reference` (default: default_reference) over every recording in
    `recordings`; ray_address ("local", or a Ray cluster's address) maps the recordings over Ray Data workers."""
    started = time.perf_counter()
    reference = reference or default_reference(artifact)
    if Path(artifact).resolve() == Path(reference).resolve():
        raise FleetInputError(f"{artifact} is its own reference; give --reference another weight file of the model")
    paths = recordings_in(recordings)
    pair = Pair.load(artifact, reference, tolerance)  # checked here, before any worker starts
    log = log or (lambda message: None)
    if ray_address is None:
        log(f"evaluating {len(paths)} recordings in this process")
        rows, workers = [evaluate_recording(pair, path) for path in paths], 1
    else:
        from rnnedge.export import fleet_ray

        log(f"evaluating {len(paths)} recordings with Ray Data ({ray_address})")
        rows, workers = fleet_ray.evaluate_rows(paths, artifact, reference, tolerance, ray_address)
    result = build(artifact, reference, recordings, pair, rows)
    result["run"] = {"engine": "serial" if ray_address is None else f"ray {ray_address}", "workers": workers,
                     "seconds": time.perf_counter() - started}
    return result


def build(artifact: str, reference: str, recordings: str, pair: Pair, rows: list[dict]) -> dict:
    """The report from the per-recording rows (in any order): serial and Ray runs share it."""
    rows = sorted(rows, key=lambda row: row["recording"])
    for row in rows:
        row["mean_abs_diff"] = row["sum_abs_diff"] / row["values"] if row["values"] else 0.0
        row["passed"] = _passes(pair.rule, row)
    total = {key: sum(row[key] for row in rows) for key in ("streams", "steps", "values", "sum_abs_diff")}
    worst = max(rows, key=lambda row: row["max_abs_diff"])
    scaled = [row["max_scaled_diff"] for row in rows if row["max_scaled_diff"] is not None]
    classify = rows[0]["flips"] is not None
    total.update(recordings=len(rows), max_abs_diff=worst["max_abs_diff"], worst_recording=worst["recording"],
                 mean_abs_diff=total["sum_abs_diff"] / total["values"] if total["values"] else 0.0,
                 max_scaled_diff=max(scaled) if scaled else None,
                 flips=sum(row["flips"] for row in rows) if classify else None,
                 decisions=sum(row["decisions"] for row in rows) if classify else None,
                 failed=sum(not row["passed"] for row in rows))
    return {"format": REPORT_FORMAT, "version": 1, "artifact": artifact, "reference": reference,
            "recordings_folder": recordings, "precision": pair.artifact.precision,
            "reference_precision": pair.reference.precision, "spec": pair.artifact.spec,
            "criterion": pair.describe(), "passed": total["failed"] == 0, "totals": total, "recordings": rows}


def _passes(rule: rules.Criterion, row: dict) -> bool:
    if isinstance(rule, rules.FloatRule):  # the float64 floor only where the reference is PyTorch (float64_floor)
        floor = row["float64_floor"]
        return bool(row["max_scaled_diff"] <= 1.0 or (floor is not None and row["max_abs_diff"] <= rule.factor * floor))
    return rule.passes(row["max_abs_diff"])


def markdown(result: dict) -> str:
    """report.md: the verdict, the totals, one row per recording."""
    t = result["totals"]
    flips = "" if t["flips"] is None else f"; {t['flips']} of {t['decisions']} decisions flipped"
    verdict = (f"**{'PASSED' if result['passed'] else 'FAILED'}**: {t['recordings'] - t['failed']} of "
               f"{t['recordings']} recordings pass ({result['precision']} rule: {result['criterion']}).")
    totals = (f"{t['recordings']} recordings from `{result['recordings_folder']}`, {t['streams']} streams, "
              f"{t['steps']} steps, each stepped one step per call through both models: max abs difference "
              f"{t['max_abs_diff']:.3g} (in {Path(t['worst_recording']).name}), mean {t['mean_abs_diff']:.3g}{flips}.")
    run = f"Run: {result['run']['engine']}, {result['run']['workers']} worker(s), {result['run']['seconds']:.2f} s."
    lines = [f"# Fleet parity: {Path(result['artifact']).name} vs {Path(result['reference']).name}", "",
             verdict, "", totals, "", run, "",
             "| recording | streams | steps | max abs diff | mean abs diff | flips | passed |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for row in result["recordings"]:
        flipped = "" if row["flips"] is None else f"{row['flips']} / {row['decisions']}"
        lines.append(f"| {Path(row['recording']).name} | {row['streams']} | {row['steps']} | "
                     f"{row['max_abs_diff']:.3g} | {row['mean_abs_diff']:.3g} | {flipped} | "
                     f"{'yes' if row['passed'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def write(result: dict, out: str, inputs: list[str], source: str | None = None) -> None:
    """report.json and report.md into `out`, atomically (train/outputs.py Staging); source: what default_folder
    reuses the folder for."""
    with outputs.Staging(out, outputs.EVAL, inputs=inputs, writes=REPORT_FILES, source=source) as stage:
        (stage.dir / "report.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        (stage.dir / "report.md").write_text(markdown(result), encoding="utf-8")


DESCRIPTION = __doc__.split("\n\n", 1)[1]


def main(argv: list[str] | None = None) -> int:
    """The command; returns its exit status (module docstring)."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, formatter_class=RawHelpFormatter)
    parser.add_argument("artifact", metavar="ARTIFACT", help="a model.<precision>.safetensors written by rnnedge export")
    parser.add_argument("recordings", metavar="RECORDINGS", help="a folder of .npy / .npz / .csv recordings")
    parser.add_argument("--reference", metavar="FILE", help="the weight file to compare against, or the PyTorch "
                        "checkpoint (model.pt: needs the training extra) (default: model.f32.safetensors beside "
                        "ARTIFACT)")
    parser.add_argument("--ray", metavar="ADDRESS", help='evaluate with Ray Data: "local" starts Ray on this machine, '
                        'else a cluster address (needs pip install "rnnedge[scale]"; every node must see ARTIFACT '
                        "and RECORDINGS at the same paths)")
    parser.add_argument("--out", metavar="DIR", help="where report.json and report.md go (default: "
                        "rnnedge-out/eval-<RECORDINGS folder name>)")
    parser.add_argument("--force", action="store_true", help="write into a DIR holding files rnnedge did not write "
                        "(never over them)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="f32 artifacts: atol of the float rule |diff| <= tolerance + rtol * |reference|")
    parser.add_argument("--quiet", action="store_true", help="no progress or summary lines on stderr")
    args = parser.parse_args(argv)
    return guarded(PROG, lambda: _main(args), "; nothing was written")


def _main(args: argparse.Namespace) -> int:
    say = (lambda message: None) if args.quiet else (lambda message: print(f"{PROG}: {message}", file=sys.stderr))
    out = args.out
    try:
        out = out or str(outputs.default_folder(f"eval-{Path(args.recordings).resolve().name}", outputs.EVAL,
                                                f"eval {Path(args.artifact).resolve()}"))
        if args.ray is not None and not _ray_installed():
            return bad_input(PROG, 'needs the scale extra for --ray (ray is not installed here): '
                                   'pip install "rnnedge[scale]"')
        reference = args.reference or default_reference(args.artifact)
        inputs = [args.artifact, reference, *recordings_in(args.recordings)]
        outputs.check_folder(out, outputs.EVAL, writes=REPORT_FILES, inputs=inputs, force=args.force)
        result = evaluate(args.artifact, args.recordings, reference, args.ray, args.tolerance, say)
        write(result, out, inputs, source=f"eval {Path(args.artifact).resolve()}")
    except (FleetInputError, outputs.OutputFolderError, FileNotFoundError) as e:
        return bad_input(PROG, str(e))
    t = result["totals"]
    say(f"{'passed' if result['passed'] else 'FAILED'}: {t['recordings'] - t['failed']} of {t['recordings']} "
        f"recordings, {t['steps']} steps, max abs difference {t['max_abs_diff']:.3g} ({result['criterion']}); "
        f"{result['run']['seconds']:.2f} s; wrote {os.path.join(out, 'report.json')} and report.md")
    return OK if result["passed"] else PARITY_FAILED


def _ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None

