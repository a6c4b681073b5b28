"""The report's pass rules (export/rules.py): float32 artifacts by atol + rtol * |ref| or the float64 floor,
quantised ones by the metric with decision flips and a bootstrap interval, tiny test sets warned."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnedge.export import cli, pipeline, rules
from rnnedge.export.pipeline import export_checkpoint
from rnnedge.export.quantize import quantize_int8w
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime.model import Model
from rnnedge.train.checkpoint import save_checkpoint
from rnnedge.train.data import Dataset, SequenceData
from rnnedge.train.metrics import task_metric
from rnnedge.train.model import RecurrentModel

RAW_SCALE = 300.0  # the head of a forecaster of raw targets (sunspot counts): outputs of several hundred


@pytest.fixture(autouse=True)
def no_footprint(monkeypatch):
    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")  # the Cortex-M footprint has its own tests


def raw_scale_forecaster(path) -> str:
    """An LSTM forecaster whose head maps to targets around 500, as training on raw values of 100..1000 leaves it."""
    spec = {"version": 1, "input": {"kind": "dense", "features": 2, "mean": [0.0, 0.0], "std": [1.0, 1.0]},
            "layers": [{"cell": "lstm", "hidden": 16, "bidirectional": False}],
            "head": {"out": 1, "on": "every_step", "activation": "none"}, "task": "forecast"}
    torch.manual_seed(0)
    model = RecurrentModel(spec).eval()
    with torch.no_grad():
        model.head.weight.mul_(RAW_SCALE)
        model.head.bias.fill_(500.0)
    save_checkpoint(path, model)
    return str(path)


def test_a_faithful_raw_scale_forecaster_passes_and_the_report_shows_the_float64_floor(tmp_path, capsys):
    ckpt = raw_scale_forecaster(tmp_path / "f.pt")
    out = tmp_path / "out"
    assert cli.main([ckpt, "--out", str(out)]) == 0  # the absolute 1e-5 rule alone exited 1 (6.1e-5 off)

    report = json.loads((out / "report.json").read_text())
    floor = report["float64_floor"]
    assert 0 < floor["forward"] <= floor["max"] and 0 < floor["every_prefix"] <= floor["max"]
    assert report["floor_factor"] == rules.FLOOR_FACTOR and report["rtol"] == rules.FLOAT_RTOL
    for row in report["artifacts"]:
        assert row["passed"] and row["max_abs_diff"] > 1e-5  # over the old absolute rule, yet faithful
        assert row["max_scaled_diff"] <= 1.0
        assert row["vs_floor"] == pytest.approx(row["max_abs_diff"] / floor["max"])
    md = (out / "report.md").read_text()
    assert "float64 floor: PyTorch float32 vs the same model in float64" in md and "x float64 floor" in md
    assert "4x PyTorch's own float32-vs-float64 error" in report["criteria"]["f32"]


def test_a_weight_changed_by_one_part_in_a_thousand_in_the_f32_file_still_fails(tmp_path, monkeypatch, capsys):
    write = pipeline.artifact.write

    def perturbed(path, weights, spec, precision):
        if precision == "f32":  # the largest recurrent weight, 1e-3 relative: outputs move by ~4e-6 relative
            w = weights["layers.0.fwd.w_hh"].copy()
            flat = w.reshape(-1)
            flat[np.abs(flat).argmax()] *= np.float32(1 + 1e-3)
            weights = dict(weights, **{"layers.0.fwd.w_hh": w})
        return write(path, weights, spec, precision)

    monkeypatch.setattr(pipeline.artifact, "write", perturbed)
    ckpt = raw_scale_forecaster(tmp_path / "f.pt")
    assert cli.main([ckpt, "--out", str(tmp_path / "out")]) == 1

    report = json.loads((tmp_path / "out" / "report.json").read_text())
    failed = {row["name"]: row for row in report["artifacts"] if not row["passed"]}
    assert set(failed) == {"runtime_stream", "runtime_run"}  # ONNX and the PyTorch step are untouched
    for row in failed.values():
        assert row["max_scaled_diff"] > 1.0 and row["vs_floor"] > rules.FLOOR_FACTOR
    assert "x PyTorch's float32-vs-float64 error" in capsys.readouterr().err


def test_the_tolerance_stays_the_atol_of_the_float_rule(tmp_path):
    ckpt = raw_scale_forecaster(tmp_path / "f.pt")
    report = export_checkpoint(ckpt, tmp_path / "out", tolerance=1.0, rtol=0.0, steps=50)
    assert report["tolerance"] == 1.0 and report["rtol"] == 0.0
    assert report["criteria"]["f32"].startswith("max abs difference <= 1 + 0 * |PyTorch|")
    for row in report["artifacts"]:
        assert row["max_scaled_diff"] == pytest.approx(row["max_abs_diff"] / 1.0)


# -- quantised rules ---------------------------------------------------------------------------------------------
def classifier() -> RecurrentModel:
    spec = {"version": 1, "input": {"kind": "dense", "features": 2, "mean": [0.0, 0.0], "std": [1.0, 1.0]},
            "layers": [{"cell": "gru", "hidden": 8, "bidirectional": False}],
            "head": {"out": 3, "on": "last_step", "activation": "softmax"}, "task": "classify"}
    torch.manual_seed(0)
    model = RecurrentModel(spec).eval()
    with torch.no_grad():
        model.head.weight.mul_(4.0)  # all three classes decided; int8w flips 15 of 4000 random sequences
    return model


def one_flip_data(model: RecurrentModel, n: int = 40, flips: int = 1) -> Dataset:
    """n test sequences labelled with the float model's own decisions (float accuracy 100%), exactly `flips` of
    them sequences on which the int8w model decides otherwise."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 12, 2)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(X)).numpy().argmax(-1)
    weights, _ = quantize_int8w(model.spec, canonical_tensors(model))
    got = np.asarray(Model(model.spec, "int8w", weights).run(X)).argmax(-1)
    flipped, kept = np.flatnonzero(got != want), np.flatnonzero(got == want)
    assert len(flipped) >= flips, "too few sequences of the candidates flip: pick another seed"
    pick = np.concatenate([flipped[:flips], kept[: n - flips]])
    part = SequenceData(X[pick], np.full(n, 12, np.int64), want[pick].astype(np.int64))
    return Dataset(name="one-flip", task="classify", input_kind="dense", features=2, vocab=None, out=3,
                   head_on="last_step", train=part, val=part, test=part, source="tests/export/test_pass_rules.py")


def test_one_flipped_decision_of_40_passes_with_a_warning_as_the_drop_is_not_significant(tmp_path):
    model = classifier()
    save_checkpoint(tmp_path / "c.pt", model)
    report = export_checkpoint(tmp_path / "c.pt", tmp_path / "out", data=one_flip_data(model), precisions=("int8w",))
    assert report["passed"], report["failures"]
    assert report["reference"]["metric"]["value"] == 100.0
    for row in (r for r in report["artifacts"] if r["precision"] == "int8w"):
        assert (row["flips"], row["decisions"]) == (1, 40)
        assert row["metric"]["value"] == 97.5  # 2.5 points: five times the 0.5 point rule
        low, high = row["interval"]
        assert low < 0 and high == 0.0  # resamples without the flipped sequence: the drop is not significant
        assert "40 test sequences" in row["warning"] and "2.5 points" in row["warning"]
    assert len(report["warnings"]) == 2
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| 1 / 40 |" in md and "pass (warning)" in md and "Warnings" in md


def roll_scales(spec, tensors):
    weights, errors = quantize_int8w(spec, tensors)
    for name in [k for k in weights if k.endswith(".scale")]:
        weights[name] = np.roll(weights[name], 1)  # every row dequantised with its neighbour's scale
    return weights, errors


def test_on_5_sequences_two_flips_of_faithful_outputs_pass_with_a_warning_and_broken_outputs_fail(tmp_path,
                                                                                                 monkeypatch):
    model = classifier()
    save_checkpoint(tmp_path / "c.pt", model)
    data = one_flip_data(model, n=5, flips=2)
    report = export_checkpoint(tmp_path / "c.pt", tmp_path / "out", data=data, precisions=("int8w",))
    assert report["passed"], report["failures"]
    for row in (r for r in report["artifacts"] if r["precision"] == "int8w"):
        assert (row["flips"], row["decisions"], row["metric"]["value"]) == (2, 5, 60.0)
        assert row["interval"][1] == 0.0 and row["max_abs_diff"] <= rules.INT8W_MAX_ABS
        assert "too few for the bootstrap" in row["warning"]

    monkeypatch.setattr(pipeline, "quantize_int8w", roll_scales)
    report = export_checkpoint(tmp_path / "c.pt", tmp_path / "out2", data=data, precisions=("int8w",))
    assert not report["passed"]
    rows = [r for r in report["artifacts"] if r["precision"] == "int8w"]
    assert all(row["interval"][1] == 0.0 for row in rows)  # 5 sequences: the interval cannot tell the two apart
    assert [row["passed"] for row in rows] == [row["max_abs_diff"] <= rules.INT8W_MAX_ABS for row in rows]
    assert not all(row["passed"] for row in rows)  # measured: stream() 0.116 off at some step, run() 0.037


def test_int8w_with_broken_scales_fails_even_on_a_small_test_set(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "quantize_int8w", roll_scales)
    model = classifier()
    save_checkpoint(tmp_path / "c.pt", model)
    report = export_checkpoint(tmp_path / "c.pt", tmp_path / "out", data=one_flip_data(model), precisions=("int8w",))
    assert not report["passed"]
    for row in (r for r in report["artifacts"] if r["precision"] == "int8w"):
        assert not row["passed"] and row["flips"] >= 3  # measured: 6 of 40
        assert row["interval"][1] < 0  # significant: every resample loses accuracy


def test_per_sequence_sums_give_back_each_task_metric_and_a_paired_interval_of_identical_outputs_is_zero():
    rng = np.random.default_rng(2)
    lengths = np.array([5, 3, 7, 1])
    cases = {
        "classify": (rng.standard_normal((4, 3)), rng.integers(0, 3, 4), "softmax"),
        "tag": (rng.standard_normal((4, 7, 3)), rng.integers(0, 3, (4, 7)), "softmax"),
        "forecast": (rng.standard_normal((4, 7, 2)) * 100, rng.standard_normal((4, 7, 2)) * 100, "none"),
        "generate": (np.log(rng.dirichlet(np.ones(5), (4, 7))), rng.integers(0, 5, (4, 7)), "log_softmax"),
    }
    for task, (outputs, y, activation) in cases.items():
        sums, counts = rules.per_sequence(task, activation, outputs, y, lengths)
        _, want = task_metric(task, outputs, y, lengths, activation)
        got = rules._finish(task, sums.sum() / counts.sum())
        assert got == pytest.approx(want), task
        assert rules.bootstrap_interval(task, activation, outputs, outputs, y, lengths) == [0.0, 0.0]


def test_a_forecaster_on_a_data_set_reports_the_bootstrap_interval_and_keeps_the_relative_rule(tmp_path):
    ckpt = raw_scale_forecaster(tmp_path / "f.pt")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 20, 2)).astype(np.float32)
    part = SequenceData(X, np.full(30, 20, np.int64), (rng.standard_normal((30, 20, 1)) * 50 + 500).astype(np.float32))
    data = Dataset(name="raw", task="forecast", input_kind="dense", features=2, vocab=None, out=1,
                   head_on="every_step", train=part, val=part, test=part, source="tests/export/test_pass_rules.py")
    report = export_checkpoint(ckpt, tmp_path / "out", data=data, precisions=("int8w",))
    assert report["criteria"]["int8w"] == "rmse at most 0.5% above the PyTorch model's"
    for row in (r for r in report["artifacts"] if r["precision"] == "int8w"):
        low, high = row["interval"]
        assert low <= row["metric"]["value"] - report["reference"]["metric"]["value"] <= high
        assert row["flips"] is None and "30 test sequences" in row["warning"]


def test_export_cli_takes_rtol_and_refuses_a_negative_one(tmp_path, capsys):
    ckpt = raw_scale_forecaster(tmp_path / "f.pt")
    assert cli.main([ckpt, "--out", str(tmp_path / "bad"), "--rtol", "-1"]) == 2
    assert "--rtol must be a non-negative number, got -1" in capsys.readouterr().err
    assert cli.main([ckpt, "--out", str(tmp_path / "out"), "--rtol", "0.01", "--stream-steps", "20"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["rtol"] == 0.01 and "1e-05 + 0.01 * |PyTorch|" in report["criteria"]["f32"]


def test_an_artifact_within_4x_the_float64_floor_passes_where_the_elementwise_rule_is_too_tight():
    # outputs near 0 computed from large terms that cancel: float32 rounding of the terms, not of the outputs
    want = np.array([[1e-3, -2e-3, 5e-4]], np.float32)
    got = want + np.float32(1.1e-4)
    for floor, passed in ((5e-5, True), (1e-5, False)):
        rule = rules.FloatRule(1e-5, 1e-6, floor)
        diff = rule.difference()
        diff.add(got, want)
        ok, fields = rule.judge(diff)
        assert ok is passed and fields["max_scaled_diff"] > 1.0
        assert fields["vs_floor"] == pytest.approx(diff.max_abs / floor)
    nothing_measured = rules.FloatRule(1e-5, 1e-6, None)
    diff = nothing_measured.difference()
    diff.add(got, want)
    assert nothing_measured.judge(diff) == (False, {"max_scaled_diff": diff.max_scaled, "vs_floor": None})
