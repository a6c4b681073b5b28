"""rnnedge eval: fleet parity of an int8 weight file against its f32 file over a folder of recordings, serial and
on a local Ray instance (export/fleet.py, export/fleet_ray.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.export import fleet
from rnnedge.runtime.umbrella import main as rnnedge
from tests.helpers import make_model, make_spec, random_inputs, write_artifact

STEPS = 120


@pytest.fixture(scope="module")
def export_folder(tmp_path_factory):
    """model.f32 / model.int8 of one LSTM classifier, and six recordings in every format eval reads."""
    folder = tmp_path_factory.mktemp("fleet")
    spec = make_spec("lstm")
    model = make_model(spec)
    write_artifact(model, folder / "model.f32.safetensors", "f32")
    write_artifact(model, folder / "model.int8.safetensors", "int8")
    recordings = folder / "recordings"
    recordings.mkdir()
    X = random_inputs(spec, 9, STEPS, seed=5)
    np.save(recordings / "a_one_stream.npy", X[0])  # (T, F)
    np.save(recordings / "b_batch.npy", X[1:3])  # (B, T, F)
    np.savez(recordings / "c_lengths.npz", X=X[3:5], lengths=np.array([STEPS, 70]), y=np.zeros(2, np.int64))
    np.savez(recordings / "d_plain.npz", X=X[5:6])
    np.savetxt(recordings / "e_stream.csv", X[6], delimiter=",", header="ax,ay,az,bx,by", comments="")
    with open(recordings / "f_sequences.csv", "w", encoding="utf-8") as f:
        f.write("sequence_id,f0,f1,f2,f3,f4,label\n")
        for sid, stream in (("walk", X[7][:50]), ("run", X[8])):
            f.writelines(f"{sid},{','.join(f'{v:.9g}' for v in step)},1\n" for step in stream)
    (recordings / "notes.txt").write_text("not a recording: eval reads .npy, .npz and .csv only\n")
    return folder


def expected_rows(folder) -> dict[str, tuple[float, float, int, int]]:
    """Per recording: (max abs diff, mean abs diff, flips, steps), stepping both models directly."""
    got_model = runtime.load(folder / "model.int8.safetensors")
    want_model = runtime.load(folder / "model.f32.safetensors")
    rec = folder / "recordings"
    X = np.load(rec / "b_batch.npy")
    lengths = np.load(rec / "c_lengths.npz")
    csv_rows = np.loadtxt(rec / "f_sequences.csv", delimiter=",", skiprows=1, usecols=range(1, 6), dtype=np.float32)
    streams = {"a_one_stream.npy": [np.load(rec / "a_one_stream.npy")[None]], "b_batch.npy": [X],
               "c_lengths.npz": [lengths["X"][b: b + 1, :n] for b, n in enumerate(lengths["lengths"])],
               "d_plain.npz": [np.load(rec / "d_plain.npz")["X"]],
               "e_stream.csv": [np.loadtxt(rec / "e_stream.csv", delimiter=",", skiprows=1, dtype=np.float32)[None]],
               "f_sequences.csv": [csv_rows[None, :50], csv_rows[None, 50:]]}
    rows = {}
    for name, batches in streams.items():
        diffs, flips = [], 0
        for batch in batches:
            got, want = step_all(got_model, batch), step_all(want_model, batch)
            diffs.append(np.abs(got.astype(np.float64) - want).ravel())
            flips += int((got.argmax(-1) != want.argmax(-1)).sum())
        diff = np.concatenate(diffs)
        rows[name] = (diff.max(), diff.mean(), flips, sum(b.shape[0] * b.shape[1] for b in batches))
    return rows


def step_all(model, X: np.ndarray) -> np.ndarray:
    stream = model.stream(batch=X.shape[0])
    return np.stack([stream.step(np.ascontiguousarray(X[:, t], np.float32)).copy() for t in range(X.shape[1])], 1)


@pytest.fixture(scope="module")
def serial_report(export_folder):
    return fleet.evaluate(str(export_folder / "model.int8.safetensors"), str(export_folder / "recordings"))


def test_serial_eval_of_int8_against_f32_equals_stepping_both_models_directly(export_folder, serial_report):
    want = expected_rows(export_folder)
    rows = {os.path.basename(row["recording"]): row for row in serial_report["recordings"]}
    assert list(rows) == sorted(want)  # notes.txt is not a recording; rows in the order of the file names
    for name, (max_abs, mean_abs, flips, steps) in want.items():
        assert rows[name]["max_abs_diff"] == pytest.approx(max_abs, rel=1e-12, abs=0)
        assert rows[name]["mean_abs_diff"] == pytest.approx(mean_abs, rel=1e-9)
        assert (rows[name]["flips"], rows[name]["steps"]) == (flips, steps)
        assert rows[name]["decisions"] == steps
    totals = serial_report["totals"]
    assert totals["max_abs_diff"] == max(m for m, *_ in want.values())
    assert totals["steps"] == sum(s for *_, s in want.values()) == 9 * STEPS - (STEPS - 70) - (STEPS - 50)
    assert totals["streams"] == 9 and totals["recordings"] == 6
    assert 0 < totals["max_abs_diff"] <= 0.1  # int8's rule without a data set (export/rules.py INT8_MAX_ABS)
    assert serial_report["passed"] and serial_report["criterion"] == "max abs difference <= 0.1"
    assert serial_report["reference"].endswith("model.f32.safetensors")


def test_ray_local_eval_with_two_cpus_gives_the_serial_report(export_folder, serial_report):
    if os.environ.get("CI") == "true":
        import ray  # CI installs the scale extra: a missing ray fails here instead of skipping
    else:
        ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = fleet.evaluate(str(export_folder / "model.int8.safetensors"), str(export_folder / "recordings"),
                                ray_address="local")
        assert ray.is_initialized()  # joined the running instance, left it running for its owner
    finally:
        ray.shutdown()
    assert report["run"]["engine"] == "ray local" and report["run"]["workers"] == 2
    serial = dict(serial_report)
    serial.pop("run"), report.pop("run")
    assert json.dumps(report, sort_keys=True) == json.dumps(serial, sort_keys=True)


def test_eval_command_writes_report_json_and_md(export_folder, tmp_path, capsys):
    out = tmp_path / "eval"
    status = rnnedge(["eval", str(export_folder / "model.int8.safetensors"), str(export_folder / "recordings"),
                      "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    written = json.loads((out / "report.json").read_text())
    assert written["passed"] and written["totals"]["recordings"] == 6
    assert "| c_lengths.npz | 2 | 190 |" in (out / "report.md").read_text()
    assert "6 of 6 recordings" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["empty folder", "wrong feature count", "onnx artifact", "npy artifact"])
def test_eval_refuses_bad_input_naming_the_file(export_folder, tmp_path, capsys, case):
    artifact, recordings = export_folder / "model.int8.safetensors", tmp_path / "recordings"
    recordings.mkdir()
    if case == "empty folder":
        named = recordings
    elif case == "wrong feature count":
        np.save(recordings / "ok.npy", np.zeros((10, 5), np.float32))
        named = recordings / "wide.npy"
        np.save(named, np.zeros((10, 7), np.float32))
    else:
        np.save(recordings / "ok.npy", np.zeros((10, 5), np.float32))
        named = artifact = tmp_path / ("model.onnx" if case == "onnx artifact" else "model.npy")
        if case == "onnx artifact":
            named.write_bytes(b"\x08\x07\x12\x07pytorch\x1a\x032.0")  # an ONNX ModelProto's first fields
        else:
            np.save(named, np.zeros(3))
    status = rnnedge(["eval", str(artifact), str(recordings), "--out", str(tmp_path / "eval"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2, err
    assert str(named) in err and err.count("\n") == 1
    assert not (tmp_path / "eval").exists()


def test_eval_never_writes_over_an_exports_report(export_folder, tmp_path, capsys):
    from rnnedge.train import outputs

    folder = tmp_path / "export"
    with outputs.Staging(folder, outputs.EXPORT, writes=["report.json"]) as stage:
        (stage.dir / "report.json").write_text("{}\n")
    status = rnnedge(["eval", str(export_folder / "model.int8.safetensors"), str(export_folder / "recordings"),
                      "--out", str(folder), "--quiet"])
    assert status == 2 and "rnnedge-export" in capsys.readouterr().err
    assert (folder / "report.json").read_text() == "{}\n"


def test_eval_runs_where_torch_and_onnx_cannot_be_imported_and_imports_no_ray(export_folder, tmp_path):
    from tests.runtime.test_no_torch import BLOCKER

    program = BLOCKER + (f"from runtime.umbrella import main\n"
                         f"status = main(['eval', {str(export_folder / 'model.int8.safetensors')!r}, "
                         f"{str(export_folder / 'recordings')!r}, '--out', {str(tmp_path / 'eval')!r}, '--quiet'])\n"
                         "assert not {'torch', 'onnx', 'ray'} & set(sys.modules)  # ray only with --ray\n"
                         "raise SystemExit(status)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["totals"]["recordings"] == 6


def test_a_recording_past_the_int8_range_fails_its_row_and_the_command_exits_1(export_folder, tmp_path, capsys):
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    X = random_inputs(make_spec("lstm"), 2, 200, seed=8)
    np.save(recordings / "calm.npy", X[0])
    np.save(recordings / "loud.npy", X[1] * 200)  # a sensor far past the range int8 was calibrated on: saturates
    out = tmp_path / "eval"
    status = rnnedge(["eval", str(export_folder / "model.int8.safetensors"), str(recordings), "--out", str(out)])
    assert status == 1, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    verdicts = {os.path.basename(row["recording"]): row["passed"] for row in report["recordings"]}
    assert verdicts == {"calm.npy": True, "loud.npy": False}
    assert not report["passed"] and report["totals"]["worst_recording"].endswith("loud.npy")
    assert report["totals"]["max_abs_diff"] > 0.1
