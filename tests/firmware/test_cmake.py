"""firmware_ref as a CMake package: `add_subdirectory(firmware_ref)` gives rnnedge::rnnedge.

firmware_ref/examples/CMakeLists.txt builds the example (main.c) the way a project of one's own would, with
rnnedge_add_model() for the generated model sources. It is configured and built on the host (stdio) and cross-built
with cmake/arm-none-eabi.cmake for QEMU's mps2-an385 (Cortex-M3) and mps2-an386 (Cortex-M4F), and with
cmake/riscv32-unknown-elf.cmake for qemu-system-riscv32's virt machine; every build must print the runtime's classes
(test_example.py's check). RNNEDGE_EXTENSIONS=OFF must reach the library, the model and the program as
-DRNNEDGE_EXTENSIONS=0, and `cmake --install` must give a package find_package(rnnedge) can use.
cmake missing: skip, or fail under CI=true (like test_qemu.py); the cross tools likewise for their builds.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.vectors import read_vectors
from tests.firmware import test_qemu, test_riscv
from tests.firmware.conftest import require_tool
from tests.firmware.test_example import _classes, _runtime_classes
from tests.firmware.test_host import _calibrated_case, _generate
from tests.firmware.test_host_extensions import LSTM_ALL, calibrated_extended_case

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_ref"
EXAMPLE = FIRMWARE / "examples"
M4F = "-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard"


@pytest.fixture(scope="module")
def cmake() -> str:
    return require_tool("cmake")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, list[int]]:
    """A token LSTM's generated sources and vectors, and the runtime's classes on the vectors' inputs."""
    folder = tmp_path_factory.mktemp("model")
    _calibrated_case(folder, "lstm", 1, "tokens", seed=3)
    _generate(folder)
    _, v = read_vectors(folder / "model.int8.vectors.safetensors")
    by_output, by_logits = _runtime_classes(folder / "model.int8.safetensors", np.asarray(v["input"]))
    assert by_output == by_logits
    return folder, by_logits


def _cmake(cmake: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([cmake, *args], check=False, capture_output=True, text=True, timeout=300, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def _configure_and_build(cmake: str, source: Path, build: Path, *options: str) -> subprocess.CompletedProcess:
    """Configure (compile_commands.json on) and build; the build's result (configure failures are asserted)."""
    configured = _cmake(cmake, "-S", str(source), "-B", str(build), "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON", *options)
    assert configured.returncode == 0, f"{configured.stdout[-3000:]}\n{configured.stderr[-3000:]}"
    return _cmake(cmake, "--build", str(build), "--parallel", "2")


def _build_example(cmake: str, model_dir: Path, build: Path, *options: str) -> Path:
    built = _configure_and_build(cmake, EXAMPLE, build, f"-DRNNEDGE_MODEL_DIR={model_dir}",
                                 "-DRNNEDGE_STRICT_WARNINGS=ON", *options)
    assert built.returncode == 0, f"{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    return build / "example"


def _flags_by_source(build: Path) -> dict[str, str]:
    return {Path(entry["file"]).name: entry["command"]
            for entry in json.loads((build / "compile_commands.json").read_text())}


def test_host_build_of_the_example_prints_the_runtime_classes(cmake, model, tmp_path, host_cc):
    folder, expected = model
    exe = _build_example(cmake, folder, tmp_path / "host", f"-DCMAKE_C_COMPILER={host_cc}", "-DRNNEDGE_FMA=OFF")
    proc = subprocess.run([str(exe)], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert _classes(proc.stdout) == expected
    flags = _flags_by_source(tmp_path / "host")
    # the library, the model sources and main.c: C99 without GNU extensions, include/ and the model folder
    for source in ("rnnedge_int8.c", "rnnedge_f32.c", "model_data.c", "main.c"):
        assert "-std=c99" in flags[source], flags[source]
    assert f"-I{FIRMWARE / 'include'}" in flags["main.c"] and f"-I{folder}" in flags["main.c"]
    assert "-Werror" in flags["rnnedge_int8.c"] and "-Wdouble-promotion" in flags["rnnedge_f32.c"]
    assert "-Wdouble-promotion" not in flags["rnnedge_int8.c"]
    assert [source for source, command in flags.items() if "-DRNNEDGE_FMA=0" in command] == ["rnnedge_f32.c"]


@pytest.mark.parametrize(("board", "cpu"), [("an385", None), ("an386", M4F)], ids=["cortex-m3", "cortex-m4f"])
def test_cortex_m_cross_build_of_the_example_runs_under_qemu(cmake, model, tmp_path, board, cpu):
    test_qemu._require_tools()
    folder, expected = model
    options = ["-DRNNEDGE_EXAMPLE_BOARD=mps2", f"-DCMAKE_TOOLCHAIN_FILE={FIRMWARE / 'cmake' / 'arm-none-eabi.cmake'}"]
    elf = _build_example(cmake, folder, tmp_path / board, *options, *([f"-DRNNEDGE_ARM_CPU={cpu}"] if cpu else []))
    if board == "an385":
        assert test_qemu._nm(elf) == [], "the Cortex-M3 example links soft-float helpers"
    proc = subprocess.run(["sh", str(test_qemu.RUN), board, str(elf), "60"], check=False, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert _classes(proc.stdout) == expected
    assert "-mcpu=cortex-m" in _flags_by_source(tmp_path / board)["rnnedge_int8.c"]


def test_riscv_cross_build_of_the_example_runs_under_qemu(cmake, model, tmp_path):
    test_riscv._require_tools()
    folder, expected = model
    elf = _build_example(cmake, folder, tmp_path / "rv", "-DRNNEDGE_EXAMPLE_BOARD=virt",
                         f"-DCMAKE_TOOLCHAIN_FILE={FIRMWARE / 'cmake' / 'riscv32-unknown-elf.cmake'}")
    assert test_riscv._soft_float(elf) == []
    proc = test_riscv._run(elf)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert _classes(proc.stdout) == expected


def test_extensions_off_reaches_library_model_and_program_and_refuses_an_extended_model(cmake, model, tmp_path):
    folder, expected = model
    exe = _build_example(cmake, folder, tmp_path / "plain", "-DRNNEDGE_EXTENSIONS=OFF", "-DRNNEDGE_FLOAT=OFF")
    flags = _flags_by_source(tmp_path / "plain")
    assert set(flags) == {"rnnedge_int8.c", "rnnedge_tables.c", "model_data.c", "main.c"}  # RNNEDGE_FLOAT=OFF
    for source, command in flags.items():
        assert "-DRNNEDGE_EXTENSIONS=0" in command, source
    proc = subprocess.run([str(exe)], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and _classes(proc.stdout) == expected
    extended = tmp_path / "extended"
    extended.mkdir()
    calibrated_extended_case(extended, "lstm", LSTM_ALL)
    _generate(extended)
    built = _configure_and_build(cmake, EXAMPLE, tmp_path / "ext", f"-DRNNEDGE_MODEL_DIR={extended}",
                                 "-DRNNEDGE_EXTENSIONS=OFF")
    assert built.returncode != 0
    assert "uses ONNX layer extensions" in built.stdout + built.stderr
    assert _configure_and_build(cmake, EXAMPLE, tmp_path / "ext-on", f"-DRNNEDGE_MODEL_DIR={extended}").returncode == 0


def test_a_missing_model_folder_is_named(cmake, tmp_path):
    proc = _cmake(cmake, "-S", str(EXAMPLE), "-B", str(tmp_path / "b"), f"-DRNNEDGE_MODEL_DIR={tmp_path / 'nowhere'}")
    assert proc.returncode != 0
    assert f"{tmp_path / 'nowhere'} has no model_data.c and model_data.h" in " ".join(proc.stderr.split())


def test_installed_package_works_with_find_package(cmake, model, tmp_path, host_cc):
    folder, expected = model
    built = _configure_and_build(cmake, FIRMWARE, tmp_path / "lib", f"-DCMAKE_C_COMPILER={host_cc}",
                                 "-DRNNEDGE_EXTENSIONS=OFF", f"-DCMAKE_INSTALL_PREFIX={tmp_path / 'prefix'}")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    installed = _cmake(cmake, "--install", str(tmp_path / "lib"))
    assert installed.returncode == 0, installed.stderr
    app = tmp_path / "app"
    app.mkdir()
    (app / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C)\nfind_package(rnnedge 0.1 REQUIRED)\n"
        f'rnnedge_add_model(app_model "{folder}")\n'
        f'add_executable(app "{EXAMPLE / "main.c"}")\n'
        f'target_include_directories(app PRIVATE "{EXAMPLE}")\n'
        "target_link_libraries(app PRIVATE app_model)\n")
    built = _configure_and_build(cmake, app, tmp_path / "app-build", f"-DCMAKE_PREFIX_PATH={tmp_path / 'prefix'}",
                                 f"-DCMAKE_C_COMPILER={host_cc}")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "-DRNNEDGE_EXTENSIONS=0" in _flags_by_source(tmp_path / "app-build")["main.c"]
    proc = subprocess.run([str(tmp_path / "app-build" / "app")], check=False, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and _classes(proc.stdout) == expected
