"""rnnedge-train refuses data it cannot train a sound model from with exit 2 and one line naming the value and
where it is, writes nothing, and turns any other exception into exit 3 with a log (issue 13, items 7 and 8)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnedge.train import cli, loop, user_data
from rnnedge.train.data import load_dataset

TINY = ["--epochs", "1", "--hidden", "4", "--batch-size", "8"]


def refused(tmp_path: Path, data: Path, capsys, *says: str) -> str:
    """Train on `data` in-process: exit 2, one error line holding every `says`, nothing written."""
    out = tmp_path / "out"
    assert cli.main([str(data), "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnedge train: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for part in says:
        assert part in err, err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [data.name]  # no staging folder left beside it
    return err


def npz(tmp_path: Path, **arrays) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def dense(n: int = 12, steps: int = 5, features: int = 2) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, steps, features)).astype(np.float32)


def csv_file(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "data.csv"
    lines = ["sequence_id,ax,label"] + [f"s{i // 4},{i / 10},{i % 2}" for i in range(24)]
    for line, row in rows:
        lines[line - 1] = row
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_label_of_ten_to_the_twelve_in_an_npz_exits_2_naming_it_and_its_index(tmp_path, capsys):
    y = np.arange(12) % 3
    y[7] = 10**12
    refused(tmp_path, npz(tmp_path, X=dense(), y=y), capsys, "data.npz: y[7]: class label 1000000000000",
            "outside [0, 65535]")


def test_a_token_id_of_ten_to_the_twelve_in_an_npz_exits_2_naming_it_and_its_index(tmp_path, capsys):
    X = np.random.default_rng(0).integers(1, 6, (12, 5))
    X[3, 2] = 10**12
    refused(tmp_path, npz(tmp_path, X=X, y=X % 2), capsys, "data.npz: X[3, 2]: token id 1000000000000",
            "one embedding row per id")


def test_a_label_of_ten_to_the_twelve_in_a_csv_exits_2_naming_its_line(tmp_path, capsys):
    path = csv_file(tmp_path, [(9, "s1,0.5,1000000000000")])
    refused(tmp_path, path, capsys, "data.csv:9 (column label): class label 1000000000000")


def test_a_csv_field_over_131072_characters_exits_2_naming_its_line(tmp_path, capsys):
    path = csv_file(tmp_path, [(6, "s1," + "1" * 140_000 + ",1")])
    refused(tmp_path, path, capsys, "data.csv:6: not a readable CSV row", "field larger than field limit (131072)")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_forecast_targets_exit_2_naming_the_first_bad_index(tmp_path, capsys, bad):
    y = dense(features=1)
    y[4, 3, 0] = bad
    y[9, 1, 0] = bad
    refused(tmp_path, npz(tmp_path, X=dense(), y=y), capsys, f"data.npz: y[4, 3, 0]: forecast target {bad}",
            "2 such value(s) in y")


def test_a_float64_input_beyond_float32_exits_2_naming_it(tmp_path, capsys):
    X = dense().astype(np.float64)
    X[2, 4, 1] = 1e300
    refused(tmp_path, npz(tmp_path, X=X, y=np.arange(12) % 2), capsys, "data.npz: X[2, 4, 1]: input value 1e+300")


def test_values_past_a_sequence_length_are_ignored_not_refused(tmp_path):
    y = dense(features=1)
    y[:, -1] = np.nan
    lengths = np.full(12, 4)
    data = load_dataset(str(npz(tmp_path, X=dense(), y=y, lengths=lengths)))
    assert data.task == "forecast" and np.isfinite(data.train.y).all()


def test_one_nan_label_in_a_csv_is_refused_not_turned_into_forecasting(tmp_path, capsys):
    path = csv_file(tmp_path, [(11, "s2,0.5,nan")])
    refused(tmp_path, path, capsys, "data.csv:11: label 'nan' is not a finite number")


@pytest.mark.parametrize("task, X, y, says", [
    ("generate", dense(), np.zeros((12, 5), np.int64), "task 'generate' needs token input"),
    ("tag", np.ones((12, 5), np.int64), np.zeros(12, np.int64), "task 'tag' needs a label at every step"),
    ("forecast", dense(), np.zeros(12, np.int64), "float targets in y, this file has integer labels per sequence"),
    ("classify", dense(), dense(features=1), "task 'classify' needs integer class labels in y"),
], ids=["generate-on-dense", "tag-per-sequence", "forecast-integer-labels", "classify-float-targets"])
def test_a_task_that_does_not_fit_the_input_exits_2_naming_the_mismatch(tmp_path, capsys, task, X, y, says):
    refused(tmp_path, npz(tmp_path, X=X, y=y, task=np.array(task)), capsys, says)


def test_generate_on_tokens_shares_one_vocabulary_between_input_and_next_token_labels(tmp_path):
    X = np.random.default_rng(0).integers(0, 5, (12, 6))
    y = np.roll(X, -1, axis=1) + 2  # next-token labels reach id 6, beyond the input's 4
    data = load_dataset(str(npz(tmp_path, X=X, y=y, task=np.array("generate"))))
    assert (data.task, data.vocab, data.out) == ("generate", 7, 7)


@pytest.mark.parametrize("kind", ["fifo", "folder", "dev-zero"])
@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_a_data_path_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path, kind, suffix):
    target = tmp_path / f"data{suffix}"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        target.symlink_to("/dev/zero")
    # a subprocess with a timeout: a reader blocked on the FIFO would otherwise hang the test run
    done = subprocess.run([sys.executable, "-m", "rnnedge.train", str(target), "--out", str(tmp_path / "out"), *TINY],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "not a regular file" in done.stderr and str(target) in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_internal_error_exits_3_with_a_short_message_and_the_log_holding_the_traceback(tmp_path, capsys,
                                                                                          monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug for the test")

    monkeypatch.setattr(cli, "train", broken)
    assert cli.main(["synthetic-sum", "--out", str(tmp_path / "out"), *TINY, "--quiet"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("rnnedge train: internal error: RuntimeError: a bug for the test")
    assert err.count("\n") == 1 and "Traceback" not in err
    log = Path(err.rsplit("the traceback is in ", 1)[1].strip())
    assert "Traceback" in log.read_text() and "a bug for the test" in log.read_text()
    log.unlink()
    assert not (tmp_path / "out").exists()


def test_a_training_that_diverges_to_nan_writes_nothing_and_exits_2(tmp_path, capsys, monkeypatch):
    def diverging(model, *args, **kwargs):
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
        return float("nan")

    monkeypatch.setattr(loop, "_train_epoch", diverging)
    assert cli.main(["synthetic-sum", "--out", str(tmp_path / "out"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "training diverged: parameter" in err and "Try a smaller --lr" in err
    assert not (tmp_path / "out").exists()


def _npz_with_header(path: Path, shape: tuple, payload: bytes) -> Path:
    """An .npz whose X member's header declares `shape` (float32) over `payload` bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    labels = io.BytesIO()
    np.save(labels, np.zeros(shape[0], np.int64))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X.npy", header.getvalue() + payload)
        archive.writestr("y.npy", labels.getvalue())
    return path


def test_an_npz_array_whose_header_claims_more_than_it_holds_is_refused_before_allocating(tmp_path, capsys):
    path = _npz_with_header(tmp_path / "data.npz", (100_000, 100_000, 1), b"\0" * 64)  # claims 40 GB
    refused(tmp_path, path, capsys, "array 'X' declares shape (100000, 100000, 1) of float32 (40,000,000,000 bytes) "
                                    "but holds 64 bytes")


def test_an_npz_larger_than_memory_allows_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    path = _npz_with_header(tmp_path / "data.npz", (12, 5, 2), b"\0" * 480)
    page_counts = {"SC_PHYS_PAGES": 1, "SC_PAGE_SIZE": 1024}  # a machine of 1 KiB
    monkeypatch.setattr(user_data.os, "sysconf", page_counts.__getitem__)
    refused(tmp_path, path, capsys, "loading them takes about three times that, more than this machine's")


def test_an_npy_file_named_npz_is_refused_as_not_a_zip_archive(tmp_path, capsys):
    path = tmp_path / "data.npz"
    with open(path, "wb") as f:
        np.save(f, dense())
    refused(tmp_path, path, capsys, "not a zip archive")


def _random_array(rng: np.random.Generator, n: int, steps: int) -> np.ndarray:
    """A plausible or absurd array for one npz key: the shapes and dtypes users (and broken scripts) write."""
    shape = [(n,), (n, steps), (n, steps, 2), (n, 1, 1, 1), (), (0,)][rng.integers(0, 6)]
    values = [lambda: rng.standard_normal(shape), lambda: rng.integers(-2, 9, shape),
              lambda: np.full(shape, rng.choice([np.nan, np.inf, 1e300, 2.0**70])),
              lambda: rng.integers(0, 2, shape).astype(bool), lambda: rng.integers(0, 2**63, shape, dtype=np.uint64) * 2,
              lambda: (rng.standard_normal(shape) + 1j).astype(np.complex64), lambda: np.full(shape, "tag"),
              lambda: np.array(str(rng.choice(["classify", "tag", "forecast", "generate", "dance"])))]
    return values[rng.integers(0, len(values))]()


def test_mutated_npz_files_load_or_raise_value_error_never_another_exception(tmp_path):
    rng = np.random.default_rng(0)
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(300):
        n, steps = int(rng.integers(2, 8)), int(rng.integers(1, 6))
        arrays = {"X": rng.standard_normal((n, steps, 2)) if case % 3 == 0 else rng.integers(0, 7, (n, steps))
                  if case % 3 == 1 else _random_array(rng, n, steps),
                  "y": rng.integers(0, 3, (n, steps)) if case % 4 == 0 else _random_array(rng, n, steps)}
        for key in ("lengths", "task"):
            if rng.random() < 0.4:
                arrays[key] = _random_array(rng, n, steps) if rng.random() < 0.5 else rng.integers(0, steps + 2, n)
        path = tmp_path / f"case{case}.npz"
        np.savez(path, **arrays)
        try:
            load_dataset(str(path))
            outcomes["loaded"] += 1
        except ValueError:
            outcomes["refused"] += 1
    assert outcomes["loaded"] > 10 and outcomes["refused"] > 100, outcomes


def test_a_nul_byte_in_the_data_path_or_out_exits_2_showing_it(tmp_path, capsys):
    assert cli.main([str(tmp_path / "a\0b.npz"), "--out", str(tmp_path / "out"), *TINY]) == 2
    assert "data file '" + str(tmp_path) + "/a\\x00b.npz': cannot be read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["synthetic-sum", "--out", str(tmp_path / "o\0ut"), *TINY])
    assert exit_info.value.code == 2
    assert "holds a NUL byte" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_mutated_csv_files_load_or_raise_value_error_never_another_exception(tmp_path):
    rng = np.random.default_rng(0)
    odd = ["nan", "inf", "-1", "1e300", "1e12", "", "x", '"', '"a,b"', "\0", "9" * 5000, " 3 ", "0x10", "\u0661"]
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(200):
        header = ["sequence_id", "label", "ax", "ay"][: 3 + case % 2]
        rows = [",".join(header)]
        for step in range(int(rng.integers(0, 16))):
            row = [f"s{step % 4}", str(step % 3)] + [f"{v:.3f}" for v in rng.standard_normal(len(header) - 2)]
            if rng.random() < 0.1:
                row[rng.integers(1, len(row))] = str(rng.choice(odd))
            rows.append(",".join(row[: len(row) - (rng.random() < 0.03)]))
        path = tmp_path / f"case{case}.csv"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        try:
            load_dataset(str(path))
            outcomes["loaded"] += 1
        except ValueError:
            outcomes["refused"] += 1
    assert outcomes["loaded"] > 50 and outcomes["refused"] > 50, outcomes


def test_ctrl_c_during_training_exits_130_in_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "train", interrupted)
    assert cli.main(["synthetic-sum", "--out", str(tmp_path / "out"), *TINY, "--quiet"]) == 130
    assert capsys.readouterr().err == "rnnedge train: interrupted; the output folder is as it was\n"
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir()]  # no staging folder left beside it
