"""rnnedge-export end to end: files, report, exit codes; and export_checkpoint on a data set's real streams."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rnnedge.export import cli, pipeline
from rnnedge.export.pipeline import export_checkpoint
from rnnedge.train.checkpoint import save_checkpoint
from rnnedge.train.data import load_dataset
from rnnedge.train.model import RecurrentModel

ROW_KEYS = {"name", "file", "bytes", "precision", "comparison", "stepped", "criterion", "max_abs_diff",
            "mean_abs_diff", "metric", "passed", "error", "seconds", "abs_diff_histogram", "max_scaled_diff",
            "vs_floor", "flips", "decisions", "interval", "warning"}
REPORT_KEYS = {"format", "checkpoint", "out_dir", "precisions", "spec", "model", "tolerance", "criteria",
               "quantization", "inputs", "reference", "files", "manifest", "removed", "artifacts", "passed",
               "failures", "seconds", "rtol", "float64_floor", "floor_factor", "warnings"}


def checkpoint(path, cell="lstm", bidirectional=False, kind="dense", on="every_step", features=3, out=4,
               task="classify"):
    inp = ({"kind": "dense", "features": features, "mean": [0.5] * features, "std": [2.0] * features}
           if kind == "dense" else {"kind": "tokens", "vocab": 8, "embed_dim": 4, "padding_idx": 0})
    spec = {"version": 1, "input": inp,
            "layers": [{"cell": cell, "hidden": 12, "bidirectional": False},
                       {"cell": "gru", "hidden": 8, "bidirectional": bidirectional}],
            "head": {"out": out, "on": on, "activation": "softmax"}, "task": task}
    torch.manual_seed(0)
    save_checkpoint(path, RecurrentModel(spec).eval())
    return str(path)


@pytest.mark.specialised  # the export a user runs, on the step compiled for the model
def test_export_cli_writes_every_artifact_and_a_passing_report(tmp_path, capsys):
    ckpt = checkpoint(tmp_path / "model.pt")
    assert cli.main([ckpt, "--out", str(tmp_path / "out")]) == 0

    out = tmp_path / "out"
    for name in ("model.onnx", "model.step.onnx", "model.f32.safetensors", "report.json", "report.md"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert set(report) == REPORT_KEYS
    assert report["passed"] and report["failures"] == []
    assert report["inputs"] == {"source": "random", "seed": 0, "sequences": 3, "shortest": 1000, "longest": 1000,
                                "total_steps": 3000}
    assert [row["name"] for row in report["artifacts"]] == [
        "pytorch_step", "onnx", "onnx_step", "runtime_stream", "runtime_run"]
    for row in report["artifacts"]:
        assert set(row) == ROW_KEYS
        assert row["max_abs_diff"] <= 1e-5 and row["error"] is None
        if row["file"]:
            assert row["bytes"] == (out / row["file"]).stat().st_size
    printed = capsys.readouterr().out
    assert "| model.step.onnx |" in printed and "PASS" in printed
    assert printed.startswith((out / "report.md").read_text())


@pytest.mark.specialised  # run() of layers of different widths, one bidirectional, compiled for the model
def test_bidirectional_model_exports_without_step_artifacts_and_removes_an_earlier_exports(tmp_path):
    export_checkpoint(checkpoint(tmp_path / "uni.pt", kind="tokens", on="last_step"), tmp_path / "out", steps=20)
    assert (tmp_path / "out" / "model.step.onnx").is_file()  # an earlier, streamable export in the same folder
    ckpt = checkpoint(tmp_path / "bi.pt", bidirectional=True, kind="tokens", on="last_step")
    report = export_checkpoint(ckpt, tmp_path / "out", steps=1000)
    assert report["passed"]
    assert [row["name"] for row in report["artifacts"]] == ["onnx", "runtime_run"]
    assert not (tmp_path / "out" / "model.step.onnx").exists()
    assert "model.step.onnx" in report["removed"] and "firmware/f32/model_data.c" in report["removed"]
    assert not (tmp_path / "out" / "firmware").exists()


@pytest.mark.specialised  # the export a user runs, on the step compiled for the model
def test_dataset_test_streams_give_the_task_metric_for_pytorch_and_every_artifact(tmp_path):
    data = load_dataset("synthetic-sum")  # dense, last_step, test sequences of 4..20 steps
    ckpt = checkpoint(tmp_path / "sum.pt", cell="rnn_tanh", on="last_step", features=1, out=2)
    report = export_checkpoint(ckpt, tmp_path / "out", data=data)
    assert report["passed"], report["failures"]
    assert report["inputs"]["source"] == "dataset" and report["inputs"]["sequences"] == len(data.test)
    assert report["inputs"]["total_steps"] == int(data.test.lengths.sum())
    reference = report["reference"]["metric"]
    assert reference["name"] == "accuracy"
    for row in report["artifacts"]:
        assert row["metric"] == pytest.approx(reference)
    assert "| accuracy |" in (tmp_path / "out" / "report.md").read_text()


def test_data_that_do_not_fit_the_model_are_bad_input(tmp_path, capsys):
    ckpt = checkpoint(tmp_path / "dense.pt", on="last_step", features=3)
    assert cli.main([ckpt, "--data", "synthetic-tag", "--out", str(tmp_path / "out")]) == 2
    assert "data set 'synthetic-tag': the model reads (N, T, 3) float values" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_corrupt_checkpoint_exits_2_with_a_clear_message_and_no_traceback(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"this is not a checkpoint")
    done = subprocess.run([sys.executable, "-m", "rnnedge.export", str(bad), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "not a loadable rnnedge checkpoint" in done.stderr and str(bad) in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_checkpoint_exits_2(tmp_path, capsys):
    assert cli.main([str(tmp_path / "nowhere.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_an_unknown_precision_is_refused_clearly(tmp_path, capsys):
    assert cli.main([checkpoint(tmp_path / "m.pt"), "--precision", "f32,fp7"]) == 2
    assert "precision 'fp7' is unknown; supported: f32, int8w, int8" in capsys.readouterr().err


def test_broken_artifact_fails_parity_with_exit_1_naming_it_and_still_writes_the_report(tmp_path, monkeypatch,
                                                                                         capsys):
    build = pipeline.build_sequence_graph

    def off_by_a_little(spec, tensors):
        bias = tensors["head.bias"].copy()
        bias[0] += np.float32(1e-3)  # one logit only: softmax ignores a shift of all of them
        return build(spec, dict(tensors, **{"head.bias": bias}))

    monkeypatch.setattr(pipeline, "build_sequence_graph", off_by_a_little)
    ckpt = checkpoint(tmp_path / "m.pt", cell="gru")
    assert cli.main([ckpt, "--out", str(tmp_path), "--force", "--stream-steps", "1000"]) == 1  # beside m.pt: --force

    err = capsys.readouterr().err
    assert "model.onnx" in err and "fails its rule: max abs difference <= 1e-05" in err
    report = json.loads((tmp_path / "report.json").read_text())
    assert not report["passed"]
    failed = [row["name"] for row in report["artifacts"] if not row["passed"]]
    assert failed == ["onnx"]
    (onnx_row,) = [row for row in report["artifacts"] if row["name"] == "onnx"]
    assert 1e-4 < onnx_row["max_abs_diff"] < 1e-2  # one softmax logit moved by 1e-3
    assert "**FAIL**" in (tmp_path / "report.md").read_text()


def test_export_help_names_every_option():
    done = subprocess.run([sys.executable, "-m", "rnnedge.export", "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    for option in ("--out", "--force", "--data", "--tolerance", "--stream-steps", "--precision", "--calibration"):
        assert option in done.stdout


def test_export_cli_with_f32_int8w_writes_both_weight_files_and_a_report_with_both(tmp_path, capsys):
    ckpt = checkpoint(tmp_path / "model.pt", cell="gru")
    out = tmp_path / "out"
    assert cli.main([ckpt, "--out", str(out), "--precision", "f32,int8w"]) == 0

    f32, int8w = out / "model.f32.safetensors", out / "model.int8w.safetensors"
    assert f32.is_file() and int8w.is_file()
    assert int8w.stat().st_size < f32.stat().st_size
    report = json.loads((out / "report.json").read_text())
    assert set(report) == REPORT_KEYS and report["passed"], report["failures"]
    assert report["precisions"] == ["f32", "int8w"]
    assert "max abs difference <= 0.05" in report["criteria"]["int8w"]  # no data set: the max abs bound
    q = report["quantization"]["int8w"]
    assert 0 < q["max_abs_weight_error"] == max(q["per_matrix"].values())
    rows = {row["name"]: row for row in report["artifacts"]}
    assert list(rows)[-4:] == ["runtime_stream", "runtime_run", "runtime_int8w_stream", "runtime_int8w_run"]
    for name in ("runtime_int8w_stream", "runtime_int8w_run"):
        row = rows[name]
        assert set(row) == ROW_KEYS and row["precision"] == "int8w" and row["file"] == int8w.name
        assert row["bytes"] == int8w.stat().st_size
        assert 1e-5 < row["max_abs_diff"] <= 0.05  # quantised: visibly off, yet close
    assert rows["runtime_run"]["max_abs_diff"] <= 1e-5
    md = (out / "report.md").read_text()
    assert "| model.int8w.safetensors |" in md and "int8w weights: max abs quantisation error" in md
    assert "int8w: max abs difference <= 0.05" in md


def test_int8w_is_judged_by_the_task_metric_when_a_data_set_is_given(tmp_path):
    data = load_dataset("synthetic-sum")
    ckpt = checkpoint(tmp_path / "sum.pt", cell="lstm", on="last_step", features=1, out=2)
    report = export_checkpoint(ckpt, tmp_path / "out", data=data, precisions=("int8w",))
    assert report["precisions"] == ["f32", "int8w"]  # f32 is always written: it is the reference
    assert report["criteria"]["int8w"].startswith("accuracy at most 0.5 points below the PyTorch model's, or a drop")
    reference = report["reference"]["metric"]["value"]
    for row in report["artifacts"]:
        if row["precision"] == "int8w":
            assert row["passed"] == (row["metric"]["value"] >= reference - 0.5 or row["interval"][1] >= 0)
            assert row["criterion"] == report["criteria"]["int8w"]


def test_firmware_single_header_adds_one_header_per_precision_and_lists_it_in_the_manifest(tmp_path):
    ckpt = checkpoint(tmp_path / "model.pt")
    out = tmp_path / "out"
    argv = [ckpt, "--out", str(out), "--precision", "f32,int8", "--stream-steps", "20", "--firmware", "single-header"]
    assert cli.main(argv) == 0
    manifest = json.loads((out / "report.json").read_text())["manifest"]
    for precision in ("f32", "int8"):
        header = out / "firmware" / precision / "rnnedge_model.h"
        assert "rnnedge_model_step" in header.read_text() and f"firmware/{precision}/rnnedge_model.h" in manifest
        assert (out / "firmware" / precision / "model_data.c").is_file()  # the sources stay: the footprint reads them
    assert cli.main([ckpt, "--out", str(out), "--precision", "f32,int8", "--stream-steps", "20"]) == 0
    assert not list(out.glob("firmware/*/rnnedge_model.h"))  # the next export without it removes the stale headers
