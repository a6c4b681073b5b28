"""A vectors file's header is sealed with its tensors (export/vectors.py, runtime/sealed.py): an edited field fails
the seal, a field out of form is refused by name, a size claim the file lacks is refused before allocating.
Container-level defects (FIFO, /dev/zero, nesting, offsets, ...) are tested for both file kinds in
tests/runtime/test_artifact_seal.py."""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.vectors import (
    MAX_STEPS,
    PREFIX,
    VectorsError,
    check_vectors,
    read_vectors,
    save_vectors,
    write_vectors,
)
from rnnedge.runtime import artifact, file_tensors
from rnnedge.runtime import spec as specs


def _files(tmp_path: Path) -> tuple[Path, Path]:
    spec = specs.validate({"version": 1, "input": {"kind": "dense", "features": 3},
                           "layers": [{"cell": "lstm", "hidden": 4}], "head": {"out": 2, "on": "every_step"}})
    rng = np.random.default_rng(0)
    tensors = {name: rng.standard_normal(shape).astype(np.float32)
               for name, (shape, _) in file_tensors.artifact_tensors(spec, "f32").items()}
    weights = tmp_path / "model.f32.safetensors"
    artifact.write(weights, tensors, spec, "f32")
    vectors = tmp_path / "model.f32.vectors.safetensors"
    write_vectors(vectors, weights, rng.standard_normal((7, 3)).astype(np.float32), steps=7)
    return vectors, weights


def _edit_metadata(path: Path, **changes) -> None:
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"].update({PREFIX + k: v for k, v in changes.items()})
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def test_sealed_vectors_name_their_weight_file_by_its_sealed_digest_and_replay(tmp_path):
    vectors, weights = _files(tmp_path)
    meta, _ = read_vectors(vectors)
    assert meta["format"] == 2 and meta["artifact_sha256"] == artifact.sha256(*artifact.read(weights))
    assert check_vectors(vectors, weights) == []


@pytest.mark.parametrize("field, value", [
    ("artifact", "model.int8.safetensors"),
    ("artifact_sha256", "ab" * 32),
    ("spec", None),  # the same spec with another mean: valid and canonical
])
def test_an_edited_but_well_formed_field_fails_the_seal(tmp_path, field, value):
    vectors, _ = _files(tmp_path)
    if value is None:
        spec = read_vectors(vectors)[0]["spec"]
        spec["input"]["mean"][1] = 0.125
        value = specs.dumps(specs.validate(spec))
    _edit_metadata(vectors, **{field: value})
    with pytest.raises(VectorsError, match=f"SHA-256 of the header and tensors does not match {PREFIX}sha256"):
        read_vectors(vectors)


@pytest.mark.parametrize("field, value, says", [
    ("steps", "07", "steps '07' is not an integer"),
    ("steps", "9" * 5000, "is not an integer in"),
    ("steps", "0", "is not an integer in"),
    ("artifact", "../model.f32.safetensors", "is not a file name"),
    ("artifact", "", "is not a file name"),
    ("artifact_sha256", "XYZ", "artifact_sha256 is not a SHA-256 hex digest"),
    ("precision", "f16", "precision 'f16' is not supported"),
    ("state_layout", "[[0, \"h\", 0, 4], [0, \"c\", 4, 4]]", "state_layout is not in canonical form"),
    ("state_layout", "[[0,\"h\",0,4]]", "state_layout .* does not match the spec's"),
    ("state_layout", "[[0.0,\"h\",0,4],[0,\"c\",4,4]]", "state_layout is not in canonical form"),
    ("state_layout", "[" * 1000 + "]" * 1000, "nests deeper than"),
    ("spec", "{\"version\": 1}", "bad spec in metadata"),
])
def test_a_field_out_of_form_is_refused_by_name(tmp_path, field, value, says):
    vectors, _ = _files(tmp_path)
    _edit_metadata(vectors, **{field: value})
    with pytest.raises(VectorsError, match=says):
        read_vectors(vectors)


def test_a_claim_of_millions_of_steps_is_refused_before_allocating(tmp_path):
    vectors, _ = _files(tmp_path)
    data = vectors.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"][PREFIX + "steps"] = str(MAX_STEPS)
    for entry in (e for name, e in header.items() if name != "__metadata__"):
        entry["shape"][0] = MAX_STEPS  # a consistent table for 2^24 steps, over a file of a few kB
    offset = 0
    for name in sorted(k for k in header if k != "__metadata__"):
        size = int(np.prod(header[name]["shape"])) * (2 if header[name]["dtype"] == "I16" else 4)
        header[name]["data_offsets"] = [offset, offset + size]
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    vectors.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    tracemalloc.start()
    with pytest.raises(VectorsError, match="truncated: tensor .* ends at byte"):
        read_vectors(vectors)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes spent refusing a {vectors.stat().st_size}-byte file"


def test_vectors_that_would_name_their_weight_file_in_other_than_ascii_are_not_written(tmp_path):
    vectors, _ = _files(tmp_path)
    meta, tensors = read_vectors(vectors)
    with pytest.raises(ValueError, match="a vectors file names its weight file by a file name"):
        save_vectors(tmp_path / "v.safetensors", {**meta, "artifact": "mod\u00e8le.f32.safetensors"}, tensors)
    assert not (tmp_path / "v.safetensors").exists()
