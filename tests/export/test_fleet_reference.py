"""rnnedge eval --reference model.pt: fleet parity against the PyTorch checkpoint itself (export/fleet_torch.py),
serial and on a local Ray instance; without torch, one line naming the training extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.export import fleet
from rnnedge.export.parity import torch_every_prefix
from rnnedge.runtime.umbrella import main as rnnedge
from rnnedge.train.checkpoint import save_checkpoint
from tests.helpers import make_model, make_spec, random_inputs, write_artifact

STEPS = 150


@pytest.fixture(scope="module")
def export_folder(tmp_path_factory):
    """model.pt, model.f32 and model.int8 of one GRU classifier, and three recordings."""
    folder = tmp_path_factory.mktemp("fleet-pt")
    model = make_model(make_spec("gru"), seed=3)
    save_checkpoint(folder / "model.pt", model)
    write_artifact(model, folder / "model.f32.safetensors", "f32")
    write_artifact(model, folder / "model.int8.safetensors", "int8")
    recordings = folder / "recordings"
    recordings.mkdir()
    X = random_inputs(model.spec, 4, STEPS, seed=11)
    np.save(recordings / "a.npy", X[0])
    np.save(recordings / "b.npy", X[1:3])
    np.savez(recordings / "c.npz", X=X[3:4], lengths=np.array([90]))
    return folder


def evaluate(folder, precision: str, **kwargs) -> dict:
    return fleet.evaluate(str(folder / f"model.{precision}.safetensors"), str(folder / "recordings"),
                          str(folder / "model.pt"), **kwargs)


@pytest.fixture(scope="module")
def int8_report(export_folder):
    return evaluate(export_folder, "int8")


def test_int8_against_model_pt_measures_the_artifact_against_the_pytorch_models_outputs(export_folder, int8_report):
    from rnnedge.train.checkpoint import load_checkpoint

    torch_model, _ = load_checkpoint(export_folder / "model.pt")
    artifact = runtime.load(export_folder / "model.int8.safetensors")
    rec = export_folder / "recordings"
    streams = {"a.npy": np.load(rec / "a.npy")[None], "b.npy": np.load(rec / "b.npy"),
               "c.npz": np.load(rec / "c.npz")["X"][:, :90]}
    rows = {os.path.basename(row["recording"]): row for row in int8_report["recordings"]}
    for name, X in streams.items():
        stream = artifact.stream(batch=X.shape[0])
        got = np.stack([stream.step(np.ascontiguousarray(X[:, t])).copy() for t in range(X.shape[1])], 1)
        want = torch_every_prefix(torch_model, X)
        assert rows[name]["max_abs_diff"] == pytest.approx(float(np.abs(got.astype(np.float64) - want).max()),
                                                           rel=1e-12, abs=0)
        assert 0 < rows[name]["float64_floor"] < 1e-5  # PyTorch float32's own error on the recording
    assert int8_report["reference_precision"] == "pytorch" and int8_report["reference"].endswith("model.pt")
    assert int8_report["passed"] and int8_report["criterion"] == "max abs difference <= 0.1"


def test_f32_against_model_pt_passes_the_float_rule_and_a_changed_weight_fails_it(export_folder, tmp_path):
    report = evaluate(export_folder, "f32")
    assert report["passed"], report["totals"]
    assert report["totals"]["max_abs_diff"] < 1e-5
    assert "float32-vs-float64 error on the recording" in report["criterion"]

    from rnnedge.train.checkpoint import load_checkpoint

    model, _ = load_checkpoint(export_folder / "model.pt")
    with __import__("torch").no_grad():
        model.layers[0].weight_hh_l0[0, 0] += 1e-2  # one recurrent weight moved: outputs move by ~3e-5
    save_checkpoint(tmp_path / "model.pt", model)
    moved = fleet.evaluate(str(export_folder / "model.f32.safetensors"), str(export_folder / "recordings"),
                           str(tmp_path / "model.pt"))
    assert not moved["passed"]


def test_ray_local_eval_against_model_pt_with_two_cpus_gives_the_serial_report(export_folder, int8_report):
    if os.environ.get("CI") == "true":
        import ray  # CI installs the scale extra: a missing ray fails here instead of skipping
    else:
        ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = evaluate(export_folder, "int8", ray_address="local")
    finally:
        ray.shutdown()
    assert report["run"]["workers"] == 2
    serial = dict(int8_report)
    serial.pop("run"), report.pop("run")
    assert json.dumps(report, sort_keys=True) == json.dumps(serial, sort_keys=True)


def test_eval_with_a_model_pt_reference_where_torch_is_missing_names_the_training_extra_and_exits_2(export_folder,
                                                                                                    tmp_path):
    from tests.runtime.test_no_torch import BLOCKER

    program = BLOCKER + (f"from runtime.umbrella import main\n"
                         f"raise SystemExit(main(['eval', {str(export_folder / 'model.int8.safetensors')!r}, "
                         f"{str(export_folder / 'recordings')!r}, '--reference', {str(export_folder / 'model.pt')!r}, "
                         f"'--out', {str(tmp_path / 'eval')!r}]))\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and 'pip install "rnnedge[train]"' in done.stderr
    assert "model.pt is a PyTorch checkpoint" in done.stderr
    assert not (tmp_path / "eval").exists()


def test_a_model_pt_of_another_model_is_refused_naming_both_files(export_folder, tmp_path, capsys):
    save_checkpoint(tmp_path / "other.pt", make_model(make_spec("lstm")))
    status = rnnedge(["eval", str(export_folder / "model.int8.safetensors"), str(export_folder / "recordings"),
                      "--reference", str(tmp_path / "other.pt"), "--out", str(tmp_path / "eval"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "hold different models" in err and str(tmp_path / "other.pt") in err
