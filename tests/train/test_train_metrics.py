"""train.metrics on hand-made arrays."""

import numpy as np
import pytest

from rnnedge.train.metrics import higher_is_better, metric_name, task_metric


def test_accuracy_of_last_step_scores_counts_argmax_hits_in_percent():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert task_metric("classify", scores, np.array([0, 1, 1, 1]), None) == ("accuracy", 75.0)


def test_accuracy_of_every_step_scores_ignores_steps_past_each_length():
    scores = np.zeros((2, 3, 2))
    scores[..., 1] = 1.0  # always predicts class 1
    labels = np.array([[1, 1, 0], [1, 0, 0]])  # the zeros sit mostly in padding
    assert task_metric("tag", scores, labels, np.array([2, 1])) == ("accuracy", 100.0)
    assert task_metric("tag", scores, labels, None)[1] == pytest.approx(50.0)


def test_rmse_of_every_step_forecast_ignores_steps_past_each_length():
    predicted = np.zeros((2, 3, 1), dtype=np.float32)
    target = np.array([[[3.0], [4.0], [99.0]], [[0.0], [99.0], [99.0]]], dtype=np.float32)
    name, value = task_metric("forecast", predicted, target, np.array([2, 1]))
    assert name == "rmse"
    assert value == pytest.approx(np.sqrt((9 + 16 + 0) / 3))


def test_rmse_of_last_step_forecast_uses_every_value():
    assert task_metric("forecast", np.array([[1.0, 1.0]]), np.array([[1.0, 3.0]]), None)[1] == pytest.approx(np.sqrt(2))


def test_metrics_accept_torch_outputs_converted_to_numpy():
    torch = pytest.importorskip("torch")
    scores = torch.tensor([[0.1, 0.9], [0.8, 0.2]])
    assert task_metric("tag", scores.numpy(), np.array([1, 0]), None)[1] == 100.0


def test_accuracy_is_higher_better_and_rmse_is_lower_better():
    assert higher_is_better("accuracy") and not higher_is_better("rmse")
    assert metric_name("classify") == "accuracy" and metric_name("forecast") == "rmse"


def test_mismatched_shapes_unknown_tasks_and_metrics_raise_value_error():
    with pytest.raises(ValueError, match="do not match"):
        task_metric("classify", np.zeros((3, 2)), np.zeros((4,), dtype=int), None)
    with pytest.raises(ValueError, match="do not match"):
        task_metric("forecast", np.zeros((3, 2)), np.zeros((3, 1)), None)
    with pytest.raises(ValueError, match="unknown task"):
        task_metric("dance", np.zeros((1, 2)), np.zeros(1, dtype=int), None)
    with pytest.raises(ValueError, match="unknown metric"):
        higher_is_better("f1")
