"""train.loop: a tiny run on synthetic data, its artifacts, gradient clipping, variable lengths."""

import itertools
import json

import numpy as np
import pytest
import torch

from rnnedge.train.checkpoint import load_checkpoint
from rnnedge.train.data import load_dataset
from rnnedge.train.loop import MIN_LR_FRACTION, TrainConfig, default_spec, evaluate, normalisation, predict, train

FAST = {"epochs": 4, "batch_size": 16, "lr": 1e-2, "patience": 10, "progress": False}


@pytest.fixture(scope="module")
def sum_run(tmp_path_factory):
    data = load_dataset("synthetic-sum", seed=0)
    out = tmp_path_factory.mktemp("sum")
    model, metrics = train(default_spec(data, hidden=16), data, TrainConfig(**FAST), out)
    return data, model, metrics, out


def test_a_tiny_run_lowers_the_loss_and_writes_checkpoint_metrics_and_curves(sum_run):
    _, _, metrics, out = sum_run
    losses = [e["train_loss"] for e in metrics["epochs"]]
    assert losses[-1] < losses[0]
    for name in ("model.pt", "metrics.json", "training.png"):
        assert (out / name).stat().st_size > 0
    written = json.loads((out / "metrics.json").read_text())
    assert written["metric"] == "accuracy" and written["higher_is_better"] is True
    assert written["kept_epoch"] == len(written["epochs"]) == FAST["epochs"]  # keep="last" runs every epoch
    assert written["val_metric"] == written["epochs"][-1]["val_accuracy"]
    assert written["epochs"][written["best_epoch"] - 1]["val_accuracy"] == max(e["val_accuracy"] for e in written["epochs"])
    assert 0.0 <= written["test_metric"] <= 100.0
    assert (out / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_checkpoint_loads_without_pickle_and_reproduces_the_best_model(sum_run):
    data, model, metrics, out = sum_run
    raw = torch.load(out / "model.pt", weights_only=True)
    assert raw["format"] == "rnnedge-checkpoint"
    loaded, saved_metrics = load_checkpoint(out / "model.pt")
    assert saved_metrics["test_metric"] == metrics["test_metric"]
    np.testing.assert_array_equal(predict(loaded, data.test), predict(model, data.test))


def test_dense_normalisation_is_stored_in_the_model_spec(sum_run):
    data, model, _, _ = sum_run
    mean, std = normalisation(data.train)
    np.testing.assert_allclose(model.spec["input"]["mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(model.spec["input"]["std"], std, rtol=1e-6)
    valid = np.arange(data.train.X.shape[1])[None, :] < data.train.lengths[:, None]
    assert mean[0] == pytest.approx(data.train.X[valid].mean(), abs=1e-6)  # padding zeros not counted


def test_last_step_prediction_on_a_padded_batch_equals_each_sequence_alone(sum_run):
    data, model, _, _ = sum_run
    batch = predict(model, data.test)
    for n in np.argsort(data.test.lengths)[:5]:
        length = int(data.test.lengths[n])
        alone = model(torch.from_numpy(data.test.X[n : n + 1, :length]))
        np.testing.assert_allclose(batch[n], alone[0].detach().numpy(), atol=1e-6)


def test_gradient_clipping_bounds_the_global_norm_when_set_and_is_skipped_when_off(tmp_path, monkeypatch):
    data = load_dataset("synthetic-sum", seed=0)
    norms_after = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        real_clip(parameters, max_norm, *args, **kwargs)
        norms_after.append((max_norm, torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters]))))

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    config = TrainConfig(**{**FAST, "epochs": 1}, clip_grad_norm=1e-3)
    train(default_spec(data, hidden=8), data, config, tmp_path / "clipped")
    assert len(norms_after) == -(-len(data.train) // config.batch_size)  # once per batch
    assert all(max_norm == 1e-3 and norm <= 1e-3 * 1.001 for max_norm, norm in norms_after)

    norms_after.clear()
    train(default_spec(data, hidden=8), data, TrainConfig(**{**FAST, "epochs": 1}, clip_grad_norm=None),
          tmp_path / "unclipped")
    assert norms_after == []


def test_the_same_seed_gives_the_same_model(tmp_path):
    data = load_dataset("synthetic-tokens", seed=0)
    config = TrainConfig(**{**FAST, "epochs": 2})
    a = train(default_spec(data, hidden=8), data, config, tmp_path / "a")[1]
    b = train(default_spec(data, hidden=8), data, config, tmp_path / "b")[1]
    assert a["epochs"] == b["epochs"]


@pytest.mark.parametrize(("name", "cell", "window"), [
    ("synthetic-tag", "lstm", None), ("synthetic-tag", "gru", 8), ("synthetic-forecast", "rnn_tanh", 12)])
def test_every_step_tasks_train_on_whole_sequences_or_random_windows(tmp_path, name, cell, window):
    data = load_dataset(name, seed=0)
    _, metrics = train(default_spec(data, cell=cell, hidden=12), data,
                       TrainConfig(**{**FAST, "epochs": 3}, window=window), tmp_path)
    losses = [e["train_loss"] for e in metrics["epochs"]]
    assert losses[-1] < losses[0]
    assert metrics["metric"] == ("rmse" if name == "synthetic-forecast" else "accuracy")


def test_a_spec_that_does_not_fit_the_data_is_refused(tmp_path):
    data = load_dataset("synthetic-sum", seed=0)
    spec = default_spec(load_dataset("synthetic-tag", seed=0))
    with pytest.raises(ValueError, match="does not fit"):
        train(spec, data, TrainConfig(**FAST), tmp_path)


def test_the_cosine_schedule_falls_from_lr_to_its_floor_at_the_last_epoch_and_constant_keeps_lr(tmp_path):
    data = load_dataset("synthetic-sum", seed=0)
    config = {**FAST, "epochs": 5, "lr": 1e-2}
    cosine = train(default_spec(data, hidden=8), data, TrainConfig(**config, schedule="cosine"), tmp_path / "c")[1]
    rates = [e["lr"] for e in cosine["epochs"]]
    assert rates[0] == pytest.approx(1e-2) and rates[-1] == pytest.approx(1e-2 * MIN_LR_FRACTION)
    assert all(a > b for a, b in itertools.pairwise(rates))
    constant = train(default_spec(data, hidden=8), data, TrainConfig(**config, schedule="constant"), tmp_path / "k")[1]
    assert [e["lr"] for e in constant["epochs"]] == pytest.approx([1e-2] * 5)


def test_an_unknown_schedule_is_refused_before_anything_is_written(tmp_path):
    data = load_dataset("synthetic-sum", seed=0)
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'step'"):
        train(default_spec(data, hidden=8), data, TrainConfig(**FAST, schedule="step"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_keep_best_writes_the_best_validation_epoch_and_stops_after_patience(tmp_path):
    data = load_dataset("synthetic-sum", seed=0)
    config = TrainConfig(**{**FAST, "epochs": 30, "patience": 2}, schedule="constant", keep="best")
    model, metrics = train(default_spec(data, hidden=8), data, config, tmp_path)
    vals = [e["val_accuracy"] for e in metrics["epochs"]]
    assert metrics["kept_epoch"] == metrics["best_epoch"] and metrics["val_metric"] == max(vals)
    assert len(vals) == metrics["best_epoch"] + 2 < 30  # stopped two epochs after the best
    assert evaluate(model, data.task, data.val)[1] == metrics["val_metric"]  # the written model is the best epoch's
