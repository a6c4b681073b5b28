"""ONNX in, issue 12: heads that read the directions other than concatenated final states. A bidirectional layer's
directions added (Keras' Bidirectional merge_mode "sum" / "ave", torch's h_n[-2] + h_n[-1]) map to the
concatenation read by the weight repeated; one time step of Y that is not every direction's final state maps to an
every_step head read at that step (OnnxMapping.read_step). Small torch models exported with TorchScript, and
hand-built graphs, each proved against ONNX Runtime."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from rnnedge.export.from_module import MappingError
from rnnedge.export.from_onnx import load_onnx, map_onnx
from rnnedge.runtime.model import Model

F, H, O = 3, 4, 2


def exported(forward, rnn: nn.Module, tmp_path, batch_first=True, width=H) -> tuple:
    """(the OnnxMapping of a TorchScript export of forward(net, x) with net.rnn and net.fc = Linear(width, O), the
    module, an input)."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = rnn, nn.Linear(width, O)

        def forward(self, x):
            return forward(self, x)

    torch.manual_seed(0)
    net = Net().eval()
    x = torch.randn(3, 6, F) if batch_first else torch.randn(6, 3, F)
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "batch", 1: "time"} if batch_first else {0: "time", 1: "batch"}})
    return map_onnx(load_onnx(path)), net, x


def converted_output(mapping, x: torch.Tensor) -> np.ndarray:
    got = Model(mapping.spec, "f32", mapping.tensors).run(
        np.swapaxes(x.numpy(), 0, 1) if mapping.input_time_major else x.numpy())
    return mapping.user_output(got)


@pytest.mark.parametrize("merge", ["sum", "ave_div", "ave_mul"])
def test_a_head_on_the_sum_of_both_directions_final_states_converts(merge, tmp_path):
    def forward(net, x):
        _, h_n = net.rnn(x)
        z = h_n[-2] + h_n[-1]
        z = z / 2 if merge == "ave_div" else z * 0.5 if merge == "ave_mul" else z
        return torch.softmax(net.fc(z), -1)

    torch.manual_seed(1)
    mapping, net, x = exported(forward, nn.GRU(F, H, batch_first=True, bidirectional=True), tmp_path)
    assert mapping.spec["head"]["on"] == "last_step" and mapping.spec["layers"][0]["bidirectional"]
    assert mapping.max_abs_diff <= 1e-5 and mapping.read_step is None
    assert any("adds the directions" in note for note in mapping.notes)
    with torch.no_grad():
        np.testing.assert_allclose(converted_output(mapping, x), net(x).numpy(), rtol=0, atol=1e-5)


def test_a_head_on_every_steps_directions_added_by_slicing_the_features_converts(tmp_path):
    def forward(net, x):
        output, _ = net.rnn(x)
        return net.fc(output[:, :, :H] + output[:, :, H:])

    mapping, net, x = exported(forward, nn.LSTM(F, H, batch_first=True, bidirectional=True), tmp_path)
    assert mapping.spec["head"]["on"] == "every_step" and mapping.max_abs_diff <= 1e-5
    with torch.no_grad():
        np.testing.assert_allclose(converted_output(mapping, x), net(x).numpy(), rtol=0, atol=1e-5)


def test_each_directions_final_state_sliced_from_the_output_is_a_last_step_head(tmp_path):
    def forward(net, x):  # the usual fix of output[:, -1]: the forward half at T-1, the backward half at 0
        output, _ = net.rnn(x)
        return net.fc(torch.cat((output[:, -1, :H], output[:, 0, H:]), 1))

    mapping, net, x = exported(forward, nn.GRU(F, H, batch_first=True, bidirectional=True), tmp_path, width=2 * H)
    assert mapping.spec["head"]["on"] == "last_step" and mapping.read_step is None and not mapping.warnings
    with torch.no_grad():
        np.testing.assert_allclose(converted_output(mapping, x), net(x).numpy(), rtol=0, atol=1e-5)


def test_the_last_layers_directions_flattened_from_h_n_are_a_last_step_head(tmp_path):
    def forward(net, x):  # TorchScript writes flatten(1) as a Flatten node
        _, h_n = net.rnn(x)
        return net.fc(h_n[-2:].transpose(0, 1).flatten(1))

    rnn = nn.GRU(F, H, num_layers=2, batch_first=True, bidirectional=True)
    mapping, net, x = exported(forward, rnn, tmp_path, width=2 * H)
    assert mapping.spec["head"]["on"] == "last_step" and len(mapping.spec["layers"]) == 2
    with torch.no_grad():
        np.testing.assert_allclose(converted_output(mapping, x), net(x).numpy(), rtol=0, atol=1e-5)


def test_the_last_layer_of_h_n_viewed_as_layers_by_directions_is_a_last_step_head(tmp_path):
    def forward(net, x):  # PyTorch's documented h_n.view(num_layers, num_directions, batch, hidden)
        _, (h_n, _) = net.rnn(x)
        last = h_n.view(2, 2, x.shape[0], H)[-1]
        return net.fc(torch.cat((last[0], last[1]), 1))

    rnn = nn.LSTM(F, H, num_layers=2, batch_first=True, bidirectional=True)
    mapping, net, x = exported(forward, rnn, tmp_path, width=2 * H)
    assert mapping.spec["head"]["on"] == "last_step" and len(mapping.spec["layers"]) == 2
    with torch.no_grad():
        np.testing.assert_allclose(converted_output(mapping, x), net(x).numpy(), rtol=0, atol=1e-5)


def test_a_slice_inside_a_direction_is_refused_naming_the_cut(tmp_path):
    def forward(net, x):
        output, _ = net.rnn(x)
        return net.fc(output[:, -1, 1:H + 1])

    with pytest.raises(MappingError, match=r"features \[1:5\] of 8 cuts inside a direction of 4 units"):
        exported(forward, nn.GRU(F, H, batch_first=True, bidirectional=True), tmp_path)


def test_two_layers_final_states_added_are_refused_naming_the_add(tmp_path):
    def forward(net, x):
        _, h_n = net.rnn(x)
        return net.fc(h_n[0] + h_n[1])

    with pytest.raises(MappingError, match=r"\(Add\): Add of the sequence is supported .* one recurrent layer's "
                                           r"directions"):
        exported(forward, nn.GRU(F, H, num_layers=2, batch_first=True), tmp_path)


def test_two_layers_final_states_concatenated_are_refused_saying_what_would_map_instead(tmp_path):
    def forward(net, x):
        _, h_n = net.rnn(x)
        return net.fc(torch.cat((h_n[-2], h_n[-1]), 1)[:, :H])

    with pytest.raises(MappingError) as refusal:
        exported(forward, nn.GRU(F, H, num_layers=2, batch_first=True), tmp_path)
    message = str(refusal.value)
    assert "(Concat): Concat joins the final states of recurrent layers [0, 1]" in message, message
    assert "h_n[-1] alone" in message and "a bidirectional last layer" in message


def test_a_forward_output_at_step_zero_maps_to_an_every_step_head_read_at_step_zero(tmp_path):
    def forward(net, x):
        output, _ = net.rnn(x)
        return net.fc(output[:, 0])

    mapping, net, x = exported(forward, nn.LSTM(F, H, batch_first=True), tmp_path)
    assert mapping.spec["head"]["on"] == "every_step" and mapping.read_step == "first"
    assert len(mapping.warnings) == 1 and "at t=0" in mapping.warnings[0]
    assert mapping.describe()["read_step"] == "first"
    with torch.no_grad():
        np.testing.assert_allclose(converted_output(mapping, x), net(x).numpy(), rtol=0, atol=1e-5)


def test_a_bidirectional_output_at_the_last_step_maps_to_an_every_step_head_read_there(tmp_path):
    def forward(net, x):
        output, _ = net.rnn(x)
        return net.fc(output[-1])

    rnn = nn.RNN(F, H // 2, bidirectional=True)  # time-major: output[-1] is the last step
    mapping, net, x = exported(forward, rnn, tmp_path, batch_first=False)
    assert mapping.spec["head"]["on"] == "every_step" and mapping.read_step == "last"
    assert not mapping.output_time_major and mapping.input_time_major
    assert "has seen only the last step" in mapping.warnings[0]
    assert any("run(X)[:, -1]" in note for note in mapping.notes)
    with torch.no_grad():
        np.testing.assert_allclose(converted_output(mapping, x), net(x).numpy(), rtol=0, atol=1e-5)


def _const(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def test_the_next_layer_reading_both_directions_summed_converts():
    """x (T, B, F) -> bidirectional RNN -> Y (T, 2, B, H) -> forward + backward -> RNN -> Y_h -> MatMul."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("RNN", ["x", "W1", "R1", "B1"], ["Y1"], name="rnn1", hidden_size=H,
                              direction="bidirectional"),
             helper.make_node("Slice", ["Y1", "zero", "one", "one"], ["fwd4"], name="fwd"),
             helper.make_node("Slice", ["Y1", "one", "two", "one"], ["bwd4"], name="bwd"),
             helper.make_node("Squeeze", ["fwd4", "one"], ["fwd"]),
             helper.make_node("Squeeze", ["bwd4", "one"], ["bwd"]),
             helper.make_node("Add", ["fwd", "bwd"], ["summed"], name="merge_sum"),
             helper.make_node("Mul", ["summed", "half"], ["ave"], name="merge_ave"),
             helper.make_node("RNN", ["ave", "W2", "R2", "B2"], ["", "Y_h"], name="rnn2", hidden_size=H),
             helper.make_node("Squeeze", ["Y_h", "zero"], ["last"]),
             helper.make_node("MatMul", ["last", "Wo"], ["y"], name="head")]
    inits = [_const("W1", rng.normal(size=(2, H, F)) * 0.5), _const("R1", rng.normal(size=(2, H, H)) * 0.5),
             _const("B1", rng.normal(size=(2, 2 * H)) * 0.1), _const("W2", rng.normal(size=(1, H, H)) * 0.5),
             _const("R2", rng.normal(size=(1, H, H)) * 0.5), _const("B2", rng.normal(size=(1, 2 * H)) * 0.1),
             _const("Wo", rng.normal(size=(H, O))), _const("half", 0.5), _const("zero", [0], np.int64),
             _const("one", [1], np.int64), _const("two", [2], np.int64)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", "b", F])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    mapping = map_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert [layer["bidirectional"] for layer in mapping.spec["layers"]] == [True, False]
    assert mapping.tensors["layers.1.fwd.w_ih"].shape == (H, 2 * H)  # [W, W] x 0.5
    assert mapping.max_abs_diff <= 1e-5
