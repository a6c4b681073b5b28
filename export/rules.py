"""The parity report's pass rules: how close an artifact must be to the PyTorch model to pass.

Float32 artifacts (PyTorch step loop, ONNX, runtime f32) answer to `FloatRule`: elementwise
|diff| <= atol + rtol * |PyTorch|, or a max abs difference within FLOOR_FACTOR of PyTorch's own float32 error
against float64 on the same streams (`float64_floor`): no artifact can be held closer to float32 PyTorch than
float32 PyTorch is to the exact answer.

Quantised artifacts (int8w, int8) answer to `MetricRule` when a data set scores them: the task metric may move
by the precision's points (accuracy points; for rmse / bpc, percent of the float value), and for accuracy a
larger drop still passes when it is not significant: the 95% bootstrap interval (BOOTSTRAP_RESAMPLES seeded
resamples of the test sequences, the artifact's and the float model's metric on the same resample) of the
difference artifact - float reaches 0 (on fewer than MIN_BOOTSTRAP_SEQUENCES test sequences, with the outputs also
within the precision's max abs bound). Decision flips (argmax differs from the float model's) are counted, and
a test set too small to resolve the rule (fewer than SMALL_TEST_SET sequences, or one flipped decision worth
more than the rule) is flagged with a warning on its rows. With no data set, `MaxAbsRule` holds them to a
max abs difference.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rnnedge.train.metrics import CLASS_TASKS, higher_is_better, valid_step_mask

if TYPE_CHECKING:  # export/parity.py imports torch; the rules themselves are numpy, for rnnedge eval on a device
    from rnnedge.export import parity

# float32 rounds each result to half an ulp (2^-24 ~ 6e-8 relative); two correct orders of accumulation of the
# same recurrence end a few ulps apart on an output (measured: PyTorch step() vs forward 6.1e-5 on outputs
# ~500, 2 ulps, 1.2e-7 relative; the 3.05e-5 on outputs ~100, 3e-7). 1e-6 is 8-16 ulps: it passes those
# and still fails a single weight changed by 1e-3 relative (4e-6 of an output ~500 through a recurrent weight,
# tests/export/test_pass_rules.py). Graphs that float32 cannot evaluate that closely pass by the float64 floor.
FLOAT_RTOL = 1e-6
# float32 PyTorch's own distance to float64 is what a faithful float32 artifact can be expected to reach; a
# different but correct order of accumulation can land on the other side of float64 (2x), and long streams add
# the state's rounding. Measured: at most 1.74x the floor on the models of tests/export/test_pass_rules.py,
# 1.67x on a watch GRU's 28 held-out recordings (52,057 steps).
FLOOR_FACTOR = 4.0
# int8w pass rule: quantised weights are not held to the float rule but to the task (DESIGN.md "Precisions")
INT8W_METRIC_POINTS = 0.5  # accuracy points (percent) lost at most; for rmse, percent of the float rmse
INT8W_MAX_ABS = 0.05  # with no data set to score: largest max abs difference of the outputs that passes
# int8 pass rule (DESIGN.md "Precisions": task metric within 1 point of float)
INT8_METRIC_POINTS = 1.0
# With no data set: int8 shares int8w's weight rounding, which dominates, and adds the int16 rounding of every
# activation and the gate tables' error, fed back through the recurrence. Measured on seeded 2-layer models
# (hidden 12, every cell, both directions, dense and tokens, 3 x 1000 random steps, calibrated on other random
# streams): at most 9.9e-3 on raw logits (int8w 5.7e-3), 2.1e-3 after softmax. 0.1 is 10x that, twice
# INT8W_MAX_ABS, and still fails a wrong scale, multiplier or cell power, which move outputs by O(0.1..1).
INT8_MAX_ABS = 0.1
QUANTISED_RULES = {"int8w": (INT8W_METRIC_POINTS, INT8W_MAX_ABS), "int8": (INT8_METRIC_POINTS, INT8_MAX_ABS)}
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # the interval is the same on every run of the same export
CONFIDENCE = 0.95
SMALL_TEST_SET = 100  # sequences: below this a quantised row carries a warning
# Below this many test sequences the bootstrap resolves nothing: resamples of 5 sequences leave out any one of them
# a third of the time, so an artifact that turned 2 of 5 sequences wrong has an interval reaching 0 whatever it
# computes. There the "not significant" clause also asks what needs no test set: the outputs within the
# precision's max abs bound (MaxAbsRule's), so a faithful artifact passes with a warning and a broken one fails.
MIN_BOOTSTRAP_SEQUENCES = 20


ROW_FIELDS = {"max_scaled_diff": None, "vs_floor": None, "flips": None, "decisions": None, "interval": None,
              "warning": None}  # what each rule measured on a report row (None where it does not apply)


# -- float rule --------------------------------------------------------------------------------------------------
@dataclass
class FloatRule:
    """float32 artifacts: |diff| <= atol + rtol * |reference| at every value, or max abs difference within
    `factor` times `floor` (PyTorch float32's max abs difference from float64 on the same streams)."""

    atol: float
    rtol: float = FLOAT_RTOL
    floor: float | None = None
    factor: float = FLOOR_FACTOR

    def describe(self) -> str:
        text = f"max abs difference <= {self.atol:.3g} + {self.rtol:.3g} * |PyTorch| (elementwise)"
        if self.floor is not None:
            text += (f", or <= {self.factor:g}x PyTorch's own float32-vs-float64 error on these streams "
                     f"({self.floor:.3g})")
        return text

    def difference(self) -> parity.Difference:
        from rnnedge.export.parity import Difference

        return Difference(self.atol, self.rtol)

    def judge(self, diff: parity.Difference) -> tuple[bool, dict]:
        """(passed, row fields): max_scaled_diff (max of |diff| / (atol + rtol * |ref|): 1 is the rule's edge)
        and vs_floor (max abs difference / floor); diff from self.difference()."""
        scaled = diff.max_scaled
        vs_floor = (None if self.floor is None or not self.floor
                    else float(diff.max_abs / self.floor))
        within_floor = self.floor is not None and diff.max_abs <= self.factor * self.floor
        return bool(scaled <= 1.0 or within_floor), {"max_scaled_diff": scaled, "vs_floor": vs_floor}


def float64_floor(model, X: np.ndarray, groups: list[parity.Group], references: list[np.ndarray],
                  every_prefix: np.ndarray | None, valid: np.ndarray) -> dict:
    """PyTorch float32's own error: max abs difference of its forward on each group (references) and, for a
    streamable model, of every prefix (every_prefix at the valid steps of X) from the same model in float64 on
    the same streams. {"forward", "every_prefix" (None: not streamable), "max"}."""
    from rnnedge.export.parity import torch_every_prefix, torch_sequence

    double = copy.deepcopy(model).double()
    widen = (lambda x: x) if X.dtype.kind in "iu" else (lambda x: x.astype(np.float64))
    forward = max((float(np.abs(torch_sequence(double, widen(g.x)) - ref.astype(np.float64)).max())
                   for g, ref in zip(groups, references) if ref.size), default=0.0)
    prefix = None
    if every_prefix is not None:
        exact = torch_every_prefix(double, widen(X))
        prefix = float(np.abs(exact - every_prefix.astype(np.float64))[valid].max()) if valid.any() else 0.0
    return {"forward": forward, "every_prefix": prefix, "max": max(forward, prefix or 0.0)}


# -- quantised rules ---------------------------------------------------------------------------------------------
@dataclass
class MaxAbsRule:
    """Quantised artifacts with no data set to score: max abs difference of the outputs."""

    max_abs: float

    def describe(self) -> str:
        return f"max abs difference <= {self.max_abs:.3g}"

    def passes(self, max_abs: float, metric: dict | None = None) -> bool:
        return bool(max_abs <= self.max_abs)


@dataclass
class MetricRule:
    """Quantised artifacts on a data set: the task metric's change against the PyTorch model's."""

    reference_metric: dict
    points: float  # accuracy points lost at most, or percent of the float rmse / bpc gained at most
    max_abs: float  # on fewer than MIN_BOOTSTRAP_SEQUENCES test sequences, a drop not significant passes only
    # with outputs within this of the reference's

    @property
    def name(self) -> str:
        return self.reference_metric["name"]

    def describe(self) -> str:
        if higher_is_better(self.name):
            points = "point" if self.points == 1 else "points"
            return (f"{self.name} at most {self.points:g} {points} below the PyTorch model's, or a drop that is "
                    f"not significant (the {CONFIDENCE:.0%} bootstrap interval of the paired difference over "
                    f"test sequences reaches 0; on fewer than {MIN_BOOTSTRAP_SEQUENCES} sequences only with a max "
                    f"abs difference <= {self.max_abs:.3g})")
        return f"{self.name} at most {self.points:g}% above the PyTorch model's"

    def passes(self, max_abs: float, metric: dict, interval: list[float] | None = None, sequences: int = 0) -> bool:
        want = self.reference_metric["value"]
        if higher_is_better(self.name):
            not_significant = interval is not None and interval[1] >= 0.0 and (
                sequences >= MIN_BOOTSTRAP_SEQUENCES or max_abs <= self.max_abs)
            return bool(metric["value"] >= want - self.points or not_significant)
        return bool(metric["value"] <= want * (1 + self.points / 100))


def quantised_fields(task: str, activation: str, got: np.ndarray, reference: np.ndarray, y: np.ndarray,
                     lengths: np.ndarray, points: float) -> dict:
    """Row fields of a quantised artifact scored on a data set: interval (the bootstrap interval of its metric
    minus the float model's), flips and decisions (classification), warning (or None)."""
    fields = {"interval": bootstrap_interval(task, activation, got, reference, y, lengths), "flips": None,
              "decisions": None}
    warnings = []
    if len(lengths) < MIN_BOOTSTRAP_SEQUENCES:
        warnings.append(f"only {len(lengths)} test sequences (< {MIN_BOOTSTRAP_SEQUENCES}): too few for the bootstrap "
                        "to resolve anything, a drop past the rule passes only with outputs within the max abs bound")
    elif len(lengths) < SMALL_TEST_SET:
        warnings.append(f"only {len(lengths)} test sequences (< {SMALL_TEST_SET}): the metric and its bootstrap "
                        "interval over so few sequences are rough")
    if task in CLASS_TASKS:
        flips, decisions = decision_flips(got, reference, lengths)
        fields.update(flips=flips, decisions=decisions)
        if decisions and 100.0 / decisions > points:
            warnings.append(f"one flipped decision of {decisions} is {100.0 / decisions:.3g} points, more than "
                            f"the rule's {points:g}")
    fields["warning"] = "; ".join(warnings) or None
    return fields


def decision_flips(got: np.ndarray, reference: np.ndarray, lengths: np.ndarray) -> tuple[int, int]:
    """(decisions whose argmax differs from the reference's, decisions): one per sequence for (N, out) outputs,
    one per valid step for (N, T, out)."""
    same = got.argmax(axis=-1) == reference.argmax(axis=-1)
    if same.ndim == 2:
        same = same[valid_step_mask(*same.shape, lengths)]
    return int((~same).sum()), int(same.size)


def per_sequence(task: str, activation: str, outputs: np.ndarray, y: np.ndarray,
                 lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sums (N,), counts (N,)) per sequence of what the task metric averages: correct decisions, squared errors
    or bits; train/metrics.task_metric is _finish(task, sums.sum() / counts.sum())."""
    outputs = np.asarray(outputs, np.float64)
    n = len(lengths)
    if task == "forecast":  # every valid value of every output counts
        values = (outputs - np.asarray(y, np.float64)) ** 2
        if values.ndim == 2:
            return values.sum(1), np.full(n, values.shape[1], np.float64)
        mask = valid_step_mask(n, values.shape[1], lengths)
        return np.where(mask[..., None], values, 0.0).sum(axis=(1, 2)), mask.sum(1) * float(values.shape[2])
    if task in CLASS_TASKS:
        values = (outputs.argmax(axis=-1) == y).astype(np.float64)
    else:  # generate: bits of the true token
        probabilities = np.exp(outputs) if activation == "log_softmax" else outputs
        p = np.take_along_axis(probabilities, np.asarray(y, np.int64)[..., None], axis=-1)[..., 0]
        values = -np.log2(np.maximum(p, 2.0**-126))
    if values.ndim == 2:
        mask = valid_step_mask(n, values.shape[1], lengths)
        return np.where(mask, values, 0.0).sum(1), mask.sum(1).astype(np.float64)
    return values, np.ones(n)


def _finish(task: str, mean: np.ndarray) -> np.ndarray:
    if task in CLASS_TASKS:
        return 100.0 * mean
    return np.sqrt(mean) if task == "forecast" else mean


def bootstrap_interval(task: str, activation: str, got: np.ndarray, reference: np.ndarray, y: np.ndarray,
                       lengths: np.ndarray) -> list[float]:
    """[low, high]: the CONFIDENCE percentile interval of metric(artifact) - metric(float model) over
    BOOTSTRAP_RESAMPLES resamples of the test sequences (with replacement, seeded; both metrics on the same
    resample, so the difference is paired)."""
    got_sums, counts = per_sequence(task, activation, got, y, lengths)
    ref_sums, _ = per_sequence(task, activation, reference, y, lengths)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    n, differences = len(lengths), []
    chunk = max(1, 2_000_000 // max(n, 1))  # resamples per batch: bounded memory on large test sets
    for start in range(0, BOOTSTRAP_RESAMPLES, chunk):
        pick = rng.integers(0, n, size=(min(chunk, BOOTSTRAP_RESAMPLES - start), n))
        total = counts[pick].sum(1)
        differences.append(_finish(task, got_sums[pick].sum(1) / total) - _finish(task, ref_sums[pick].sum(1) / total))
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(np.concatenate(differences), [tail, 100 - tail])
    return [float(low), float(high)]


# -- a precision's rule, and a row judged by it ------------------------------------------------------------------
Criterion = FloatRule | MaxAbsRule | MetricRule


def criterion(precision: str, tolerance: float, reference_metric: dict | None, floor: float | None = None,
              rtol: float = FLOAT_RTOL) -> Criterion:
    """A precision's pass rule: float32 ones by atol (the tolerance), rtol and the float64 floor; quantised ones
    by the task metric on a data set (reference_metric: the PyTorch model's), else by their max abs bound."""
    if precision not in QUANTISED_RULES:
        return FloatRule(tolerance, rtol, floor)
    points, max_abs = QUANTISED_RULES[precision]
    if reference_metric is not None:
        return MetricRule(reference_metric, points, max_abs)
    return MaxAbsRule(max_abs)


def judge(rule: Criterion, diff: parity.Difference, metric: dict | None, spec: dict, got: np.ndarray, reference,
          y, lengths: np.ndarray) -> tuple[bool, dict]:
    """(passed, row fields from ROW_FIELDS) of one comparison row: diff over every value compared, metric the
    artifact's task metric (None: no data set), got its outputs in data-set order, reference() the reference's."""
    if isinstance(rule, FloatRule):
        return rule.judge(diff)
    if isinstance(rule, MetricRule):
        fields = quantised_fields(spec["task"], spec["head"]["activation"], got, reference(), y, lengths, rule.points)
        return rule.passes(diff.max_abs, metric, fields["interval"], len(lengths)), fields
    return rule.passes(diff.max_abs), {}
