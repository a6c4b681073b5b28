"""The package as a user installs it: one top-level name, `rnnedge`, and a device install that runs the runtime with
numpy and numba alone, beside a user's own train.py and runtime/ folder (issue 16)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "onnx", "onnxruntime", "onnxscript", "matplotlib", "tqdm"):
            raise ImportError(f"{name} is not installed on this device")
sys.meta_path.insert(0, Absent())
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(out), str(ROOT)], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = out.glob("rnnedge-*.whl")
    return found


def test_the_wheel_installs_one_top_level_package_rnnedge_with_every_part(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"rnnedge"}
    for part in ("rnnedge/__init__.py", "rnnedge/runtime/model.py", "rnnedge/runtime/umbrella.py",
                 "rnnedge/export/pipeline.py", "rnnedge/export/onnx_in/mapper.py", "rnnedge/train/cli.py"):
        assert part in names, part
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry).decode()
    assert "rnnedge = rnnedge.runtime.umbrella:main" in scripts and "= train." not in scripts


def test_a_device_install_runs_the_runtime_without_torch_beside_a_users_own_train_and_runtime(wheel, tmp_path):
    from tests.helpers import make_model, make_spec, write_artifact

    weights = write_artifact(make_model(make_spec("gru")), tmp_path / "model.f32.safetensors")
    device = tmp_path / "device"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(device),
                           str(wheel)], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    project = tmp_path / "project"  # a user's ML project: its own train.py and runtime/ package
    (project / "runtime").mkdir(parents=True)
    (project / "train.py").write_text("raise SystemExit('the user train.py ran')\n")
    (project / "runtime" / "__init__.py").write_text("raise ImportError('the user runtime package was imported')\n")
    script = BLOCK + f"""
import numpy as np
import rnnedge.runtime as rt
assert rt.__file__.startswith({str(device)!r}), rt.__file__
model = rt.load({weights!r})
s = model.stream()
out = [s.step(np.zeros((1, model.features), np.float32)) for _ in range(3)]
assert "torch" not in sys.modules and "onnx" not in sys.modules
print("ok", len(out), model.out)
"""
    env = {"PYTHONPATH": str(device), "PATH": "/usr/bin:/bin", "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    run = subprocess.run([sys.executable, "-c", script], check=False, cwd=project, capture_output=True, text=True, env=env,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("ok 3")
    assert np.isfinite(float(run.stdout.split()[2]))
