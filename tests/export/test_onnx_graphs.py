"""model.onnx and model.step.onnx, built node by node, against the PyTorch forward on 1000-step streams."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
import torch

from rnnedge.export import parity
from rnnedge.export.onnx_graphs import (
    ONNX_GATES,
    TORCH_GATES,
    activation_attributes,
    build_sequence_graph,
    build_step_graph,
    to_onnx_gate_order,
)
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import spec as specs
from rnnedge.train.model import RecurrentModel
from tests.helpers import TOLERANCE

STEPS = 1000
HIDDEN = (8, 16, 12)  # layers of different widths, so a state or weight mixed up between layers cannot fit


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models: torch's intra-op threads only add waiting, badly so on a busy 2-core machine."""
    with parity.torch_single_thread():
        yield


def graph_spec(cell, layers, bidirectional, kind, on, activation="none") -> dict:
    inp = ({"kind": "dense", "features": 5, "mean": [0.5, -1.0, 2.0, 0.0, 10.0], "std": [1.0, 2.0, 0.5, 3.0, 4.0]}
           if kind == "dense" else {"kind": "tokens", "vocab": 20, "embed_dim": 6, "padding_idx": 0})
    return {"version": 1, "input": inp,
            "layers": [{"cell": cell, "hidden": HIDDEN[i], "bidirectional": bidirectional} for i in range(layers)],
            "head": {"out": 4, "on": on, "activation": activation}, "task": "classify"}


def seeded_model(spec: dict, seed: int = 0) -> RecurrentModel:
    torch.manual_seed(seed)
    return RecurrentModel(spec).eval()


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.float64) - b).max())


MATRIX = list(itertools.product(("rnn_tanh", "rnn_relu", "lstm", "gru"), (1, 3), (False, True),
                                ("dense", "tokens"), ("every_step", "last_step")))


def matrix_id(case) -> str:
    cell, layers, bidirectional, kind, on = case
    return f"{cell}-{layers}layer-{'bi' if bidirectional else 'uni'}-{kind}-{on}"


@pytest.mark.parametrize("case", MATRIX, ids=[matrix_id(c) for c in MATRIX])
def test_onnx_graphs_match_the_pytorch_forward_over_1000_steps(case):
    spec = graph_spec(*case)  # head without activation: raw logits are the strictest comparison
    model = seeded_model(spec)
    tensors = canonical_tensors(model)
    sequence_graph = build_sequence_graph(model.spec, tensors)
    onnx.checker.check_model(sequence_graph, full_check=True)
    session = parity.ort_session(sequence_graph.SerializeToString())
    for batch in (1, 3):
        x = parity.random_streams(model.spec, batch, STEPS, seed=batch)
        assert max_abs(parity.ort_sequence(session, x), parity.torch_sequence(model, x)) <= TOLERANCE["f32"]

    if spec["layers"][0]["bidirectional"]:
        with pytest.raises(ValueError, match="bidirectional"):
            build_step_graph(model.spec, tensors)
        return
    step_graph = build_step_graph(model.spec, tensors)
    onnx.checker.check_model(step_graph, full_check=True)
    stepped = parity.ort_step_loop(parity.ort_session(step_graph.SerializeToString()), model.spec, x)
    # at every t: what forward returns for the stream cut after t (for every_step heads, forward itself)
    assert max_abs(stepped, parity.torch_every_prefix(model, x)) <= TOLERANCE["f32"]
    if spec["head"]["on"] == "last_step":
        assert max_abs(stepped[:, -1], parity.torch_sequence(model, x)) <= TOLERANCE["f32"]


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("on", ["every_step", "last_step"])
def test_head_activation_in_both_graphs_matches_pytorch(activation, on):
    model = seeded_model(graph_spec("gru", 2, False, "dense", on, activation))
    tensors = canonical_tensors(model)
    x = parity.random_streams(model.spec, 2, 200, seed=0)
    sequence = parity.ort_session(build_sequence_graph(model.spec, tensors).SerializeToString())
    step = parity.ort_session(build_step_graph(model.spec, tensors).SerializeToString())
    assert max_abs(parity.ort_sequence(sequence, x), parity.torch_sequence(model, x)) <= TOLERANCE["f32"]
    assert max_abs(parity.ort_step_loop(step, model.spec, x), parity.torch_every_prefix(model, x)) <= TOLERANCE["f32"]


def test_every_prefix_reference_is_forward_on_the_cut_sequence():
    model = seeded_model(graph_spec("lstm", 2, False, "tokens", "last_step", "softmax"))
    x = parity.random_streams(model.spec, 2, 30, seed=0)
    every_prefix = parity.torch_every_prefix(model, x)
    for t in (0, 7, 29):
        np.testing.assert_allclose(every_prefix[:, t], parity.torch_sequence(model, x[:, : t + 1]), atol=1e-6)


def test_gate_blocks_move_from_torch_order_to_onnx_order():
    for cell in ("rnn_tanh", "lstm", "gru"):
        labels = np.array([ord(g) for g in TORCH_GATES[cell]]).repeat(2)[:, None]  # 2 rows per gate
        reordered = to_onnx_gate_order(cell, labels)[::2, 0]
        assert "".join(map(chr, reordered)) == ONNX_GATES[cell]
    assert ONNX_GATES["lstm"] == "iofg"  # onnx i o f c; torch's g is the cell candidate c
    assert ONNX_GATES["gru"] == "zrn"  # onnx z r h; torch's n is the candidate h


def test_gru_nodes_use_pytorchs_linear_before_reset():
    model = seeded_model(graph_spec("gru", 1, True, "dense", "every_step"))
    graph = build_sequence_graph(model.spec, canonical_tensors(model)).graph
    (gru,) = [node for node in graph.node if node.op_type == "GRU"]
    assert {a.name: onnx.helper.get_attribute_value(a) for a in gru.attribute}["linear_before_reset"] == 1


def test_graphs_have_dynamic_batch_and_time_axes_and_named_state():
    model = seeded_model(graph_spec("lstm", 2, False, "dense", "every_step"))
    tensors = canonical_tensors(model)

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    sequence = build_sequence_graph(model.spec, tensors).graph
    assert dims(sequence.input[0]) == ["batch", "time", 5]
    assert dims(sequence.output[0]) == ["batch", "time", 4]
    step = build_step_graph(model.spec, tensors).graph
    assert [v.name for v in step.input] == ["x", "h0_in", "c0_in", "h1_in", "c1_in"]
    assert [v.name for v in step.output] == ["y", "h0_out", "c0_out", "h1_out", "c1_out"]
    assert dims(step.input[3]) == ["batch", 16]


def test_tensors_that_do_not_fit_the_spec_are_refused():
    model = seeded_model(graph_spec("rnn_tanh", 1, False, "dense", "every_step"))
    tensors = canonical_tensors(model)
    tensors["layers.0.fwd.w_hh"] = tensors["layers.0.fwd.w_hh"][:4]
    with pytest.raises(ValueError, match="layers.0.fwd.w_hh"):
        build_sequence_graph(model.spec, tensors)


def test_activation_alpha_and_beta_lists_are_packed_as_onnx_runtime_reads_them():
    """ORT gives each list's values to the functions that take one, in order (export/onnx_graphs.py)."""
    layer = specs.validate({**graph_spec("lstm", 1, True, "dense", "every_step"), "layers": [
        {"cell": "lstm", "hidden": 4, "bidirectional": True, "activations": [
            {"fn": "hardsigmoid", "alpha": 0.3, "beta": 0.4}, {"fn": "affine"}, {"fn": "softsign"},
            {"fn": "sigmoid"}, {"fn": "scaledtanh", "alpha": 1.1, "beta": 0.9}, {"fn": "elu", "alpha": 0.5}]}]})
    attrs = activation_attributes(layer["layers"][0])
    assert attrs == {"activations": ["HardSigmoid", "Affine", "Softsign", "Sigmoid", "ScaledTanh", "Elu"],
                     "activation_alpha": [0.3, 1.0, 1.1, 0.5], "activation_beta": [0.4, 0.0, 0.9]}
    plain = specs.validate(graph_spec("gru", 1, False, "dense", "every_step"))["layers"][0]
    assert activation_attributes(plain) == {"activations": ["Sigmoid", "Tanh"]}


@pytest.mark.parametrize("fn", ["affine", "scaledtanh", "hardsigmoid"])
def test_alpha_and_beta_at_their_onnx_defaults_are_written_for_onnx_runtime(fn):
    """ORT takes a missing alpha or beta as 0 for Affine and ScaledTanh, not ONNX's 1: every value is written."""
    spec = graph_spec("rnn_tanh", 1, False, "dense", "every_step")
    spec["layers"][0]["activations"] = [{"fn": fn}]
    model = seeded_model(spec)
    x = parity.random_streams(model.spec, 2, 50, seed=0)
    session = parity.ort_session(build_sequence_graph(model.spec, canonical_tensors(model)).SerializeToString())
    assert max_abs(parity.ort_sequence(session, x), parity.torch_sequence(model, x)) <= TOLERANCE["f32"]
