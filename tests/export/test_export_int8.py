"""The int8 precision through rnnedge export: calibration source, weight file, report rows and their pass rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.export import cli
from rnnedge.export.calibrate import calibrate, calibration_slice
from rnnedge.export.pipeline import ExportInputError, export_checkpoint
from rnnedge.export.rules import INT8_MAX_ABS
from rnnedge.export.vectors import check_vectors, vectors_file
from rnnedge.train.data import load_dataset
from rnnedge.train.loop import TrainConfig, default_spec, train
from tests.export.test_export_cli import ROW_KEYS, checkpoint
from tests.helpers import random_inputs, stream_all

FAST = {"epochs": 4, "batch_size": 16, "lr": 1e-2, "patience": 10, "progress": False}


@pytest.fixture(scope="module")
def trained_sum(tmp_path_factory):
    """A small LSTM trained for a few seconds on synthetic-sum (dense, last_step): confident, not random."""
    data = load_dataset("synthetic-sum", seed=0)
    out = tmp_path_factory.mktemp("sum")
    model, _ = train(default_spec(data, cell="lstm", hidden=16), data, TrainConfig(**FAST), out)
    return data, model, out / "model.pt"


def test_export_cli_with_int8_on_a_data_set_writes_a_passing_integer_model(trained_sum, tmp_path, capsys):
    data, model, ckpt = trained_sum
    out = tmp_path / "out"
    assert cli.main([str(ckpt), "--data", "synthetic-sum", "--precision", "f32,int8w,int8", "--out", str(out)]) == 0

    int8 = out / "model.int8.safetensors"
    assert int8.is_file() and int8.stat().st_size < (out / "model.f32.safetensors").stat().st_size
    report = json.loads((out / "report.json").read_text())
    assert report["passed"], report["failures"]
    assert report["precisions"] == ["f32", "int8w", "int8"]
    assert report["criteria"]["int8"].startswith("accuracy at most 1 point below the PyTorch model's, or a drop")
    rows = {row["name"]: row for row in report["artifacts"]}
    assert list(rows)[-2:] == ["runtime_int8_stream", "runtime_int8_run"]
    reference = report["reference"]["metric"]["value"]
    assert reference > 80  # trained: the 1-point rule means something
    for name in ("runtime_int8_stream", "runtime_int8_run"):
        row = rows[name]
        assert set(row) == ROW_KEYS and row["precision"] == "int8" and row["file"] == int8.name
        assert row["passed"] and row["error"] is None and row["bytes"] == int8.stat().st_size
        assert row["metric"]["value"] >= reference - 1.0
        assert 1e-6 < row["max_abs_diff"] < 0.1  # integer: visibly off, yet close

    q = report["quantization"]["int8"]
    assert q["max_abs_weight_error"] == max(q["per_matrix"].values()) > 0
    assert q["layers"][0]["cell"] == "lstm" and isinstance(q["layers"][0]["cell_power"], int)
    # calibrated on the TRAIN split (all of it: it is shorter than the slice), never the test split
    cal = q["calibration"]
    assert (cal["source"], cal["dataset"], cal["split"]) == ("dataset", "synthetic-sum", "train")
    assert cal["steps"] == cal["available_steps"] == int(data.train.lengths.sum())
    want = calibrate(model, *calibration_slice(data.train.X, data.train.lengths))
    assert cal["hidden_absmax"] == pytest.approx(want.hidden_absmax, abs=1e-6)
    assert cal["cell_absmax"] == pytest.approx(want.cell_absmax, abs=1e-6)
    assert cal["input_absmax"] == pytest.approx(want.input_absmax, abs=1e-6)
    md = (out / "report.md").read_text()
    assert "| model.int8.safetensors |" in md and "int8: accuracy at most 1 point below" in md
    assert "int8 activations (int16): calibrated on" in md and "train split of data set 'synthetic-sum'" in md
    assert "PASS" in capsys.readouterr().out

    # golden test vectors beside every weight file, reproduced by the runtime (int8: bit for bit)
    for precision in ("f32", "int8w", "int8"):
        vectors = out / vectors_file(precision)
        assert vectors.name in report["files"]
        assert check_vectors(vectors, out / f"model.{precision}.safetensors") == []
        for name in ("model_data.h", "model_data.c", "vectors_data.h"):  # C sources for firmware_ref/
            assert f"firmware/{precision}/{name}" in report["files"]

    # the file a user loads: full integer, and stepping it equals running it, bit for bit
    loaded = runtime.load(int8)
    assert loaded.precision == "int8"
    X = random_inputs(loaded.spec, 3, 40, seed=5)
    stepped = stream_all(loaded.stream(batch=3), X)
    for t in (0, 9, 39):  # a last_step head: the stream's output at t is run() of the first t + 1 steps
        np.testing.assert_array_equal(stepped[:, t], loaded.run(np.ascontiguousarray(X[:, : t + 1])))


def test_int8_without_data_calibrates_on_random_streams_apart_from_the_parity_streams(tmp_path):
    ckpt = checkpoint(tmp_path / "m.pt", cell="lstm")  # lstm 12 -> gru 8, every_step, untrained
    report = export_checkpoint(ckpt, tmp_path / "out", steps=300, seed=4, precisions=("int8",))
    assert report["passed"], report["failures"]
    assert report["criteria"]["int8"] == f"max abs difference <= {INT8_MAX_ABS:.3g}"
    cal = report["quantization"]["int8"]["calibration"]
    assert cal["source"] == "random" and cal["seed"] == 5 != report["inputs"]["seed"]
    assert cal["steps"] == 3 * 300 and cal["statistic"] == "max magnitude x 2 headroom"
    names = [row["name"] for row in report["artifacts"]]
    assert names[-2:] == ["runtime_int8_stream", "runtime_int8_run"] and "runtime_int8w_run" not in names


def test_explicit_calibration_arrays_are_used_instead_of_the_data_set(trained_sum, tmp_path):
    data, model, ckpt = trained_sum
    X, lengths = data.val.X[:5], data.val.lengths[:5]
    report = export_checkpoint(ckpt, tmp_path, data=data, precisions=("int8",), calibration=(X, lengths))
    cal = report["quantization"]["int8"]["calibration"]
    assert cal["source"] == "calibration" and cal["steps"] == int(lengths.sum()) and cal["sequences"] == 5
    assert cal["hidden_absmax"] == pytest.approx(calibrate(model, X, lengths).hidden_absmax, abs=1e-6)


def test_a_bidirectional_model_exports_int8_with_run_rows_only(tmp_path):
    ckpt = checkpoint(tmp_path / "bi.pt", bidirectional=True, kind="tokens", on="last_step")
    report = export_checkpoint(ckpt, tmp_path, steps=300, precisions=("f32", "int8"))
    assert report["passed"], report["failures"]
    assert [row["name"] for row in report["artifacts"]] == ["onnx", "runtime_run", "runtime_int8_run"]
    assert not (tmp_path / vectors_file("int8")).exists()  # vectors are for streaming models only
    loaded = runtime.load(tmp_path / "model.int8.safetensors")
    assert loaded.run(random_inputs(loaded.spec, 2, 7)).shape == (2, 4)


@pytest.mark.parametrize("X, lengths, says", [
    (np.zeros((0, 4, 3), np.float32), None, "calibration data is empty"),
    (np.zeros((2, 4, 5), np.float32), None, "calibration data: the model reads (N, T, 3) float values"),
    (np.zeros((2, 4), np.int64), None, "calibration data: the model reads (N, T, 3) float values, got int64"),
    (np.full((2, 4, 3), np.nan, np.float32), None, "non-finite value nan in sequence 0, step 0"),
    (np.zeros((2, 4, 3), np.float32), np.array([4, 9]), "lengths must lie in [1, 4]"),
])
def test_bad_calibration_arrays_are_export_input_errors(tmp_path, X, lengths, says):
    ckpt = checkpoint(tmp_path / "m.pt", features=3)
    with pytest.raises(ExportInputError, match="calibration data") as raised:
        export_checkpoint(ckpt, tmp_path, precisions=("int8",), calibration=(X, lengths))
    assert says in str(raised.value)
    assert not (tmp_path / "model.int8.safetensors").exists()  # refused before anything is written


def write_npz(path, X, y=None):
    np.savez(path, X=X, y=np.zeros(len(X), np.int64) if y is None else y)
    return str(path)


@pytest.mark.parametrize("kind, make_X, says", [
    ("dense", lambda rng: rng.standard_normal((6, 5, 2)),
     "calibration data set 'cal' (train split): the model reads (N, T, 3) float values, got float32 of shape"),
    ("dense", lambda rng: rng.integers(1, 5, (6, 5)), "the model reads (N, T, 3) float values, got int64"),
    ("tokens", lambda rng: rng.integers(1, 20, (6, 5)), "token ids span [1, 19], the model's vocabulary is [0, 8)"),
    ("dense", lambda rng: np.where(rng.random((6, 5, 3)) < 0.5, np.nan, 0.0),
     "cannot load calibration data set"),  # load_npz itself refuses non-finite values
])
def test_bad_calibration_files_exit_2_through_the_cli(tmp_path, capsys, kind, make_X, says):
    ckpt = checkpoint(tmp_path / "m.pt", kind=kind, features=3)
    cal = write_npz(tmp_path / "cal.npz", make_X(np.random.default_rng(0)))
    argv = [ckpt, "--out", str(tmp_path / "out"), "--precision", "int8", "--calibration", cal, "--stream-steps", "50"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnedge export: error: ") and says in err and "Traceback" not in err


def test_calibration_without_int8_or_with_an_unknown_name_exits_2(tmp_path, capsys):
    ckpt = checkpoint(tmp_path / "m.pt")
    assert cli.main([ckpt, "--precision", "f32,int8w", "--calibration", "watch"]) == 2
    assert "--calibration is used by the int8 precision only" in capsys.readouterr().err
    assert cli.main([ckpt, "--precision", "int8", "--calibration", "no-such-set"]) == 2
    assert "cannot load calibration data set 'no-such-set': unknown dataset" in capsys.readouterr().err
