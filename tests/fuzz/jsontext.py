"""A JSON writer that can write what json.dumps refuses to: raw tokens (NaN, 5000-digit integers, deep nesting),
duplicate keys and arbitrary whitespace, and the safetensors framing around a header."""

from __future__ import annotations

import json
import math


class Raw:
    """A JSON token written as it is (a number too long for str(int), NaN, a deeply nested literal)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:40]!r}{'...' if len(self.text) > 40 else ''})"


class Pairs:
    """A JSON object as (key, value) pairs, so a key may appear twice."""

    def __init__(self):
        self.items: list[tuple[str, object]] = []

    def append(self, pair: tuple[str, object]) -> None:
        self.items.append(pair)

    def __iter__(self):
        return iter(self.items)


def dump(value, ws=None) -> str:
    """value as JSON text; ws() gives the whitespace put after each ',' and ':' (none by default).

    Without whitespace, json.dumps writes everything but the Raw and Pairs nodes (in C: most of a case's cost was
    this writer), which go in as placeholders replaced afterwards."""
    if ws is not None:
        return _dump(value, ws)
    parts: dict[str, str] = {}

    def placeholder(node):
        if not isinstance(node, (Raw, Pairs)):
            raise TypeError(f"cannot write {type(node).__name__} as JSON")
        key = f"\x00{len(parts)}\x00"
        parts[json.dumps(key)] = node.text if isinstance(node, Raw) else _dump(node, None)
        return key

    text = json.dumps(value, separators=(",", ":"), default=placeholder)
    for key, part in parts.items():
        text = text.replace(key, part, 1)
    return text


def _dump(value, ws) -> str:
    sep = ws or (lambda: "")
    if isinstance(value, Raw):
        return value.text
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return ("Infinity" if value > 0 else "-Infinity") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (Pairs, dict)):
        items = value if isinstance(value, Pairs) else value.items()
        return "{" + ("," + sep()).join(json.dumps(k) + ":" + sep() + _dump(v, ws) for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ("," + sep()).join(_dump(v, ws) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def split(data: bytes) -> tuple[int, bytes, bytes] | None:
    """(length field, header bytes, the bytes after the header), or None when the file is too short for it."""
    if len(data) < 8:
        return None
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        return None
    return n, data[8 : 8 + n], data[8 + n :]


def parse_header(data: bytes) -> tuple[dict, bytes] | None:
    """(header object, data section) of a file whose header parses as a JSON object, else None."""
    parts = split(data)
    if parts is None:
        return None
    try:
        header = json.loads(parts[1])
    except (ValueError, RecursionError):
        return None
    return (header, parts[2]) if isinstance(header, dict) else None


def frame(header_text: str | bytes, body: bytes, length: int | None = None) -> bytes:
    """A safetensors file: the 8-byte little-endian length (the header's own unless `length` lies), header, body."""
    raw = header_text.encode() if isinstance(header_text, str) else header_text
    n = len(raw) if length is None else length
    return (n % 2**64).to_bytes(8, "little") + raw + body


ST_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32", "int16": "I16",
             "int8": "I8", "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL"}


def pack(tensors: dict, metadata: dict) -> bytes:
    """A safetensors file of numpy arrays, laid out as safetensors writes one (largest items first, then by name,
    header padded to 8 bytes) but with the header written in a fixed order: safetensors.numpy.save orders the
    metadata as a hash map does, differently in each process, and a mutation must replay byte for byte."""
    names = sorted(tensors, key=lambda n: (-tensors[n].dtype.itemsize, n))
    header, chunks, offset = {"__metadata__": metadata}, [], 0
    for name in names:
        raw = tensors[name].tobytes()
        header[name] = {"dtype": ST_DTYPES[tensors[name].dtype.name], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = dump(header).encode()
    return frame(text + b" " * (-len(text) % 8), b"".join(chunks))


def containers(value, path=()) -> list[tuple[tuple, object]]:
    """(path, node) of every dict and list in value, value itself first."""
    out = []
    if isinstance(value, (dict, list)):
        out.append((path, value))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            out += containers(v, path + (k,))
    return out


def leaves(value, path=()) -> list[tuple[tuple, object]]:
    """(path, value) of every scalar (not a dict or list) in value."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(v, path + (k,))]
    if isinstance(value, list):
        return [leaf for k, v in enumerate(value) for leaf in leaves(v, path + (k,))]
    return [(path, value)]


def set_at(root, path: tuple, new):
    """root with the node at path replaced by new (in place unless path is empty)."""
    if not path:
        return new
    node = root
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = new
    return root


def get_at(root, path: tuple):
    for k in path:
        root = root[k]
    return root


def path_text(path: tuple) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path) or "(root)"
