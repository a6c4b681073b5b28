"""The int8 Helium (MVE) kernels (firmware_ref/src/rnnedge_mve.h) on a Cortex-M55 under QEMU's mps3-an547: the image
built by `make -C firmware_ref arm-int8-an547` links them (the Cortex-M4 image does not) and matches the golden
vectors bit for bit -- every cell, 1 and 3 layers, dense and tokens, hot constants, the ONNX layer extensions (which
run the plain / DSP path), and the reference shapes LSTM(40 -> 64) and GRU(6 -> 64) x 2, whose instructions per
step (QEMU -icount: instructions, not cycles) are reported next to the Cortex-M4 DSP build's. Tools missing (or a
QEMU without mps3-an547): skip, or fail under CI=true (test_qemu.py's check)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks.bench_firmware import build_model, macs_per_step, model_specs
from rnnedge.export import footprint
from rnnedge.export.firmware import write_vector_sources
from rnnedge.export.vectors import write_vectors
from tests.firmware.test_host import CELLS, STEPS, _calibrated_case, _generate, _hot_case
from tests.firmware.test_host_extensions import LSTM_ALL, hot_extended_case
from tests.firmware.test_qemu import _nm, _require_tools
from tests.firmware.test_qemu_vectors import _assert_passes, _make, _run

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_ref"
MVE_KERNELS = ("mve_dot4", "mve_gate_sums_int8", "mve_lstm_step_int8", "mve_gru_step_int8", "mve_head_int8")


@pytest.fixture(scope="module")
def m55_tools() -> None:
    _require_tools()
    machines = subprocess.run(["qemu-system-arm", "-machine", "help"], check=False, capture_output=True, text=True).stdout
    if "mps3-an547" not in machines:
        message = "qemu-system-arm has no mps3-an547 machine (QEMU >= 6.0 has it; Debian's qemu-system-arm does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def _build(folder: Path, board: str, *variables: str) -> Path:
    proc = _make(folder, f"arm-int8-{board}", *variables)
    assert proc.returncode == 0, f"make arm-int8-{board} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return folder / "arm" / f"int8-{board}" / f"int8-{board}.elf"


def _local_symbols(elf: Path) -> set[str]:
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def _m55_passes(folder: Path, *variables: str) -> int:
    elf = _build(folder, "an547", *variables)
    assert _nm(elf) == [], "the Cortex-M55 int8 image links soft-float helpers"
    return _assert_passes(_run("an547", elf), "cortex-m55")


def test_cortex_m55_image_links_the_helium_kernels_and_the_cortex_m4_image_does_not(m55_tools, tmp_path):
    _calibrated_case(tmp_path, "lstm", 1, "dense")
    _generate(tmp_path)
    m55 = _local_symbols(_build(tmp_path, "an547"))
    m4 = _local_symbols(_build(tmp_path, "an386"))
    assert set(MVE_KERNELS) <= m55, sorted(set(MVE_KERNELS) - m55)
    assert not set(MVE_KERNELS) & m4


@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_cortex_m55_matches_vectors_bit_for_bit(m55_tools, tmp_path, cell, layers, kind):
    _calibrated_case(tmp_path, cell, layers, kind)
    _generate(tmp_path)
    _m55_passes(tmp_path)


@pytest.mark.parametrize("cell,kind", [("lstm", "dense"), ("gru", "tokens"), ("rnn_tanh", "dense"),
                                       ("rnn_relu", "tokens")])
def test_cortex_m55_matches_hot_constants_bit_for_bit(m55_tools, tmp_path, cell, kind):
    """sat16 clipping, a bias at the int32 limit, saturating left shifts, a multiplier of ~0, LSTM cell powers -15
    and -12 (tests/firmware/test_host.py's hot case): every lane of the vector requantisation."""
    _hot_case(tmp_path, cell, 2, kind, seed=CELLS.index(cell))
    _generate(tmp_path)
    _m55_passes(tmp_path)


def test_cortex_m55_runs_lstm_extensions_bit_for_bit(m55_tools, tmp_path):
    """A layer with extensions takes the plain path on the M55 too; its head still runs the Helium kernel."""
    hot_extended_case(tmp_path, "lstm", LSTM_ALL, 2, "dense", seed=5)
    _generate(tmp_path)
    _m55_passes(tmp_path)


def _reference_model(folder: Path, name: str) -> tuple[Path, int]:
    """benchmarks/bench_firmware.py's model `name` with golden vectors of STEPS steps; returns (folder, MACs)."""
    spec = model_specs()[name]
    model_dir, _ = build_model(name, spec, folder)
    inp = spec["input"]
    rng = np.random.default_rng(7)
    X = rng.standard_normal((STEPS, inp["features"])) * np.asarray(inp["std"]) + np.asarray(inp["mean"])
    vectors = model_dir / "model.int8.vectors.safetensors"
    write_vectors(vectors, model_dir / "model.int8.safetensors", X.astype(np.float32), steps=STEPS)
    write_vector_sources(vectors, model_dir)
    return model_dir, macs_per_step(spec)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_reference_shapes_run_bit_for_bit_in_under_a_third_of_the_cortex_m4_dsp_instructions(m55_tools, tmp_path,
                                                                                            name, record_property):
    """LSTM(40 -> 64) + Linear(12) and GRU(6 -> 64) x 2 + Linear(6), built as their users would (EXTENSIONS=0)."""
    folder, macs = _reference_model(tmp_path, name)
    m55 = _m55_passes(folder, "EXTENSIONS=0")
    m4 = _assert_passes(_run("an386", _build(folder, "an386", "EXTENSIONS=0")), "cortex-m4")
    record_property("instructions_per_step", {"cortex-m55": m55, "cortex-m4": m4, "macs": macs})
    print(f"{name}: cortex-m55 {m55} instructions per step ({m55 / macs:.2f} per MAC), "
          f"cortex-m4 dsp {m4} ({m4 / macs:.2f})")
    assert m55 < m4 / 3, (m55, m4)


def test_a_host_build_that_forces_the_helium_path_stops_with_a_clear_error(tmp_path, host_cc):
    proc = subprocess.run([host_cc, "-std=c99", "-DRNNEDGE_MVE=1", f"-I{FIRMWARE / 'include'}", "-c",
                           str(FIRMWARE / "src" / "rnnedge_int8.c"), "-o", str(tmp_path / "int8.o")],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "RNNEDGE_MVE 1 needs a compiler that targets integer MVE" in proc.stderr


def test_the_export_footprint_measures_the_cortex_m55_image_with_its_helium_kernels(m55_tools, tmp_path):
    """export/footprint.py on mps3-an547 (the board `rnnedge inspect --measure-footprint` and the export report can
    ask for): the Helium library of the reference LSTM, the same model constants as the Cortex-M4's build, the
    AN547's SysTick resolution, and under a third of the M4 DSP's instructions per step."""
    folder, _ = _reference_model(tmp_path, "lstm")
    m55 = footprint.measure_footprint(folder, "an547", steps=8, build_dir=tmp_path / "m55")
    m4 = footprint.measure_footprint(folder, "an386", steps=8, build_dir=tmp_path / "m4")
    assert (m55["board"], m55["cpu"]) == ("an547", "cortex-m55")
    assert m55["icount"]["resolution"] == 31.25 and m4["icount"]["resolution"] == 40
    assert m55["model_const"]["flash_bytes"] == m4["model_const"]["flash_bytes"]
    assert m55["ram"]["bss_agrees"]
    assert m55["icount"]["per_step_mean"] < m4["icount"]["per_step_mean"] / 3, (m55["icount"], m4["icount"])
    assert "an547" in footprint.summary_line(m55)
    with pytest.raises(footprint.FootprintError, match=re.escape("unknown board 'an999' (an385 | an386 | an547)")):
        footprint.measure_footprint(folder, "an999")
