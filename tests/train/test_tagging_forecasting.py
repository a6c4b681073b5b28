"""The bundled CO2 series (a time split, normalised next-value targets) and multi-step forecasting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.train.data import CO2_NPZ, CO2_WEEKS, CO2_WINDOW, bundled_file, load_dataset
from rnnedge.train.forecast import check_forecaster, forecast, main, multistep_rmse
from rnnedge.train.loop import default_spec, normalisation
from tests.helpers import make_model, write_artifact


@pytest.fixture(scope="module")
def data():
    return load_dataset("co2")


@pytest.fixture(scope="module")
def co2():
    with np.load(bundled_file(CO2_NPZ), allow_pickle=False) as f:
        return f["co2"], f["observed"]


@pytest.fixture(scope="module")
def forecaster_path(data, tmp_path_factory):
    """An untrained GRU with the co2 set's spec and normalisation, as a runtime f32 weight file."""
    model = make_model(default_spec(data, cell="gru", hidden=8), seed=3)
    model.set_normalisation(*normalisation(data.train))
    return write_artifact(model, tmp_path_factory.mktemp("fc") / "model.f32.safetensors")


@pytest.fixture(scope="module")
def forecaster(forecaster_path):
    return runtime.load(forecaster_path)


def test_co2_is_a_next_value_forecast_split_by_time(data, co2):
    co2, observed = co2
    assert co2.shape == observed.shape == (2284,) and co2.dtype == np.float32 and np.all(np.isfinite(co2))
    assert int((~observed).sum()) == 59 and observed[0] and observed[-1]
    gaps = np.flatnonzero(~observed)  # interpolated weeks lie on the line between their measured neighbours
    for g in gaps[:5]:
        before, after = np.flatnonzero(observed[:g])[-1], g + np.flatnonzero(observed[g:])[0]
        expected = co2[before] + (co2[after] - co2[before]) * (g - before) / (after - before)
        assert co2[g] == pytest.approx(expected, abs=1e-4)
    assert (CO2_WEEKS["train"][0], CO2_WEEKS["test"][1]) == (0, len(co2))
    assert (data.task, data.input_kind, data.head_on, data.features, data.out) == (
        "forecast", "dense", "every_step", 1, 1)
    mean, std = data.target_scale
    for which in ("val", "test"):  # one contiguous sequence: the split's weeks, the last value only a target
        first, last = CO2_WEEKS[which]
        region = np.diff(co2[first:last])  # the changes within the split
        split = getattr(data, which)
        assert split.X.shape == (1, len(region) - 1, 1) and split.lengths.tolist() == [len(region) - 1]
        assert np.array_equal(split.X[0, :, 0], region[:-1])
        np.testing.assert_allclose(split.y[0, :, 0] * std + mean, region[1:], rtol=1e-6, atol=1e-6)
    # training windows: every input and target lies in the training weeks, none in the validation or test weeks
    train_end = CO2_WEEKS["train"][1]
    assert CO2_WEEKS["train"][1] <= CO2_WEEKS["val"][0] < CO2_WEEKS["val"][1] <= CO2_WEEKS["test"][0]
    assert data.train.X.shape[1:] == (CO2_WINDOW, 1)
    train_region = np.diff(co2[:train_end])
    windows = np.lib.stride_tricks.sliding_window_view(train_region, CO2_WINDOW)
    for n in (0, len(data.train) // 2, len(data.train) - 1):
        x = data.train.X[n, :, 0]
        start = int(np.flatnonzero((windows == x).all(axis=1))[0])  # where in the training weeks this window is
        assert start + len(x) + 1 <= len(train_region) == train_end - 1
        np.testing.assert_allclose(data.train.y[n, :, 0] * std + mean, train_region[start + 1 : start + 1 + len(x)],
                                   rtol=1e-6, atol=1e-6)
    assert data.train.X[-1, -1, 0] == train_region[-2] and data.train.y[-1, -1, 0] * std + mean == pytest.approx(
        train_region[-1], rel=1e-6, abs=1e-6)
    # the targets' scale is the normalisation the training loop gives the model's input
    got_mean, got_std = normalisation(data.train)
    assert (float(got_mean[0]), float(got_std[0])) == (mean, std)
    assert load_dataset("co2", seed=5).test.X.tobytes() == data.test.X.tobytes()  # fixed split


def test_forecast_equals_stepping_by_hand_and_batches_agree(forecaster, data):
    mean, std = (np.asarray(forecaster.spec["input"][k], dtype=np.float32) for k in ("mean", "std"))
    history = data.test.X[0, :100]
    got = forecast(forecaster, history, horizon=12)
    stream = forecaster.stream(batch=1)
    for t in range(len(history)):
        y = stream.step(history[t][None].astype(np.float32))
    expected = []
    for _ in range(12):
        value = y * std + mean
        expected.append(value[0].copy())
        y = stream.step(value.astype(np.float32))
    assert got.shape == (12, 1) and got.dtype == np.float32
    assert np.array_equal(got, np.array(expected))
    # a batch of histories: each row as if alone
    batch = np.stack([data.test.X[0, :100], data.test.X[0, 200:300], data.val.X[0, :100]])
    together = forecast(forecaster, batch, horizon=12)
    assert together.shape == (3, 12, 1)
    for b in range(3):
        np.testing.assert_allclose(together[b], forecast(forecaster, batch[b], 12), rtol=0, atol=1e-4)
    np.testing.assert_array_equal(together[0], got)


def test_multistep_rmse_scores_rollouts_from_each_origin_and_next_step_matches_run(forecaster, data):
    horizon, warmup, every = 6, 100, 50
    result = multistep_rmse(forecaster, data.test, horizon, warmup=warmup, every=every)
    length = int(data.test.lengths[0])
    origins = list(range(warmup, length - horizon + 1, every))
    assert result["origins"] == len(origins) and len(result["rmse_by_step"]) == horizon
    mean, std = data.target_scale
    errors = np.zeros(horizon)
    outputs = forecaster.run(data.test.X)[0, :, 0]
    for t0 in origins:  # each rollout is a forecast() from the history before the origin
        ahead = (forecast(forecaster, data.test.X[0, :t0], horizon)[:, 0] - mean) / std
        errors += (ahead - data.test.y[0, t0 - 1 : t0 - 1 + horizon, 0]) ** 2
        assert ahead[0] == pytest.approx(outputs[t0 - 1], abs=1e-4)  # one step ahead: the ordinary output
    np.testing.assert_allclose(result["rmse_by_step"], np.sqrt(errors / len(origins)), rtol=1e-3, atol=1e-5)
    next_step = np.sqrt(np.mean((outputs[np.array(origins) - 1] - data.test.y[0, np.array(origins) - 1, 0]) ** 2))
    assert result["next_step_rmse"] == pytest.approx(next_step, rel=1e-4)
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean(errors / len(origins))), rel=1e-3)


def test_forecast_refuses_models_that_cannot_feed_back_and_bad_arguments(forecaster, tmp_path, data):
    tagger = runtime.load(write_artifact(make_model(default_spec(load_dataset("synthetic-tag"), cell="lstm",
                                                                 hidden=4)), tmp_path / "t.f32.safetensors"))
    with pytest.raises(ValueError, match="feeds each prediction back"):
        check_forecaster(tagger)
    with pytest.raises(ValueError, match="horizon"):
        forecast(forecaster, data.test.X[0, :10], 0)
    with pytest.raises(ValueError, match="history"):
        forecast(forecaster, np.zeros((10, 2), dtype=np.float32), 3)
    with pytest.raises(ValueError, match="no origin"):
        multistep_rmse(forecaster, data.test, horizon=48, warmup=300)


def test_forecast_cli_prints_the_multistep_scores(forecaster_path, tmp_path, capsys):
    assert main([forecaster_path, "--horizon", "4", "--every", "96"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["horizon"] == 4 and result["origins"] == 3  # origins 104, 200, 296 of 340 steps and result["rmse_units"] > 0
    assert main([str(tmp_path / "missing.safetensors")]) == 2
    assert "error" in capsys.readouterr().err
