"""rnnedge-run ends with 0, 2 (bad input, one line) or 3 (a bug: one line and a log), never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnedge.runtime import cli
from tests.helpers import make_model, make_spec, random_inputs, write_artifact


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "rnnedge.runtime", *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def dense_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run_cli")
    spec = make_spec("gru")
    path = write_artifact(make_model(spec), folder / "m.safetensors")
    np.save(folder / "x.npy", random_inputs(spec, 1, 50)[0])
    return path, folder / "x.npy"


def test_rnnedge_run_refuses_a_fifo_as_input_without_blocking(dense_model, tmp_path):
    fifo = tmp_path / "x.npy"
    os.mkfifo(fifo)
    done = run_cli(dense_model[0], fifo)
    assert done.returncode == 2 and "FIFO" in done.stderr and "Traceback" not in done.stderr


def test_rnnedge_run_refuses_an_out_in_a_missing_folder_and_writes_nothing(dense_model, tmp_path):
    done = run_cli(*dense_model, "--out", tmp_path / "missing" / "y.npy")
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "missing").exists()


def test_rnnedge_run_writes_out_whole_and_leaves_no_temporary_file(dense_model, tmp_path):
    done = run_cli(*dense_model, "--out", tmp_path / "y.npy")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.npy"]
    assert np.load(tmp_path / "y.npy").shape == (50, 4)


def test_rnnedge_run_refuses_a_truncated_npy_input(dense_model, tmp_path):
    data = dense_model[1].read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    done = run_cli(dense_model[0], tmp_path / "cut.npy")
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_rnnedge_run_refuses_an_unknown_escape_in_the_prompt(dense_model):
    done = run_cli(dense_model[0], "--generate", "ab\\x")
    assert done.returncode == 2 and "escape \\x" in done.stderr and "Traceback" not in done.stderr


def test_rnnedge_run_into_a_closed_pipe_ends_quietly(dense_model):
    """`rnnedge-run MODEL INPUT | head -1`: the reader leaves early; no BrokenPipeError traceback."""
    done = subprocess.run(f"{sys.executable} -m rnnedge.runtime {dense_model[0]} {dense_model[1]} | head -1", shell=True,
                          capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_rnnedge_run_reports_an_internal_error_with_a_log_and_exit_3(dense_model, monkeypatch, capsys):
    from rnnedge import runtime

    def broken(path):
        raise ZeroDivisionError("a bug inside rnnedge")

    monkeypatch.setattr(runtime, "load", broken)
    assert cli.main([str(dense_model[0]), str(dense_model[1])]) == 3
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: a bug inside rnnedge" in err and "Traceback" not in err
    log = err.rsplit("the traceback is in ", 1)[1].split()[0]
    assert "ZeroDivisionError" in Path(log).read_text()
    os.unlink(log)


def test_rnnedge_run_refuses_a_file_that_is_not_a_weight_file(dense_model, tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(64))
    done = run_cli(tmp_path / "model.onnx", dense_model[1])
    assert done.returncode == 2 and "rnnedge run: error:" in done.stderr and "Traceback" not in done.stderr


def test_ctrl_c_during_a_run_exits_130_in_one_line(dense_model, monkeypatch, capsys, tmp_path):
    from rnnedge import runtime

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(runtime, "load", interrupted)
    assert cli.main([str(dense_model[0]), str(dense_model[1]), "--out", str(tmp_path / "y.npy")]) == 130
    assert capsys.readouterr().err == "rnnedge run: interrupted; --out was not written\n"
    assert not list(tmp_path.iterdir())
