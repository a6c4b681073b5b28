"""rnnedge train under torchrun (train/distributed.py): 2 processes train the model 1 process trains."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from rnnedge.train.cli import main

# Crops of 14 steps from sequences of 10..30 steps: 311 crops, some shorter than 14, in 10 batches of 31 (sliced
# 16/15 over 2 ranks, with different counts of scored steps) and a last batch of 1 (rank 1's slice is empty).
# A rank that weighted its slice by its own mean instead of the global batch's count would move the weights elsewhere.
TASK = ["synthetic-forecast", "--window", "14", "--batch-size", "31", "--epochs", "3", "--hidden", "8",
        "--cell", "lstm", "--quiet"]
# float32 weights after 33 Adam updates; the two runs differ only in summation order (two slices' gradients summed by
# the all-reduce, each loss scaled by its count) -- a few units in the last place per update, which Adam's
# normalised step turns into changes of about lr * 1e-7 each. Measured: at most 6e-8 apart (weights of magnitude
# up to 0.7); the bound leaves 100x for other CPUs' summation orders, while weighting each rank's slice by its own
# mean (DDP averaging two slice means) moved them 6e-3 apart.
WEIGHT_TOLERANCE = 1e-5
LOSS_TOLERANCE = 1e-6  # relative, per epoch: the mean loss over ~4000 scored steps, summed in another order
TORCHRUN_SECONDS = 180  # a hung rank fails the test instead of the CI job


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "rnnedge.train",
                           *args], check=False, capture_output=True, text=True, env=env,
                          timeout=TORCHRUN_SECONDS)


def _checkpoint(folder) -> dict:
    return torch.load(folder / "model.pt", map_location="cpu", weights_only=True)


def test_two_processes_train_the_weights_and_metrics_of_one_process_and_write_one_folder(tmp_path):
    assert main([*TASK, "--out", str(tmp_path / "one")]) == 0
    done = _torchrun([*TASK, "--out", str(tmp_path / "two")])
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # rank 1 wrote no folder, no staging left
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert done.stdout.count("wrote ") == 3  # rank 0 alone prints

    one, two = _checkpoint(tmp_path / "one"), _checkpoint(tmp_path / "two")
    for name, weight in one["state_dict"].items():
        np.testing.assert_allclose(two["state_dict"][name].numpy(), weight.numpy(), rtol=0, atol=WEIGHT_TOLERANCE,
                                   err_msg=name)
    m1 = json.loads((tmp_path / "one" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert m2["processes"] == 2 and "processes" not in m1
    assert [e["lr"] for e in m2["epochs"]] == [e["lr"] for e in m1["epochs"]]
    for e1, e2 in zip(m1["epochs"], m2["epochs"], strict=True):
        assert e2["train_loss"] == pytest.approx(e1["train_loss"], rel=LOSS_TOLERANCE)
        assert e2["val_rmse"] == pytest.approx(e1["val_rmse"], rel=1e-4)
    assert m2["test_metric"] == pytest.approx(m1["test_metric"], rel=1e-4)


def _rank_exits(stderr: str) -> dict[int, int]:
    """torchrun's failure summary: {rank: exit code}."""
    return {int(rank): int(code) for rank, code in re.findall(r"rank\s*: (\d+) \(local_rank.*?\n.*?exitcode\s*: (-?\d+)",
                                                              stderr)}


@pytest.mark.parametrize("case", ["refused output folder (rank 0 only)", "bad data (every rank)"])
def test_a_rank_that_fails_ends_both_processes_with_exit_2_instead_of_a_hang(tmp_path, case):
    (tmp_path / "taken").write_text("a file where the output folder should be\n")
    np.savez(tmp_path / "nan.npz", X=np.full((20, 5, 2), np.nan, np.float32), y=np.zeros(20, np.int64))
    if case.startswith("refused"):
        args = ["synthetic-sum", "--epochs", "1", "--hidden", "4", "--out", str(tmp_path / "taken")]
    else:
        args = [str(tmp_path / "nan.npz"), "--epochs", "1", "--hidden", "4", "--out", str(tmp_path / "out")]
    done = _torchrun(args)
    assert done.returncode != 0
    exits = _rank_exits(done.stderr)
    # every rank that got to exit did so with 2; torchrun sends SIGTERM (-15) to the others as soon as one has exited,
    # which can overtake a rank already on its way out with 2
    assert 2 in exits.values() and set(exits.values()) <= {2, -15} and len(exits) <= 2, done.stderr[-3000:]
    assert "rnnedge train: error:" in done.stderr and "train/cli.py" not in done.stderr  # a message, no traceback
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.npz", "taken"]


def test_ranks_train_on_their_local_gpu_with_nccl_where_cuda_is_available_else_on_the_cpu_with_gloo(monkeypatch):
    from rnnedge.train import distributed

    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert distributed.backend_and_device() == ("gloo", torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.backend_and_device() == ("nccl", torch.device("cuda", 1))
    monkeypatch.delenv("LOCAL_RANK")
    assert distributed.backend_and_device() == ("nccl", torch.device("cuda", 0))  # one process, as torchrun's rank 0
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ValueError, match=r"LOCAL_RANK=2 but this machine has 2 GPU\(s\)"):
        distributed.backend_and_device()


def test_torchrun_with_more_ranks_per_node_than_gpus_is_refused_in_one_line_before_any_process_group(
        monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert main([*TASK, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "LOCAL_RANK=3 but this machine has 2 GPU(s)" in err
    assert not torch.distributed.is_initialized() and not (tmp_path / "out").exists()
