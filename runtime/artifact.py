"""The weight file: `model.<precision>.safetensors`, written by export/ and read by the runtime.

A safetensors file (no pickle) whose header metadata carries everything needed to trust it:

    rnnedge.format     FORMAT_VERSION, as a decimal string
    rnnedge.precision  "f32"; "int8w": int8 weight matrices, each with a float32 `<name>.scale` per row;
                       "int8": the integer model (runtime/kernels_int8.py). runtime.spec.artifact_tensors
                       names every tensor and its dtype for each precision
    rnnedge.spec       the model spec as JSON
    rnnedge.sha256     SHA-256 over every tensor (name, dtype, shape, bytes; names in sorted order)

`read` refuses a file whose header, version, checksum or tensor shapes do not match, with ArtifactError.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save

from runtime import spec as specs
from runtime.int8_math import CELL_POWER_MAX_INT8, CELL_POWER_MIN_INT8, SHIFT_MAX, SHIFT_MIN

FORMAT_VERSION = 1
PRECISIONS = specs.PRECISIONS


class ArtifactError(ValueError):
    """A weight file that is truncated, tampered with, of another version, or inconsistent with its spec."""


def payload_sha256(tensors: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def write(path: str | os.PathLike, tensors: dict[str, np.ndarray], spec: dict, precision: str = "f32") -> None:
    """Write tensors with their spec; refuses tensors that do not match the spec's shapes."""
    spec = specs.validate(spec)
    if precision not in PRECISIONS:
        raise ArtifactError(f"{path}: precision {precision!r} is not supported (supported: {', '.join(PRECISIONS)})")
    _check_tensors(tensors, spec, precision, str(path))
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    metadata = {
        "rnnedge.format": str(FORMAT_VERSION),
        "rnnedge.precision": precision,
        "rnnedge.spec": specs.dumps(spec),
        "rnnedge.sha256": payload_sha256(tensors),
    }
    with open(path, "wb") as f:
        f.write(save(tensors, metadata=metadata))


def read(path: str | os.PathLike) -> tuple[dict, str, dict[str, np.ndarray]]:
    """Load and verify a weight file: returns (spec, precision, tensors)."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read: {e.strerror}") from None
    metadata = header_metadata(data, path)
    version = metadata.get("rnnedge.format")
    if version is None:
        raise ArtifactError(f"{path}: not an rnnedge weight file (no 'rnnedge.format' in its metadata)")
    if version != str(FORMAT_VERSION):
        raise ArtifactError(f"{path}: format version {version} is not supported (this runtime reads {FORMAT_VERSION})")
    precision = metadata.get("rnnedge.precision")
    if precision not in PRECISIONS:
        raise ArtifactError(f"{path}: precision {precision!r} is not supported (supported: {', '.join(PRECISIONS)})")
    try:
        spec = specs.loads(metadata.get("rnnedge.spec", ""))
    except specs.SpecError as e:
        raise ArtifactError(f"{path}: bad spec in metadata: {e}") from None
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as e:
        raise ArtifactError(f"{path}: truncated or corrupt tensor data: {e}") from None
    if payload_sha256(tensors) != metadata.get("rnnedge.sha256"):
        raise ArtifactError(f"{path}: SHA-256 of the tensors does not match the header: the file was modified or damaged")
    _check_tensors(tensors, spec, precision, path)
    return spec, precision, tensors


def header_metadata(data: bytes, path: str, error: type[ValueError] | None = None) -> dict:
    """Parse only the safetensors header (8-byte length + JSON) for its metadata; a truncated or corrupt
    header raises `error` (default ArtifactError; export/vectors.py reads its files with this too)."""
    error = error or ArtifactError
    if len(data) < 8:
        raise error(f"{path}: truncated: {len(data)} bytes is shorter than a safetensors header")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise error(f"{path}: truncated: header says {n} bytes, file has {len(data) - 8} after it")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise error(f"{path}: corrupt header: not valid JSON") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _check_tensors(tensors: dict[str, np.ndarray], spec: dict, precision: str, path: str) -> None:
    expected = specs.artifact_tensors(spec, precision)
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
