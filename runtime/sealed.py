"""The sealed safetensors container shared by weight files (runtime/artifact.py) and golden-vectors files
(export/vectors.py): one bounded reader, one writer, and the digest that seals header and tensors together.

Layout (safetensors, readable by the `safetensors` library): an 8-byte little-endian header length N, N bytes of
JSON {"__metadata__": {key: string}, name: {"dtype": D, "shape": [...], "data_offsets": [begin, end]}, ...}, then
the data section, each tensor's bytes (little-endian, C order) at [begin, end) from its start.

Reading (`SealedFile`) goes in this order, so that nothing is allocated, read or hashed that the file's size and a
checked header do not justify:

 1. the path is a str or os.PathLike without NUL; it is opened O_NONBLOCK (a FIFO cannot block) and fstat'ed:
    only a regular file is read (not a directory, FIFO, device or socket).
 2. N <= MAX_HEADER and N <= size - 8; the header is ASCII (rnnedge writes every string in it so: the spec with
    JSON escapes, names and digests plain) and parses as JSON within strict_json's bounds (HEADER_MAX_DEPTH,
    HEADER_MAX_VALUES); its form: metadata maps strings to strings, every tensor entry has exactly dtype (one of
    DTYPES), shape (at most MAX_DIMS non-negative ints) and data_offsets.
 3. the caller reads the metadata's meaning and passes the table it expects to `check_table`: names, dtypes and
    shapes must match exactly, each tensor's span must hold exactly its bytes, and the spans must tile the data
    section from 0 without gap or overlap, ending at the end of the file.
 4. `read_tensors` then reads the data section once into one buffer that every returned array is a view of:
    peak memory is the file's size plus the parsed header.

The digest (`digest`): SHA-256 over a domain name, every metadata key and value but the digest's own, and every
tensor (name, dtype, shape, bytes), each field prefixed with its length, keys and names in sorted order. The
reader derives everything it uses from sealed fields, so a change to any bit that carries meaning fails it.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from typing import Self

import numpy as np
from safetensors.numpy import save

from rnnedge.runtime import strict_json
from rnnedge.runtime.spec import MAX_HEAD_LAYERS, MAX_LAYERS
from rnnedge.runtime.strict_json import short

# The largest legal header holds a spec at its caps: a token model's `chars`, 2^20 characters of at most 14 bytes
# each once escaped twice (\\ud83d\\ude00 inside the metadata string), 14.7 MB; a dense model's mean and std, 2 x
# 2^16 floats of at most 25 bytes, 3.3 MB; plus a tensor table of at most MAX_TENSORS entries (under 1 MB).
# 16 MiB holds either; a longer header is refused before it is read.
MAX_HEADER = 16 * 2**20
MAX_TENSORS = 16 * (MAX_LAYERS + MAX_HEAD_LAYERS) * 2  # int8 stores at most 11 per layer direction, 5 per head layer
MAX_DIMS = 4
HEADER_MAX_DEPTH = 3  # header > tensor entry > shape
HEADER_MAX_VALUES = 16 * MAX_TENSORS + 64  # keys and values of every entry (at most 14 each) and the metadata
DTYPES = {"F32": np.dtype("<f4"), "I8": np.dtype("i1"), "I16": np.dtype("<i2"), "I32": np.dtype("<i4"),
          "I64": np.dtype("<i8")}  # the safetensors dtypes rnnedge stores


def digest(domain: str, metadata: dict[str, str], tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 (hex) sealing a file's metadata (without the digest's own key) and its tensors (module docstring)."""
    h = hashlib.sha256()
    _field(h, domain.encode())
    _field(h, str(len(metadata)).encode())
    for key in sorted(metadata):
        _field(h, key.encode("utf-8", "surrogatepass"))
        _field(h, metadata[key].encode("utf-8", "surrogatepass"))
    _field(h, str(len(tensors)).encode())
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        _field(h, name.encode("utf-8", "surrogatepass"))
        _field(h, arr.dtype.str.encode())
        _field(h, ",".join(str(n) for n in arr.shape).encode())
        _field(h, memoryview(arr.reshape(-1)).cast("B"))
    return h.hexdigest()


def _field(h, data) -> None:
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def write(path: str | os.PathLike, domain: str, digest_key: str, metadata: dict[str, str],
          tensors: dict[str, np.ndarray]) -> str:
    """Seal metadata and tensors under digest_key and write the file; returns the digest."""
    tensors = {name: np.ascontiguousarray(arr) for name, arr in tensors.items()}
    sha = digest(domain, metadata, tensors)
    data = save(tensors, metadata={**metadata, digest_key: sha})
    with open(path, "wb") as f:
        f.write(data)
    return sha


class SealedFile:
    """An open container whose header has been read within bounds and checked for form, not yet for meaning.

    `path` (str), `metadata` (key -> string); then check_table(expected, against) and read_tensors(). A context
    manager: the file stays open (the same inode) from the header to the data. Every refusal is `error`.
    """

    def __init__(self, path, error: type[ValueError]):
        self.error = error
        self.path = _checked_path(path, error)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise error(f"{self.path}: cannot read: {e.strerror}") from None
        except UnicodeEncodeError:
            raise error(f"{short(self.path)}: cannot read: the path is not valid in the file system's encoding") \
                from None
        try:
            mode = os.fstat(fd)
            if not stat.S_ISREG(mode.st_mode):
                raise error(f"{self.path}: not a regular file (a directory, FIFO, device or socket is not read)")
            os.set_blocking(fd, True)  # O_NONBLOCK served the open; a regular file's reads never wait anyway
            self._file = os.fdopen(fd, "rb", buffering=0)
        except BaseException:
            os.close(fd)
            raise
        try:
            self._read_header(mode.st_size)
        except BaseException:
            self._file.close()
            raise
        self._expected: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()

    def _read_header(self, size: int) -> None:
        error, path = self.error, self.path
        if size < 8:
            raise error(f"{path}: truncated: {size} bytes is shorter than a safetensors header")
        n = int.from_bytes(self._read_exact(8, 0), "little")
        if n > size - 8:
            raise error(f"{path}: truncated: the header says {n} bytes, the file has {size - 8} after its length")
        if n > MAX_HEADER:
            raise error(f"{path}: a header of {n} bytes is longer than any rnnedge writes (at most {MAX_HEADER})")
        raw = self._read_exact(n, 8)
        if not raw.isascii():  # checked in place: decoding other text may first build a str of 4 bytes a character
            raise error(f"{path}: corrupt header: not ASCII text (rnnedge writes its headers in ASCII)")
        text = raw.decode("ascii")
        del raw
        header = strict_json.loads(text, f"{path}: corrupt header", error, HEADER_MAX_DEPTH, HEADER_MAX_VALUES)
        del text
        if not isinstance(header, dict):
            raise error(f"{path}: corrupt header: not a JSON object")
        metadata = header.pop("__metadata__", {})
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise error(f"{path}: corrupt header: __metadata__ must map names to strings")
        if len(header) > MAX_TENSORS:
            raise error(f"{path}: the header lists {len(header)} tensors, more than any rnnedge file holds "
                        f"({MAX_TENSORS})")
        self.metadata = metadata
        self.entries = {name: self._entry(name, entry) for name, entry in header.items()}
        self.data_start, self.data_size = 8 + n, size - 8 - n

    def _entry(self, name: str, entry) -> tuple[np.dtype, tuple[int, ...], int, int]:
        where = f"{self.path}: tensor {short(name)}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise self.error(f"{where}: an entry holds exactly dtype, shape and data_offsets, got {short(entry)}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise self.error(f"{where}: dtype {short(dtype)} is not one rnnedge stores ({', '.join(DTYPES)})")
        if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and all(_natural(n) for n in shape)):
            raise self.error(f"{where}: shape {short(shape)} is not a list of at most {MAX_DIMS} non-negative ints")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_natural(n) for n in offsets)
                and offsets[0] <= offsets[1]):
            raise self.error(f"{where}: data_offsets {short(offsets)} is not [begin, end] with 0 <= begin <= end")
        return DTYPES[dtype], tuple(shape), offsets[0], offsets[1]

    def check_table(self, expected: dict[str, tuple[tuple[int, ...], str]], against: str, needs: str) -> None:
        """Compare the tensor table with `expected` (name -> (shape, dtype name)) and the data section's size,
        before any tensor byte is read. Messages name the expectation: against ("the spec (int8)") and needs
        ("int8 needs")."""
        error, path = self.error, self.path
        missing = sorted(set(expected) - set(self.entries))
        extra = sorted(set(self.entries) - set(expected), key=str)
        if missing or extra:
            raise error(f"{path}: tensors do not match {against}: missing {missing[:10]}, unexpected "
                        f"{[short(n) for n in extra[:10]]}")
        for name, (shape, dtype) in expected.items():
            have_dtype, have_shape, _, _ = self.entries[name]
            if have_shape != tuple(shape):
                raise error(f"{path}: tensor {name} has shape {have_shape}, {against} says {tuple(shape)}")
            if have_dtype != np.dtype(dtype):
                raise error(f"{path}: tensor {name} is {have_dtype.name}, {needs} {dtype}")
        position = 0
        for begin, end, name in sorted((b, e, name) for name, (_, _, b, e) in self.entries.items()):
            dtype, shape, _, _ = self.entries[name]
            if begin != position:
                raise error(f"{path}: tensor {name} starts at byte {begin} of the data section, expected {position}: "
                            "tensors overlap or leave a gap")
            if end - begin != math.prod(shape) * dtype.itemsize:
                raise error(f"{path}: tensor {name} spans {end - begin} bytes, its shape {shape} and dtype "
                            f"{dtype.name} need {math.prod(shape) * dtype.itemsize}")
            if end > self.data_size:
                raise error(f"{path}: truncated: tensor {name} ends at byte {end} of the data section, which holds "
                            f"{self.data_size}")
            position = end
        if position != self.data_size:
            raise error(f"{path}: {self.data_size - position} bytes after the last tensor: the data section must end "
                        "with it")
        self._expected = {name: (tuple(shape), np.dtype(dtype)) for name, (shape, dtype) in expected.items()}

    def read_tensors(self) -> dict[str, np.ndarray]:
        """The data section, read once, as arrays (views of one writeable buffer); check_table first."""
        if self._expected is None:
            raise RuntimeError("SealedFile.read_tensors before check_table")
        try:
            buffer = bytearray(self.data_size)  # at most the file's size, which check_table tied to the spec's caps
        except MemoryError:
            raise self.error(f"{self.path}: its {self.data_size} bytes of tensors do not fit in this machine's "
                             "memory") from None
        self._read_into(memoryview(buffer), self.data_start)
        tensors = {}
        for name, (shape, dtype) in self._expected.items():
            _, _, begin, end = self.entries[name]
            tensors[name] = np.frombuffer(buffer, dtype=dtype, count=(end - begin) // dtype.itemsize,
                                          offset=begin).reshape(shape) if end > begin else np.zeros(shape, dtype)
        return tensors

    def _read_exact(self, n: int, offset: int) -> bytearray:
        buffer = bytearray(n)
        self._read_into(memoryview(buffer), offset)
        return buffer

    def _read_into(self, view: memoryview, offset: int) -> None:
        done = 0
        try:
            self._file.seek(offset)
            while done < len(view):
                got = self._file.readinto(view[done:])
                if not got:
                    raise self.error(f"{self.path}: truncated: the file ended while being read")
                done += got
        except OSError as e:
            raise self.error(f"{self.path}: cannot read: {e.strerror}") from None


def _natural(n) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


def _checked_path(path, error: type[ValueError]) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise error(f"a path must be a str or os.PathLike, got {type(path).__name__}")
    try:
        text = os.fspath(path)
    except TypeError as e:
        raise error(f"not a usable path: {e}") from None
    if not isinstance(text, str):
        raise error(f"a path must be text, got {type(text).__name__}")
    if "\0" in text:
        raise error(f"{short(text)}: a path cannot hold a NUL byte")
    return text
