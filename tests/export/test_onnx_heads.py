"""model.onnx and model.step.onnx emit the head contract (hidden dense layers, every hidden activation,
log_softmax) and match the PyTorch reference within the f32 tolerance."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from rnnedge.export import parity
from rnnedge.export.onnx_graphs import build_sequence_graph, build_step_graph
from rnnedge.export.weights import canonical_tensors
from tests.helpers import TOLERANCE, make_model
from tests.runtime.test_heads import FORMS, form_spec


@pytest.fixture(autouse=True)
def one_torch_thread():
    with parity.torch_single_thread():
        yield


@pytest.mark.parametrize("on", ["every_step", "last_step"])
@pytest.mark.parametrize("form", FORMS)
def test_head_form_in_both_onnx_graphs_matches_pytorch(form, on):
    model = make_model(form_spec(form, on, layers=2), seed=1)
    tensors = canonical_tensors(model)
    sequence_graph = build_sequence_graph(model.spec, tensors)
    step_graph = build_step_graph(model.spec, tensors)
    for graph in (sequence_graph, step_graph):
        onnx.checker.check_model(graph, full_check=True)
    x = parity.random_streams(model.spec, 2, 300, seed=2)
    sequence = parity.ort_sequence(parity.ort_session(sequence_graph.SerializeToString()), x)
    stepped = parity.ort_step_loop(parity.ort_session(step_graph.SerializeToString()), model.spec, x)
    assert np.abs(sequence - parity.torch_sequence(model, x)).max() <= TOLERANCE["f32"]
    assert np.abs(stepped - parity.torch_every_prefix(model, x)).max() <= TOLERANCE["f32"]


def test_head_stack_and_log_softmax_are_onnx_nodes():
    model = make_model(form_spec("gelu"))
    ops = [node.op_type for node in build_sequence_graph(model.spec, canonical_tensors(model)).graph.node]
    assert ops[-1] == "LogSoftmax" and "Erf" in ops and ops.count("MatMul") == 2
