"""A device install (no `train` extra): `rnnedge train` and `rnnedge export` say in one line what to install and exit
2; `rnnedge run` streams as before."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import make_model, make_spec, write_artifact

ROOT = Path(__file__).resolve().parents[1]

# torch and onnx as on a device: a finder ahead of all others refuses them, as a missing module is refused
BLOCKER = textwrap.dedent("""
    import sys
    class Device:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "onnx", "onnxruntime", "onnxscript"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Device())
""")
NEEDS = 'needs the training extra (torch is not installed here): pip install "rnnedge[train]"'


def on_device(call: str, *args):
    program = BLOCKER + f"from runtime import umbrella\nsys.exit(umbrella.{call})\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", program, *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=300, env=env, cwd=ROOT)


@pytest.mark.parametrize("name", ["train", "export"])
@pytest.mark.parametrize("args", [[], ["--help"], ["--out", "/tmp/never-written"]], ids=["bare", "help", "out"])
def test_training_commands_on_a_device_name_the_extra_in_one_line_and_exit_2(name, args):
    done = on_device(f"main([{name!r}, *sys.argv[1:]])", *args)
    assert done.returncode == 2
    assert done.stderr == f"rnnedge {name}: error: {NEEDS}\n"
    assert done.stdout == ""


@pytest.mark.parametrize("name", ["train", "export"])
def test_old_training_command_names_on_a_device_say_they_are_going_then_name_the_extra(name):
    done = on_device(f"old_{name}()", "--help")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"rnnedge-{name} is now `rnnedge {name}`; the old name goes in the next release",
        f"rnnedge {name}: error: {NEEDS}"]


def test_rnnedge_run_on_a_device_streams_without_torch(tmp_path):
    path = write_artifact(make_model(make_spec("gru")), tmp_path / "m.f32.safetensors")
    np.save(tmp_path / "x.npy", np.full((3, 5), 0.5, np.float32))
    done = on_device("main(['run', *sys.argv[1:]])", path, tmp_path / "x.npy")
    assert done.returncode == 0, done.stderr
    assert np.loadtxt(done.stdout.splitlines(), delimiter=",").shape == (3, 4)


@pytest.mark.parametrize("name", ["train", "export"])
def test_python_m_of_a_training_package_on_a_device_names_the_extra_too(name):
    program = BLOCKER + f"import runpy\nrunpy.run_module({name!r}, run_name='__main__')\n"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr == f"rnnedge {name}: error: {NEEDS}\n"
