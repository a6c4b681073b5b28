"""rnnedge-train's output folder (train/outputs.py): never over or beside the user's files, atomic, with a manifest,
and the `make demo` sequence (train, then export into the same folder) works and works again."""

from __future__ import annotations

import json
import os

import numpy as np

from rnnedge.export import cli as export_cli
from rnnedge.train import cli, outputs
from rnnedge.train.outputs import sha256_file

TINY = ["--epochs", "1", "--hidden", "4", "--cell", "gru"]


def tree(folder) -> dict[str, str]:
    return {os.path.relpath(os.path.join(root, name), folder): sha256_file(os.path.join(root, name))
            for root, _, files in os.walk(folder) for name in files}


def manifest(folder) -> dict:
    return json.loads((folder / outputs.MANIFEST).read_text())["files"]


def user_data(path):
    rng = np.random.default_rng(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, X=rng.standard_normal((40, 6, 2)).astype(np.float32), y=rng.integers(0, 2, 40))
    return path


def test_train_then_export_into_the_same_folder_works_and_running_both_again_works(tmp_path, capsys):
    run = tmp_path / "watch"
    for _ in range(2):  # `make demo`, twice
        assert cli.main(["synthetic-sum", *TINY, "--out", str(run)]) == 0
        files = manifest(run)
        assert set(files) == {"model.pt", "metrics.json", "training.png"}  # the earlier export went with the model
        assert all(entry["by"] == outputs.TRAIN for entry in files.values())
        trained = (run / "model.pt").read_bytes()
        assert export_cli.main([str(run / "model.pt"), "--stream-steps", "20", "--out", str(run)]) == 0
        assert (run / "model.pt").read_bytes() == trained
        files = manifest(run)
        assert files["model.pt"]["by"] == outputs.TRAIN and files["model.onnx"]["by"] == outputs.EXPORT
        assert {name: entry["sha256"] for name, entry in files.items()} == {
            name: digest for name, digest in tree(run).items() if name != outputs.MANIFEST}
    assert "files of the previous model, stale beside the new model.pt" in capsys.readouterr().out
    assert not [p for p in os.listdir(tmp_path) if outputs.STAGING in p]


def test_training_into_a_folder_with_foreign_files_is_refused_and_force_writes_beside_them(tmp_path, monkeypatch,
                                                                                           capsys):
    data = user_data(tmp_path / "mine" / "sums.npz")
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    before = tree(tmp_path / "mine")
    argv = [str(data), *TINY, "--out", str(tmp_path / "mine")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "holds files rnnedge did not write: notes.txt, sums.npz" in err and "--force" in err
    assert tree(tmp_path / "mine") == before

    assert cli.main([*argv, "--force"]) == 0
    after = tree(tmp_path / "mine")
    assert {name: after[name] for name in before} == before
    assert set(manifest(tmp_path / "mine")) == {"model.pt", "metrics.json", "training.png"}

    monkeypatch.chdir(tmp_path)  # without --out: artifacts/<data set name>, nothing beside the data file
    assert cli.main([str(data), *TINY]) == 0
    assert (tmp_path / "artifacts" / "sums" / "model.pt").is_file()
    assert {name: tree(tmp_path / "mine")[name] for name in before} == before


def test_a_user_file_named_like_trainings_output_is_refused_even_with_force(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text("{}")
    assert cli.main(["synthetic-sum", *TINY, "--out", str(tmp_path), "--force"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'metrics.json'} is not rnnedge's" in err and "not even with --force" in err
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_failed_training_leaves_the_previous_run_byte_identical(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    assert cli.main(["synthetic-sum", *TINY, "--out", str(run)]) == 0
    before = tree(run)

    def diverges(spec, data, config, out_dir):
        (out_dir / "model.pt").write_bytes(b"half a checkpoint")
        raise ValueError("training diverged")

    monkeypatch.setattr(cli, "train", diverges)
    assert cli.main(["synthetic-sum", *TINY, "--out", str(run)]) == 2
    assert "training diverged" in capsys.readouterr().err
    assert tree(run) == before
    assert not [p for p in os.listdir(tmp_path) if outputs.STAGING in p]


def test_gradient_diagnosis_writes_its_own_manifest(tmp_path):
    out = tmp_path / "grads"
    assert cli.main(["--diagnose-gradients", "--out", str(out), "--adding-steps", "6", "--updates", "2", "--hidden", "4"]) == 0
    assert set(manifest(out)) == {"gradients.json", "gradients_over_time.png", "clipping.png"}
    assert all(entry["by"] == outputs.DIAGNOSE for entry in manifest(out).values())
