"""Loops whose body is one cell step (export/onnx_in/loops.py, issue 12), on hand-built graphs written the way
tf2onnx writes a Keras recurrent layer: a step counter, the state, pass-through weights, x_t = Gather(seq, t) and
the new state as the scan output. A body that is one RNN / GRU step converts (map_onnx proves it against ONNX
Runtime on the original Loop graph); a body with one op changed or added stays a Loop and is refused naming the
Loop, and the body node that does not fit."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rnnedge.export.from_module import MappingError
from rnnedge.export.from_onnx import map_onnx
from rnnedge.export.onnx_in.loops import rewrite_loops

F, H, O = 3, 4, 2
INT_MAX = np.iinfo(np.int64).max


def const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def rng_weights(seed: int, *shape) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.6, 0.6, shape).astype(np.float32)


def rnn_body(p: str, act: str = "Tanh") -> tuple[list, list, dict]:
    """Keras SimpleRNN: h' = act(x_t W + b + h R). Returns (nodes, weight names in carry order, weights)."""
    weights = {f"{p}W": rng_weights(1, F, H), f"{p}b": rng_weights(2, H), f"{p}R": rng_weights(3, H, H)}
    nodes = [helper.make_node("MatMul", [f"{p}x_t", f"{p}W_in"], [f"{p}xw"], name=f"{p}MatMul"),
             helper.make_node("Add", [f"{p}xw", f"{p}b_in"], [f"{p}xwb"], name=f"{p}BiasAdd"),
             helper.make_node("MatMul", [f"{p}h", f"{p}R_in"], [f"{p}hr"], name=f"{p}MatMul_1"),
             helper.make_node("Add", [f"{p}xwb", f"{p}hr"], [f"{p}pre"], name=f"{p}add"),
             helper.make_node(act, [f"{p}pre"], [f"{p}h_new"], name=f"{p}act")]
    return nodes, ["W", "b", "R"], weights


def gru_body(p: str, reset_after: bool) -> tuple[list, list, dict]:
    """Keras GRU, columns z r h: reset_after=False as tf_keras writes it, True as Keras 3 writes it."""
    weights = {f"{p}W": rng_weights(4, F, 3 * H), f"{p}R": rng_weights(5, H, 3 * H)}
    n = helper.make_node
    if reset_after:
        weights[f"{p}b"] = rng_weights(6, 2, 3 * H)
        nodes = [n("Split", [f"{p}b_in"], [f"{p}b0", f"{p}b1"], axis=0),
                 n("Squeeze", [f"{p}b0", f"{p}ax0"], [f"{p}b_x"]), n("Squeeze", [f"{p}b1", f"{p}ax0"], [f"{p}b_h"]),
                 n("MatMul", [f"{p}x_t", f"{p}W_in"], [f"{p}xw0"]), n("Add", [f"{p}xw0", f"{p}b_x"], [f"{p}xw"]),
                 n("Split", [f"{p}xw"], [f"{p}xz", f"{p}xr", f"{p}xh"], axis=-1),
                 n("MatMul", [f"{p}h", f"{p}R_in"], [f"{p}hw0"]), n("Add", [f"{p}hw0", f"{p}b_h"], [f"{p}hw"]),
                 n("Split", [f"{p}hw"], [f"{p}hz", f"{p}hr", f"{p}hh"], axis=-1),
                 n("Add", [f"{p}xr", f"{p}hr"], [f"{p}r0"]), n("Sigmoid", [f"{p}r0"], [f"{p}r"]),
                 n("Mul", [f"{p}r", f"{p}hh"], [f"{p}rhh"]), n("Add", [f"{p}xh", f"{p}rhh"], [f"{p}n0"]),
                 n("Tanh", [f"{p}n0"], [f"{p}n"], name=f"{p}candidate")]
    else:
        weights[f"{p}b"] = rng_weights(6, 3 * H)
        nodes = [n("MatMul", [f"{p}x_t", f"{p}W_in"], [f"{p}xw0"]), n("Add", [f"{p}xw0", f"{p}b_in"], [f"{p}xw"]),
                 n("Split", [f"{p}xw"], [f"{p}xz", f"{p}xr", f"{p}xh"], axis=-1),
                 n("Slice", [f"{p}R_in", f"{p}zero2", f"{p}end_zr", f"{p}axes01"], [f"{p}R_zr"]),
                 n("MatMul", [f"{p}h", f"{p}R_zr"], [f"{p}hzr"]),
                 n("Split", [f"{p}hzr"], [f"{p}hz", f"{p}hr"], axis=-1),
                 n("Add", [f"{p}xr", f"{p}hr"], [f"{p}r0"]), n("Sigmoid", [f"{p}r0"], [f"{p}r"]),
                 n("Mul", [f"{p}r", f"{p}h"], [f"{p}rh"]),
                 n("Slice", [f"{p}R_in", f"{p}start_h", f"{p}end_all", f"{p}axes01"], [f"{p}R_h"]),
                 n("MatMul", [f"{p}rh", f"{p}R_h"], [f"{p}rhR"]), n("Add", [f"{p}xh", f"{p}rhR"], [f"{p}n0"]),
                 n("Tanh", [f"{p}n0"], [f"{p}n"], name=f"{p}candidate")]
    nodes += [n("Add", [f"{p}xz", f"{p}hz"], [f"{p}z0"]), n("Sigmoid", [f"{p}z0"], [f"{p}z"]),
              n("Sub", [f"{p}one", f"{p}z"], [f"{p}1mz"]), n("Mul", [f"{p}z", f"{p}h"], [f"{p}zh"]),
              n("Mul", [f"{p}1mz", f"{p}n"], [f"{p}zn"]), n("Add", [f"{p}zh", f"{p}zn"], [f"{p}h_new"], name=f"{p}blend")]
    return nodes, ["W", "b", "R"], weights


def body_constants(p: str) -> list[onnx.TensorProto]:
    return [const(f"{p}one", np.float32(1.0)), const(f"{p}ax0", np.array([0], np.int64)),
            const(f"{p}zero2", np.array([0, 0], np.int64)), const(f"{p}end_zr", np.array([INT_MAX, 2 * H])),
            const(f"{p}start_h", np.array([0, 2 * H])), const(f"{p}end_all", np.array([INT_MAX, INT_MAX])),
            const(f"{p}axes01", np.array([0, 1], np.int64)), const(f"{p}one_i", np.int64(1)),
            const(f"{p}slope", np.float32(0.2)), const(f"{p}offset", np.float32(0.5)),
            const(f"{p}zero", np.float32(0.0))]


def loop(p: str, seq: str, step, change=None) -> tuple[list, list]:
    """A tf2onnx-style Loop over `seq` (T, B, F) whose body is step(p); change(nodes) edits the body's nodes."""
    nodes, carried, weights = step(p)
    if change is not None:
        nodes = change(nodes)
    body_nodes = [helper.make_node("Add", [f"{p}t", f"{p}one_i"], [f"{p}t1"]),
                  helper.make_node("Gather", [seq, f"{p}t"], [f"{p}x_t"], name=f"{p}read"),
                  *nodes,
                  helper.make_node("Identity", [f"{p}h_new"], [f"{p}scan"]),
                  helper.make_node("Less", [f"{p}t1", f"{p}T_in"], [f"{p}cond_out"])]
    scalar = lambda name, kind: helper.make_tensor_value_info(name, kind, [])
    anything = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
    body = helper.make_graph(
        body_nodes, f"{p}body",
        [scalar(f"{p}iter", TensorProto.INT64), scalar(f"{p}cond", TensorProto.BOOL), scalar(f"{p}t", TensorProto.INT64),
         anything(f"{p}h"), scalar(f"{p}T_in", TensorProto.INT64)] + [anything(f"{p}{w}_in") for w in carried],
        [scalar(f"{p}cond_out", TensorProto.BOOL), scalar(f"{p}t1", TensorProto.INT64), anything(f"{p}h_new"),
         scalar(f"{p}T_in", TensorProto.INT64)] + [anything(f"{p}{w}_in") for w in carried] + [anything(f"{p}scan")],
        initializer=body_constants(p))
    outputs = [f"{p}final_{k}" for k in range(3 + len(carried))] + [f"{p}scan_out"]
    node = helper.make_node("Loop", ["", "cond", "t0", "h0", "T"] + [f"{p}{w}" for w in carried], outputs,
                            name=f"{p}while_loop", body=body)
    return [node], [const(name, value) for name, value in weights.items()]


def model(step, change=None, bidirectional: bool = False, backward_read="last",
          go_backwards: bool = False) -> onnx.ModelProto:
    """x (B, T, F) -> Keras-style Loop layer(s) -> last step (both directions concatenated) -> Dense(O); go_backwards:
    one Loop over the reversed sequence."""
    n = helper.make_node
    nodes = [n("Transpose", ["x"], ["seq"], perm=[1, 0, 2]), n("Shape", ["seq"], ["seq_shape"]),
             n("Slice", ["seq_shape", "ax0", "one_v", "ax0"], ["T_v"]), n("Squeeze", ["T_v", "ax0"], ["T"]),
             n("Less", ["zero_i", "T"], ["cond"]),
             n("Shape", ["x"], ["x_shape"]), n("Slice", ["x_shape", "ax0", "one_v", "ax0"], ["B_v"]),
             n("Concat", ["B_v", "H_v"], ["h_shape"], axis=0), n("Expand", ["zero_f", "h_shape"], ["h0"])]
    inits = [const("ax0", np.array([0], np.int64)), const("one_v", np.array([1], np.int64)),
             const("zero_i", np.int64(0)), const("t0", np.int64(0)), const("zero_f", np.float32(0.0)),
             const("H_v", np.array([H], np.int64)), const("last", np.array([-1], np.int64)),
             const("one_s", np.int64(1)), const("end", np.array([INT_MAX], np.int64)),
             const("head_W", rng_weights(7, (2 if bidirectional else 1) * H, O)), const("head_b", rng_weights(8, O))]
    if bidirectional or go_backwards:
        nodes += [n("Gather", ["seq_shape", "ax0"], ["T_1"]), n("Gather", ["seq_shape", "one_v"], ["B_1"]),
                  n("Expand", ["T_1", "B_1"], ["lengths"]),
                  n("ReverseSequence", ["seq", "lengths"], ["seq_reversed"], batch_axis=1, time_axis=0)]
    loop_nodes, weights = loop("fwd/", "seq_reversed" if go_backwards else "seq", step, change)
    nodes += loop_nodes + [n("Slice", ["fwd/scan_out", "last", "end", "ax0"], ["fwd_last3"]),
                           n("Squeeze", ["fwd_last3", "ax0"], ["features"])]
    inits += weights
    if bidirectional:
        loop_nodes, weights = loop("bwd/", "seq_reversed", step)
        if backward_read == "second":  # the backward direction's state after 2 of its steps
            read = [n("Gather", ["bwd/scan_out", "one_s"], ["bwd_last"], name="bwd/read", axis=0)]
        else:
            read = [n("Slice", ["bwd/scan_out", "last", "end", "ax0"], ["bwd_last3"], name="bwd/read"),
                    n("Squeeze", ["bwd_last3", "ax0"], ["bwd_last"])]
        nodes += loop_nodes + read + [n("Concat", ["features", "bwd_last"], ["both"], axis=1)]
        inits += weights
    nodes += [n("MatMul", ["both" if bidirectional else "features", "head_W"], ["logits0"]),
              n("Add", ["logits0", "head_b"], ["y"])]
    graph = helper.make_graph(nodes, "keras_like_loop",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", F])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", O])], initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(proto)
    return proto


CELLS = {"rnn_tanh": lambda p: rnn_body(p), "rnn_relu": lambda p: rnn_body(p, "Relu"),
         "gru_reset_before": lambda p: gru_body(p, reset_after=False),
         "gru_reset_after": lambda p: gru_body(p, reset_after=True)}
SPEC_CELLS = {"rnn_tanh": ("rnn_tanh", None), "rnn_relu": ("rnn_relu", None),
              "gru_reset_before": ("gru", False), "gru_reset_after": ("gru", None)}


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_loop_whose_body_is_one_cell_step_maps_to_that_cell_and_matches_onnx_runtime(cell):
    mapping = map_onnx(model(CELLS[cell]))  # proved against ONNX Runtime on the Loop graph
    (layer,) = mapping.spec["layers"]
    want_cell, linear_before_reset = SPEC_CELLS[cell]
    assert layer["cell"] == want_cell and layer["hidden"] == H and not layer.get("bidirectional")
    assert layer.get("linear_before_reset") == linear_before_reset
    assert mapping.max_abs_diff <= 1e-5
    assert any("fwd/while_loop" in note and "step of 4 units" in note for note in mapping.notes), mapping.notes


@pytest.mark.parametrize("cell", ["rnn_tanh", "gru_reset_after"])
def test_a_forward_loop_and_a_loop_over_the_reversed_sequence_map_to_one_bidirectional_layer(cell):
    mapping = map_onnx(model(CELLS[cell], bidirectional=True))
    (layer,) = mapping.spec["layers"]
    assert layer["bidirectional"] and mapping.spec["head"]["on"] == "last_step"
    assert mapping.max_abs_diff <= 1e-5


def test_a_loop_over_the_reversed_sequence_alone_maps_to_a_reverse_layer():
    mapping = map_onnx(model(CELLS["gru_reset_before"], go_backwards=True))  # Keras go_backwards=True, last step
    (layer,) = mapping.spec["layers"]
    assert layer["reverse"] and not layer.get("bidirectional") and mapping.max_abs_diff <= 1e-5


def test_rewrite_loops_leaves_the_given_model_unchanged_and_drops_the_loop_glue():
    original = model(CELLS["gru_reset_before"], bidirectional=True)
    before = original.SerializeToString()
    rewritten, notes = rewrite_loops(original)
    assert original.SerializeToString() == before
    ops = [node.op_type for node in rewritten.graph.node]
    assert ops.count("GRU") == 1 and not {"Loop", "ReverseSequence", "Less"} & set(ops), ops
    assert len(notes) == 1 and "bidirectional" in notes[0]


def replace(name: str, op: str):
    def change(nodes):
        return [helper.make_node(op, list(n.input), list(n.output), name=n.name) if n.name == name else n
                for n in nodes]
    return change


def insert_before(name: str, op: str):
    """An extra op on the first input of the node called `name`."""
    def change(nodes):
        out = []
        for n in nodes:
            if n.name == name:
                out.append(helper.make_node(op, [n.input[0]], [f"{n.input[0]}_extra"], name="fwd/extra"))
                n = helper.make_node(n.op_type, [f"{n.input[0]}_extra", *n.input[1:]], list(n.output), name=n.name)
            out.append(n)
        return out
    return change


def hard_sigmoid(clip_by: str):
    """Every Sigmoid as tf_keras' hard_sigmoid, clip(0.2 x + 0.5, 0, 1), the clip by Min and Max or by Clip."""
    def change(nodes):
        out = []
        for k, node in enumerate(nodes):
            if node.op_type != "Sigmoid":
                out.append(node)
                continue
            (x,), (y,) = node.input, node.output
            out += [helper.make_node("Mul", [x, "fwd/slope"], [f"{y}_{k}a"]),
                    helper.make_node("Add", [f"{y}_{k}a", "fwd/offset"], [f"{y}_{k}b"])]
            if clip_by == "Clip":
                out.append(helper.make_node("Clip", [f"{y}_{k}b", "fwd/zero", "fwd/one"], [y]))
            else:
                out += [helper.make_node("Min", [f"{y}_{k}b", "fwd/one"], [f"{y}_{k}c"]),
                        helper.make_node("Max", [f"{y}_{k}c", "fwd/zero"], [y])]
        return out
    return change


@pytest.mark.parametrize("clip_by", ["Min, Max", "Clip"])
def test_a_gru_body_with_keras_hard_sigmoid_gates_maps_to_hard_sigmoid_gates(clip_by):
    mapping = map_onnx(model(CELLS["gru_reset_before"], change=hard_sigmoid(clip_by)))
    (layer,) = mapping.spec["layers"]
    assert [f["fn"] for f in layer["activations"]] == ["hardsigmoid", "tanh"], layer
    assert mapping.max_abs_diff <= 1e-5


@pytest.mark.parametrize(("cell", "change", "named"), [
    ("rnn_tanh", replace("fwd/act", "Softplus"), "body node 'fwd/act' (Softplus): not part of a standard cell step"),
    ("rnn_tanh", insert_before("fwd/MatMul_1", "Abs"), "body node 'fwd/extra' (Abs)"),
    ("gru_reset_before", replace("fwd/candidate", "Softsign"), "(Softsign): not part of a standard cell step"),
    ("gru_reset_after", replace("fwd/blend", "Sub"), "nor z * h + (1 - z) * n (a GRU step)"),
    ("gru_reset_before", insert_before("fwd/blend", "Neg"), "body node 'fwd/extra' (Neg)"),
])
def test_a_body_with_one_op_changed_or_added_stays_a_loop_refused_by_name(cell, change, named):
    with pytest.raises(MappingError) as refusal:
        map_onnx(model(CELLS[cell], change=change))
    message = str(refusal.value)
    assert "node 'fwd/while_loop' (Loop):" in message, message
    assert "would need its body recognised as one standard cell step" in message
    assert named in message, message


def test_a_loop_reading_a_step_other_than_the_counter_is_refused_naming_the_read():
    def read_next_step(nodes):  # x_{t+1}: not a recurrent layer over the sequence
        return nodes
    proto = model(CELLS["rnn_tanh"], change=read_next_step)
    body = proto.graph.node[[n.op_type for n in proto.graph.node].index("Loop")].attribute[0].g
    read = next(n for n in body.node if n.name == "fwd/read")
    read.input[1] = "fwd/t1"
    with pytest.raises(MappingError, match=r"must read the outer sequence once, at the step"):
        map_onnx(proto)


def test_a_reversed_direction_read_at_a_middle_step_is_refused_naming_the_reader():
    with pytest.raises(MappingError) as refusal:
        map_onnx(model(CELLS["rnn_tanh"], bidirectional=True, backward_read="second"))
    message = str(refusal.value)
    assert "node 'bwd/while_loop' (Loop):" in message
    assert "read in reversed time order by node 'bwd/read' (Gather)" in message, message
