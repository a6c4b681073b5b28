"""ONNX in, issue 12: shape arithmetic evaluated at sample sizes (not pattern-matched), layout reshapes, and head
stacks whose in-between function is identified by evaluation. Hand-built graphs, each proved against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from rnnedge.export.from_module import MappingError
from rnnedge.export.from_onnx import map_onnx

F, H, O = 3, 4, 2


def _const(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def gru_graph(state_nodes, state_inits, after=(), after_inits=(), output=None):
    """x (T, B, F) -> GRU(initial_h = "h0", built by state_nodes) -> Y_h (1, B, H) -> Squeeze -> MatMul head,
    then the `after` nodes (the output: `output`, else "y" behind `after`, else the head's "logits")."""
    output = output or ("y" if after else "logits")
    rng = np.random.default_rng(0)
    nodes = [*state_nodes,
             helper.make_node("GRU", ["x", "W", "R", "B", "", "h0"], ["Y", "Y_h"], name="gru", hidden_size=H,
                              linear_before_reset=1),
             helper.make_node("Squeeze", ["Y_h", "axis0"], ["last"], name="last"),
             helper.make_node("MatMul", ["last", "Wo"], ["logits"], name="head"),
             *after]
    inits = [_const("W", rng.normal(size=(1, 3 * H, F)) * 0.5), _const("R", rng.normal(size=(1, 3 * H, H)) * 0.5),
             _const("B", rng.normal(size=(1, 6 * H)) * 0.1), _const("Wo", rng.normal(size=(H, O))),
             _const("axis0", [0], np.int64), *state_inits, *after_inits]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", "b", F])],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def batch_sized(fill_nodes, name="h0"):
    """Nodes making `name` of shape (1, B, H) from Shape(x) the long way round, with fill_nodes filling it."""
    return [helper.make_node("Shape", ["x"], ["shape"]),
            helper.make_node("Gather", ["shape", "one"], ["batch"], axis=0),
            helper.make_node("Unsqueeze", ["batch", "axis0"], ["batch1"]),
            helper.make_node("Concat", ["ones", "batch1", "hidden"], ["dims"], axis=0),
            *fill_nodes(name)]


SIZES = [_const("one", 1, np.int64), _const("ones", [1], np.int64), _const("hidden", [H], np.int64)]


@pytest.mark.parametrize("how", ["ConstantOfShape", "Expand", "Where"])
def test_a_zero_state_built_from_the_batch_size_by_any_shape_arithmetic_is_the_zero_state(how):
    fills = {
        "ConstantOfShape": lambda n: [helper.make_node("ConstantOfShape", ["dims"], [n])],
        "Expand": lambda n: [helper.make_node("Expand", ["zero", "dims"], [n])],
        # torch's expand(-1, B, -1) form: Where(Equal(dims, -1), 1, dims), then Mul by zero
        "Where": lambda n: [helper.make_node("Equal", ["dims", "minus1"], ["is_minus1"]),
                            helper.make_node("Where", ["is_minus1", "ones", "dims"], ["target"]),
                            helper.make_node("Expand", ["zero", "target"], ["expanded"]),
                            helper.make_node("Mul", ["expanded", "zero"], [n])]}
    model = gru_graph(batch_sized(fills[how]), [*SIZES, _const("zero", 0.0), _const("minus1", -1, np.int64)])
    mapping = map_onnx(model)
    assert "initial_state" not in mapping.spec["layers"][0] and mapping.max_abs_diff <= 1e-5


def test_a_learned_state_expanded_over_the_batch_size_is_the_initial_state():
    learned = np.linspace(-0.5, 0.5, H).reshape(1, 1, H)
    model = gru_graph(batch_sized(lambda n: [helper.make_node("Expand", ["learned", "dims"], [n])]),
                      [*SIZES, _const("learned", learned)])
    mapping = map_onnx(model)
    assert mapping.spec["layers"][0]["initial_state"] is True
    np.testing.assert_array_equal(mapping.tensors["layers.0.fwd.h0"], learned.reshape(H).astype(np.float32))


def test_a_state_that_changes_with_the_batch_size_is_refused_by_name():
    def scaled(n):
        return [helper.make_node("ConstantOfShape", ["dims"], ["ones_state"],
                                 value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
                helper.make_node("Cast", ["batch"], ["batch_f"], to=TensorProto.FLOAT),
                helper.make_node("Mul", ["ones_state", "batch_f"], [n])]
    with pytest.raises(MappingError, match="'gru' \\(GRU\\): initial_h is computed from the run-time sizes and "
                                           "changes with them"):
        map_onnx(gru_graph(batch_sized(scaled), SIZES))


def test_a_reshape_that_moves_values_between_axes_is_refused_naming_the_sizes():
    model = gru_graph([], [], after=[
        helper.make_node("Shape", ["Y"], ["y_shape"]),  # Y: (T, 1, B, H)
        helper.make_node("Gather", ["y_shape", "order"], ["target"], axis=0),
        helper.make_node("Reshape", ["Y", "target"], ["y"], name="scramble")],
        after_inits=[_const("order", [2, 0, 3], np.int64)])
    model.graph.node[0].input[5] = ""
    model.graph.initializer[-1].CopyFrom(_const("order", [0, 2, 3], np.int64))  # (T, B, H): layout
    assert map_onnx(model).spec["head"]["on"] == "every_step"
    model.graph.initializer[-1].CopyFrom(_const("order", [2, 0, 3], np.int64))  # (B, T, H): moves values
    with pytest.raises(MappingError, match="'scramble' \\(Reshape\\): Reshape of \\[N0, 1, N1, 4\\] to \\[N1, "
                                           "N0, 4\\] moves values between axes"):
        map_onnx(model)


@pytest.mark.parametrize("function,nodes", [
    ("relu", [helper.make_node("Relu", ["logits"], ["between"])]),
    ("gelu", [helper.make_node("Div", ["logits", "sqrt2"], ["scaled"]), helper.make_node("Erf", ["scaled"], ["erf"]),
              helper.make_node("Add", ["erf", "one_f"], ["erf1"]), helper.make_node("Mul", ["logits", "erf1"], ["p"]),
              helper.make_node("Mul", ["p", "half"], ["between"])]),
    ("none", [helper.make_node("Identity", ["logits"], ["between"])]),
])
def test_the_function_between_head_layers_is_identified_by_evaluating_its_nodes(function, nodes):
    consts = [_const("sqrt2", np.sqrt(2.0)), _const("one_f", 1.0), _const("half", 0.5),
              _const("W2", np.random.default_rng(1).normal(size=(O, 3)))]
    model = gru_graph(batch_sized(lambda n: [helper.make_node("ConstantOfShape", ["dims"], [n])]), SIZES,
                      after=[*nodes, helper.make_node("MatMul", ["between", "W2"], ["y"])], after_inits=consts)
    mapping = map_onnx(model)
    assert mapping.spec["head"]["hidden"] == [{"units": O, "activation": function}]
    assert mapping.tensors["head.weight"].shape == (3, O) and mapping.max_abs_diff <= 1e-5


def test_a_function_between_head_layers_that_rnnedge_does_not_run_is_refused_by_name():
    model = gru_graph([], [], after=[helper.make_node("Exp", ["logits"], ["between"], name="exp"),
                                     helper.make_node("MatMul", ["between", "W2"], ["y"], name="second")],
                      after_inits=[_const("W2", np.ones((O, 3)))])
    model.graph.node[0].input[5] = ""
    with pytest.raises(MappingError, match="'second' \\(MatMul\\): the elementwise nodes \\['Exp'\\] after a dense "
                                           "layer compute none of none, relu, tanh, sigmoid, gelu, gelu_tanh"):
        map_onnx(model)


@pytest.mark.parametrize("opset", [11, 12])
def test_shape_arithmetic_folds_under_the_graphs_own_opset_where_unsqueeze_takes_axes_as_an_attribute(opset):
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "one"], ["batch"], axis=0),
             helper.make_node("Unsqueeze", ["batch"], ["batch1"], axes=[0]),  # opset <= 12: axes an attribute
             helper.make_node("Concat", ["ones", "batch1", "hidden"], ["dims"], axis=0),
             helper.make_node("ConstantOfShape", ["dims"], ["h0"]),
             helper.make_node("GRU", ["x", "W", "R", "B", "", "h0"], ["Y", "Y_h"], name="gru", hidden_size=H,
                              linear_before_reset=1),
             helper.make_node("Squeeze", ["Y_h"], ["last"], name="last", axes=[0]),
             helper.make_node("MatMul", ["last", "Wo"], ["logits"], name="head")]
    inits = [_const("W", rng.normal(size=(1, 3 * H, F)) * 0.5), _const("R", rng.normal(size=(1, 3 * H, H)) * 0.5),
             _const("B", rng.normal(size=(1, 6 * H)) * 0.1), _const("Wo", rng.normal(size=(H, O))), *SIZES]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", "b", F])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7  # what exporters of opset 11 / 12 write (ONNX Runtime loads it)
    mapping = map_onnx(model)
    assert mapping.spec["layers"] == [{"cell": "gru", "hidden": H, "bidirectional": False}]
    assert mapping.spec["head"]["on"] == "last_step" and mapping.max_abs_diff <= 1e-5
