"""`rnnedge train` says what it is doing: one plain line per epoch when stderr is not a terminal; --quiet silences
the progress and keeps the results."""

from rnnedge.runtime import umbrella


def test_train_off_a_terminal_prints_a_status_line_and_one_plain_line_per_epoch(tmp_path, capsys):
    argv = ["train", "synthetic-sum", "--epochs", "3", "--hidden", "4", "--out", str(tmp_path / "run")]
    assert umbrella.main(argv) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert err[0] == ("rnnedge train: training gru 4 on synthetic-sum (210 training sequences) for up to 3 epochs")
    assert [line.split(" loss ")[0] for line in err[1:]] == [f"train synthetic-sum: epoch {e}/3" for e in (1, 2, 3)]
    assert all(" validation accuracy " in line and line.endswith(" s") for line in err[1:])
    assert "\r" not in captured.err  # no bar redraws in a log
    assert f"wrote {tmp_path / 'run' / 'model.pt'}" in captured.out


def test_train_quiet_prints_no_progress_but_the_results(tmp_path, capsys):
    argv = ["train", "synthetic-sum", "--epochs", "2", "--hidden", "4", "--quiet", "--out", str(tmp_path / "run")]
    assert umbrella.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "kept epoch 2 of 2" in captured.out and f"wrote {tmp_path / 'run' / 'model.pt'}" in captured.out


def test_gradient_diagnosis_quiet_prints_no_progress(tmp_path, capsys):
    argv = ["train", "--diagnose-gradients", "--adding-steps", "6", "--updates", "2", "--hidden", "4", "--quiet",
            "--out", str(tmp_path / "grads")]
    assert umbrella.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "adding problem, T=6" in captured.out
