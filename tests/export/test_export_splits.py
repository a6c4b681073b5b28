"""rnnedge-export --data scores the test sequences the checkpoint never trained on, or refuses; checks of fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnedge.export import cli
from rnnedge.train.checkpoint import load_split, save_checkpoint
from rnnedge.train.cli import main as train_main
from rnnedge.train.data import load_dataset
from rnnedge.train.model import RecurrentModel

N, T, F = 40, 6, 2


def data_file(path, seed: int = 0, classes: int = 3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, T, F)).astype(np.float32)
    y = (np.arange(N) % classes).astype(np.int64)
    np.savez(path, X=X, y=y)
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained for one epoch on a small .npz with --seed 3 (the split's seed)."""
    folder = tmp_path_factory.mktemp("trained")
    data = data_file(folder / "d.npz")
    assert train_main([data, "--epochs", "1", "--hidden", "4", "--seed", "3", "--out", str(folder / "m")]) == 0
    return folder / "m" / "model.pt", data


def test_export_scores_the_checkpoint_test_split_not_one_of_its_own_seed(trained, tmp_path, capsys):
    model, data = trained
    assert cli.main([str(model), "--data", data, "--out", str(tmp_path / "e")]) == 0
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    split = report["inputs"]["split"]
    recorded = load_split(model)
    assert split["test_sha256"] == recorded["test_sha256"] and split["seed"] == 3
    assert split["data_sha256"] == recorded["data_sha256"]
    assert report["inputs"]["sequences"] == recorded["test_sequences"]
    assert "verified" in capsys.readouterr().out


def test_export_with_an_explicit_seed_other_than_the_checkpoint_seed_is_refused_naming_it(trained, tmp_path, capsys):
    model, data = trained
    assert cli.main([str(model), "--data", data, "--seed", "0", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "--seed 0 differs from the seed of the checkpoint's random split (3)" in err and "--split-check off" in err
    assert not (tmp_path / "e").exists()


def test_export_with_the_matching_seed_passes(trained, tmp_path):
    model, data = trained
    assert cli.main([str(model), "--data", data, "--seed", "3", "--out", str(tmp_path / "e")]) == 0


def test_export_on_another_data_file_is_refused(trained, tmp_path, capsys):
    model, _ = trained
    other = data_file(tmp_path / "other.npz", seed=1)
    assert cli.main([str(model), "--data", other, "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "is not what" in err and "the data differ from the data the model was trained on" in err
    assert not (tmp_path / "e").exists()


def test_split_check_off_scores_another_split_with_a_warning(trained, tmp_path, capsys):
    model, data = trained
    assert cli.main([str(model), "--data", data, "--seed", "0", "--split-check", "off",
                     "--out", str(tmp_path / "e")]) == 0
    assert "--split-check off: the test sequences differ" in capsys.readouterr().err
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["inputs"]["split"]["seed"] == 0


def test_export_refuses_a_split_the_data_cannot_give(tmp_path, capsys):
    path = tmp_path / "d.npz"
    data_file(path)
    with np.load(path) as f:
        arrays = dict(f)
    np.savez(path, **arrays, split=np.r_[np.zeros(N - 5), np.full(5, 2)].astype(np.int64))
    assert train_main([str(path), "--epochs", "1", "--hidden", "4", "--out", str(tmp_path / "m")]) == 0
    np.savez(path, **arrays)  # the same sequences, the split key gone
    assert cli.main([str(tmp_path / "m" / "model.pt"), "--data", str(path), "--out", str(tmp_path / "e")]) == 2
    assert "cannot re-derive the checkpoint's split given" in capsys.readouterr().err


def test_int8_is_calibrated_on_the_checkpoint_training_part(trained, tmp_path):
    model, data = trained
    code = cli.main([str(model), "--data", data, "--precision", "f32,int8", "--out", str(tmp_path / "e")])
    assert code in (0, 1)
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    calibration = json.dumps(report["quantization"])
    assert '"split": "train"' in calibration
    train_part = load_dataset(data, seed=3).train
    assert f'"available_sequences": {len(train_part)}' in calibration


def spec_model(out: int, features: int = 6, on: str = "every_step", task: str = "classify") -> RecurrentModel:
    torch.manual_seed(0)
    return RecurrentModel({"version": 1, "input": {"kind": "dense", "features": features},
                           "layers": [{"cell": "gru", "hidden": 4, "bidirectional": False}],
                           "head": {"out": out, "on": on, "activation": "softmax"}, "task": task}).eval()


def test_a_five_output_model_against_seven_class_watch_data_is_refused_naming_both(tmp_path, capsys):
    save_checkpoint(tmp_path / "model.pt", spec_model(5))
    assert cli.main([str(tmp_path / "model.pt"), "--data", "watch", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "records no split" in err  # a checkpoint without the record: the held-out part is unverifiable
    assert "has 7 classes (labels 0..6); the model has 5 outputs (head.out 5)" in err
    assert not (tmp_path / "e").exists()


def test_a_model_of_another_task_or_input_kind_is_refused(tmp_path, capsys):
    data = data_file(tmp_path / "d.npz")
    save_checkpoint(tmp_path / "model.pt", spec_model(3, features=2, on="every_step"))
    assert cli.main([str(tmp_path / "model.pt"), "--data", data, "--out", str(tmp_path / "e")]) == 2
    assert "is a classify task on last_step; the model is a classify model with its head on every_step" in (
        capsys.readouterr().err)
    tokens = RecurrentModel({"version": 1, "input": {"kind": "tokens", "vocab": 8, "embed_dim": 4, "padding_idx": None},
                             "layers": [{"cell": "gru", "hidden": 4, "bidirectional": False}],
                             "head": {"out": 3, "on": "last_step", "activation": "softmax"}, "task": "classify"})
    save_checkpoint(tmp_path / "tokens.pt", tokens.eval())
    assert cli.main([str(tmp_path / "tokens.pt"), "--data", data, "--out", str(tmp_path / "e2")]) == 2
    assert "the model reads token ids (N, T) of integers, got float32" in capsys.readouterr().err


def test_a_checkpoint_with_a_forged_split_record_is_bad_input_not_a_crash(tmp_path, capsys):
    data = data_file(tmp_path / "d.npz")
    save_checkpoint(tmp_path / "model.pt", spec_model(3, features=2, on="last_step"),
                    split={"method": "random", "seed": "three"})
    assert cli.main([str(tmp_path / "model.pt"), "--data", data, "--out", str(tmp_path / "e")]) == 2
    assert "its split record is not one rnnedge writes" in capsys.readouterr().err


def test_a_forecaster_with_another_number_of_outputs_than_the_targets_is_refused(tmp_path, capsys):
    torch.manual_seed(0)
    model = RecurrentModel({"version": 1, "input": {"kind": "dense", "features": 1},
                            "layers": [{"cell": "gru", "hidden": 4, "bidirectional": False}],
                            "head": {"out": 2, "on": "every_step", "activation": "none"}, "task": "forecast"})
    save_checkpoint(tmp_path / "model.pt", model.eval())
    assert cli.main([str(tmp_path / "model.pt"), "--data", "synthetic-forecast", "--out", str(tmp_path / "e")]) == 2
    assert "has 1 target value(s) per prediction; the model outputs 2 (head.out)" in capsys.readouterr().err


def test_a_module_export_with_data_warns_that_its_held_out_part_is_unknown(tmp_path, capsys):
    from tests.export.test_from_module import user_file

    path = user_file(tmp_path)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tags.npz", X=rng.standard_normal((N, T, 3)).astype(np.float32),
             y=rng.integers(0, 2, (N, T)))
    code = cli.main(["--module", f"{path}:Tagger", "--state-dict", str(tmp_path / "state.pt"), "--init-args",
                     '{"features": 3, "hidden": 5, "tags": 2}', "--data", str(tmp_path / "tags.npz"),
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "was not trained by rnnedge train, so which sequences it trained on is unknown" in err
