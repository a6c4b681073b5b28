"""Checkpoint -> artifacts -> parity report: `export_checkpoint` is the whole export of one model.

It writes, into one folder:

    model.onnx              whole-sequence ONNX graph
    model.step.onnx         one-step ONNX graph, state in and out (streamable models only)
    model.f32.safetensors   the runtime's weight file (always: it is the reference the others answer to)
    model.int8w.safetensors int8 weights, a float32 scale per row (when asked for; export/quantize.py)
    model.int8.safetensors  full integer: int8 weights, int16 activations, calibrated scales (when asked for;
                            export/calibrate.py measures the float model, export/quantize_int8.py quantises)
    model.<precision>.vectors.safetensors
                            golden test vectors of each weight file (streamable models only): one parity
                            stream's first steps, with every step's state and output (export/vectors.py),
                            for firmware_ref/ to reproduce
    firmware/<precision>/   each weight file as C sources for firmware_ref/ (model_data.h, model_data.c) and its
                            golden vectors as a C header (vectors_data.h) (streamable models of PyTorch's cells
                            only; export/firmware.py): `make -C firmware_ref host MODEL_DIR=<out>/firmware/int8`.
                            A precision whose C step does not implement a model's ONNX layer extensions
                            (runtime/spec.py; export/firmware.py FIRMWARE_EXTENSIONS) gets no sources, and
                            report["firmware"]["refused"] names the layers and extensions
    report.json, report.md  size and parity of every artifact; with firmware/int8/, its Cortex-M3 footprint
                            (export/footprint.py: arm-none-eabi-gcc -Os and QEMU, when installed; otherwise
                            "not measured: <reason>"; RNNEDGE_FOOTPRINT=0 turns the measurement off); every file
                            the export wrote with its SHA-256 (report["manifest"])
    rnnedge-manifest.json   every rnnedge file in the folder with its SHA-256 and the command that wrote it
                            (train/outputs.py): what a later export may replace, and what it must not touch

The export is atomic: it is written and verified in a staging folder beside the target and only then moved in,
replacing the previous export's files (those it does not write again are removed); on any failure the folder
is left exactly as it was, and a file rnnedge did not write is never overwritten (train/outputs.py).

and checks each artifact against the PyTorch forward on long streams (see _comparisons). Each precision has
its own pass rule (`criterion`, export/rules.py): float32 artifacts must stay within |diff| <= tolerance +
rtol * |PyTorch| at every value, or within rules.FLOOR_FACTOR of PyTorch's own float32-vs-float64 error on the
same streams; int8w ones are quantised, so they are held to the task metric: at most rules.INT8W_METRIC_POINTS
points of accuracy (or that percentage of rmse / bpc) worse than the PyTorch model, or an accuracy drop the
bootstrap does not find significant, or, with no data set to score, a max abs difference of at most
rules.INT8W_MAX_ABS; int8 likewise, with rules.INT8_METRIC_POINTS and rules.INT8_MAX_ABS. A failed row marks the
report failed; the report is written either way, so the user can see by how much.

int8 is calibrated on a representative slice (calibrate.calibration_slice) of: the `calibration` data if given,
else the `data` set's TRAIN split (never the test split the parity rows score), else random streams seeded
apart from the random parity streams.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import onnx
import torch

from rnnedge.export import comparisons, footprint, parity, report, rules, saturation
from rnnedge.export.calibrate import CalibrationError, calibrate, calibration_slice, check_calibration_data
from rnnedge.export.firmware import SINGLE_HEADER, firmware_unsupported, write_firmware_sources, write_single_header
from rnnedge.export.fit import FitError, check_fit
from rnnedge.export.onnx_graphs import build_sequence_graph, build_step_graph
from rnnedge.export.quantize import quantize_int8w
from rnnedge.export.quantize_int8 import Ranges, quantize_int8
from rnnedge.export.vectors import vectors_file, write_vectors
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import artifact
from rnnedge.runtime import spec as specs
from rnnedge.train import outputs
from rnnedge.train.checkpoint import CheckpointError, load_checkpoint

PRECISIONS = specs.PRECISIONS  # f32 first: always written
RANDOM_BATCH = 3  # random parity streams run side by side, so batching bugs show up too
FIRMWARE_DIR = "firmware/int8"  # C sources of the int8 model, for firmware_ref/ (f32, int8w: firmware/<p>)
FIRMWARE_FILES = ("model_data.h", "model_data.c", "vectors_data.h")
CALIBRATION_SEED_OFFSET = 1  # random calibration streams: seed + this, never the parity streams themselves
SEQUENCE_FILE, STEP_FILE, WEIGHTS_FILE = comparisons.SEQUENCE_FILE, comparisons.STEP_FILE, comparisons.WEIGHTS_FILE
weights_file = comparisons.weights_file
log = logging.getLogger("rnnedge.export")  # one line per stage; the CLI shows them on stderr unless --quiet


class ExportInputError(ValueError):
    """A checkpoint or data set that cannot be exported or checked (the user's input, not a parity failure)."""


def export_checkpoint(checkpoint_path, out_dir, data=None, tolerance: float = 1e-5, steps: int = 1000,
                      seed: int = 0, precisions=("f32",), calibration=None, module: dict | None = None,
                      reference_graph: comparisons.OriginalGraph | None = None, stage: outputs.Staging | None = None,
                      rtol: float = rules.FLOAT_RTOL, single_header: bool = False) -> dict:
    """Export a checkpoint and verify every artifact; returns the report (report["passed"] says parity held).

    tolerance, rtol: the float rule's atol and rtol (export/rules.py FloatRule). single_header: also write
    firmware/<precision>/rnnedge_model.h (export/firmware_single.py) beside the C sources.

    precisions: runtime weight files to write, from PRECISIONS; f32 is always written (the reference).

    data: a train.data.Dataset whose held-out test sequences are the parity streams (and the task metric is
    reported); None runs RANDOM_BATCH random streams of `steps` steps.

    calibration (int8 only): what the int8 scales are calibrated on, a train.data.Dataset (its train split),
    a SequenceData, an (X, lengths) pair or X alone (every sequence full length); None: data's train split,
    else random streams of `steps` steps. Raises ExportInputError for an unreadable checkpoint, one holding NaN or
    inf weights, or data or calibration data that do not fit the model, and a precision asked for whose kernels
    cannot run the model's ONNX layer extensions (runtime.spec.unsupported: int8 and activation functions other
    than the cell's own). module: how a user's own nn.Module was mapped
    (export/from_module.py), kept as report["module"]. reference_graph: the original ONNX file an export of it
    (export/from_onnx.py) came from; adds rows measuring each runtime precision against that graph run by ONNX
    Runtime (or onnx's reference evaluator when ORT cannot run it), see _original_rows.

    Atomic (train/outputs.py): every file is written into a staging folder beside out_dir and verified there (the
    parity rows load the staged files); only then are they moved into out_dir, the previous export's files that
    this one did not write are removed (named in report["removed"]), and out_dir's rnnedge-manifest.json lists
    every file with its SHA-256 (report["manifest"]: the ones this export wrote). On any exception out_dir is left
    as it was; a parity failure is a completed export (report["passed"] False). Files in out_dir that rnnedge did
    not write are left alone, and one with a name the export writes is refused (outputs.OutputFolderError); the CLI
    also refuses a folder holding any such file unless --force (outputs.check_folder). stage: a Staging the caller
    opened and commits (export_module and export_onnx write model.pt into it first, checkpoint_path inside it);
    None: its own.
    """
    started = time.perf_counter()
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        raise ExportInputError(f"precision {unknown[0]!r} is not supported (supported: {', '.join(PRECISIONS)})")
    precisions = [p for p in PRECISIONS if p == "f32" or p in precisions]
    shown = stage.final(checkpoint_path) if stage is not None else Path(checkpoint_path)
    model = _load_model(checkpoint_path)
    spec = model.spec
    refuse_non_finite(model.state_dict(), str(shown))
    for precision in precisions:
        problems = specs.unsupported(spec, precision)
        if problems:
            raise ExportInputError(f"{shown}: the {precision} precision cannot run this model: "
                                   f"{'; '.join(problems)} (export it without {precision})")
    if calibration is not None and "int8" not in precisions:
        raise ExportInputError("calibration data are used by the int8 precision only, and int8 was not asked for")
    X, lengths, y, inputs = _parity_inputs(spec, data, steps, seed)
    tensors = canonical_tensors(model)
    ranges, calibrated_on = _calibrate(spec, tensors, calibration, data, steps, seed) if "int8" in precisions \
        else (None, None)
    if stage is None:
        with outputs.Staging(out_dir, outputs.EXPORT, inputs=[checkpoint_path], writes=export_file_names(precisions),
                             source=checkpoint_source(checkpoint_path)) as own:
            return _export_staged(own, model, tensors, (ranges, calibrated_on), shown, X, lengths, y, inputs,
                                  (tolerance, rtol), precisions, module, reference_graph, started, single_header)
    return _export_staged(stage, model, tensors, (ranges, calibrated_on), shown, X, lengths, y, inputs,
                          (tolerance, rtol), precisions, module, reference_graph, started, single_header)


def _export_staged(stage: outputs.Staging, model, tensors, calibration: tuple, checkpoint: Path, X, lengths, y,
                   inputs: dict, tolerances: tuple[float, float], precisions: list[str], module: dict | None,
                   reference_graph: comparisons.OriginalGraph | None, started: float,
                   single_header: bool = False) -> dict:
    """Write every artifact into the staging folder, measure each one from there, write the report there.
    calibration: (int8's Ranges, the (X, lengths) slice they were measured on), or (None, None) without int8;
    tolerances: the float rule's (atol, rtol)."""
    spec, work = model.spec, stage.dir
    tolerance, rtol = tolerances
    ranges, calibrated_on = calibration
    log.info(f"writing the ONNX graphs and the {', '.join(precisions)} weight files")
    files, quantization = _write_artifacts(spec, tensors, work, precisions, ranges)
    if "int8" in quantization:  # every tensor the integer step forms: its range, format and saturation on X
        quantization["int8"]["saturation"] = saturation.table(spec, tensors, quantization["int8"], calibrated_on,
                                                              (X, lengths))
    log.info("writing golden vectors and firmware sources (the first run compiles the runtime's kernels, then "
             "numba caches them)")
    files.update(_write_vectors(spec, work, precisions, X[0][: int(lengths[0])]))
    firmware_files, refused = _write_firmware(spec, work, precisions, checkpoint, single_header)
    files.update(firmware_files)
    firmware = _firmware_footprint(work, files)
    if refused:
        if "int8" in refused:
            firmware = {"measured": False, "written": False, "reason": refused["int8"]}
        firmware = {**(firmware or {"measured": False, "written": False, "reason": "no int8 firmware"}),
                    "refused": refused}
    with parity.torch_single_thread():
        log.info(f"parity: PyTorch on {len(lengths)} streams ({int(lengths.sum())} steps) in float32 and float64")
        streams = comparisons.Streams.of(model, X, lengths)
        reference_metric = (comparisons.metric_of(spec, streams.place(streams.references), y, lengths)
                            if y is not None else None)
        floor = rules.float64_floor(model, streams.X, streams.groups, streams.references, streams.every_prefix,
                                    streams.valid)
        criteria = {p: rules.criterion(p, tolerance, reference_metric, floor["max"], rtol) for p in precisions}
        traces = {"reference": comparisons.reference_trace(streams)}  # the HTML report's stream plot
        rows = [comparisons.measure(c, spec, streams, y, files, criteria[c.precision], traces)
                for c in comparisons.comparisons(model, spec, work, precisions)]
        if reference_graph is not None:
            rows += comparisons.original_rows(reference_graph, spec, streams, y, files, criteria, work, precisions)
    result = report.build(
        checkpoint=str(checkpoint), out_dir=str(stage.folder), spec=spec, tolerance=tolerance, rtol=rtol,
        float64_floor=floor, inputs=inputs,
        reference_metric=reference_metric, files=files, rows=rows, seconds=time.perf_counter() - started,
        criteria={p: c.describe() for p, c in criteria.items()}, quantization=quantization, firmware=firmware,
        manifest=outputs.describe_files(work), removed=stage.stale(also=report.FILES),
    )
    if module is not None:  # only exports of a user's own nn.Module have the key
        result["module"] = module
    log.info("writing report.json, report.md and report.html")
    report.write(result, work, traces)
    return result


def export_file_names(precisions, *extra: str) -> list[str]:
    """Every name an export of these precisions may write into its folder (extra: model.pt and the mapping of a
    module or ONNX export), so that a folder where one of them cannot be written is refused before any work."""
    names = [*extra, SEQUENCE_FILE, STEP_FILE, *report.FILES]
    for precision in [p for p in PRECISIONS if p == "f32" or p in precisions]:
        names += [weights_file(precision), vectors_file(precision)]
        names += [f"firmware/{precision}/{name}" for name in (*FIRMWARE_FILES, SINGLE_HEADER)]
    return names


def checkpoint_source(path) -> str:
    """What outputs.Staging records as an export's source (outputs.default_folder reuses a folder by it)."""
    return f"checkpoint {Path(path).resolve()}"


def module_source(target: str) -> str:
    """A module export's source: the CLI's MODULE:CLASS as given (export_module: else the class's import path)."""
    return f"module {target}"


def onnx_source(path) -> str:
    return f"onnx {Path(path).resolve()}"


def refuse_non_finite(tensors: dict, where: str) -> None:
    """NaN or inf weights make every artifact and every parity number meaningless: refused, naming the tensor,
    before anything is written. tensors: name -> torch tensor or numpy array."""
    for name, value in tensors.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().float().numpy() if value.is_floating_point() else value.numpy()
        value = np.asarray(value)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = int((~np.isfinite(value)).sum())
            raise ExportInputError(f"{where}: tensor {name!r} holds {bad} non-finite value(s) (NaN or inf) among "
                                   f"{value.size}; a model with NaN or inf weights cannot be exported (did its "
                                   f"training diverge?)")


def _load_model(checkpoint_path):
    path = Path(checkpoint_path)
    if not path.is_file():
        raise ExportInputError(f"checkpoint not found: {path}")
    try:
        model, _ = load_checkpoint(path)
    except (CheckpointError, specs.SpecError) as e:
        raise ExportInputError(str(e)) from None
    except (KeyError, RuntimeError) as e:  # a checkpoint whose spec and state_dict disagree
        raise ExportInputError(f"{path}: checkpoint does not match its own spec: {e}") from None
    return model


def _parity_inputs(spec: dict, data, steps: int, seed: int):
    """(X, lengths, y or None, description): the data set's held-out test streams, or random streams."""
    if data is None:
        if steps < 1:
            raise ExportInputError(f"steps must be positive, got {steps}")
        X = parity.random_streams(spec, RANDOM_BATCH, steps, seed)
        lengths = np.full(RANDOM_BATCH, steps, dtype=np.int64)
        return X, lengths, None, {"source": "random", "seed": seed, **_lengths_summary(lengths)}
    test = data.test
    X, lengths = np.asarray(test.X), np.asarray(test.lengths, dtype=np.int64)
    try:
        parity.check_inputs_fit(spec, X, f"data set {data.name!r}")
    except ValueError as e:
        raise ExportInputError(str(e)) from None
    try:
        check_fit(spec, data)
    except FitError as e:
        raise ExportInputError(str(e)) from None
    split = getattr(data, "split", None)
    return X, lengths, np.asarray(test.y), {"source": "dataset", "dataset": data.name, **_lengths_summary(lengths),
                                            **({"split": split} if split else {})}



def _calibrate(spec: dict, tensors: dict[str, np.ndarray], calibration, data, steps: int,
               seed: int) -> tuple[Ranges, tuple[np.ndarray, np.ndarray]]:
    """(the float model's ranges on a slice of the calibration data (see the module docstring for which), that
    slice as (X, lengths))."""
    if calibration is not None:
        X, lengths, where, source = _calibration_arrays(calibration)
    elif data is not None:
        X, lengths = data.train.X, data.train.lengths
        where, source = f"data set {data.name!r} (train split)", {"source": "dataset", "dataset": data.name,
                                                                  "split": "train"}
    else:
        calibration_seed = seed + CALIBRATION_SEED_OFFSET
        X = parity.random_streams(spec, RANDOM_BATCH, steps, calibration_seed)
        lengths = np.full(RANDOM_BATCH, steps, dtype=np.int64)
        where, source = "random calibration streams", {"source": "random", "seed": calibration_seed}
    try:
        X, lengths = check_calibration_data(spec, X, lengths, where)  # all of it, not only the slice
        chosen = calibration_slice(X, lengths, seed=seed)
        log.info(f"calibrating int8 on {int(chosen[1].sum())} steps of {where}")
        ranges = calibrate((spec, tensors), *chosen, where=where)
    except CalibrationError as e:
        raise ExportInputError(str(e)) from None
    ranges.extra.update(source, available_sequences=len(lengths), available_steps=int(lengths.sum()))
    return ranges, chosen


def _calibration_arrays(calibration):
    """An explicit `calibration` argument -> (X, lengths or None, where, report description)."""
    if hasattr(calibration, "train"):  # a Dataset: its train split
        name = getattr(calibration, "name", "calibration")
        return (calibration.train.X, calibration.train.lengths, f"calibration data set {name!r} (train split)",
                {"source": "calibration", "dataset": name, "split": "train"})
    if hasattr(calibration, "X"):  # a SequenceData
        X, lengths = calibration.X, calibration.lengths
    elif isinstance(calibration, tuple) and len(calibration) == 2:
        X, lengths = calibration
    else:
        X, lengths = calibration, None
    return X, lengths, "calibration data", {"source": "calibration", "dataset": None, "split": None}


def _lengths_summary(lengths: np.ndarray) -> dict:
    return {"sequences": len(lengths), "shortest": int(lengths.min()), "longest": int(lengths.max()),
            "total_steps": int(lengths.sum())}


def _write_artifacts(spec: dict, tensors: dict[str, np.ndarray], out_dir: Path, precisions: list[str],
                     ranges: Ranges | None = None):
    """One writer per artifact; returns each file's size in bytes and, per quantised precision, the max abs
    error of its weights ({"max_abs_weight_error": e, "per_matrix": {name: e}}; int8 adds its scales, cell
    powers and calibration: export/quantize_int8.py's info)."""
    onnx.save_model(build_sequence_graph(spec, tensors), out_dir / SEQUENCE_FILE)
    written = [SEQUENCE_FILE]
    if specs.can_stream(spec):
        onnx.save_model(build_step_graph(spec, tensors), out_dir / STEP_FILE)
        written.append(STEP_FILE)
    quantization = {}
    for precision in precisions:
        if precision == "int8w":
            weights, errors = quantize_int8w(spec, tensors)
            quantization[precision] = {"max_abs_weight_error": max(errors.values()), "per_matrix": errors}
        elif precision == "int8":
            try:
                weights, quantization[precision] = quantize_int8(spec, tensors, ranges)
            except ValueError as e:  # a bias or sum that no int32 holds: this model cannot be made integer
                raise ExportInputError(f"cannot quantise to int8: {e}") from None
        else:
            weights = tensors
        _refuse_overflow(weights, precision)
        artifact.write(out_dir / weights_file(precision), weights, spec, precision)
        written.append(weights_file(precision))
    return {name: (out_dir / name).stat().st_size for name in written}, quantization


def _refuse_overflow(weights: dict[str, np.ndarray], precision: str) -> None:
    """Finite weights near float32's limit (3.4e38) can add up to inf where a precision folds them together (the
    int8w bias sums): the model is refused, naming the tensor, rather than written with inf."""
    for name, value in weights.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ExportInputError(f"the {precision} weights overflow float32: {name} holds inf (weights of the "
                                   f"model reach {_largest(weights):.3g}; float32 ends at 3.4e38)")


def _largest(weights: dict[str, np.ndarray]) -> float:
    finite = [np.abs(v[np.isfinite(v)]).max() for v in weights.values() if v.dtype.kind == "f" and np.isfinite(v).any()]
    return float(max(finite, default=0.0))


def _write_vectors(spec: dict, out_dir: Path, precisions: list[str], x: np.ndarray) -> dict[str, int]:
    """Golden test vectors beside each weight file, from one parity stream x; sizes by file name."""
    sizes = {}
    if specs.can_stream(spec):
        for precision in precisions:
            path = out_dir / vectors_file(precision)
            write_vectors(path, out_dir / weights_file(precision), x)
            sizes[path.name] = path.stat().st_size
    return sizes


def _write_firmware(spec: dict, out_dir: Path, precisions: list[str], checkpoint_path,
                    single_header: bool = False) -> tuple[dict[str, int], dict[str, str]]:
    """firmware/<precision>/: each weight file and its vectors as C sources (export/firmware.py), for a streaming
    model, and with single_header its rnnedge_model.h (library + model + rnnedge_model_step(), export/
    firmware_single.py); (sizes by path, {precision: why its sources were not written}) for a model with ONNX layer
    extensions that precision's C step does not implement (export/firmware.py FIRMWARE_EXTENSIONS; never an error)."""
    sizes, refused = {}, {}
    if not specs.can_stream(spec):
        return sizes, refused
    for precision in precisions:
        missing = firmware_unsupported(spec, precision)
        if missing:
            refused[precision] = (f"firmware_ref's {precision} step does not implement the ONNX layer extensions "
                                  f"{', '.join(missing)}")
            continue
        paths = write_firmware_sources(out_dir / weights_file(precision), out_dir / vectors_file(precision),
                                       out_dir / "firmware" / precision, checkpoint=checkpoint_path)
        if single_header:
            paths.append(write_single_header(out_dir / weights_file(precision),
                                             out_dir / "firmware" / precision / SINGLE_HEADER,
                                             checkpoint=checkpoint_path))
        sizes.update({path.relative_to(out_dir).as_posix(): path.stat().st_size for path in paths})
    return sizes, refused


# -- firmware footprint (export/footprint.py) ---------------------------------------------------------------------
FOOTPRINT_BOARD = "an385"  # the integer-only target, Cortex-M3
FOOTPRINT_STEPS = 16  # a short run: one build and well under a second of QEMU for models of a few 10^5 insns/step


def _firmware_footprint(out_dir: Path, files: dict[str, int]) -> dict | None:
    """report["firmware"]: the footprint of firmware/int8/ on a Cortex-M3 under QEMU, when the sources were
    written; {"measured": False, "reason": ...} when the tools are missing or anything fails (never an error)."""
    if f"{FIRMWARE_DIR}/model_data.c" not in files:
        return None
    reason = footprint.environment_disabled()
    if reason is None:
        ok, reason = footprint.available()
        if ok:
            log.info("measuring the int8 firmware's footprint (Cortex-M3 under QEMU)")
            try:
                return {"measured": True, **footprint.measure_footprint(out_dir / FIRMWARE_DIR, FOOTPRINT_BOARD,
                                                                        steps=FOOTPRINT_STEPS, timeout=60)}
            except footprint.FootprintError as e:
                reason = str(e)
            except Exception as e:  # noqa: BLE001 - a footprint that cannot be measured never fails the export
                reason = f"{type(e).__name__}: {e}"
    return {"measured": False, "reason": reason}
