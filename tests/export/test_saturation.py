"""The int8 ranges table (export/saturation.py): every tensor the integer step forms, its calibrated range, format
and the fraction of the test streams past it, in report.json, report.md and the warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnedge.export import cli, saturation
from rnnedge.export.calibrate import calibrate
from rnnedge.export.pipeline import export_checkpoint
from rnnedge.export.quantize_int8 import quantize_int8
from rnnedge.export.weights import canonical_tensors
from rnnedge.train.checkpoint import save_checkpoint
from rnnedge.train.data import Dataset, SequenceData
from rnnedge.train.model import RecurrentModel


@pytest.fixture(autouse=True)
def no_footprint(monkeypatch):
    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")  # the Cortex-M footprint has its own tests


def model_of(cell: str, hidden_layers: list | None = None, seed: int = 0) -> RecurrentModel:
    spec = {"version": 1, "input": {"kind": "dense", "features": 3, "mean": [0.0] * 3, "std": [1.0] * 3},
            "layers": [{"cell": cell, "hidden": 6, "bidirectional": False},
                       {"cell": cell, "hidden": 5, "bidirectional": True}],
            "head": {"out": 2, "on": "every_step", "activation": "none",
                     **({"hidden": hidden_layers} if hidden_layers else {})}, "task": "forecast"}
    torch.manual_seed(seed)
    return RecurrentModel(spec).eval()


def table_of(model, calibration, test):
    tensors = canonical_tensors(model)
    ranges = calibrate(model, *calibration)
    _, info = quantize_int8(model.spec, tensors, ranges)
    return ranges, saturation.table(model.spec, tensors, info, calibration, test)


def streams(rng, n, steps, scale=1.0):
    return (rng.standard_normal((n, steps, 3)) * scale).astype(np.float32), np.full(n, steps, np.int64)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_the_table_names_every_tensor_of_every_layer_and_agrees_with_calibration(cell):
    rng = np.random.default_rng(0)
    model = model_of(cell, hidden_layers=[{"units": 4, "activation": "relu"}])
    calibration = streams(rng, 4, 50)
    ranges, rows = table_of(model, calibration, streams(rng, 3, 40))
    by = {(r["layer"], r["tensor"]): r for r in rows}
    per_layer = ["input term", "recurrent term", "pre-activation", "h"] + (["cell"] if cell == "lstm" else [])
    assert set(by) == {("input", "x"), *((f"layer {l}", t) for l in (0, 1) for t in per_layer),
                       ("head.hidden.0", "pre-activation"), ("head.hidden.0", "output")}
    assert by[("input", "x")]["calibrated_absmax"] == pytest.approx(ranges.input_absmax)
    for l in (0, 1):
        assert by[(f"layer {l}", "h")]["calibrated_absmax"] == pytest.approx(ranges.hidden_absmax[l])
        if cell == "lstm":
            assert by[(f"layer {l}", "cell")]["calibrated_absmax"] == pytest.approx(ranges.cell_absmax[l])
        if cell.startswith("rnn"):  # one gate: its pre-activation is the two terms' sum
            pre, inp, rec = (by[(f"layer {l}", t)]["calibrated_absmax"]
                             for t in ("pre-activation", "input term", "recurrent term"))
            assert pre <= inp + rec + 1e-12
    assert by[("head.hidden.0", "output")]["calibrated_absmax"] == pytest.approx(ranges.head_absmax[0])
    bounded = cell != "rnn_relu"
    assert by[("layer 0", "pre-activation")]["format"] == ("int16, Q3.12" if bounded else
                                                          by[("layer 0", "h")]["format"] + ", relu")
    assert bool(by[("layer 0", "pre-activation")]["harmless"]) is bounded
    assert bool(by[("layer 0", "h")]["harmless"]) is bounded  # Q0.15's end is 2^-15 from 1
    assert all(r["saturated"] == 0.0 and r["test_values"] > 0 for r in rows)  # test streams like the calibration


def test_test_streams_past_the_calibrated_range_saturate_by_the_fraction_that_lies_past_it():
    rng = np.random.default_rng(1)
    model = model_of("lstm")
    calibration = streams(rng, 4, 50)
    test = streams(rng, 3, 40, scale=8.0)  # 8x the calibration data: past the input's 2x headroom
    ranges, rows = table_of(model, calibration, test)
    x = next(r for r in rows if r["tensor"] == "x")
    want = float((np.abs(test[0]) > x["limit"]).mean())
    assert 0.1 < want and x["saturated"] == pytest.approx(want)
    assert x["limit"] == pytest.approx(2 * ranges.input_absmax, rel=1e-6)  # the format is the 2x headroom
    lines = saturation.warnings(rows)
    assert any(line.startswith(f"int8: {100 * want:.3g}% of input x values") for line in lines)


def test_saturated_gate_pre_activations_are_harmless_and_not_warned_about():
    rng = np.random.default_rng(2)
    model = model_of("gru")
    with torch.no_grad():
        model.layers[0].weight_ih_l0.mul_(20.0)  # gate pre-activations of +-20: sigmoid/tanh saturate in float too
    _, rows = table_of(model, streams(rng, 4, 50), streams(rng, 3, 40))
    pre = next(r for r in rows if (r["layer"], r["tensor"]) == ("layer 0", "pre-activation"))
    terms = next(r for r in rows if (r["layer"], r["tensor"]) == ("layer 0", "input term"))
    assert pre["saturated"] > 0.05 and pre["harmless"]
    assert terms["test_absmax"] > 8 and terms["saturated"] == 0.0  # int32 terms: one saturation, of the sum
    assert not any("pre-activation" in line for line in saturation.warnings(rows))


def test_the_report_lists_the_ranges_and_warns_when_test_data_leave_the_calibrated_range(tmp_path, capsys):
    rng = np.random.default_rng(3)
    model = model_of("lstm")
    save_checkpoint(tmp_path / "m.pt", model)
    train = SequenceData(*streams(rng, 20, 30), rng.standard_normal((20, 30, 2)).astype(np.float32))
    X, lengths = streams(rng, 20, 30, scale=6.0)
    test = SequenceData(X, lengths, rng.standard_normal((20, 30, 2)).astype(np.float32))
    data = Dataset(name="wide", task="forecast", input_kind="dense", features=3, vocab=None, out=2,
                   head_on="every_step", train=train, val=train, test=test, source="tests/export/test_saturation.py")
    report = export_checkpoint(tmp_path / "m.pt", tmp_path / "out", data=data, precisions=("int8",))
    rows = report["quantization"]["int8"]["saturation"]
    assert report["format"] == 5 and rows and all({"layer", "tensor", "format", "limit", "calibrated_absmax",
                                                   "test_absmax", "saturated", "harmless"} <= set(r) for r in rows)
    assert any(w.startswith("int8: ") and "input x values" in w for w in report["warnings"])
    md = (tmp_path / "out" / "report.md").read_text()
    assert "int8 ranges" in md and "| layer 0 | cell | int16, scale 2^" in md and "| input | x |" in md
    json.dumps(report)  # every value serialises


def test_report_md_says_how_the_data_were_split(tmp_path, capsys):
    ckpt = tmp_path / "w" / "model.pt"
    from rnnedge.train import cli as train_cli

    assert train_cli.main(["synthetic-sum", "--epochs", "1", "--hidden", "8", "--out", str(ckpt.parent)]) == 0
    assert cli.main([str(ckpt), "--data", "synthetic-sum", "--out", str(tmp_path / "out")]) in (0, 1)
    md = (tmp_path / "out" / "report.md").read_text()
    line = next(line for line in md.splitlines() if line.startswith("- parity inputs:"))
    assert "split random, seed 0" in line and "sequences held out" in line and "verified" in line
