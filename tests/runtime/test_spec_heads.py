"""runtime/spec.py's head contract: the hidden dense layers and log_softmax, their versions and refusals."""

from __future__ import annotations

import pytest

from rnnedge.runtime import file_tensors
from rnnedge.runtime import spec as specs
from tests.helpers import make_spec


def head_spec(**head) -> dict:
    spec = make_spec("gru")
    spec["head"] = {"out": 4, "on": "every_step", "activation": "softmax", **head}
    return spec


def test_head_stack_is_validated_and_written_as_version_3():
    spec = specs.validate(head_spec(hidden=[{"units": 8, "activation": "relu"}, {"units": 5, "activation": "gelu"}]))
    assert spec["version"] == specs.HEAD_VERSION == 3
    assert specs.head_hidden(spec) == [{"units": 8, "activation": "relu"}, {"units": 5, "activation": "gelu"}]
    assert specs.head_input_sizes(spec) == [12, 8, 5]
    assert specs.loads(specs.dumps(spec)) == spec


def test_log_softmax_alone_is_version_3_and_layer_extensions_alone_stay_version_2():
    assert specs.validate(head_spec(activation="log_softmax"))["version"] == 3
    extended = make_spec("gru")
    extended["layers"] = [{**extended["layers"][0], "clip": 2.0}]
    assert specs.validate(extended)["version"] == specs.EXTENDED_VERSION
    extended["head"]["hidden"] = [{"units": 3, "activation": "tanh"}]
    assert specs.validate(extended)["version"] == 3


def test_empty_hidden_list_is_todays_single_linear_head_and_is_omitted():
    spec = specs.validate(head_spec(hidden=[]))
    assert "hidden" not in spec["head"] and spec["version"] == specs.SPEC_VERSION
    assert specs.head_hidden(spec) == []
    assert [n for n in specs.tensor_shapes(spec) if n.startswith("head")] == ["head.weight", "head.bias"]


def test_head_stack_tensors_are_named_and_shaped_per_the_contract():
    spec = specs.validate(head_spec(hidden=[{"units": 8, "activation": "tanh"}, {"units": 5, "activation": "none"}]))
    shapes = {n: s for n, s in specs.tensor_shapes(spec).items() if n.startswith("head")}
    assert shapes == {"head.hidden.0.weight": (8, 12), "head.hidden.0.bias": (8,),
                      "head.hidden.1.weight": (5, 8), "head.hidden.1.bias": (5,),
                      "head.weight": (4, 5), "head.bias": (4,)}
    assert {"head.hidden.0.weight", "head.hidden.1.weight", "head.weight"} <= set(file_tensors.quantized_matrices(spec))
    int8w = file_tensors.artifact_tensors(spec, "int8w")
    assert int8w["head.hidden.1.weight"] == ((5, 8), "int8") and int8w["head.hidden.1.weight.scale"] == ((5,), "float32")
    assert int8w["head.hidden.1.bias"] == ((5,), "float32")


@pytest.mark.parametrize("hidden, says", [
    ([{"units": 8, "activation": "swish"}], (r"head.hidden\[0\].activation 'swish' is not supported; supported: "
                                             r"relu, tanh, sigmoid, gelu, gelu_tanh, none")),
    ([{"units": 0, "activation": "relu"}], r"head.hidden\[0\].units must be a positive integer, got 0"),
    ([{"units": 8.0, "activation": "relu"}], r"head.hidden\[0\].units must be a positive integer"),
    ([{"units": 8, "activation": "relu"}, {"units": 4}], r"head.hidden\[1\] must be \{'units': U, 'activation'"),
    ([{"units": 8, "activation": "relu", "dropout": 0.1}], r"head.hidden\[0\] must be .*exactly these keys"),
    ([8, 4], r"head.hidden\[0\] must be"),
    ({"units": 8, "activation": "relu"}, r"head.hidden must be a list of dense layers"),
])
def test_malformed_head_stack_is_refused_naming_what_is_wrong(hidden, says):
    with pytest.raises(specs.SpecError, match=says):
        specs.validate(head_spec(hidden=hidden))


def test_unknown_head_activation_and_keys_are_refused_with_the_allowed_list():
    with pytest.raises(specs.SpecError, match="head.activation 'logsoftmax' is not supported; supported: softmax, "
                                              "log_softmax, sigmoid, none"):
        specs.validate(head_spec(activation="logsoftmax"))
    with pytest.raises(specs.SpecError, match=r"head has unknown keys \['layers'\]"):
        specs.validate(head_spec(layers=[]))


def test_version_above_3_is_refused():
    with pytest.raises(specs.SpecError, match="spec version 4 is not supported"):
        specs.validate({**head_spec(), "version": 4})
