"""Mutations of the tensors: the header entries that locate them (dtype, shape, data_offsets lies, entries dropped,
added, renamed) and the tensor data itself re-packed by safetensors (tensors dropped, added, re-typed, reshaped,
values poisoned) with the metadata as it was."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import load

from tests.fuzz.jsontext import pack, parse_header
from tests.fuzz.mutators import DTYPES, SAME_SIZE_DTYPES, TENSOR_NAMES, _mutated_key, _on_header, flip_header_bit, pick


def _entries(header: dict) -> list[str]:
    return sorted(k for k, v in header.items() if k != "__metadata__" and isinstance(v, dict))


def _on_entries(edit):
    """A header mutator from edit(header, names of the tensor entries, rng) -> (header, note)."""
    def on_header(header, rng):
        names = _entries(header)
        if not names:
            return header, "no tensor entries"
        return edit(header, names, rng)
    on_header.__name__ = edit.__name__
    on_header.__doc__ = edit.__doc__
    return _on_header(on_header)


def dtype(header, names, rng):
    """A tensor's dtype: an unknown or unsupported name, or another dtype of the same item size (offsets still add
    up)."""
    name = pick(rng, names)
    old = header[name].get("dtype")
    same = SAME_SIZE_DTYPES.get(old, ())
    new = pick(rng, same) if same and rng.random() < 0.5 else pick(rng, DTYPES)
    header[name]["dtype"] = new
    return header, f"{name}.dtype {old!r} -> {new!r}"


def shape(header, names, rng):
    """A shape lie: a dim +-1, 0, negative, huge; a dim added or dropped; or a reshape with the same element count."""
    name = pick(rng, names)
    old = header[name].get("shape")
    if not isinstance(old, list):
        return header, f"{name} has no shape list"
    new = list(old)
    how = int(rng.integers(5))
    if how == 0 and new:
        i = int(rng.integers(len(new)))
        new[i] = pick(rng, (new[i] + 1, new[i] - 1, 0, -1, 2**40, 2**63, 2**64, 2**32 + new[i], 1.0 * new[i], "3"))
    elif how == 1:
        new.insert(int(rng.integers(len(new) + 1)), pick(rng, (1, 2, 0)))
    elif how == 2 and new:
        new.pop(int(rng.integers(len(new))))
    elif how == 3 and len(new) >= 1:
        n = int(np.prod(new))
        new = pick(rng, ([n], [1, n], [n, 1], new[::-1], [2, n // 2] if n % 2 == 0 else [n]))
    else:
        new = pick(rng, ([], None, [[1]], [2**31, 2**31, 2**31]))
    header[name]["shape"] = new
    return header, f"{name}.shape {old} -> {new}"


def offsets(header, names, rng):
    """A data_offsets lie: shifted, stretched, reversed, empty, past the end, negative, or another tensor's."""
    name = pick(rng, names)
    old = header[name].get("data_offsets")
    if not (isinstance(old, list) and len(old) == 2 and all(isinstance(v, int) for v in old)):
        return header, f"{name} has no offsets pair"
    s, e = old
    d = int(rng.integers(1, 9))
    other = header[pick(rng, names)].get("data_offsets")
    new = pick(rng, ([s + d, e + d], [s - d, e - d], [s, e + d], [s, e - d], [e, s], [s, s], [0, 0], [s, 2**64 - 1],
                     [-1, e], [s, e, 0], [s], [s, 2**63], other, [str(s), e], [float(s), e]))
    header[name]["data_offsets"] = new
    return header, f"{name}.data_offsets {old} -> {new}"


def swap_offsets(header, names, rng):
    """Two tensors' data swapped by swapping their offsets (same dtype and byte size where possible)."""
    a = pick(rng, names)
    size = lambda n: (header[n].get("dtype"), np.diff(header[n].get("data_offsets", [0, 0])).tolist())
    same = [n for n in names if n != a and size(n) == size(a)]
    b = pick(rng, same) if same else pick(rng, names)
    header[a]["data_offsets"], header[b]["data_offsets"] = header[b].get("data_offsets"), header[a].get("data_offsets")
    return header, f"offsets of {a} and {b} swapped"


def drop_entry(header, names, rng):
    name = pick(rng, names)
    del header[name]
    return header, f"entry {name} removed (its bytes stay)"


def alias_entry(header, names, rng):
    """A new entry pointing at an existing tensor's bytes."""
    src = pick(rng, names)
    new = pick(rng, TENSOR_NAMES)
    while new in header:
        new += "x"
    header[new] = dict(header[src])
    return header, f"entry {new!r} aliases {src}"


def rename_entry(header, names, rng):
    name = pick(rng, names)
    new = _mutated_key(name, rng) if rng.random() < 0.7 else pick(rng, TENSOR_NAMES)
    header[new] = header.pop(name)
    return header, f"entry {name} -> {new!r}"


def entry_keys(header, names, rng):
    name = pick(rng, names)
    entry = header[name]
    how = int(rng.integers(3))
    if how == 0:
        entry[pick(rng, ("extra", "Dtype", "offsets", "__metadata__"))] = 1
        return header, f"{name} + an unknown key"
    if how == 1:
        key = pick(rng, sorted(entry))
        del entry[key]
        return header, f"{name} - {key}"
    header[name] = pick(rng, ([], None, "F32", 1))
    return header, f"{name} -> {header[name]!r}"


TENSOR_ENTRY_EDITS = {fn.__name__: _on_entries(fn) for fn in (dtype, shape, offsets, swap_offsets, drop_entry,
                                                              alias_entry, rename_entry, entry_keys)}


# -- re-packed data -------------------------------------------------------------------------------------

def _repacked(edit):
    """A mutator from edit(tensors, rng) -> note: the file packed again (jsontext.pack) with the same metadata."""
    def mutator(data, rng):
        parsed = parse_header(data)
        try:
            tensors = load(data)
            meta = parsed[0]["__metadata__"]
        except Exception:  # noqa: BLE001 - a stacked mutation broke the file: fall back as the other mutators do
            out, note = flip_header_bit(data, rng)
            return out, "not loadable, fell back to " + note
        note = edit(tensors, rng)
        return pack(tensors, meta), note
    mutator.__name__ = "repack_" + edit.__name__
    mutator.__doc__ = edit.__doc__
    return mutator


def drop(tensors, rng):
    name = pick(rng, sorted(tensors))
    del tensors[name]
    return f"tensor {name} removed"


def add(tensors, rng):
    name = pick(rng, TENSOR_NAMES[:-1])
    ref = tensors[pick(rng, sorted(tensors))]
    tensors[name or "x"] = pick(rng, (ref.copy(), np.zeros(3, np.float32), np.ones((2, 2), np.int8),
                                      np.zeros(0, np.float32)))
    return f"tensor {name!r} added"


def retype(tensors, rng):
    name = pick(rng, sorted(tensors))
    new = pick(rng, (np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.float16))
    with np.errstate(over="ignore", invalid="ignore"):  # a cast that overflows is part of the mutation
        tensors[name] = tensors[name].astype(new)
    return f"tensor {name} as {np.dtype(new).name}"


def reshape(tensors, rng):
    name = pick(rng, sorted(tensors))
    arr = tensors[name]
    new = pick(rng, ((arr.size,), (1, arr.size), arr.shape[::-1], arr.shape + (1,)))
    tensors[name] = np.ascontiguousarray(arr.reshape(new))
    return f"tensor {name} {arr.shape} -> {new}"


def poison(tensors, rng):
    """One value changed: NaN, infinity, -128 (outside the narrow int8 range), 0, a sign flip, a huge value."""
    name = pick(rng, sorted(tensors))
    arr = tensors[name].copy()
    if arr.size == 0:
        return f"tensor {name} is empty"
    i = int(rng.integers(arr.size))
    flat = arr.reshape(-1)
    if arr.dtype.kind == "f":
        flat[i] = pick(rng, (np.nan, np.inf, -np.inf, 0.0, -flat[i], flat[i] * 1.5, 3e38, -1.0))
    else:
        info = np.iinfo(arr.dtype)
        flat[i] = pick(rng, [v for v in (info.min, info.max, 0, -1, 1, info.min + 1) if info.min <= v <= info.max])
    tensors[name] = arr
    return f"tensor {name}[{i}] -> {flat[i]!r}"


REPACK_EDITS = {m.__name__: m for m in map(_repacked, (drop, add, retype, reshape, poison))}
