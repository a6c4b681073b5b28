"""The weight file: `model.<precision>.safetensors`, written by export/ and read by the runtime.

A sealed safetensors file (runtime/sealed.py: no pickle, bounded reading) whose header metadata holds exactly:

    rnnedge.format     FORMAT_VERSION, as a decimal string
    rnnedge.precision  "f32"; "int8w": int8 weight matrices, each with a float32 `<name>.scale` per row;
                       "int8": the integer model (runtime/kernels_int8.py). runtime.file_tensors.artifact_tensors
                       names every tensor and its dtype for each precision
    rnnedge.spec       the model spec in canonical form: runtime.spec.dumps of the validated spec
    rnnedge.sha256     the seal: SHA-256 over the other three keys and values and every tensor (name, dtype,
                       shape, bytes), as runtime.sealed.digest computes it under DOMAIN; `sha256(spec, precision,
                       tensors)` gives it for a file's contents (its identity, which vectors and firmware sources name)

`read` refuses, with ArtifactError naming the field or the reason, a file that is not a regular file, is
truncated, too large for what its header claims, of another version (version 1 files, whose header was not
sealed, must be re-exported), has a metadata key it does not know, a spec that is invalid or not canonical,
tensors that do not match the spec, or a seal that does not match; the spec and tensor table are checked
against the file's size before any tensor byte is read.
"""

from __future__ import annotations

import os
import re

import numpy as np

from rnnedge.runtime import file_tensors, sealed
from rnnedge.runtime import spec as specs
from rnnedge.runtime.int8_math import CELL_POWER_MAX_INT8, CELL_POWER_MIN_INT8, SHIFT_MAX, SHIFT_MIN
from rnnedge.runtime.layout import check_int32_sums
from rnnedge.runtime.strict_json import short

FORMAT_VERSION = 2  # 2: the header is sealed with the tensors (1: the tensors only)
PRECISIONS = specs.PRECISIONS
DOMAIN = "rnnedge weight file"
DIGEST_KEY = "rnnedge.sha256"
KEYS = ("rnnedge.format", "rnnedge.precision", "rnnedge.spec", DIGEST_KEY)


class ArtifactError(ValueError):
    """A weight file that is truncated, tampered with, of another version, or inconsistent with its spec."""


def sha256(spec: dict, precision: str, tensors: dict[str, np.ndarray]) -> str:
    """The rnnedge.sha256 of a weight file holding this spec, precision and tensors."""
    return sealed.digest(DOMAIN, metadata(specs.validate(spec), precision), tensors)


def metadata(spec: dict, precision: str) -> dict[str, str]:
    """The metadata of a weight file of this (validated) spec and precision, all but its seal."""
    return {"rnnedge.format": str(FORMAT_VERSION), "rnnedge.precision": precision, "rnnedge.spec": specs.dumps(spec)}


def write(path: str | os.PathLike, tensors: dict[str, np.ndarray], spec: dict, precision: str = "f32") -> None:
    """Write tensors with their spec, sealed; refuses tensors that do not match the spec's shapes."""
    spec = specs.validate(spec)
    if precision not in PRECISIONS:
        raise ArtifactError(f"{path}: precision {precision!r} is not supported (supported: {', '.join(PRECISIONS)})")
    _check_runs(spec, precision, str(path))
    _check_tensors(tensors, spec, precision, str(path))
    sealed.write(path, DOMAIN, DIGEST_KEY, metadata(spec, precision), tensors)


def read(path: str | os.PathLike) -> tuple[dict, str, dict[str, np.ndarray]]:
    """Load and verify a weight file: returns (spec, precision, tensors). Raises ArtifactError only."""
    with sealed.SealedFile(path, ArtifactError) as f:
        path, meta = f.path, f.metadata
        _check_keys(meta, path)
        precision = meta["rnnedge.precision"]
        try:
            spec = specs.loads(meta["rnnedge.spec"])
        except specs.SpecError as e:
            raise ArtifactError(f"{path}: bad spec in metadata: {e}") from None
        _check_runs(spec, precision, path)
        f.check_table(file_tensors.artifact_tensors(spec, precision), f"the spec ({precision})", f"{precision} needs")
        if specs.dumps(spec) != meta["rnnedge.spec"]:
            raise ArtifactError(f"{path}: rnnedge.spec is not in canonical form (runtime.spec.dumps of the validated "
                                "spec): it was edited or written by another tool")
        tensors = f.read_tensors()
    unsealed = {key: meta[key] for key in KEYS if key != DIGEST_KEY}
    if sealed.digest(DOMAIN, unsealed, tensors) != meta[DIGEST_KEY]:
        raise ArtifactError(f"{path}: SHA-256 of the header and tensors does not match rnnedge.sha256: the file was "
                            "modified or damaged")
    _check_tensors(tensors, spec, precision, path)
    return spec, precision, tensors


def _check_keys(metadata: dict[str, str], path: str) -> None:
    """The format version first (its own message for version 1), then exactly KEYS, precision and digest form."""
    version = metadata.get("rnnedge.format")
    if version is None:
        hint = " (it is a golden-vectors file)" if "rnnedge.vectors.format" in metadata else ""
        raise ArtifactError(f"{path}: not an rnnedge weight file (no 'rnnedge.format' in its metadata){hint}")
    if version == "1":
        raise ArtifactError(f"{path}: format version 1 is no longer read: its header was not sealed, so its spec "
                            f"cannot be trusted; re-export it with this rnnedge (rnnedge export) to get version "
                            f"{FORMAT_VERSION}")
    if version != str(FORMAT_VERSION):
        raise ArtifactError(f"{path}: format version {short(version)[1:-1]} is not supported (this runtime reads "
                            f"{FORMAT_VERSION})")
    unknown = sorted(set(metadata) - set(KEYS))
    if unknown:
        raise ArtifactError(f"{path}: unknown metadata key {short(unknown[0])}: a weight file's metadata holds "
                            f"exactly {', '.join(KEYS)}")
    missing = [key for key in KEYS if key not in metadata]
    if missing:
        raise ArtifactError(f"{path}: metadata lacks {', '.join(missing)}")
    if metadata["rnnedge.precision"] not in PRECISIONS:
        raise ArtifactError(f"{path}: precision {short(metadata['rnnedge.precision'])} is not supported (supported: "
                            f"{', '.join(PRECISIONS)})")
    if not re.fullmatch(r"[0-9a-f]{64}", metadata[DIGEST_KEY]):
        raise ArtifactError(f"{path}: {DIGEST_KEY} is not a SHA-256 hex digest")


def _check_runs(spec: dict, precision: str, path: str) -> None:
    problems = specs.unsupported(spec, precision)
    if problems:
        raise ArtifactError(f"{path}: {precision} cannot run this model: " + "; ".join(problems))


def _check_int32_sums(tensors: dict[str, np.ndarray], spec: dict, path: str) -> None:
    """The bound runtime/layout.py checks as it builds an int8 model (check_int32_sums), as this file's error: every
    matrix with the bias its sums start from (b_h: b_hh on recurrent_bias_rows, 0 elsewhere)."""
    pairs = []
    for l, layer in enumerate(spec["layers"]):
        keep = specs.recurrent_bias_rows(layer)
        for d in ("fwd", "bwd")[: specs.directions(layer)]:
            p = f"layers.{l}.{d}"
            b_h = np.zeros(len(tensors[f"{p}.w_hh"]), dtype=np.int64)
            if keep.stop > keep.start:
                b_h[keep] = tensors[f"{p}.b_hh"]
            pairs += [(f"{p}.w_ih", tensors[f"{p}.b_ih"]), (f"{p}.w_hh", b_h)]
    pairs += [(f"head.hidden.{k}.weight", tensors[f"head.hidden.{k}.bias"]) for k in range(len(specs.head_hidden(spec)))]
    pairs.append(("head.weight", tensors["head.bias"]))
    try:
        for name, bias in pairs:
            check_int32_sums(name, tensors[name], bias)
    except ValueError as e:
        raise ArtifactError(f"{path}: {e}") from None


def _check_tensors(tensors: dict[str, np.ndarray], spec: dict, precision: str, path: str) -> None:
    expected = file_tensors.artifact_tensors(spec, precision)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ArtifactError(f"{path}: tensors do not match the spec ({precision}): missing {missing}, "
                            f"unexpected {extra}")
    for name, (shape, dtype) in expected.items():
        arr = tensors[name]
        if tuple(arr.shape) != shape:
            raise ArtifactError(f"{path}: tensor {name} has shape {tuple(arr.shape)}, spec says {shape}")
        if arr.dtype != np.dtype(dtype):
            raise ArtifactError(f"{path}: tensor {name} is {arr.dtype}, {precision} needs {dtype}")
        if arr.dtype == np.int8 and np.any(arr == -128):
            raise ArtifactError(f"{path}: tensor {name} holds -128, outside the narrow int8 range [-127, 127]")
        if arr.dtype != np.int8 and not np.all(np.isfinite(arr)):
            raise ArtifactError(f"{path}: tensor {name} holds NaN or infinity")
        if name.endswith(".scale") and not np.all(arr > 0):
            raise ArtifactError(f"{path}: tensor {name} holds a scale that is not positive")
        if name.endswith((".requant", ".p_requant")) and (np.any(arr < 0) or np.any((arr != 0) & (arr < 2**30))):
            raise ArtifactError(f"{path}: tensor {name} holds a multiplier outside [2^30, 2^31) (or 0)")
        if name.endswith((".shift", ".p_shift")) and (np.any(arr < SHIFT_MIN) or np.any(arr > SHIFT_MAX)):
            raise ArtifactError(f"{path}: tensor {name} holds a shift outside [{SHIFT_MIN}, {SHIFT_MAX}]")
        if name.endswith(".cell_power") and not np.all((arr >= CELL_POWER_MIN_INT8) & (arr <= CELL_POWER_MAX_INT8)):
            raise ArtifactError(f"{path}: tensor {name} is {arr.tolist()}, outside "
                                f"[{CELL_POWER_MIN_INT8}, {CELL_POWER_MAX_INT8}]")
    if precision == "int8":
        _check_int32_sums(tensors, spec, path)
