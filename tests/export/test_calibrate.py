"""export/calibrate.py: the NumPy float forward's ranges against PyTorch, the calibration slice, bad data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnedge.export.calibrate import CalibrationError, calibrate, calibration_slice, float_layers
from rnnedge.export.weights import canonical_tensors
from tests.helpers import make_model, make_spec, random_inputs

LENGTHS = np.array([30, 5, 17, 1, 30, 22])  # padded to 30 steps; one sequence of a single step


def torch_layers(model, X: np.ndarray, lengths: np.ndarray) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """First layer's input and every layer's output, zero past each length, as RecurrentModel.features runs them."""
    with torch.no_grad():
        first = h = model.embed(torch.from_numpy(X))
        outputs = []
        for rnn in model.layers:
            packed = pack_padded_sequence(h, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False)
            h, _ = pad_packed_sequence(rnn(packed)[0], batch_first=True, total_length=X.shape[1])
            outputs.append(h)
        assert torch.equal(outputs[-1], model.features(torch.from_numpy(X), torch.from_numpy(lengths)))
    return first, outputs


def torch_lstm_cell_absmax(lstm: nn.LSTM, inputs: torch.Tensor, lengths: np.ndarray) -> float:
    """max |c| over every direction and true step, from torch.nn.LSTMCell run one sequence at a time."""
    largest = 0.0
    for suffix in ("", "_reverse")[: 2 if lstm.bidirectional else 1]:
        cell = nn.LSTMCell(lstm.input_size, lstm.hidden_size)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(lstm, f"{name}_l0{suffix}"))
            for n, length in enumerate(lengths):
                steps = range(length - 1, -1, -1) if suffix else range(length)
                h = c = torch.zeros(1, lstm.hidden_size)
                for t in steps:
                    h, c = cell(inputs[n : n + 1, t], (h, c))
                    largest = max(largest, float(c.abs().max()))
    return largest


@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_calibrated_ranges_match_the_pytorch_model_layer_by_layer(cell, bidirectional, kind):
    model = make_model(make_spec(cell, layers=2, bidirectional=bidirectional, kind=kind, hidden=6))
    X = random_inputs(model.spec, len(LENGTHS), 30, seed=1)
    ranges = calibrate(model, X, LENGTHS)

    first, outputs = torch_layers(model, X, LENGTHS)
    valid = torch.from_numpy(np.arange(30)[None, :] < LENGTHS[:, None])
    assert ranges.samples == LENGTHS.sum() and ranges.extra == {"sequences": len(LENGTHS)}
    if kind == "dense":
        assert ranges.input_absmax == pytest.approx(float(first[valid].abs().max()), abs=1e-5)
    else:
        assert ranges.input_absmax is None
    assert len(ranges.hidden_absmax) == len(ranges.cell_absmax) == 2
    for l, h in enumerate(outputs):
        assert ranges.hidden_absmax[l] == pytest.approx(float(h.abs().max()), abs=1e-5)
        if cell == "lstm":
            inputs = first if l == 0 else outputs[l - 1]
            want = torch_lstm_cell_absmax(model.layers[l], inputs, LENGTHS)
            assert ranges.cell_absmax[l] == pytest.approx(want, abs=1e-5)
        else:
            assert ranges.cell_absmax[l] == 0.0

    # not only the maxima: every output of every layer, including the zeros past each length
    _, ours, _ = float_layers(model.spec, canonical_tensors(model), X, LENGTHS)
    for mine, theirs in zip(ours, outputs):
        np.testing.assert_allclose(mine, theirs.numpy(), atol=1e-5, rtol=0)


def test_steps_past_a_length_do_not_count():
    model = make_model(make_spec("lstm", bidirectional=True, hidden=6))
    X = random_inputs(model.spec, len(LENGTHS), 30, seed=2)
    clean = calibrate(model, X, LENGTHS)
    past = np.arange(30)[None, :] >= LENGTHS[:, None]
    noisy = X.copy()
    noisy[past] = 1e6
    noisy[1, 10] = np.nan  # sequence 1 is 5 steps long
    assert calibrate(model, noisy, LENGTHS) == clean
    assert calibrate(model, X[:, :30], None).samples == 30 * len(LENGTHS)  # no lengths: every step counts


def test_calibrate_takes_a_spec_and_tensors_as_well_as_a_model():
    model = make_model(make_spec("gru", kind="tokens", hidden=6))
    X = random_inputs(model.spec, 4, 12, seed=3)
    assert calibrate((model.spec, canonical_tensors(model)), X) == calibrate(model, X)


def test_calibration_slice_is_a_seeded_random_subset_within_max_steps():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 41, 200)
    X = np.zeros((200, 40, 2), np.float32)
    X[:, :, 0] = np.arange(200)[:, None]  # each sequence says which one it is
    Xs, ls = calibration_slice(X, lengths, max_steps=500, seed=7)
    assert 1 <= len(ls) < 200 and ls.sum() <= 500
    assert ls.sum() > 500 - 40  # filled up: the next sequence would not fit
    chosen = Xs[:, 0, 0].astype(int)
    assert np.all(np.diff(chosen) > 0)  # a subset, in the data's own order
    np.testing.assert_array_equal(ls, lengths[chosen])
    assert Xs.shape[1] == ls.max()
    again_X, again_l = calibration_slice(X, lengths, max_steps=500, seed=7)
    np.testing.assert_array_equal(again_X, Xs)
    np.testing.assert_array_equal(again_l, ls)
    other = calibration_slice(X, lengths, max_steps=500, seed=8)[0][:, 0, 0].astype(int)
    assert not np.array_equal(other, chosen)
    assert not np.array_equal(chosen, np.arange(len(chosen)))  # not simply the first sequences


def test_calibration_slice_keeps_everything_that_fits_and_always_one_sequence():
    X = np.ones((3, 50, 1), np.float32)
    Xs, ls = calibration_slice(X, np.array([50, 20, 10]), max_steps=1000)
    assert Xs.shape == (3, 50, 1) and list(ls) == [50, 20, 10]
    Xs, ls = calibration_slice(X, np.array([50, 45, 40]), max_steps=30)  # none fits: one, cut to max_steps
    assert len(ls) == 1 and ls[0] == 30 and Xs.shape == (1, 30, 1)


DENSE = make_spec("gru", features=3, hidden=4)
TOKENS = make_spec("gru", kind="tokens", vocab=10, hidden=4)


@pytest.mark.parametrize("spec, X, lengths, says", [
    (DENSE, np.zeros((0, 5, 3), np.float32), None, "calibration data is empty"),
    (DENSE, np.zeros((2, 0, 3), np.float32), None, "calibration data is empty"),
    (TOKENS, np.zeros((0,), np.int64), None, "calibration data is empty"),
    (DENSE, np.zeros((2, 5, 4), np.float32), None, "reads (N, T, 3) float values, got float32 of shape (2, 5, 4)"),
    (DENSE, np.zeros((2, 5, 3), np.int64), None, "the model reads (N, T, 3) float values, got int64"),
    (DENSE, np.zeros((2, 5), np.float32), None, "the model reads (N, T, 3) float values"),
    (TOKENS, np.zeros((2, 5), np.float32), None, "the model reads (N, T) integer token ids, got float32"),
    (TOKENS, np.full((2, 5), 10), None, "token ids span [10, 10], the model's vocabulary is [0, 10)"),
    (TOKENS, np.full((2, 5), -1), None, "token ids span [-1, -1]"),
    (DENSE, np.zeros((2, 5, 3), np.float32), np.array([5, 0]), "lengths must lie in [1, 5]"),
    (DENSE, np.zeros((2, 5, 3), np.float32), np.array([5, 6]), "lengths must lie in [1, 5]"),
    (DENSE, np.zeros((2, 5, 3), np.float32), np.array([5]), "lengths must be (2,) integers"),
    (DENSE, np.zeros((2, 5, 3), np.float32), np.array([5.0, 5.0]), "lengths must be (2,) integers"),
])
def test_bad_calibration_data_is_refused_with_a_clear_message(spec, X, lengths, says):
    model = make_model(spec)
    with pytest.raises(CalibrationError) as raised:
        calibrate(model, X, lengths)
    assert says in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_within_a_length_are_refused_naming_where(bad):
    X = np.zeros((2, 5, 3), np.float32)
    X[1, 3, 2] = bad
    with pytest.raises(CalibrationError, match=rf"non-finite value {bad} in sequence 1, step 3, feature 2"):
        calibrate(make_model(DENSE), X, np.array([5, 4]), where="data set 'x' (train split)")
    X[1, 4, 2] = bad  # past its length (4): ignored
    X[1, 3, 2] = 0.0
    assert calibrate(make_model(DENSE), X, np.array([5, 4])).samples == 9
