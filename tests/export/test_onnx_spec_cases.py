"""The ONNX operator spec's own RNN / LSTM / GRU cases (onnx.backend.test.case.node.rnn / lstm / gru) through
map_onnx.

Each case is one recurrent node with its inputs and the outputs onnx's numpy reference computed. Here its weights
(and any other non-X inputs) become initializers, and each output the case checks becomes one graph, with the
glue that brings it to rnnedge's layout (batch[, time], directions * hidden): Transpose / Reshape for Y, Squeeze
or Transpose + Reshape of the direction axis for Y_h. The graph has no head, so the mapper adds an identity head.
Every one converts (reverse, peepholes, GRU's linear_before_reset=0 and the rest map to the spec's layer
extensions), its proof holds against ONNX Runtime (layout=1 nodes run as layout=0 between Transposes, since ORT
implements layout 0 only), and the runtime f32 on the case's X matches the case's expected output to 1e-5.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from rnnedge.export.from_module import MappingError
from rnnedge.export.from_onnx import map_onnx
from rnnedge.runtime import spec as specs
from rnnedge.runtime.model import Model

# case name -> the layer extensions its mapped spec must use (the others use none)
EXTENSIONS = {
    "test_simple_rnn_reverse": ["reverse"],
    "test_lstm_reverse": ["reverse"],
    "test_gru_reverse": ["reverse", "linear_before_reset"],
    # its sequence_lens is the constant full length (a no-op) and its initial_h / initial_c are zeros
    "test_lstm_with_peepholes": ["peepholes"],
    "test_gru_defaults": ["linear_before_reset"],  # every GRU case: ONNX's default cell
    "test_gru_with_initial_bias": ["linear_before_reset"],
    "test_gru_seq_length": ["linear_before_reset"],
    "test_gru_batchwise": ["linear_before_reset"],
    "test_gru_bidirectional": ["linear_before_reset"],
}


def spec_cases() -> list[tuple]:
    """(name, node, inputs, outputs) of every case the onnx package defines for RNN, LSTM and GRU."""
    cases = []
    for module_name in ("rnn", "lstm", "gru"):
        module = importlib.import_module(f"onnx.backend.test.case.node.{module_name}")
        collected = []
        saved = module.expect
        module.expect = lambda node, inputs, outputs, name, _into=collected, **kw: _into.append(
            (name, node, inputs, outputs))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for cls in vars(module).values():
                    if isinstance(cls, type) and cls.__name__ in ("RNN", "LSTM", "GRU"):
                        for attr in sorted(dir(cls)):
                            if attr.startswith("export"):
                                getattr(cls, attr)()
        finally:
            module.expect = saved
        cases += collected
    return cases


def variants() -> list:
    """One pytest param per (case, output it checks)."""
    params = []
    for name, node, inputs, outputs in spec_cases():
        present = [o for o in node.output if o]
        for which, expected in zip(present, outputs):
            if which == "Y_c":
                continue  # rnnedge returns the hidden state; a graph returning Y_c is refused (tested below)
            params.append(pytest.param(name, node, inputs, which, np.asarray(expected), id=f"{name}-{which}"))
    return params


def attrs_of(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def case_graph(node, inputs, which: str):
    """The case's node, non-X inputs as initializers, returning `which` in rnnedge's layout; and a numpy function
    that brings the case's expected output to that layout."""
    attrs = attrs_of(node)
    layout = attrs.get("layout", 0)
    names = list(node.input)
    X = np.asarray(inputs[0], np.float32)
    init = [numpy_helper.from_array(np.asarray(v), n) for n, v in zip(names[1:], inputs[1:]) if n]
    rec = helper.make_node(node.op_type, names, ["Y", "Y_h"], name=node.op_type.lower(), **attrs)
    nodes = [rec]
    if which == "Y":  # layout 0: (T, D, B, H); layout 1: (B, T, D, H) -> (B, T, D*H)
        source = "Y"
        if layout == 0:
            nodes.append(helper.make_node("Transpose", ["Y"], ["Y_btdh"], perm=[2, 0, 1, 3]))
            source = "Y_btdh"
        nodes.append(helper.make_node("Reshape", [source, "merge3"], ["out"]))
        init.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "merge3"))

        def expect(y):
            y = np.transpose(y, (2, 0, 1, 3)) if layout == 0 else y
            return y.reshape(y.shape[0], y.shape[1], -1)
    else:  # layout 0: (D, B, H); layout 1: (B, D, H) -> (B, D*H)
        source = "Y_h"
        if layout == 0:
            nodes.append(helper.make_node("Transpose", ["Y_h"], ["Y_h_bdh"], perm=[1, 0, 2]))
            source = "Y_h_bdh"
        nodes.append(helper.make_node("Reshape", [source, "merge2"], ["out"]))
        init.append(numpy_helper.from_array(np.array([0, -1], np.int64), "merge2"))

        def expect(y):
            y = np.transpose(y, (1, 0, 2)) if layout == 0 else y
            return y.reshape(y.shape[0], -1)
    graph = helper.make_graph(nodes, "spec_case",
                              [helper.make_tensor_value_info(names[0], TensorProto.FLOAT, list(X.shape))],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    model.ir_version = 10
    batch_major = np.swapaxes(X, 0, 1) if layout == 0 else X  # the runtime takes (B, T, F)
    return model, np.ascontiguousarray(batch_major), expect


CASES = variants()


def test_the_spec_cases_were_collected():
    names = {p.values[0] for p in CASES}
    assert len(names) >= 18 and set(EXTENSIONS) <= names, sorted(names)


@pytest.mark.parametrize("name,node,inputs,which,expected", CASES)
def test_spec_case_converts_and_matches_ort_and_its_expected_output(name, node, inputs, which, expected):
    model, x, expect = case_graph(node, inputs, which)
    mapping = map_onnx(model)
    assert mapping.max_abs_diff <= 1e-5  # the proof: ONNX Runtime on the graph vs the runtime
    assert mapping.proof_reference.startswith("ONNX Runtime")
    assert specs.extensions(mapping.spec["layers"][0]) == EXTENSIONS.get(name, [])
    assert "the graph has no head: an identity head was added" in mapping.notes
    assert mapping.spec["head"]["on"] == ("every_step" if which == "Y" else "last_step")
    got = Model(mapping.spec, "f32", mapping.tensors).run(x)
    want = expect(expected)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_a_spec_case_returning_y_c_is_refused_by_name():
    _, node, inputs, _ = next(c for c in spec_cases() if c[0] == "test_lstm_bidirectional")
    model, _, _ = case_graph(node, inputs, "Y_h")
    rec = model.graph.node[0]
    rec.output.append("Y_c")
    model.graph.output[0].name = "Y_c"
    del model.graph.node[1:]
    with pytest.raises(MappingError, match="Y_c"):
        map_onnx(model)
