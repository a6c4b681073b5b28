"""rnnedge-train / python -m rnnedge.train."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rnnedge.train.cli import main


def test_cli_trains_a_synthetic_set_and_says_where_it_wrote(tmp_path, capsys):
    assert main(["synthetic-sum", "--epochs", "2", "--hidden", "8", "--cell", "lstm", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and str(tmp_path / "model.pt") in printed
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["epochs"] == 2


@pytest.mark.parametrize("dataset", ["imagenet", "/nonexistent/data.npz", "{tmp}/no_labels.npz"])
def test_cli_reports_bad_datasets_on_stderr_with_exit_code_2_and_no_traceback(tmp_path, capsys, dataset):
    np.savez(tmp_path / "no_labels.npz", X=np.zeros((5, 4, 2)))
    assert main([dataset.format(tmp=tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnedge train: error:") and "Traceback" not in err


@pytest.mark.parametrize(("argv", "says"), [
    (["--hidden", "0"], "--hidden must be an integer from 1 to 4,096, got 0"),
    (["--hidden", "100000000"], "--hidden must be an integer from 1 to 4,096, got 100000000"),
    (["--lr", "inf"], "--lr must be a positive finite number, got inf"),
    (["--clip-grad-norm", "nan"], "--clip-grad-norm must be a finite number >= 0"),
    (["--seed", "-1"], "--seed must be an integer from 0 to 4294967295, got -1"),
    (["--window", "-5"], "--window must be at least 0"),
])
def test_cli_rejects_nonsense_options_with_exit_code_2(capsys, argv, says):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert says in capsys.readouterr().err


def test_python_dash_m_train_prints_help():
    done = subprocess.run([sys.executable, "-m", "rnnedge.train", "--help"], capture_output=True, text=True, check=True)
    assert "--clip-grad-norm" in done.stdout and "watch" in done.stdout
