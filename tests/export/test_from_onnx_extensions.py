"""ONNX RNN / LSTM / GRU attributes beyond PyTorch's cells -> the spec's layer extensions (runtime/spec.py), each
mapping proven against ONNX Runtime (map_onnx's proof: max abs difference <= 1e-5 on random inputs), and the
graphs rnnedge must refuse, by node op type, name and attribute."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from rnnedge.export.from_module import MappingError
from rnnedge.export.from_onnx import map_onnx, original_graph
from rnnedge.runtime import spec as specs
from rnnedge.runtime.model import Model

GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
PER_DIRECTION = {"RNN": 1, "LSTM": 3, "GRU": 2}
DEFAULTS = {"RNN": ["Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"]}


def graph(op="LSTM", *, direction="forward", layout=0, H=4, F=3, batch=None, read="Y", seed=0, scale=0.4,
          P=None, initial_h=None, initial_c=None, lengths=None, head=True, **attrs):
    """One recurrent node named `op.lower()` on input x (batch, time, F), its output brought to rnnedge's layout
    (Y: (B, T, D*H); Y_h: (B, D*H)) and, with head, a MatMul + Add head. lengths: "input" makes sequence_lens the
    graph input `lens`; an array makes it a constant. P / initial_h / initial_c: arrays (initializers) or "input"
    (a graph input)."""
    if op != "GRU":
        attrs.pop("linear_before_reset", None)  # GRU's only; tests pass it for all three ops
    rng = np.random.default_rng(seed)
    D = 2 if direction == "bidirectional" else 1
    G = GATES[op]
    init = [numpy_helper.from_array(rng.normal(0, scale, (D, G * H, F)).astype(np.float32), "W"),
            numpy_helper.from_array(rng.normal(0, scale, (D, G * H, H)).astype(np.float32), "R"),
            numpy_helper.from_array(rng.normal(0, scale, (D, 2 * G * H)).astype(np.float32), "B")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch or "b", "t", F] if layout else
                                            ["t", batch or "b", F])]
    names = ["x", "W", "R", "B", "", "", "", ""]
    for k, (name, value) in enumerate((("lens", lengths), ("h0", initial_h), ("c0", initial_c), ("P", P))):
        if value is None:
            continue
        names[4 + k] = name
        if isinstance(value, str):
            shape = [batch or "b"] if name == "lens" else [D, batch or "b", H]
            inputs.append(helper.make_tensor_value_info(name, TensorProto.INT32 if name == "lens" else
                                                        TensorProto.FLOAT, shape))
        else:
            init.append(numpy_helper.from_array(np.asarray(value, np.int32 if name == "lens" else np.float32), name))
    while names[-1] == "":
        names.pop()
    outputs = ["Y", "Y_h", "Y_c"] if read == "Y_c" else ["Y", "Y_h"]
    nodes = [helper.make_node(op, names, outputs, name=op.lower(), hidden_size=H, direction=direction, layout=layout,
                              **attrs)]
    if read == "Y":  # layout 0: (T, D, B, H) -> (B, T, D*H); layout 1: (B, T, D, H) -> (B, T, D*H)
        source = "Y"
        if layout == 0:
            nodes.append(helper.make_node("Transpose", ["Y"], ["Y_btdh"], name="to_batch_major", perm=[2, 0, 1, 3]))
            source = "Y_btdh"
        nodes.append(helper.make_node("Reshape", [source, "merge3"], ["feats"], name="merge_directions"))
        init.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge3"))
    else:  # Y_h / Y_c, layout 0: (D, B, H) -> (B, D*H); layout 1: (B, D, H) -> (B, D*H)
        source = read
        if layout == 0:
            nodes.append(helper.make_node("Transpose", [read], ["final_bdh"], name="to_batch_major", perm=[1, 0, 2]))
            source = "final_bdh"
        nodes.append(helper.make_node("Reshape", [source, "merge2"], ["feats"], name="merge_directions"))
        init.append(numpy_helper.from_array(np.array([0, -1], np.int64), "merge2"))
    out = "feats"
    if head:
        init += [numpy_helper.from_array(rng.normal(0, 0.5, (D * H, 3)).astype(np.float32), "head_w"),
                 numpy_helper.from_array(rng.normal(0, 0.5, 3).astype(np.float32), "head_b")]
        nodes += [helper.make_node("MatMul", ["feats", "head_w"], ["logits0"], name="head_matmul"),
                  helper.make_node("Add", ["logits0", "head_b"], ["y"], name="head_add")]
        out = "y"
    g = helper.make_graph(nodes, "extension", inputs, [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                          initializer=init)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    return model


def proved(model):
    mapping = map_onnx(model)
    assert mapping.max_abs_diff <= 1e-5
    assert mapping.proof_reference.startswith("ONNX Runtime")
    return mapping


def the_layer(mapping):
    (layer,) = mapping.spec["layers"]
    return layer


# -- each attribute alone ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("read", ["Y", "Y_h"])
def test_reverse_maps_to_a_reverse_layer(op, read):
    layer = the_layer(proved(graph(op, direction="reverse", read=read, linear_before_reset=1)))
    assert layer["reverse"] is True and not layer["bidirectional"]


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
def test_clip_maps_to_clip(op):
    layer = the_layer(proved(graph(op, clip=0.7, scale=0.8, linear_before_reset=1)))
    assert layer["clip"] == pytest.approx(0.7)


def test_input_forget_maps_to_coupled_gates():
    layer = the_layer(proved(graph("LSTM", input_forget=1)))
    assert layer["input_forget"] is True


def test_peepholes_map_in_the_spec_order_and_all_zero_ones_to_none():
    P = np.random.default_rng(5).normal(0, 0.5, (1, 12)).astype(np.float32)
    mapping = proved(graph("LSTM", P=P))
    assert the_layer(mapping)["peepholes"] is True
    p_i, p_o, p_f = np.split(P[0], 3)
    np.testing.assert_array_equal(mapping.tensors["layers.0.fwd.p"], np.concatenate([p_i, p_f, p_o]))
    mapping = proved(graph("LSTM", P=np.zeros((1, 12))))
    assert "peepholes" not in the_layer(mapping) and "layers.0.fwd.p" not in mapping.tensors


def test_gru_linear_before_reset_0_is_the_reset_before_form():
    assert the_layer(proved(graph("GRU")))["linear_before_reset"] is False  # ONNX's default
    assert "linear_before_reset" not in the_layer(proved(graph("GRU", linear_before_reset=1)))


# every ONNX activation function, with alpha / beta where it takes them (ONNX Runtime's order: _Mapper._functions)
FUNCTIONS = {"Relu": ([], []), "Tanh": ([], []), "Sigmoid": ([], []), "Affine": ([0.8], [0.1]),
             "LeakyRelu": ([0.2], []), "ThresholdedRelu": ([0.25], []), "ScaledTanh": ([1.3], [0.7]),
             "HardSigmoid": ([0.3], [0.45]), "Elu": ([0.6], []), "Softsign": ([], []), "Softplus": ([], [])}


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("fn", sorted(FUNCTIONS))
def test_every_activation_function_with_its_alpha_and_beta(op, fn):
    alpha, beta = FUNCTIONS[fn]
    names = {"RNN": [fn], "LSTM": ["Sigmoid", fn, "Tanh"], "GRU": ["Sigmoid", fn]}[op]  # the candidate function
    kw = {"activation_alpha": alpha} if alpha else {}
    if beta:
        kw["activation_beta"] = beta
    layer = the_layer(proved(graph(op, activations=names, scale=0.3, linear_before_reset=1, **kw)))
    default_alpha, default_beta = specs.ACTIVATION_FNS[fn.lower()]
    want_alpha = alpha[0] if alpha else (default_alpha if fn.lower() not in ("affine", "scaledtanh") else 0.0)
    want_beta = beta[0] if beta else default_beta
    if op == "RNN" and fn in ("Tanh", "Relu"):
        assert layer["cell"] == ("rnn_tanh" if fn == "Tanh" else "rnn_relu") and "activations" not in layer
        return
    if names == DEFAULTS[op]:
        assert "activations" not in layer
        return
    k = names.index(fn)
    assert layer["activations"][k] == {"fn": fn.lower(), "alpha": pytest.approx(want_alpha),
                                       "beta": pytest.approx(want_beta)}
    assert layer["cell"] == {"RNN": "rnn_tanh", "LSTM": "lstm", "GRU": "gru"}[op]


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_gate_functions_other_than_sigmoid(op):
    names = {"LSTM": ["HardSigmoid", "Softsign", "Tanh"], "GRU": ["HardSigmoid", "Softsign"]}[op]
    layer = the_layer(proved(graph(op, activations=names, activation_alpha=[0.25], activation_beta=[0.4],
                                   linear_before_reset=1)))
    assert layer["activations"][0] == {"fn": "hardsigmoid", "alpha": 0.25, "beta": pytest.approx(0.4)}


def test_alpha_and_beta_are_consumed_only_by_functions_that_take_them():
    # bidirectional RNN [Tanh, LeakyRelu], alpha [0.3]: Tanh takes no alpha, so LeakyRelu gets 0.3 (ONNX Runtime)
    layer = the_layer(proved(graph("RNN", direction="bidirectional", activations=["Tanh", "LeakyRelu"],
                                   activation_alpha=[0.3])))
    assert layer["activations"] == [{"fn": "tanh", "alpha": 0.0, "beta": 0.0},
                                    {"fn": "leakyrelu", "alpha": pytest.approx(0.3), "beta": 0.0}]
    # [LeakyRelu, Affine], alpha [0.3, 0.9], beta [0.2]: LeakyRelu takes no beta, so Affine gets 0.9 and 0.2
    layer = the_layer(proved(graph("RNN", direction="bidirectional", activations=["LeakyRelu", "Affine"],
                                   activation_alpha=[0.3, 0.9], activation_beta=[0.2])))
    assert layer["activations"][1] == {"fn": "affine", "alpha": pytest.approx(0.9), "beta": pytest.approx(0.2)}


def test_an_affine_without_alpha_takes_onnx_runtimes_default_and_says_so():
    mapping = proved(graph("GRU", activations=["Sigmoid", "Affine"], activation_beta=[0.5], linear_before_reset=1))
    assert the_layer(mapping)["activations"][1] == {"fn": "affine", "alpha": 0.0, "beta": 0.5}
    assert any("Affine gets ONNX Runtime's default alpha 0" in n for n in mapping.notes)


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
def test_bidirectional_with_different_functions_per_direction(op):
    names = {"RNN": ["Relu", "Softsign"], "LSTM": ["Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Softsign", "Elu"],
             "GRU": ["Sigmoid", "Tanh", "HardSigmoid", "Softsign"]}[op]
    for read in ("Y", "Y_h"):
        layer = the_layer(proved(graph(op, direction="bidirectional", activations=names, read=read,
                                       linear_before_reset=1)))
        assert [a["fn"] for a in layer["activations"]] == [n.lower() for n in names]  # forward first
        assert specs.functions(layer, 1)[0][0] == names[PER_DIRECTION[op]].lower()


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_constant_initial_states_equal_over_the_batch(op, direction):
    D, H, batch = (2 if direction == "bidirectional" else 1), 4, 3
    rng = np.random.default_rng(1)
    h = np.broadcast_to(rng.normal(0, 0.5, (D, 1, H)), (D, batch, H)).astype(np.float32)
    c = np.broadcast_to(rng.normal(0, 0.5, (D, 1, H)), (D, batch, H)).astype(np.float32)
    mapping = proved(graph(op, direction=direction, batch=batch, initial_h=h,
                           initial_c=c if op == "LSTM" else None, read="Y_h"))
    assert the_layer(mapping)["initial_state"] is True
    np.testing.assert_array_equal(mapping.tensors["layers.0.fwd.h0"], h[0, 0])
    if direction == "bidirectional":
        np.testing.assert_array_equal(mapping.tensors["layers.0.bwd.h0"], h[1, 0])
    if op == "LSTM":
        np.testing.assert_array_equal(mapping.tensors["layers.0.fwd.c0"], c[0, 0])


@pytest.mark.parametrize("given", ["initial_h", "initial_c"])
def test_an_lstm_with_one_initial_state_gets_zeros_for_the_other(given):
    value = np.full((1, 2, 4), 0.3, np.float32)
    mapping = proved(graph("LSTM", batch=2, **{given: value}))
    other = "c0" if given == "initial_h" else "h0"
    np.testing.assert_array_equal(mapping.tensors[f"layers.0.fwd.{other}"], np.zeros(4, np.float32))


def test_zero_initial_states_stay_absent():
    mapping = proved(graph("LSTM", batch=2, initial_h=np.zeros((1, 2, 4)), initial_c=np.zeros((1, 2, 4))))
    assert "initial_state" not in the_layer(mapping) and mapping.spec["version"] == specs.SPEC_VERSION


@pytest.mark.parametrize("op", ["RNN", "LSTM", "GRU"])
def test_layout_1_with_extensions_is_proven_by_ort_on_the_layout_0_rewrite(op):
    names = {"RNN": ["Softsign", "Relu"], "LSTM": ["Sigmoid", "Tanh", "Softsign"] * 2,
             "GRU": ["HardSigmoid", "Tanh"] * 2}[op]
    h = np.broadcast_to(np.linspace(-0.5, 0.5, 4, dtype=np.float32), (2, 2, 4))  # (B, D, H) with layout=1
    mapping = proved(graph(op, layout=1, direction="bidirectional", batch=2, clip=1.5, activations=names,
                           initial_h=h))
    assert mapping.proof_reference == "ONNX Runtime (layout=1 nodes as layout=0 + Transpose)"
    assert the_layer(mapping)["initial_state"] and the_layer(mapping)["clip"] == 1.5


# -- combined -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_an_lstm_with_every_extension_at_once(direction, layout):
    D, H, batch = (2 if direction == "bidirectional" else 1), 4, 2
    rng = np.random.default_rng(7)
    state = np.broadcast_to(rng.normal(0, 0.5, (D, 1, H)), (D, batch, H)).astype(np.float32)
    if layout:
        state = np.ascontiguousarray(state.transpose(1, 0, 2))
    mapping = proved(graph("LSTM", direction=direction, layout=layout, batch=batch, clip=2.0, input_forget=1,
                           P=rng.normal(0, 0.5, (D, 3 * H)), initial_h=state, initial_c=state * 2,
                           activations=["HardSigmoid", "Softsign", "ScaledTanh"] * D,
                           activation_alpha=[0.25, 1.1] * D, activation_beta=[0.45, 0.9] * D))
    layer = the_layer(mapping)
    assert specs.extensions(layer) == [k for k in ("reverse", "input_forget", "peepholes", "clip", "activations",
                                                   "initial_state") if k != "reverse" or direction == "reverse"]
    assert layer["activations"][2] == {"fn": "scaledtanh", "alpha": pytest.approx(1.1), "beta": pytest.approx(0.9)}


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_a_gru_with_every_extension_at_once(direction):
    D = 2 if direction == "bidirectional" else 1
    state = np.full((D, 3, 4), -0.25, np.float32)
    layer = the_layer(proved(graph("GRU", direction=direction, batch=3, clip=1.0, initial_h=state, read="Y_h",
                                   activations=["Sigmoid", "Elu"] * D, activation_alpha=[0.5] * D)))
    assert layer["linear_before_reset"] is False and layer["clip"] == 1.0 and layer["initial_state"]


def test_two_stacked_layers_with_different_extensions():
    rng = np.random.default_rng(2)
    H, F = 4, 3
    init = [numpy_helper.from_array(rng.normal(0, 0.4, shape).astype(np.float32), name) for name, shape in
            (("W1", (1, 12, F)), ("R1", (1, 12, H)), ("W2", (2, 16, H)), ("R2", (2, 16, H)), ("P2", (2, 12)))]
    init.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge"))
    nodes = [helper.make_node("GRU", ["x", "W1", "R1"], ["Y1"], name="gru", hidden_size=H, direction="reverse"),
             helper.make_node("Squeeze", ["Y1", "one"], ["X2"], name="drop_direction"),
             helper.make_node("LSTM", ["X2", "W2", "R2", "", "", "", "", "P2"], ["Y2"], name="lstm", hidden_size=H,
                              direction="bidirectional", clip=3.0),
             helper.make_node("Transpose", ["Y2"], ["Y2b"], perm=[2, 0, 1, 3], name="to_batch_major"),
             helper.make_node("Reshape", ["Y2b", "merge"], ["y"], name="merge_directions")]
    init.append(numpy_helper.from_array(np.array([1], np.int64), "one"))
    g = helper.make_graph(nodes, "stack", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", "b", F])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=init)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 22)])
    mapping = proved(model)
    assert [specs.extensions(layer) for layer in mapping.spec["layers"]] == [
        ["reverse", "linear_before_reset"], ["peepholes", "clip"]]


# -- sequence_lens ------------------------------------------------------------------------------------------------
def test_a_constant_sequence_lens_of_the_full_length_is_a_no_op():
    model = graph("LSTM", batch=2, lengths=[7, 7])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 7  # a fixed time axis of 7 steps
    mapping = proved(model)
    assert mapping.lengths_name is None and "reverse" not in the_layer(mapping)


@pytest.mark.parametrize("op,direction,read", [("LSTM", "bidirectional", "Y_h"), ("GRU", "forward", "Y"),
                                               ("RNN", "reverse", "Y_h"), ("LSTM", "reverse", "Y"),
                                               ("GRU", "bidirectional", "Y")])
def test_sequence_lens_as_a_graph_input_is_the_runtimes_lengths(op, direction, read):
    model = graph(op, direction=direction, read=read, lengths="input", linear_before_reset=1)
    mapping = proved(model)  # the proof fed random lengths to ORT and the same lengths to model.run(X, lengths)
    assert mapping.lengths_name == "lens" and mapping.describe()["lengths_input"] == "lens"
    assert any("'lens' is the sequence lengths" in n for n in mapping.notes)
    # and by hand: one batch, ORT vs the runtime within each length
    import onnxruntime as ort

    from rnnedge.export.from_onnx import ort_graph

    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 9, 3)).astype(np.float32)
    lengths = np.array([9, 1, 5, 8])
    session = ort.InferenceSession(ort_graph(model)[0].SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"x": np.ascontiguousarray(x.swapaxes(0, 1)), "lens": lengths.astype(np.int32)})
    got = Model(mapping.spec, "f32", mapping.tensors).run(x, lengths)
    if read == "Y":
        for b, n in enumerate(lengths):
            np.testing.assert_allclose(got[b, :n], want[b, :n], rtol=0, atol=1e-5)
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_the_report_graph_of_a_lengths_input_runs_every_sequence_whole():
    model = graph("GRU", direction="bidirectional", read="Y_h", lengths="input")
    mapping = map_onnx(model)
    reference, why_not = original_graph(model, mapping)
    assert why_not is None
    run, label = reference.runner()
    x = np.random.default_rng(4).standard_normal((3, 6, 3)).astype(np.float32)
    assert label == "ORT"
    np.testing.assert_allclose(run(x), Model(mapping.spec, "f32", mapping.tensors).run(x), rtol=0, atol=1e-5)


# -- refused, by node op type, name and attribute -----------------------------------------------------------------
def refused(model) -> str:
    with pytest.raises(MappingError) as e:
        map_onnx(model)
    return str(e.value)


def test_initial_states_that_differ_per_batch_row_are_refused():
    h = np.random.default_rng(0).normal(0, 1, (1, 2, 4))
    message = refused(graph("LSTM", batch=2, initial_h=h))
    assert "node 'lstm' (LSTM): initial_h differs between batch rows (row 1 is not row 0)" in message
    assert "works for batch size 2 only" in message


@pytest.mark.parametrize("what", ["initial_h", "initial_c"])
def test_an_initial_state_as_a_graph_input_is_refused(what):
    message = refused(graph("LSTM", **{what: "input"}))
    name = "h0" if what == "initial_h" else "c0"
    assert f"node 'lstm' (LSTM): {what} is the graph input {name!r}" in message


def test_an_unknown_activation_is_refused_by_name():
    message = refused(graph("GRU", activations=["Sigmoid", "Gelu"]))
    assert "node 'gru' (GRU): activations ['Gelu'] are not supported" in message


def test_an_activation_list_of_the_wrong_length_is_refused():
    message = refused(graph("LSTM", direction="bidirectional", activations=["Sigmoid", "Tanh", "Tanh"]))
    assert "node 'lstm' (LSTM): activations ['Sigmoid', 'Tanh', 'Tanh'] list 3 function(s)" in message


def test_a_used_y_c_is_refused_by_name():
    message = refused(graph("LSTM", read="Y_c"))
    assert "node 'lstm' (LSTM): its output Y_c (the final cell state) is used" in message


def test_a_constant_sequence_lens_shorter_than_the_input_is_refused():
    model = graph("LSTM", batch=2, lengths=[5, 7])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 7
    assert "node 'lstm' (LSTM): sequence_lens is the constant [5, 7]" in refused(model)


def test_the_last_step_of_y_with_a_lengths_input_is_refused():
    model = graph("LSTM", lengths="input", head=False)
    # read Y[-1] instead of every step: replace the glue with a Gather of the last time step
    nodes = [model.graph.node[0],
             helper.make_node("Gather", ["Y", "last"], ["Y_last"], name="last_step", axis=0),
             helper.make_node("Squeeze", ["Y_last", "zero"], ["feats"], name="drop_direction")]
    model.graph.initializer.extend([numpy_helper.from_array(np.array(-1, np.int64), "last"),
                                    numpy_helper.from_array(np.array([0], np.int64), "zero")])
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.output[0].name = "feats"
    assert "reads Y's last time step while sequence_lens is the graph input 'lens'" in refused(model)


def test_relu_between_layers_is_refused_by_name():
    model = graph("GRU", head=False)
    model.graph.node.append(helper.make_node("Relu", ["feats"], ["y"], name="between"))
    model.graph.output[0].name = "y"
    assert "node 'between' (Relu): operator Relu on a recurrent layer's output is not supported" in refused(model)


# -- end to end: rnnedge-export of an extended graph --------------------------------------------------------------
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("lengths", [None, "input"])
def test_export_of_an_extended_gru_through_every_precision(tmp_path, monkeypatch, lengths):
    import json

    from rnnedge.export.from_onnx import export_onnx

    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")
    # int8 runs reverse, linear_before_reset, input_forget, peepholes, clip and initial_state (not other functions)
    model = graph("GRU", direction="reverse", clip=2.0, read="Y_h", lengths=lengths,
                  initial_h=None if lengths else np.full((1, 2, 4), 0.2, np.float32), batch=None if lengths else 2)
    onnx.save_model(model, tmp_path / "gru.onnx")
    report = export_onnx(tmp_path / "gru.onnx", tmp_path / "out", steps=60, precisions=("f32", "int8w", "int8"))
    assert report["passed"] and report["module"]["source"] == "onnx"
    assert report["module"]["lengths_input"] == (lengths and "lens")
    described = json.loads((tmp_path / "out" / "onnx_mapping.json").read_text())
    assert described["lengths_input"] == (lengths and "lens")
    rows = {row["name"]: row for row in report["artifacts"] if row.get("reference")}
    assert rows and all(r["passed"] for r in rows.values())
