"""Task metrics: one number per task that train/, export/ and the parity report all compute the same way.

Plain numpy, so it reads torch outputs (`.numpy()`), ONNX Runtime outputs and runtime/ outputs alike.

    classify / tag -> ("accuracy", percent 0..100): argmax of the per-class scores vs the label
    forecast       -> ("rmse", root mean squared error over every valid value)
    generate       -> ("bpc", bits per character): the mean over every valid step of -log2 of the probability
                      the outputs (softmax probabilities) give the true next token; lower is better. A
                      probability below 2**-126 (the smallest normal float32, e.g. an underflowed 0) counts as
                      2**-126, so one such step costs 126 bits instead of making the mean infinite.

Shapes: a last_step head gives outputs (N, out) with y (N,) labels or (N, out) targets; an every_step
head gives outputs (N, T, out) with y (N, T) labels or (N, T, out) targets, and only steps
t < lengths[n] count (lengths None: every step counts).
"""

from __future__ import annotations

import numpy as np

CLASS_TASKS = ("classify", "tag")
REGRESSION_TASKS = ("forecast",)
GENERATION_TASKS = ("generate",)
_HIGHER_IS_BETTER = {"accuracy": True, "rmse": False, "bpc": False}
_SMALLEST_PROBABILITY = 2.0**-126


def metric_name(task: str) -> str:
    """The name of the metric `task_metric` reports for this task."""
    if task in CLASS_TASKS:
        return "accuracy"
    if task in REGRESSION_TASKS:
        return "rmse"
    if task in GENERATION_TASKS:
        return "bpc"
    raise ValueError(f"unknown task {task!r}; known: {', '.join(CLASS_TASKS + REGRESSION_TASKS + GENERATION_TASKS)}")


def higher_is_better(metric_name: str) -> bool:
    """Whether a larger value of this metric is a better model (accuracy yes, rmse and bpc no)."""
    try:
        return _HIGHER_IS_BETTER[metric_name]
    except KeyError:
        raise ValueError(f"unknown metric {metric_name!r}; known: {', '.join(_HIGHER_IS_BETTER)}") from None


def valid_step_mask(n: int, steps: int, lengths: np.ndarray | None) -> np.ndarray:
    """(N, T) bool: True where t < lengths[n]."""
    if lengths is None:
        return np.ones((n, steps), dtype=bool)
    lengths = np.asarray(lengths).reshape(-1)
    if lengths.shape[0] != n:
        raise ValueError(f"lengths has {lengths.shape[0]} entries for {n} sequences")
    return np.arange(steps)[None, :] < lengths[:, None]


def task_metric(task: str, outputs: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None,
                activation: str = "softmax") -> tuple[str, float]:
    """(metric name, value) of `outputs` against the targets `y` for this task. activation: the head's (spec
    head.activation); bpc reads probabilities, so a log_softmax head's outputs are exponentiated first."""
    name = metric_name(task)
    score = {"accuracy": _accuracy, "rmse": _rmse, "bpc": _bits_per_token}[name]
    outputs = np.asarray(outputs)
    if name == "bpc" and activation == "log_softmax":
        outputs = np.exp(outputs.astype(np.float64))
    return name, score(outputs, np.asarray(y), lengths)


def _accuracy(scores: np.ndarray, labels: np.ndarray, lengths: np.ndarray | None) -> float:
    if scores.ndim != labels.ndim + 1 or scores.shape[:-1] != labels.shape or labels.ndim not in (1, 2):
        raise ValueError(f"class scores {scores.shape} do not match labels {labels.shape}: "
                         "expected (N, out) with (N,) or (N, T, out) with (N, T)")
    correct = scores.argmax(axis=-1) == labels
    if labels.ndim == 2:
        correct = correct[valid_step_mask(*labels.shape, lengths)]
    if correct.size == 0:
        raise ValueError("no valid step to score")
    return float(100.0 * correct.mean())


def _rmse(predicted: np.ndarray, target: np.ndarray, lengths: np.ndarray | None) -> float:
    if predicted.shape != target.shape or predicted.ndim not in (2, 3):
        raise ValueError(f"forecast outputs {predicted.shape} do not match targets {target.shape}: "
                         "expected both (N, out) or both (N, T, out)")
    err = predicted.astype(np.float64) - target.astype(np.float64)
    if err.ndim == 3:
        err = err[valid_step_mask(err.shape[0], err.shape[1], lengths)]
    if err.size == 0:
        raise ValueError("no valid step to score")
    return float(np.sqrt(np.mean(err**2)))


def _bits_per_token(probabilities: np.ndarray, labels: np.ndarray, lengths: np.ndarray | None) -> float:
    if (probabilities.ndim != labels.ndim + 1 or probabilities.shape[:-1] != labels.shape
            or labels.ndim not in (1, 2)):
        raise ValueError(f"probabilities {probabilities.shape} do not match labels {labels.shape}: "
                         "expected (N, out) with (N,) or (N, T, out) with (N, T)")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= probabilities.shape[-1]):
        raise ValueError(f"labels must lie in [0, {probabilities.shape[-1]})")
    p = np.take_along_axis(probabilities, labels[..., None], axis=-1)[..., 0].astype(np.float64)
    if labels.ndim == 2:
        p = p[valid_step_mask(*labels.shape, lengths)]
    if p.size == 0:
        raise ValueError("no valid step to score")
    return float(-np.mean(np.log2(np.maximum(p, _SMALLEST_PROBABILITY))))
