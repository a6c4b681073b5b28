"""The package as a user installs it: one top-level name, `rnnedge`, and a device install that runs the runtime with
numpy and numba alone, beside a user's own train.py and runtime/ folder (issue 16)."""

from __future__ import annotations

import os
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


# The base wheel measured 423 KB (code and the README as its description). The data sets it used to carry were
# 8.3 MB; 1 MB leaves the code room to grow and still fails any one of them coming back.
BASE_WHEEL_BYTES = 1_000_000
DATA_SETS = ("watch.npz", "digits.npz", "shakespeare.npz", "co2.npz")


def _build(source: Path, out: Path, name: str) -> Path:
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(out), str(source)], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = out.glob(f"{name}-*.whl")
    return found


def _install(wheel: Path, target: Path) -> Path:
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return _build(ROOT, tmp_path_factory.mktemp("wheel"), "rnnedge")


@pytest.fixture(scope="module")
def data_wheel(tmp_path_factory) -> Path:
    return _build(ROOT / "train" / "bundled", tmp_path_factory.mktemp("data-wheel"), "rnnedge_data")


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
    device = _install(wheel, tmp_path / "device")
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
    run = subprocess.run([sys.executable, "-c", script], check=False, cwd=project, capture_output=True, text=True,
                         env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("ok 3")
    assert np.isfinite(float(run.stdout.split()[2]))


def test_the_base_wheel_carries_no_data_set_and_is_small(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith((".npz", ".npy", ".csv")) or n.startswith("rnnedge/train/bundled")]
    assert wheel.stat().st_size < BASE_WHEEL_BYTES, f"{wheel.name}: {wheel.stat().st_size:,} bytes"


def test_the_data_wheel_carries_every_bundled_set_with_its_licences_and_conversion_scripts(data_wheel):
    archive = zipfile.ZipFile(data_wheel)
    names = archive.namelist()
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"rnnedge_data"}
    for name in (*DATA_SETS, "README.md", "make_watch.py", "make_digits.py", "make_shakespeare.py", "make_co2.py"):
        wanted = f"rnnedge_data/{name}"
        assert wanted in names, wanted
        assert archive.read(wanted) == (ROOT / "train" / "bundled" / name).read_bytes(), name
    readme = archive.read("rnnedge_data/README.md").decode()
    for licence in ("BSD-3-Clause", "MIT License", "CC BY-SA 4.0", "public domain"):
        assert licence in readme, licence
    metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: BSD-3-Clause AND MIT AND CC-BY-SA-4.0" in metadata


def test_installed_rnnedge_reads_the_bundled_sets_from_the_installed_data_package(wheel, data_wheel, tmp_path):
    device, data = _install(wheel, tmp_path / "device"), _install(data_wheel, tmp_path / "data")
    script = f"""
from rnnedge.train.data import bundled_file, load_dataset
assert str(bundled_file("co2.npz")).startswith({str(data)!r}), bundled_file("co2.npz")
co2 = load_dataset("co2")
print(co2.name, len(co2.train))
"""
    env = {"PYTHONPATH": os.pathsep.join((str(device), str(data), *sys.path[1:])), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path, capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("co2 ")


def test_rnnedge_train_watch_without_the_data_package_names_it_in_one_line_and_exits_2(wheel, tmp_path):
    device = _install(wheel, tmp_path / "device")
    no_data = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "rnnedge_data":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
from rnnedge.runtime.umbrella import main
raise SystemExit(main(["train", "watch", "--out", "out", "--epochs", "1"]))
"""
    env = {"PYTHONPATH": os.pathsep.join((str(device), *sys.path[1:])), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", no_data], check=False, cwd=tmp_path, capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 2, run.stderr[-3000:]
    assert run.stderr.count("\n") == 1 and "pip install rnnedge-data" in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()


def test_every_runtime_module_imports_first_in_a_fresh_interpreter():
    # an import cycle shows only when a module is the first of the package a program imports (fused_float.py
    # before fused.py failed until 2026-12-05): each module imported with none of the package loaded (the
    # package's modules dropped between them; numba and numpy stay, as they do not take part)
    names = sorted(p.stem for p in (ROOT / "runtime").glob("*.py") if p.stem not in ("__init__", "__main__"))
    script = ("import importlib, sys\nfailed = []\nfor name in sys.argv[1:]:\n"
              "    for loaded in [m for m in sys.modules if m == 'rnnedge' or m.startswith('rnnedge.')]:\n"
              "        del sys.modules[loaded]\n"
              "    try:\n        importlib.import_module('rnnedge.runtime.' + name)\n"
              "    except Exception as e:\n        failed.append(f'{name}: {type(e).__name__}: {e}')\n"
              "print('\\n'.join(failed))\n")
    done = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, check=False,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout
    assert len(names) > 40
