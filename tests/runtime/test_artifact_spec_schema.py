"""The spec a weight file carries is read with a strict schema (runtime/spec.py validate): an unknown key at any
level, a number of the wrong type or out of its bounds is a SpecError naming the field."""

from __future__ import annotations

import copy

import pytest

from rnnedge.runtime import spec as specs

DENSE = {"version": 1, "input": {"kind": "dense", "features": 2, "mean": [0.0, 1.0], "std": [1.0, 2.0]},
         "layers": [{"cell": "gru", "hidden": 3, "activations": [{"fn": "hardsigmoid", "alpha": 0.2, "beta": 0.5},
                                                                 {"fn": "tanh"}]}],
         "head": {"out": 2, "on": "every_step", "hidden": [{"units": 4, "activation": "relu"}]}}
TOKENS = {"version": 1, "input": {"kind": "tokens", "vocab": 3, "embed_dim": 2, "chars": "abc"},
          "layers": [{"cell": "lstm", "hidden": 3}], "head": {"out": 3, "on": "last_step"}}


def _edit(spec: dict, path: tuple, value) -> dict:
    spec = copy.deepcopy(spec)
    node = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return spec


@pytest.mark.parametrize("base, path, value, says", [
    (DENSE, ("note",), "hi", r"spec has unknown keys \['note'\]"),
    (DENSE, ("input", "scale"), 2.0, r"input has unknown keys \['scale'\]"),
    (TOKENS, ("input", "mean"), [0.0], r"input has unknown keys \['mean'\]"),
    (DENSE, ("layers", 0, "window"), 3, r"layers\[0\] has unknown keys \['window'\]"),
    (DENSE, ("head", "bias"), True, r"head has unknown keys \['bias'\]"),
    (DENSE, ("head", "hidden", 0, "dropout"), 0.1, r"head.hidden\[0\] must be .*exactly these keys"),
    (DENSE, ("layers", 0, "activations", 0, "gamma"), 1.0, r"layers\[0\].activations\[0\] has unknown keys \['gamma'\]"),
    (DENSE, ("layers", 0, "activations", 0, "fn"), ["relu"], r"layers\[0\].activations\[0\] must be"),
])
def test_an_unknown_key_at_any_level_is_refused_naming_it_and_where(base, path, value, says):
    with pytest.raises(specs.SpecError, match=says):
        specs.validate(_edit(base, path, value))


@pytest.mark.parametrize("base, path, value, says", [
    (DENSE, ("version",), True, "spec version True is not supported"),
    (DENSE, ("input", "features"), True, "input.features must be a positive integer, got True"),
    (DENSE, ("input", "features"), 2**63, "input.features must be a positive integer, got 9223372036854775808"),
    (DENSE, ("input", "features"), 2**16 + 1, r"input.features .* \(at most 65536\)"),
    (DENSE, ("layers", 0, "hidden"), 2**20 + 1, r"layers\[0\].hidden .* \(at most 1048576\)"),
    (DENSE, ("layers", 0, "hidden"), 3.0, r"layers\[0\].hidden must be a positive integer"),
    (DENSE, ("head", "out"), 0, "head.out must be a positive integer"),
    (DENSE, ("head", "hidden", 0, "units"), -4, r"head.hidden\[0\].units must be a positive integer"),
    (TOKENS, ("input", "vocab"), "3", "input.vocab must be a positive integer"),
    (TOKENS, ("input", "embed_dim"), 2**21, "input.embed_dim must be a positive integer"),
    (TOKENS, ("input", "padding_idx"), True, "input.padding_idx must be null or an integer"),
    (TOKENS, ("input", "chars"), ["a", "b", "c"], "input.chars must be a string"),
    (TOKENS, ("input", "chars"), "aab", r"input.chars must not repeat a character: \['a'\]"),
    (DENSE, ("input", "mean", 1), float("nan"), r"input.mean\[1\] must be a finite number"),
    (DENSE, ("input", "mean", 1), 1e39, r"input.mean\[1\] must be a finite number"),
    (DENSE, ("input", "mean", 0), "0", r"input.mean\[0\] must be a finite number"),
    (DENSE, ("input", "mean"), [0.0], "input.mean must be a list of 2 numbers"),
    (DENSE, ("input", "std", 0), 0.0, r"input.std\[0\] must be a finite number in \[1.17549e-38"),
    (DENSE, ("input", "std", 1), 1e-40, r"input.std\[1\] must be a finite number"),
    (DENSE, ("input", "std", 1), float("inf"), r"input.std\[1\] must be a finite number"),
    (DENSE, ("dropout",), 1.0, r"dropout must be in \[0, 1\)"),
    (DENSE, ("dropout",), True, "dropout must be a finite number"),
    (DENSE, ("layers", 0, "clip"), float("inf"), r"layers\[0\].clip must be a positive finite number"),
    (DENSE, ("layers", 0, "clip"), True, r"layers\[0\].clip must be a positive finite number"),
    (DENSE, ("layers", 0, "activations", 0, "alpha"), float("nan"), r"activations\[0\].alpha must be a finite"),
    (DENSE, ("layers", 0, "activations", 0, "beta"), 1e300, r"activations\[0\].beta must be a finite"),
    (DENSE, ("layers",), [{"cell": "gru", "hidden": 1}] * 65, "spec\\['layers'\\] must be a list of 1 to 64 layers"),
])
def test_a_number_of_the_wrong_type_or_out_of_bounds_is_refused_naming_the_field(base, path, value, says):
    with pytest.raises(specs.SpecError, match=says):
        specs.validate(_edit(base, path, value))


@pytest.mark.parametrize("base", [DENSE, TOKENS], ids=["dense", "tokens"])
def test_the_canonical_form_is_a_fixed_point_with_numbers_as_floats(base):
    spec = specs.validate(base)
    assert specs.validate(specs.loads(specs.dumps(spec))) == spec
    assert specs.dumps(specs.loads(specs.dumps(spec))) == specs.dumps(spec)
    if base is DENSE:
        assert all(isinstance(v, float) for v in spec["input"]["mean"] + spec["input"]["std"] + [spec["dropout"]])
        assert spec["layers"][0]["activations"][1] == {"fn": "tanh", "alpha": 0.0, "beta": 0.0}
