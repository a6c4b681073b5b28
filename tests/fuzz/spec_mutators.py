"""Mutations of the JSON text inside the metadata: the model spec (weight and vectors files) and a vectors file's
state_layout. Each edits the parsed value and writes it back compact, as the writers do, so only the edit differs."""

from __future__ import annotations

import json

from rnnedge.runtime import spec as specs
from tests.fuzz.jsontext import Pairs, Raw, containers, dump, get_at, leaves, path_text, set_at
from tests.fuzz.mutators import ENUMS, NUMBER_EDITS, STRING_EDITS, _meta, _mutated_key, _on_header, _ws, pick


def _json_fields(meta: dict) -> list[tuple[str, object]]:
    """(key, parsed value) of every metadata value that is a JSON object or list, the spec first."""
    out = []
    for key in sorted(meta):
        try:
            value = json.loads(meta[key]) if isinstance(meta[key], str) else None
        except (ValueError, RecursionError):
            continue
        if isinstance(value, (dict, list)):
            out.append((key, value))
    return sorted(out, key=lambda kv: not (isinstance(kv[1], dict) and "layers" in kv[1]))


def _on_json(edit, spec_only: bool = False, ws: bool = False):
    """A mutator from edit(value, rng) -> (new value, note) applied to a JSON field of the metadata (the spec 3 times
    in 4 when there are others)."""
    def on_header(header, rng):
        meta = _meta(header)
        fields = _json_fields(meta)
        if spec_only:
            fields = [kv for kv in fields if isinstance(kv[1], dict) and "layers" in kv[1]]
        if not fields:
            return header, "no JSON field in the metadata"
        key, value = fields[0] if len(fields) == 1 or rng.random() < 0.75 else pick(rng, fields[1:])
        new, note = edit(value, rng)
        meta[key] = dump(new, _ws(rng) if ws else None)
        return header, f"{key}: {note}"
    on_header.__name__ = edit.__name__
    on_header.__doc__ = edit.__doc__
    return _on_header(on_header)


def _dicts(value) -> list[tuple[tuple, dict]]:
    return [(p, node) for p, node in containers(value) if isinstance(node, dict)]


def unknown_key(value, rng):
    """An unknown key in any object of the JSON, at any depth."""
    nodes = _dicts(value)
    if not nodes:
        return value, "no object"
    path, node = pick(rng, nodes)
    key = pick(rng, ("extra", "clip", "activations", "linear_before_reset", "Activation", "units", "x", "",
                     "version", "mean", "head"))
    if key in node:
        key += "_"
    node[key] = pick(rng, (1, 3.0, True, None, "x", [], {}))
    return value, f"{path_text(path)} + {key!r}"


def rename_key(value, rng):
    """One key renamed (a case flip, an extra or missing character): the issue's 'actIvation'."""
    nodes = [(p, n) for p, n in _dicts(value) if n]
    if not nodes:
        return value, "no key"
    path, node = pick(rng, nodes)
    key = pick(rng, sorted(node))
    new = _mutated_key(key, rng)
    items = [(new if k == key else k, v) for k, v in node.items()]
    node.clear()
    node.update(items)
    return value, f"{path_text(path + (key,))} -> {new!r}"


def remove_key(value, rng):
    nodes = [(p, n) for p, n in _dicts(value) if n]
    if not nodes:
        return value, "no key"
    path, node = pick(rng, nodes)
    key = pick(rng, sorted(node))
    del node[key]
    return value, f"{path_text(path + (key,))} removed"


def number(value, rng):
    """A number replaced: huge (2**63, 5000 digits), negative, zero, float for int, bool for int, NaN/Infinity."""
    nums = [(p, v) for p, v in leaves(value) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not nums:
        return value, "no number"
    path, old = pick(rng, nums)
    new = pick(rng, NUMBER_EDITS + (old + 1, old - 1, old * 2, -old, float(old), float(old) + 0.5,
                                    float(old) * (1 + 2**-20)))
    return set_at(value, path, new), f"{path_text(path)} {old!r} -> {new!r}"


def string(value, rng):
    """A string replaced: by another member of its own enumeration (a cell, an activation, head.on ...), or junk."""
    strs = [(p, v) for p, v in leaves(value) if isinstance(v, str)]
    if not strs:
        return value, "no string"
    path, old = pick(rng, strs)
    field = next((k for k in reversed(path) if isinstance(k, str)), "")
    choices = [s for s in ENUMS.get(field, ()) if s != old]
    new = pick(rng, choices) if choices and rng.random() < 0.7 else pick(rng, STRING_EDITS + (old.upper(),))
    return set_at(value, path, new), f"{path_text(path)} {old!r} -> {new!r}"


def type_swap(value, rng):
    """Any node (object, list or scalar) replaced by a value of another type."""
    nodes = [(p, get_at(value, p)) for p, _ in leaves(value)] + containers(value)[1:]
    if not nodes:
        return value, "empty"
    path, old = pick(rng, nodes)
    new = pick(rng, ([], {}, None, "x", 1, [old], {"x": old}, True))
    return set_at(value, path, new), f"{path_text(path)} -> {new!r}"[:120]


def deep_nesting(value, rng):
    """A node replaced by lists or objects nested thousands deep (Python's parser recurses on them)."""
    nodes = containers(value)[1:] + leaves(value)
    path = pick(rng, nodes)[0] if nodes else ()
    d = pick(rng, (10, 100, 1000, 5000, 20000, 100000))
    # objects at most 5000 deep: each level is two escaped quotes in the header, and a reader that visits every
    # escape is slow under tracemalloc (0.1 s per 10,000); escape runs have their own strings (STRING_EDITS)
    raw = Raw("[" * d + "]" * d) if rng.random() < 0.5 else Raw('{"a":' * min(d, 5000) + "1" + "}" * min(d, 5000))
    return set_at(value, path, raw), f"{path_text(path)} nested {d} deep"


def duplicate_key(value, rng):
    """A key written twice in one object, the other value before or after it."""
    nodes = [(p, n) for p, n in _dicts(value) if n]
    if not nodes:
        return value, "no key"
    path, node = pick(rng, nodes)
    key = pick(rng, sorted(node))
    old = node[key]
    other = pick(rng, (1, 2**63, "x", None, [], old * 2 if isinstance(old, (int, float)) and
                       not isinstance(old, bool) else pick(rng, ENUMS.get(key, (0,)))))
    first = rng.random() < 0.5
    pairs = Pairs()
    for k, v in node.items():
        if k == key and first:
            pairs.append((k, other))
        pairs.append((k, v))
        if k == key and not first:
            pairs.append((k, other))
    return set_at(value, path, pairs), f"{path_text(path + (key,))} twice, {other!r} {'first' if first else 'last'}"


def reformat(value, rng):
    """Semantic no-op: the JSON written with whitespace (and keys reordered)."""
    from tests.fuzz.mutators import _shuffled

    return _shuffled(value, rng), "reformatted"


def root(value, rng):
    new = pick(rng, (Raw("[]"), Raw("null"), Raw("1"), Raw('"x"'), Raw("{}"), Raw(""), Raw("{"),
                     Raw(json.dumps(value) + "x"), Raw(json.dumps(value) + " "), Raw(" " + json.dumps(value)),
                     Raw(json.dumps(value) + json.dumps(value)), Raw("\ufeff" + json.dumps(value))))
    return new, f"whole value -> {new!r}"


# -- spec-specific edits ----------------------------------------------------------------------------------

def version(spec, rng):
    new = pick(rng, (0, 1, 2, 3, 4, -1, "3", 3.0, True, None, 2**63, Raw("3e0")))
    old = spec.get("version")
    spec["version"] = new
    return spec, f"version {old!r} -> {new!r}"


def enum(spec, rng):
    """A targeted semantic edit: the cell, an activation, head.on, the input kind or the task."""
    targets = [(p, v) for p, v in leaves(spec) if isinstance(v, str) and p and p[-1] in ENUMS]
    if not targets:
        return spec, "no enumerated field"
    path, old = pick(rng, targets)
    new = pick(rng, [s for s in ENUMS[path[-1]] if s != old])
    return set_at(spec, path, new), f"{path_text(path)} {old!r} -> {new!r}"


def mean_std(spec, rng):
    """input.mean / input.std: one element nudged (one ulp), scaled, zeroed, NaN; a length changed; both removed."""
    inp = spec.get("input")
    if not isinstance(inp, dict) or not isinstance(inp.get("mean"), list) or not isinstance(inp.get("std"), list):
        return spec, "no mean/std"
    key = pick(rng, ("mean", "std"))
    vec = inp[key]
    how = int(rng.integers(5))
    if how == 0 and vec:
        i = int(rng.integers(len(vec)))
        new = pick(rng, (vec[i] * (1 + 2**-23), vec[i] * 2, 0.0, -vec[i], Raw("NaN"), Raw("1e309"), 1e-45, 2**63))
        vec[i] = new
        return spec, f"input.{key}[{i}] -> {new!r}"
    if how == 1:
        vec.append(vec[-1] if vec else 1.0)
        return spec, f"input.{key} one longer"
    if how == 2 and vec:
        vec.pop()
        return spec, f"input.{key} one shorter"
    if how == 3:
        del inp["mean"], inp["std"]
        return spec, "input.mean and input.std removed (defaults 0 and 1)"
    del inp[key]
    return spec, f"input.{key} removed"


def extension(spec, rng):
    """A layer option the file did not have: clip, activations, linear_before_reset, peepholes ... or bidirectional
    flipped."""
    layers = spec.get("layers")
    if not isinstance(layers, list) or not layers or not isinstance(layers[0], dict):
        return spec, "no layers"
    i = int(rng.integers(len(layers)))
    layer = layers[i]
    if not isinstance(layer, dict):
        return spec, f"layers[{i}] is not an object"
    cell = layer.get("cell", "lstm")
    n = specs.FUNCTIONS_PER_CELL.get(cell, 1)
    key = pick(rng, specs.EXTENSIONS + ("bidirectional",))
    values = {"clip": (3.0, 1e-30, 1e308, 0, -1.0, True, "3", 50.0),
              "activations": ([{"fn": f, "alpha": 0.0, "beta": 0.0} for f in specs.DEFAULT_FUNCTIONS.get(cell, [])],
                              [{"fn": "hardsigmoid"}] * n, [{"fn": "relu"}] * (n + 1), [{"fn": "nope"}] * n,
                              [{"fn": "tanh", "gamma": 1}] * n, [], None),
              "bidirectional": (not layer.get("bidirectional", False), 1, "false")}
    new = pick(rng, values.get(key, (True, False, 1, "true", None)))
    layer[key] = new
    return spec, f"layers[{i}].{key} = {new!r}"


def layers(spec, rng):
    """The layer list: one duplicated, removed, a copy appended with another hidden size, or emptied."""
    ls = spec.get("layers")
    if not isinstance(ls, list) or not ls:
        return spec, "no layers"
    how = int(rng.integers(4))
    if how == 0:
        ls.append(json.loads(json.dumps(ls[-1])))
        return spec, "last layer duplicated"
    if how == 1 and len(ls) > 1:
        ls.pop(int(rng.integers(len(ls))))
        return spec, "a layer removed"
    if how == 2 and isinstance(ls[-1], dict):
        ls.append(dict(ls[-1], hidden=pick(rng, (1, 3, 2**20))))
        return spec, "a layer appended"
    spec["layers"] = []
    return spec, "no layers"


def head_hidden(spec, rng):
    head = spec.get("head")
    if not isinstance(head, dict):
        return spec, "no head"
    hidden = head.get("hidden")
    how = int(rng.integers(3))
    if how == 0 or not isinstance(hidden, list) or not hidden:
        head["hidden"] = (hidden if isinstance(hidden, list) else []) + [{"units": pick(rng, (2, 6, 8, 2**31)),
                                                                          "activation": pick(rng, ("relu", "none"))}]
        return spec, "head.hidden + a layer"
    if how == 1:
        hidden.pop()
        return spec, "head.hidden - its last layer"
    hidden[-1]["units"] = pick(rng, (1, 2, 5, 6, 7, 0, 2**40))
    return spec, f"head.hidden[-1].units = {hidden[-1]['units']}"


JSON_EDITS = {fn.__name__: _on_json(fn) for fn in (unknown_key, rename_key, remove_key, number, string, type_swap,
                                                   deep_nesting, duplicate_key, root)}
JSON_EDITS["json_reformat"] = _on_json(reformat, ws=True)
SPEC_EDITS = {fn.__name__: _on_json(fn, spec_only=True) for fn in (version, enum, mean_std, extension, layers,
                                                                  head_hidden)}
