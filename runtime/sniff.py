"""What kind of file a path holds, from its first bytes, so a command given the wrong file can say what it is and
what to do, instead of reading it as a weight file (whose first 8 bytes are a header length: an ONNX file's make
"header says 7308900681292843016 bytes"). Stdlib only; reads at most PEEK bytes (and a zip's directory).

    kind(path) -> "safetensors" | "onnx" | "pytorch" | "npy" | "npz" | "zip" | "text" | "empty" | "unknown"
"""

from __future__ import annotations

import os
import zipfile

PEEK = 4096
# ModelProto's fields (onnx.proto3): number -> wire type (0 varint, 2 length-delimited)
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}
_MAX_IR_VERSION = 64  # ONNX is at IR version 10-11; a larger first varint is not an ir_version


def kind(path: str | os.PathLike) -> str:
    """The kind of file at `path` (module docstring); OSError if it cannot be read."""
    with open(path, "rb") as f:
        head = f.read(PEEK)
    if not head:
        return "empty"
    if head[8:9] == b"{":  # the JSON header; its length (first 8 bytes) is the reader's to check: "truncated"
        return "safetensors"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pytorch"  # torch.save's legacy format: a pickle stream
    if _onnx_fields(head) >= 2:
        return "onnx"
    if _text(head):
        return "text"
    return "unknown"


def _zip_kind(path) -> str:
    """torch.save writes a zip holding <name>/data.pkl; numpy.savez one of .npy members."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "unknown"
    if any(name.endswith("data.pkl") for name in names):
        return "pytorch"
    if names and all(name.endswith(".npy") for name in names):
        return "npz"
    return "zip"


def _onnx_fields(head: bytes) -> int:
    """How many leading protobuf fields of `head` read as an ONNX ModelProto's: its first field is ir_version (a
    small varint); every field's number and wire type must be ModelProto's, and a length must stay in the file."""
    pos, fields = 0, 0
    while pos < len(head) and fields < 4:
        tag, pos = _varint(head, pos)
        if tag is None:
            break
        number, wire = tag >> 3, tag & 7
        if _ONNX_FIELDS.get(number) != wire or (fields == 0 and number != 1):
            return 0
        value, pos = _varint(head, pos)
        if value is None:
            break
        if fields == 0 and not 1 <= value <= _MAX_IR_VERSION:
            return 0
        if wire == 2:
            pos += value
        fields += 1
    return fields


def _varint(data: bytes, pos: int) -> tuple[int | None, int]:
    value = 0
    for shift in range(0, 64, 7):
        if pos >= len(data):
            return None, pos
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    return None, pos


def _text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not a character cut at the end of the peek
            return False
        text = head[: e.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def advice(path: str | os.PathLike, what: str) -> str | None:
    """One sentence for a command that wanted an rnnedge weight file (`what`, e.g. "rnnedge run's MODEL") and was
    given another kind of file: what it is and what to do; None for a safetensors file (the weight file reader
    says what is wrong with it, if anything)."""
    k = kind(path)
    export = f"rnnedge export {os.fspath(path)} --out DIR"
    then = "then give DIR/model.f32.safetensors (or .int8w/.int8 with --precision f32,int8w,int8)"
    if k == "safetensors":
        return None
    if k == "onnx":
        return f"{path} is an ONNX file, not an rnnedge weight file; export it first: {export}, {then}"
    if k == "pytorch":
        return (f"{path} is a PyTorch file (torch.save), not an rnnedge weight file; if it is an rnnedge checkpoint "
                f"(rnnedge train's model.pt), export it first: {export}, {then}; a state_dict of your own module: "
                f"rnnedge export --module FILE.py:CLASS --state-dict {os.fspath(path)} --out DIR")
    if k in ("npy", "npz"):
        return (f"{path} is a numpy .{k} array file, not an rnnedge weight file: {what} is a "
                f"model.<precision>.safetensors written by rnnedge export (input streams come after it)")
    if k == "empty":
        return f"{path} is empty, not an rnnedge weight file"
    described = {"text": "a text file", "zip": "a zip archive"}.get(k, "not a file rnnedge knows")
    return (f"{path} is {described}, not an rnnedge weight file: {what} is a model.<precision>.safetensors written "
            "by rnnedge export")
