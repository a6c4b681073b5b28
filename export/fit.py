"""Checks of fit: a model scored on a data set it was not built for reports a number that means nothing (a 5-output
model on the 7-class watch data: 16% and PASS), so export refuses it before anything is written."""

from __future__ import annotations

import numpy as np


class FitError(ValueError):
    """The model does not fit the data set it would be scored on (export/pipeline.py: bad input, exit 2)."""


def check_fit(spec: dict, data) -> None:
    """The model fits the data set it is scored on, else FitError naming both sides: classes (at most head.out) or
    target values (exactly head.out), task and head placement, input kind, vocabulary, the test labels' range."""
    name, head = f"data set {data.name!r}", spec["head"]
    kind = spec["input"]["kind"]
    if data.input_kind != kind:
        reads = "token ids" if kind == "tokens" else f"{spec['input']['features']} dense features per step"
        raise FitError(f"{name} has {data.input_kind} input; the model reads {reads}")
    if kind == "tokens" and data.vocab is not None and data.vocab > spec["input"]["vocab"]:
        raise FitError(f"{name} holds token ids up to {data.vocab - 1}; the model's vocabulary is "
                       f"{spec['input']['vocab']} ids (input.vocab)")
    if data.task != spec["task"] or data.head_on != head["on"]:
        raise FitError(f"{name} is a {data.task} task on {data.head_on}; the model is a "
                       f"{spec['task']} model with its head on {head['on']}")
    if data.task == "forecast":
        if data.out != head["out"]:
            raise FitError(f"{name} has {data.out} target value(s) per prediction; the model outputs "
                           f"{head['out']} (head.out)")
        return
    if data.out > head["out"]:
        raise FitError(f"{name} has {data.out} classes (labels 0..{data.out - 1}); the model has "
                       f"{head['out']} outputs (head.out {head['out']}), so it cannot predict classes "
                       f"{head['out']}..{data.out - 1}")
    y, lengths = np.asarray(data.test.y), np.asarray(data.test.lengths)
    valid = np.arange(y.shape[1])[None, :] < lengths[:, None] if y.ndim == 2 else np.ones(y.shape, dtype=bool)
    labels = y[valid]
    if labels.size and (labels.min() < 0 or labels.max() >= head["out"]):
        raise FitError(f"{name}: test labels span {labels.min()}..{labels.max()}; the model has "
                       f"{head['out']} outputs (head.out), classes 0..{head['out'] - 1}")
