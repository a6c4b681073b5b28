"""Many-to-many models through training and export: a bidirectional tagger (run() only), a streamed tagger, and
a forecaster on the real CO2 series, each with a passing report in every precision."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.export.pipeline import export_checkpoint
from rnnedge.train.data import SequenceData, load_dataset
from rnnedge.train.forecast import forecast, multistep_rmse
from rnnedge.train.loop import TrainConfig, default_spec, train

PRECISIONS = ("f32", "int8w", "int8")
# ~1 s: 100% test accuracy; the best validation epoch at a constant rate, as these figures were measured with
FAST = {"epochs": 60, "batch_size": 16, "lr": 1e-2, "schedule": "constant", "keep": "best", "patience": 60,
        "progress": False}


@pytest.fixture(autouse=True)
def no_footprint(monkeypatch):
    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")  # the Cortex-M footprint has its own tests


@pytest.fixture(scope="module")
def tags():
    return load_dataset("synthetic-tag", seed=0)


def _rows(report):
    return {row["name"]: row for row in report["artifacts"]}


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bilstm", "lstm"])
def test_lstm_tagger_trains_and_exports_with_a_passing_report(tags, tmp_path, bidirectional):
    spec = default_spec(tags, cell="lstm", hidden=16, bidirectional=bidirectional)
    assert (spec["task"], spec["head"]["on"]) == ("tag", "every_step")
    _, metrics = train(spec, tags, TrainConfig(**FAST), tmp_path)
    assert metrics["metric"] == "accuracy" and metrics["test_metric"] > 90

    report = export_checkpoint(tmp_path / "model.pt", tmp_path / "out", data=tags, precisions=PRECISIONS)
    assert report["passed"], report["failures"]
    rows = _rows(report)
    runs = {"runtime_run", "runtime_int8w_run", "runtime_int8_run"}
    streams = {"pytorch_step", "onnx_step", "runtime_stream", "runtime_int8w_stream", "runtime_int8_stream"}
    assert runs <= set(rows)
    if bidirectional:  # whole sequences only: no stepped row, no step graph, no golden vectors
        assert not any(row["stepped"] for row in rows.values()) and not (streams & set(rows))
        assert not (tmp_path / "out" / "model.step.onnx").exists()
    else:
        assert streams <= set(rows) and all(rows[name]["passed"] for name in streams)
    for name in runs | (set() if bidirectional else streams):
        assert rows[name]["metric"]["name"] == "accuracy"
        assert rows[name]["metric"]["value"] >= metrics["test_metric"] - 1.0

    # the tagger on the device: run() for both, step() for the unidirectional one gives the same tags
    tagger = runtime.load(tmp_path / "out" / "model.int8.safetensors")
    X, lengths = tags.test.X, tags.test.lengths
    tagged = tagger.run(X, lengths).argmax(axis=-1)
    valid = np.arange(X.shape[1])[None, :] < lengths[:, None]
    assert np.mean(tagged[valid] == tags.test.y[valid]) > 0.9
    if bidirectional:
        with pytest.raises(ValueError, match="run"):
            tagger.stream()
    else:
        stream = tagger.stream(batch=len(X))
        stepped = np.stack([stream.step(np.ascontiguousarray(X[:, t])).argmax(axis=-1) for t in range(X.shape[1])],
                           axis=1)
        assert np.array_equal(stepped[valid], tagged[valid])


def test_co2_forecaster_exports_with_rmse_per_precision_and_forecasts_ahead(tmp_path):
    data = load_dataset("co2")
    small = replace(data, train=SequenceData(data.train.X[::4], data.train.lengths[::4], data.train.y[::4]))
    spec = default_spec(small, cell="gru", hidden=12)
    _, metrics = train(spec, small, TrainConfig(epochs=4, batch_size=16, lr=1e-2, progress=False), tmp_path)
    assert metrics["metric"] == "rmse" and metrics["test_metric"] < 1.0  # drift (the mean change) scores 1.06

    report = export_checkpoint(tmp_path / "model.pt", tmp_path / "out", data=data, precisions=PRECISIONS)
    assert report["passed"], report["failures"]
    rows = _rows(report)
    for name in ("runtime_stream", "runtime_int8w_stream", "runtime_int8_stream", "runtime_int8_run"):
        assert rows[name]["passed"] and rows[name]["metric"]["name"] == "rmse"
    assert rows["runtime_stream"]["metric"]["value"] == pytest.approx(metrics["test_metric"], rel=1e-4)

    model = runtime.load(tmp_path / "out" / "model.int8.safetensors")
    ahead = forecast(model, data.test.X[0, :336], horizon=8)
    assert ahead.shape == (8, 1) and np.all(np.isfinite(ahead))
    scores = multistep_rmse(model, data.test, horizon=8)
    assert scores["origins"] == 58 and scores["next_step_rmse"] <= max(scores["rmse_by_step"])
