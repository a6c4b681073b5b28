"""rnnedge-run streams a file through a model and writes every step's output."""

import subprocess
import sys

import numpy as np

from tests.helpers import make_model, make_spec, random_inputs, torch_forward, write_artifact


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "rnnedge.runtime", *map(str, args)], capture_output=True, text=True, check=False,
                          timeout=300)


def test_rnnedge_run_streams_an_npy_file_and_matches_pytorch(tmp_path):
    spec = make_spec("gru", layers=2)
    model = make_model(spec)
    path = write_artifact(model, tmp_path / "m.safetensors")
    X = random_inputs(spec, 1, 300)
    np.save(tmp_path / "x.npy", X[0])
    done = run_cli(path, tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    assert done.returncode == 0, done.stderr
    assert "streamed one step per call" in done.stderr
    assert np.abs(np.load(tmp_path / "y.npy") - torch_forward(model, X)[0]).max() <= 1e-5


def test_rnnedge_run_reads_csv_and_writes_csv(tmp_path):
    spec = make_spec("lstm")
    path = write_artifact(make_model(spec), tmp_path / "m.safetensors")
    X = random_inputs(spec, 1, 20)[0]
    np.savetxt(tmp_path / "x.csv", X, delimiter=",", header="a,b,c,d,e", comments="")
    done = run_cli(path, tmp_path / "x.csv", "--out", tmp_path / "y.csv")
    assert done.returncode == 0, done.stderr
    assert np.loadtxt(tmp_path / "y.csv", delimiter=",").shape == (20, 4)


def test_rnnedge_run_gives_a_clear_error_for_a_wrong_feature_count(tmp_path):
    path = write_artifact(make_model(make_spec("lstm")), tmp_path / "m.safetensors")
    np.save(tmp_path / "x.npy", np.zeros((10, 3), np.float32))
    done = run_cli(path, tmp_path / "x.npy")
    assert done.returncode == 2
    assert "rnnedge run: error:" in done.stderr and "expected (1, 5)" in done.stderr
    assert "Traceback" not in done.stderr


def test_rnnedge_run_help_explains_the_input_format():
    done = run_cli("--help")
    assert done.returncode == 0 and ".npy" in done.stdout and "one time step per call" in done.stdout


def test_rnnedge_run_runs_a_reverse_model_over_the_whole_sequence(tmp_path):
    from rnnedge.runtime import artifact
    from rnnedge.runtime import spec as specs
    from rnnedge.runtime.model import Model

    spec = specs.validate({**make_spec("gru"), "layers": [{"cell": "gru", "hidden": 6, "reverse": True,
                                                           "linear_before_reset": False}]})
    rng = np.random.default_rng(0)
    tensors = {name: rng.uniform(-0.5, 0.5, shape).astype(np.float32)
               for name, shape in specs.tensor_shapes(spec).items()}
    artifact.write(tmp_path / "m.safetensors", tensors, spec, "f32")
    X = random_inputs(spec, 1, 40)
    np.save(tmp_path / "x.npy", X[0])
    done = run_cli(tmp_path / "m.safetensors", tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    assert done.returncode == 0, done.stderr
    assert "bidirectional or reverse model: it cannot stream" in done.stderr
    assert np.array_equal(np.load(tmp_path / "y.npy"), Model(spec, "f32", tensors).run(X)[0])
