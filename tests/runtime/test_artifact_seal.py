"""Sealed weight and vectors files (runtime/sealed.py): every defect of issue 13 items 1, 5 and 6 refused with the
documented exception, before memory is spent on it; a clean file still loads, runs and opens with safetensors."""

from __future__ import annotations

import json
import os
import struct
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from rnnedge.export.vectors import VectorsError, read_vectors, write_vectors
from rnnedge.runtime import artifact, file_tensors, sealed
from rnnedge.runtime import spec as specs
from rnnedge.runtime.artifact import ArtifactError
from rnnedge.runtime.model import Model
from tests.runtime.int8_twin import random_int8_tensors


def _spec(cell="gru", features=3, hidden=5, out=2, **layer) -> dict:
    return specs.validate({"version": 1, "input": {"kind": "dense", "features": features, "mean": [0.5] * features,
                                                   "std": [2.0] * features},
                           "layers": [{"cell": cell, "hidden": hidden, **layer}],
                           "head": {"out": out, "on": "every_step", "activation": "softmax"}})


def _tensors(spec: dict, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: (rng.standard_normal(shape) * 0.5).astype(np.float32)
            for name, (shape, _) in file_tensors.artifact_tensors(spec, "f32").items()}


def _weights(folder: Path, spec: dict | None = None) -> Path:
    path = folder / "model.f32.safetensors"
    artifact.write(path, _tensors(spec or _spec()), spec or _spec(), "f32")
    return path


def _vectors(folder: Path) -> Path:
    weights = _weights(folder)
    path = folder / "model.f32.vectors.safetensors"
    write_vectors(path, weights, np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32), steps=6)
    return path


KINDS = {"weights": (_weights, artifact.read, ArtifactError), "vectors": (_vectors, read_vectors, VectorsError)}


@pytest.fixture(params=sorted(KINDS))
def kind(request, tmp_path):
    """(a clean file of the kind, its reader, its one documented exception)."""
    make, read, error = KINDS[request.param]
    return make(tmp_path), read, error


def _split(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(path: Path, header, data: bytes, raw: bytes | None = None) -> None:
    raw = json.dumps(header, separators=(",", ":")).encode() if raw is None else raw
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def _edit_metadata(path: Path, **changes) -> None:
    header, data = _split(path)
    header["__metadata__"].update(changes)
    _join(path, header, data)


# -- what a file means: the seal and the schema ----------------------------------------------------------------

def test_one_bit_turning_activation_into_actIvation_is_refused(tmp_path):
    path = _weights(tmp_path)
    data = bytearray(path.read_bytes())
    i = data.index(b"activation")
    data[i + 3] ^= 0x20  # "activation" -> "actIvation": one bit, same length
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"head has unknown keys \['actIvation'\]"):
        artifact.read(path)


def _set(path: tuple, value):
    def edit(spec: dict) -> dict:
        node = spec
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return spec
    return edit


@pytest.mark.parametrize("cell, edit", [
    ("gru", _set(("input", "mean", 0), 0.25)),
    ("gru", _set(("input", "std", 2), 3.0)),
    ("gru", _set(("head", "on"), "last_step")),
    ("gru", _set(("head", "activation"), "none")),
    ("rnn_tanh", _set(("layers", 0, "cell"), "rnn_relu")),
    ("gru", _set(("layers", 0, "clip"), 3.0)),
    ("gru", _set(("layers", 0, "linear_before_reset"), False)),
    ("gru", _set(("layers", 0, "activations"), [{"fn": "hardsigmoid", "alpha": 0.2, "beta": 0.5},
                                                {"fn": "tanh", "alpha": 0.0, "beta": 0.0}])),
], ids=["mean", "std", "head.on", "head.activation", "cell", "clip", "linear_before_reset", "activations"])
def test_a_valid_canonical_but_edited_spec_fails_the_seal(tmp_path, cell, edit):
    path = _weights(tmp_path, _spec(cell))
    spec, _, _ = artifact.read(path)
    edited = specs.validate(edit(spec))
    _edit_metadata(path, **{"rnnedge.spec": specs.dumps(edited)})
    with pytest.raises(ArtifactError, match="SHA-256 of the header and tensors does not match rnnedge.sha256"):
        artifact.read(path)


def test_a_spec_not_in_canonical_form_is_refused_even_with_the_same_meaning(tmp_path):
    path = _weights(tmp_path)
    spec, _, _ = artifact.read(path)
    _edit_metadata(path, **{"rnnedge.spec": json.dumps(spec, indent=1)})
    with pytest.raises(ArtifactError, match="rnnedge.spec is not in canonical form"):
        artifact.read(path)


@pytest.mark.parametrize("precision", ["f32"])
def test_the_sha256_names_the_file_contents_and_changes_with_the_spec(tmp_path, precision):
    spec, tensors = _spec(), _tensors(_spec())
    artifact.write(tmp_path / "a", tensors, spec, precision)
    with safe_open(tmp_path / "a", "np") as f:
        assert f.metadata()["rnnedge.sha256"] == artifact.sha256(spec, precision, tensors)
    edited = specs.validate({**spec, "head": {**spec["head"], "on": "last_step"}})
    assert artifact.sha256(edited, precision, tensors) != artifact.sha256(spec, precision, tensors)


def test_an_unknown_metadata_key_is_refused_naming_it(kind):
    path, read, error = kind
    _edit_metadata(path, **{"rnnedge.note": "hello"})
    with pytest.raises(error, match="unknown metadata key 'rnnedge.note'"):
        read(path)


def test_a_missing_metadata_key_is_refused_naming_it(kind):
    path, read, error = kind
    header, data = _split(path)
    key = next(k for k in header["__metadata__"] if k.endswith("spec"))
    del header["__metadata__"][key]
    _join(path, header, data)
    with pytest.raises(error, match=f"metadata lacks {key}"):
        read(path)


def test_a_version_1_file_is_refused_with_the_re_export_message(kind):
    path, read, error = kind
    key = next(k for k in _split(path)[0]["__metadata__"] if k.endswith("format"))
    _edit_metadata(path, **{key: "1"})
    with pytest.raises(error, match="format 1 is no longer read|format version 1 is no longer read") as e:
        read(path)
    assert "re-export it with this rnnedge" in str(e.value)


def test_a_duplicate_metadata_key_is_refused(kind):
    path, read, error = kind
    header, data = _split(path)
    raw = json.dumps(header, separators=(",", ":"))
    key, value = next(iter(header["__metadata__"].items()))
    raw = raw.replace('"__metadata__":{', '"__metadata__":{' + json.dumps(key) + ":" + json.dumps(value) + ",", 1)
    _join(path, None, data, raw.encode())
    with pytest.raises(error, match="twice"):
        read(path)


# -- what a file is: regular, bounded, well formed -------------------------------------------------------------

def test_a_fifo_is_refused_without_blocking(kind, tmp_path):
    _, read, error = kind
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    outcome = []

    def run():
        try:
            read(fifo)
        except Exception as e:  # noqa: BLE001 -- the test's point: which exception, and that one comes at all
            outcome.append(e)

    reader = threading.Thread(target=run, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert isinstance(outcome[0], error) and "not a regular file" in str(outcome[0])


@pytest.mark.parametrize("where", ["/dev/zero", "a directory"])
def test_dev_zero_and_a_directory_are_refused(kind, tmp_path, where):
    _, read, error = kind
    with pytest.raises(error, match="not a regular file"):
        read("/dev/zero" if where == "/dev/zero" else tmp_path)


@pytest.mark.parametrize("path", ["model\0.safetensors", 3, None, b"model.safetensors"])
def test_a_path_with_a_nul_byte_or_of_another_type_is_refused(kind, path):
    _, read, error = kind
    with pytest.raises(error, match="NUL|a path must be"):
        read(path)


def test_a_missing_file_is_refused(kind, tmp_path):
    _, read, error = kind
    with pytest.raises(error, match="cannot read: No such file"):
        read(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("where", ["header", "spec"])
def test_deep_nesting_is_refused_without_recursion_error(kind, where):
    path, read, error = kind
    header, data = _split(path)
    deep = "[" * 100_000 + "]" * 100_000
    if where == "header":
        raw = json.dumps(header, separators=(",", ":"))[:-1] + ',"x":' + deep + "}"
        _join(path, None, data, raw.encode())
    else:
        key = next(k for k in header["__metadata__"] if k.endswith("spec"))
        _edit_metadata(path, **{key: '{"input":' + deep + "}"})
    with pytest.raises(error, match="nests deeper than"):
        read(path)


@pytest.mark.parametrize("nest", ['{"a":', "[", '\\"'])
def test_a_long_nest_or_run_of_escapes_in_the_spec_is_refused_within_the_memory_bound(kind, nest):
    """The header's text and the string it holds: twice the file, plus the bound's 64 KiB."""
    path, read, error = kind
    key = next(k for k in _split(path)[0]["__metadata__"] if k.endswith("spec"))
    _edit_metadata(path, **{key: nest * 100_000})  # inside the header's string: 100,000 to 300,000 escapes
    peak = _peak(lambda: pytest.raises(error, read, path))
    assert peak < 2 * path.stat().st_size + 2**16, f"{peak} bytes spent refusing a {path.stat().st_size}-byte file"


def test_a_header_that_is_not_ascii_is_refused_within_the_memory_bound(kind):
    """Decoding UTF-8 may build a str of 4 bytes a character before it fails; an ASCII check in place does not."""
    path, read, error = kind
    header, data = _split(path)
    key = next(k for k in header["__metadata__"] if k.endswith("spec"))
    header["__metadata__"][key] = "x" * 400_000 + "\U0001f600"
    raw = json.dumps(header, ensure_ascii=False).encode()
    _join(path, None, data[:8], raw)
    peak = _peak(lambda: pytest.raises(error, read, path))
    with pytest.raises(error, match="corrupt header: not ASCII text"):
        read(path)
    assert peak < 2 * path.stat().st_size + 2**16, f"{peak} bytes spent refusing a {path.stat().st_size}-byte file"


@pytest.mark.parametrize("where", ["shape", "spec"])
def test_a_5000_digit_integer_is_refused(kind, where):
    path, read, error = kind
    header, data = _split(path)
    if where == "shape":
        name = next(k for k in header if k != "__metadata__")
        raw = json.dumps(header, separators=(",", ":"))
        old = json.dumps(header[name]["shape"], separators=(",", ":"))
        raw = raw.replace(f'"shape":{old}', '"shape":[' + "9" * 5000 + "]", 1)
        _join(path, None, data, raw.encode())
    else:
        key = next(k for k in header["__metadata__"] if k.endswith("spec"))
        _edit_metadata(path, **{key: header["__metadata__"][key].replace('"features":3', '"features":' + "7" * 5000)})
    with pytest.raises(error, match="5000-character integer"):
        read(path)


@pytest.mark.parametrize("dtype", ["F16", "X9", 7])
def test_an_unknown_dtype_is_refused_naming_it(kind, dtype):
    path, read, error = kind
    header, data = _split(path)
    name = next(k for k in header if k != "__metadata__")
    header[name]["dtype"] = dtype
    _join(path, header, data)
    with pytest.raises(error, match=f"dtype {dtype!r} is not one rnnedge stores"):
        read(path)


@pytest.mark.parametrize("lie, says", [
    ("overlap", "overlap or leave a gap"),
    ("gap", "overlap or leave a gap"),
    ("beyond the end", "truncated"),
    ("short of the end", "bytes after the last tensor"),
    ("reversed", "data_offsets"),
])
def test_offsets_that_overlap_leave_a_gap_or_miss_the_end_are_refused(kind, lie, says):
    path, read, error = kind
    header, data = _split(path)
    entries = sorted((e["data_offsets"], name) for name, e in header.items() if name != "__metadata__")
    (b0, e0), first = entries[0]
    (b1, e1), second = entries[1]
    if lie == "overlap":
        header[second]["data_offsets"] = [b1 - 4, e1 - 4]
    elif lie == "gap":
        header[second]["data_offsets"] = [b1 + 4, e1 + 4]
    elif lie == "beyond the end":
        data = data[:-4]
    elif lie == "short of the end":
        data += b"\0" * 4
    else:
        header[first]["data_offsets"] = [e0, b0]
    _join(path, header, data)
    with pytest.raises(error, match=says):
        read(path)


@pytest.mark.parametrize("lie", ["longer than the file", "longer than MAX_HEADER"])
def test_a_header_length_lie_is_refused_before_reading_it(kind, lie):
    path, read, error = kind
    data = bytearray(path.read_bytes())
    if lie == "longer than the file":
        data[:8] = struct.pack("<Q", len(data))
        path.write_bytes(bytes(data))
        says = "truncated: the header says"
    else:
        data[:8] = struct.pack("<Q", sealed.MAX_HEADER + 8)
        path.write_bytes(bytes(data))
        os.truncate(path, sealed.MAX_HEADER + 64)  # sparse: no disk, no time
        says = "longer than any rnnedge writes"
    tracemalloc.start()
    with pytest.raises(error, match=says):
        read(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**20


def test_seeded_mutations_raise_only_the_documented_error_or_load_unchanged(kind):
    """Bit flips anywhere, truncations and length lies: refused with the file's one exception, or (a flip in header
    padding) loaded with identical contents."""
    path, read, error = kind
    clean = path.read_bytes()
    expected = read(path)
    rng = np.random.default_rng(13)
    n = struct.unpack("<Q", clean[:8])[0]
    for _ in range(300):
        data = bytearray(clean)
        how = rng.integers(4)
        if how == 0:  # a bit in the header
            i = int(rng.integers(8, 8 + n))
            data[i] ^= 1 << int(rng.integers(8))
        elif how == 1:  # a bit anywhere
            i = int(rng.integers(len(data)))
            data[i] ^= 1 << int(rng.integers(8))
        elif how == 2:
            data = data[: int(rng.integers(len(data)))]
        else:
            data[:8] = struct.pack("<Q", int(rng.integers(2**63)))
        path.write_bytes(bytes(data))
        try:
            got = read(path)
        except error:
            continue
        assert _same(got, expected), f"a mutated file loaded with other contents (mutation {how})"


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


# -- size claims: refused before allocating ---------------------------------------------------------------------

def _claim(path: Path, spec_text: str, table: dict, data: bytes = b"") -> None:
    """A weight file whose header claims `table` (name -> (dtype, shape)) laid out back to back over `data`."""
    header, offset = {}, 0
    for name, (dtype, shape) in table.items():
        n = int(np.prod(shape, dtype=np.int64)) * sealed.DTYPES[dtype].itemsize
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"rnnedge.format": str(artifact.FORMAT_VERSION), "rnnedge.precision": "f32",
                              "rnnedge.spec": spec_text, "rnnedge.sha256": "0" * 64}
    _join(path, header, data)


def _peak(run) -> int:
    tracemalloc.start()
    try:
        run()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_header_claiming_300_million_features_is_refused_with_little_memory(tmp_path):
    path = tmp_path / "model.f32.safetensors"
    spec = {"version": 1, "input": {"kind": "dense", "features": 300_000_000},
            "layers": [{"cell": "gru", "hidden": 4}], "head": {"out": 2, "on": "every_step"}}
    _claim(path, json.dumps(spec), {"layers.0.fwd.w_ih": ("F32", (12, 300_000_000))})
    with pytest.raises(ArtifactError, match=r"input.features must be a positive integer, got 300000000 \(at most "
                                            r"65536\)"):
        artifact.read(path)
    assert _peak(lambda: pytest.raises(ArtifactError, artifact.read, path)) < 2**20


def test_a_legal_spec_claiming_a_gigabyte_the_file_lacks_is_refused_before_allocating(tmp_path):
    path = tmp_path / "model.f32.safetensors"
    spec = specs.validate({"version": 1, "input": {"kind": "tokens", "vocab": 2**20, "embed_dim": 255},
                           "layers": [{"cell": "rnn_tanh", "hidden": 1}], "head": {"out": 1, "on": "every_step"}})
    table = {name: ("F32", shape) for name, (shape, _) in file_tensors.artifact_tensors(spec, "f32").items()}
    _claim(path, specs.dumps(spec), table)
    peak = _peak(lambda: pytest.raises(ArtifactError, artifact.read, path))
    with pytest.raises(ArtifactError, match="truncated: tensor embedding.weight ends at byte"):
        artifact.read(path)
    assert peak < 2**20, f"{peak} bytes spent refusing a {path.stat().st_size}-byte file"


def test_a_spec_over_the_parameter_cap_is_refused():
    with pytest.raises(specs.SpecError, match="more than MAX_PARAMETERS"):
        specs.validate({"version": 1, "input": {"kind": "tokens", "vocab": 2**20, "embed_dim": 2**20},
                        "layers": [{"cell": "gru", "hidden": 4}], "head": {"out": 2, "on": "every_step"}})


def test_reading_a_large_clean_file_peaks_below_twice_its_size(tmp_path):
    spec = _spec("lstm", features=64, hidden=600, out=8)
    path = _weights(tmp_path, spec)
    size = path.stat().st_size
    assert size > 5 * 2**20
    peak = _peak(lambda: artifact.read(path))
    assert peak < 2 * size, f"peak {peak} bytes reading a {size}-byte file"


# -- a clean file ------------------------------------------------------------------------------------------------

def test_a_clean_file_loads_and_runs_bit_identically(tmp_path):
    spec = _spec("lstm")
    tensors = _tensors(spec)
    artifact.write(tmp_path / "m.safetensors", tensors, spec, "f32")
    read_spec, precision, read_tensors = artifact.read(tmp_path / "m.safetensors")
    assert read_spec == spec and precision == "f32" and _same(read_tensors, tensors)
    X = np.random.default_rng(2).standard_normal((2, 30, 3)).astype(np.float32)
    assert np.array_equal(Model(read_spec, precision, read_tensors).run(X), Model(spec, "f32", tensors).run(X))


def test_the_safetensors_library_opens_both_kinds_of_file(kind):
    path, read, _ = kind
    loaded = read(path)
    tensors = loaded[2] if isinstance(loaded, tuple) and len(loaded) == 3 else loaded[1]
    with safe_open(path, "np") as f:
        assert set(f.keys()) == set(tensors)
        for name in f.keys():  # noqa: SIM118 -- safe_open is not a dict
            assert np.array_equal(f.get_tensor(name), tensors[name])
        assert len(f.metadata()) == (len(artifact.KEYS) if read is artifact.read else 8)


# -- a sealed file of another tool: whatever read accepts, the runtime can build ----------------------------------

def test_a_validly_sealed_int8_file_whose_sums_could_overflow_is_refused_by_read(tmp_path):
    spec = _spec("gru")
    tensors = random_int8_tensors(spec, np.random.default_rng(0), hot=False)
    tensors["head.bias"][0] = -(2**31 - 1)  # |bias| + sum |w| * 2^15 >= 2^31
    path = tmp_path / "m.int8.safetensors"
    sealed.write(path, artifact.DOMAIN, artifact.DIGEST_KEY, artifact.metadata(spec, "int8"), tensors)
    with pytest.raises(ArtifactError, match="row 0 of head.weight could overflow its int32 sum"):
        artifact.read(path)


def test_a_validly_sealed_file_its_precision_cannot_run_is_refused_by_read(tmp_path):
    spec = _spec("gru", activations=[{"fn": "hardsigmoid"}, {"fn": "tanh"}])
    tensors = random_int8_tensors(spec, np.random.default_rng(0), hot=False)
    path = tmp_path / "m.int8.safetensors"
    sealed.write(path, artifact.DOMAIN, artifact.DIGEST_KEY, artifact.metadata(spec, "int8"), tensors)
    with pytest.raises(ArtifactError, match=r"int8 cannot run this model: layers\[0\]: activations"):
        artifact.read(path)
