"""Mutations of a safetensors file (a weight file or a vectors file): each takes the file's bytes and a seeded numpy
Generator and returns (mutated bytes, a note saying what it did). Same bytes and seed, same mutation.

Four families: bytes (truncation, bit flips, insertions, deletions, length-field lies), header (the JSON object and
its __metadata__ map), spec (any metadata value that is JSON text: the spec, a vectors file's state_layout) and
tensors (the entries that locate each tensor, and re-packed tensor data). Edits of the JSON re-serialise the header
and, now and then, leave the old length field in place (a lie). A mutator that needs a parsable header falls back to
a header bit flip when a stacked mutation has already broken it.
"""

from __future__ import annotations

import json

import numpy as np
from safetensors.numpy import load

from rnnedge.runtime import spec as specs
from tests.fuzz.jsontext import Pairs, Raw, dump, frame, pack, parse_header, split

HUGE_INTS = (2**63, -(2**63), 2**64, 2**64 - 1, 2**31, 2**32, 3 * 10**8, 10**12, 10**18)
NUMBER_EDITS = HUGE_INTS + (Raw("9" * 5000), Raw("-" + "7" * 5000), 0, -1, True, False, None, Raw("NaN"),
                            Raw("Infinity"), Raw("-Infinity"), 1e308, Raw("1e309"), Raw("1E400"), 5e-324, -0.0,
                            Raw("-0"), Raw("1e2"), "8")
STRING_EDITS = ("", " ", "none", "None", "NONE", "null", "0", "\u0000", "\ud800", "x" * 300, 1, None, [], {},
                '"' * 3000, "\\" * 3001, "\\u0041" * 1000)
ENUMS = {"cell": specs.CELLS, "kind": ("dense", "tokens"), "on": specs.HEAD_ON, "task": specs.TASKS,
         "activation": specs.ACTIVATIONS + specs.HIDDEN_ACTIVATIONS, "fn": tuple(specs.ACTIVATION_FNS)}
META_STRINGS = ("", "1", "2", "3", "0", "01", " 1", "1 ", "1.0", "+1", "-1", "1e0", "\u0661", "\u00b2", "\uff11",
                "NaN", "null", "true", "[]", "{}", "f32", "int8w", "int8", "F32", "int16", "0" * 64, "g" * 64,
                "a" * 63, "A" * 64, "9" * 5000, "6", "7", "5")
DTYPES = ("F16", "BF16", "F64", "I64", "U8", "U16", "U32", "U64", "I8", "I16", "I32", "F32", "BOOL", "F8_E4M3",
          "F8_E5M2", "C64", "f32", "", "XX", "F32 ", "F 32", 1, None, ["F32"])
SAME_SIZE_DTYPES = {"F32": ("I32", "U32"), "I32": ("F32", "U32"), "I8": ("U8", "BOOL", "F8_E4M3"), "I16": ("F16",
                    "U16", "BF16"), "I64": ("F64", "U64"), "F16": ("I16", "BF16")}
TENSOR_NAMES = ("extra", "head.weight2", "Head.weight", "head.weight ", "layers.0.fwd.p", "layers.0.fwd.h0",
                "layers.0.fwd.scale", "layers.1.fwd.w_ih", "layers.0.bwd.w_ih", "embedding.weight",
                "head.hidden.1.weight", "input.scale", "__metadata__x", "", "input_q", "logits_q", "state2")


def pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _header_span(data: bytes) -> tuple[int, int]:
    """[start, end) of the header JSON in data (the whole file after the length field when it lies)."""
    parts = split(data)
    end = 8 + parts[0] if parts else len(data)
    return min(8, len(data)), max(end, min(8, len(data)))


def _flip(data: bytes, lo: int, hi: int, rng, bits: int) -> tuple[bytes, str]:
    if hi <= lo:
        return data, "nothing to flip"
    out = bytearray(data)
    where = []
    for _ in range(bits):
        i, b = int(rng.integers(lo, hi)), int(rng.integers(8))
        out[i] ^= 1 << b
        where.append(f"{i}.{b}")
    return bytes(out), "bits " + ",".join(where)


# -- bytes --------------------------------------------------------------------------------------------

def truncate_tiny(data, rng):
    n = int(rng.integers(0, 9))
    return data[:n], f"keep {n} bytes"


def truncate_header(data, rng):
    lo, hi = _header_span(data)
    n = int(rng.integers(lo, max(hi, lo + 1)))
    return data[:n], f"keep {n} of {len(data)} bytes (inside the header)"


def truncate_body(data, rng):
    _, hi = _header_span(data)
    n = int(rng.integers(hi, max(len(data), hi + 1)))
    return data[:n], f"keep {n} of {len(data)} bytes (inside the data)"


def truncate_end(data, rng):
    k = int(rng.integers(1, 17))
    return data[:-k], f"drop the last {k} bytes"


def flip_header_bit(data, rng):
    return _flip(data, *_header_span(data), rng, 1)


def flip_header_bits(data, rng):
    return _flip(data, *_header_span(data), rng, int(rng.integers(2, 9)))


def flip_body_bit(data, rng):
    return _flip(data, _header_span(data)[1], len(data), rng, 1)


def flip_body_bits(data, rng):
    return _flip(data, _header_span(data)[1], len(data), rng, int(rng.integers(2, 9)))


def header_bit_at(data, rng):
    """The one header bit whose index is the case's seed (Case.seed, read back from the Generator): seeds 0 ..
    8 x header length - 1 flip every header bit once (engine.header_flip_cases)."""
    i = int(rng.bit_generator.seed_seq.entropy)
    lo, hi = _header_span(data)
    if not lo <= lo + i // 8 < hi:
        return data, f"bit {i} is past the header"
    out = bytearray(data)
    out[lo + i // 8] ^= 1 << (i % 8)
    return bytes(out), f"header byte {i // 8} bit {i % 8}"


def flip_length_bit(data, rng):
    return _flip(data, 0, min(8, len(data)), rng, 1)


def flip_any_bits(data, rng):
    return _flip(data, 0, len(data), rng, int(rng.integers(1, 5)))


def _random_bytes(rng, n: int) -> bytes:
    return bytes(pick(rng, b' \x00\xff{}"\\,:0\xc3[') if rng.random() < 0.5 else int(rng.integers(256))
                 for _ in range(n))


def insert_bytes(data, rng):
    i, k = int(rng.integers(0, len(data) + 1)), int(rng.integers(1, 17))
    return data[:i] + _random_bytes(rng, k) + data[i:], f"insert {k} bytes at {i}"


def insert_header_bytes(data, rng):
    """Into the header, with the length field fixed half of the time."""
    lo, hi = _header_span(data)
    i, k = int(rng.integers(lo, hi + 1)), int(rng.integers(1, 9))
    out = data[:i] + _random_bytes(rng, k) + data[i:]
    fix = rng.random() < 0.5 and len(data) >= 8
    if fix:
        out = ((int.from_bytes(out[:8], "little") + k) % 2**64).to_bytes(8, "little") + out[8:]
    return out, f"insert {k} bytes at {i}, length {'fixed' if fix else 'kept'}"


def delete_bytes(data, rng):
    i, k = int(rng.integers(0, max(len(data), 1))), int(rng.integers(1, 17))
    return data[:i] + data[i + k :], f"delete {k} bytes at {i}"


def delete_header_bytes(data, rng):
    lo, hi = _header_span(data)
    i, k = int(rng.integers(lo, max(hi, lo + 1))), int(rng.integers(1, 9))
    k = max(0, min(k, hi - i))
    out = data[:i] + data[i + k :]
    fix = rng.random() < 0.5 and len(data) >= 8
    if fix:
        out = ((int.from_bytes(out[:8], "little") - k) % 2**64).to_bytes(8, "little") + out[8:]
    return out, f"delete {k} bytes at {i}, length {'fixed' if fix else 'kept'}"


def append_bytes(data, rng):
    k = int(rng.integers(1, 65))
    return data + _random_bytes(rng, k), f"append {k} bytes"


def length_lie(data, rng):
    n = split(data)[0] if split(data) else len(data) - 8
    lie = pick(rng, (n + int(rng.integers(1, 9)), n - int(rng.integers(1, 9)), 0, 1, 2**63, 2**64 - 1, 2**32,
                     2**31 - 1, len(data), len(data) - 7, n + 8, n - 8))
    return (lie % 2**64).to_bytes(8, "little") + data[8:], f"length field {n} -> {lie % 2**64}"


def header_byte(data, rng):
    """One header byte replaced by a JSON-significant or non-UTF-8 one, length unchanged."""
    lo, hi = _header_span(data)
    if hi <= lo:
        return data, "no header"
    i = int(rng.integers(lo, hi))
    b = pick(rng, b'"\\{}[],:\x00\xff\xc3 0-.eE')
    return data[:i] + bytes([b]) + data[i + 1 :], f"byte {i} -> {bytes([b])!r}"


# -- header JSON ----------------------------------------------------------------------------------------

def _reframe(text: str, body: bytes, old: bytes, rng, lie: bool = True) -> tuple[bytes, str]:
    """The header re-serialised; with `lie`, 15% keep the old length field; padding as safetensors writes it."""
    raw = text.encode("utf-8", "surrogatepass")
    raw += b" " * int(rng.integers(0, 8)) if rng.random() < 0.5 else b""
    if lie and rng.random() < 0.15 and split(old):
        return frame(raw, body, split(old)[0]), "old length kept"
    return frame(raw, body), "length fixed"


def _on_header(edit, lie: bool = True):
    """A mutator from edit(header dict, rng) -> (new header object, note) with the file re-framed."""
    def mutator(data, rng):
        parsed = parse_header(data)
        if parsed is None:
            out, note = flip_header_bit(data, rng)
            return out, "unparsable header, fell back to " + note
        header, body = parsed
        new, note = edit(header, rng)
        out, how = _reframe(dump(new), body, data, rng, lie)
        return out, f"{note}; {how}"
    mutator.__name__ = edit.__name__
    mutator.__doc__ = edit.__doc__
    return mutator


def _meta(header: dict) -> dict:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict):
        meta = header["__metadata__"] = {}
    return meta


def _mutated_key(key: str, rng) -> str:
    i = int(rng.integers(len(key))) if key else 0
    how = int(rng.integers(4))
    if how == 0 and key:
        return key[:i] + key[i].swapcase() + key[i + 1 :] if key[i].swapcase() != key[i] else key + "_"
    if how == 1:
        return key[:i] + pick(rng, "xX_ .-0") + key[i:]
    if how == 2 and len(key) > 1:
        return key[:i] + key[i + 1 :]
    return pick(rng, (key.upper(), key + "s", " " + key, key + " ", key.replace(".", "_") + "x"))


@_on_header
def meta_add_key(header, rng):
    meta = _meta(header)
    key = pick(rng, ("rnnedge.extra", "rnnedge.spec2", "rnnedge.format2", "x", "", "rnnedge.vectors.extra",
                     "rnnedge.sha256 ", "format", "spec", "rnnedge.digest", "rnnedge.seal"))
    meta[key] = pick(rng, ("1", "", "x", json.dumps({"clip": 3.0}), "0" * 64))
    return header, f"metadata + {key!r}"


@_on_header
def meta_remove_key(header, rng):
    meta = _meta(header)
    if not meta:
        return header, "no metadata"
    key = pick(rng, sorted(meta))
    del meta[key]
    return header, f"metadata - {key!r}"


@_on_header
def meta_rename_key(header, rng):
    meta = _meta(header)
    if not meta:
        return header, "no metadata"
    key = pick(rng, sorted(meta))
    new = _mutated_key(key, rng)
    meta[new] = meta.pop(key)
    return header, f"metadata {key!r} -> {new!r}"


@_on_header
def meta_value(header, rng):
    meta = _meta(header)
    if not meta:
        return header, "no metadata"
    key = pick(rng, sorted(meta))
    old = meta[key] if isinstance(meta[key], str) else ""
    new = pick(rng, META_STRINGS + (old + "0", old[:-1], old.upper(), old + " ", " " + old, old + "\n",
                                    meta[pick(rng, sorted(meta))]))
    meta[key] = new
    return header, f"metadata {key!r} = {new[:40]!r}"


@_on_header
def meta_value_type(header, rng):
    meta = _meta(header)
    if not meta:
        return header, "no metadata"
    key = pick(rng, sorted(meta))
    new = pick(rng, (1, None, [], {}, True, 1.5, [meta[key]], Raw("NaN")))
    meta[key] = new
    return header, f"metadata {key!r} = {new!r}"


@_on_header
def meta_not_object(header, rng):
    new = pick(rng, ([], None, "x", 1, [header.get("__metadata__")], Raw("NaN")))
    header["__metadata__"] = new
    return header, f"__metadata__ = {new!r}"


@_on_header
def header_not_object(header, rng):
    new = pick(rng, ([], None, "x", 1, [header], {}, Raw("[" * 50000 + "]" * 50000)))
    return new, f"header = {new!r}"[:80]


@_on_header
def header_duplicate_key(header, rng):
    """A key written twice (Python's json keeps the last, other parsers may keep the first or refuse)."""
    keys = sorted(header)
    if not keys:
        return header, "empty header"
    key = pick(rng, keys)
    other = json.loads(json.dumps(header[key]))
    if isinstance(other, dict) and other:
        k = pick(rng, sorted(other))
        other[k] = pick(rng, ("1", "", other[k]) if isinstance(other[k], str) else ([0, 1], [], "F32"))
    first = rng.random() < 0.5
    pairs = Pairs()
    for k in keys:
        if k == key and first:
            pairs.append((k, other))
        pairs.append((k, header[k]))
        if k == key and not first:
            pairs.append((k, other))
    return pairs, f"{key!r} twice (changed copy {'first' if first else 'last'})"


@_on_header
def meta_duplicate_key(header, rng):
    meta = _meta(header)
    if not meta:
        return header, "no metadata"
    key = pick(rng, sorted(meta))
    other = pick(rng, ("1", "2", "", f"{meta[key]} ", pick(rng, META_STRINGS)))
    first = rng.random() < 0.5
    pairs = Pairs()
    for k, v in meta.items():
        if k == key and first:
            pairs.append((k, other))
        pairs.append((k, v))
        if k == key and not first:
            pairs.append((k, other))
    header["__metadata__"] = pairs
    return header, f"metadata {key!r} twice, other value {other[:20]!r} {'first' if first else 'last'}"


def _shuffled(value, rng):
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: _shuffled(value[k], rng) for k in keys}
    return value


def _ws(rng):
    return lambda: pick(rng, ("", "", " ", "\n", "\t", "  ", "\r\n"))


def header_reformat(data, rng):
    """Semantic no-op: keys reordered and whitespace between tokens; length fixed."""
    parsed = parse_header(data)
    if parsed is None:
        return flip_header_bit(data, rng)
    header, body = parsed
    text = dump(_shuffled(header, rng), _ws(rng))
    return frame(text, body), "keys shuffled, whitespace added"


def header_bom(data, rng):
    parts = split(data)
    if parts is None:
        return data, "no header"
    return frame(b"\xef\xbb\xbf" + parts[1], parts[2]), "UTF-8 byte order mark before the header"


def repack(data, rng):
    """Semantic no-op: the tensors and metadata written again by safetensors."""
    parsed = parse_header(data)
    if parsed is None or not isinstance(parsed[0].get("__metadata__"), dict):
        return flip_header_bit(data, rng)
    try:
        return pack(load(data), parsed[0]["__metadata__"]), "re-packed"
    except Exception:  # noqa: BLE001 - a stacked mutation broke the file: fall back as the other mutators do
        return flip_header_bit(data, rng)
