"""The int8 DSP dot product (firmware_ref/src/rnnedge_dsp.h, RNNEDGE_DSP_DOT in rnnedge_int8.c): the Cortex-M4
image runs it (SMLAD, SXTB16 in its disassembly; the Cortex-M3 image has neither) and matches the golden vectors
bit for bit on the models of the Cortex-M3 tests (test_qemu_vectors.py); the host build with RNNEDGE_DSP_DOT=1
runs the same pairing and ordering logic through the plain-C instructions, bit for bit and sanitizer-clean.
Tools missing: skip, or fail under CI=true (test_qemu.py's check)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from rnnedge.export.vectors import write_vectors
from tests.firmware.test_host import CELLS, STEPS, SUMMARY, _calibrated_case, _generate, _hot_case
from tests.firmware.test_host_extensions import LSTM_ALL, hot_extended_case
from tests.firmware.test_qemu_m55 import _build as _build_with
from tests.firmware.test_qemu_m55 import _reference_model
from tests.firmware.test_qemu_vectors import _assert_passes, _build, _run, arm_tools  # noqa: F401 (a fixture)
from tests.helpers import make_model, make_spec, random_inputs, write_artifact

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_ref"
DSP_HOST_CC = "gcc -DRNNEDGE_DSP_DOT=1"  # the define on the compiler's command line reaches every host target


def _disassembly(elf: Path, symbol: str) -> str:
    out = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    # gcc may emit a specialised clone of a static function (gate_rows4_int8.constprop.0): the same code
    match = re.search(rf"^[0-9a-f]+ <{symbol}(?:\.\w+\.\d+)?>:\n(.*?)(?:\n\n|\Z)", out, re.MULTILINE | re.DOTALL)
    return match.group(1) if match else ""


def _host(folder: Path, target: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["make", "-s", "-C", str(FIRMWARE), target, f"MODEL_DIR={folder}",
                           f"BUILD_DIR={folder / 'build-dsp'}", f"CC={DSP_HOST_CC}"],
                          check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    built = proc.returncode == 0 if target == "host-build" else SUMMARY.search(proc.stdout) is not None
    assert built, f"make {target} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _assert_host_passes(proc: subprocess.CompletedProcess) -> None:
    mismatches = [line for line in proc.stdout.splitlines() if line.startswith("mismatch")]
    assert (proc.returncode, mismatches) == (0, []), proc.stdout[-3000:]
    assert SUMMARY.search(proc.stdout).groups() == (str(STEPS), "0")


def test_cortex_m4_image_uses_smlad_and_the_cortex_m3_image_does_not(arm_tools, tmp_path):  # noqa: F811
    _calibrated_case(tmp_path, "lstm", 1, "dense")
    _generate(tmp_path)
    m4 = _disassembly(_build(tmp_path, "an386"), "dot2_int8_pairs")
    assert re.search(r"\bsmlad\b", m4) and re.search(r"\bsxtb16\b.*ror #8", m4), m4[:2000]
    assert re.search(r"\bldrd\b", m4), "the activation pairs should be read with one LDRD"
    m3 = subprocess.run(["arm-none-eabi-objdump", "-d", str(_build(tmp_path, "an385"))], capture_output=True,
                        text=True, check=True).stdout
    assert "<dot2_int8_pairs>" not in m3 and not re.search(r"\b(smlad|sxtb16)\b", m3)


@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_cortex_m4_dsp_build_matches_vectors_bit_for_bit(arm_tools, tmp_path, cell, layers, kind):  # noqa: F811
    _calibrated_case(tmp_path, cell, layers, kind)
    _generate(tmp_path)
    _assert_passes(_run("an386", _build(tmp_path, "an386")), "cortex-m4")


@pytest.mark.parametrize("cell,kind", [("lstm", "dense"), ("gru", "tokens"), ("rnn_tanh", "dense")])
def test_cortex_m4_dsp_build_matches_hot_constants_bit_for_bit(arm_tools, tmp_path, cell, kind):  # noqa: F811
    """sat16 clipping, a bias at the int32 limit, saturating shifts (tests/firmware/test_host.py's hot case)."""
    _hot_case(tmp_path, cell, 2, kind, seed=CELLS.index(cell))
    _generate(tmp_path)
    _assert_passes(_run("an386", _build(tmp_path, "an386")), "cortex-m4")


@pytest.mark.parametrize("cell", CELLS)
def test_cortex_m4_dsp_build_matches_vectors_with_gate_rows_past_the_four_row_blocks(arm_tools, tmp_path,  # noqa: F811
                                                                                     cell):
    """hidden 7, 6 input features: gate row counts not multiples of four (the four-row stage, then two rows, then
    one) and vectors with n mod 4 tails, over two layers."""
    spec = make_spec(cell=cell, layers=2, kind="dense", hidden=7, features=6, vocab=40, embed_dim=7, out=3)
    weights = write_artifact(make_model(spec, CELLS.index(cell)), tmp_path / "model.int8.safetensors", "int8")
    X = (random_inputs(spec, 1, STEPS, seed=3)[0] - 0.5) * 8.0 + 0.5
    write_vectors(tmp_path / "model.int8.vectors.safetensors", weights, X, steps=STEPS)
    _generate(tmp_path)
    _assert_passes(_run("an386", _build(tmp_path, "an386")), "cortex-m4")


@pytest.mark.parametrize(("name", "ceiling"), [("lstm", 2.35), ("gru", 2.35)])
def test_cortex_m4_dsp_reference_shapes_run_bit_for_bit_under_2_35_instructions_per_mac(arm_tools,  # noqa: F811
                                                                                         tmp_path, name, ceiling):
    """LSTM(40 -> 64) + Linear(12) and GRU(6 -> 64) x 2 + Linear(6) (EXTENSIONS=0): the four-row gate stage, one call
    per layer, with SMMULR requantisation keeps them at 2.26 and 2.28 instructions per MAC (QEMU -icount; 2.46 / 2.54
    with a call per four rows and SMLAL requantisation, 3.22 / 3.24 with two rows per call)."""
    folder, macs = _reference_model(tmp_path, name)
    m4 = _assert_passes(_run("an386", _build_with(folder, "an386", "EXTENSIONS=0")), "cortex-m4")
    print(f"{name}: cortex-m4 dsp {m4} instructions per step ({m4 / macs:.3f} per MAC)")
    assert m4 / macs < ceiling, (m4, macs)


def test_cortex_m4_image_forms_four_gate_rows_per_activation_load(arm_tools, tmp_path):  # noqa: F811
    """The four-row stage's asm loop: register-offset loads of rows 1 and 3 next to SMLAD, and a post-indexed LDRD."""
    _calibrated_case(tmp_path, "lstm", 1, "dense")
    _generate(tmp_path)
    rows4 = _disassembly(_build(tmp_path, "an386"), "gate_rows4_int8")
    assert re.search(r"\bldrd\b.*\], #8", rows4) and len(re.findall(r"\bsmlad\b", rows4)) >= 16, rows4[:2000]
    assert re.search(r"\bldr(\.w)?\s+\w+, \[\w+, \w+\]", rows4), "rows 1 and 3 read at [row 0 + n], [row 2 + n]"


def test_cortex_m4_dsp_build_runs_lstm_extensions_bit_for_bit(arm_tools, tmp_path):  # noqa: F811
    hot_extended_case(tmp_path, "lstm", LSTM_ALL, 2, "dense", seed=5)
    _generate(tmp_path)
    _assert_passes(_run("an386", _build(tmp_path, "an386")), "cortex-m4")


@pytest.mark.parametrize("cell", CELLS)
def test_host_build_of_the_dsp_path_matches_vectors_bit_for_bit(tmp_path, host_cc, make_tool, cell):
    _hot_case(tmp_path, cell, 2, "dense", seed=CELLS.index(cell))
    _generate(tmp_path)
    _host(tmp_path, "host-build")
    proc = subprocess.run([str(tmp_path / "build-dsp" / "host_test")], check=False, capture_output=True, text=True,
                          timeout=120)
    _assert_host_passes(proc)


def test_host_build_of_the_dsp_path_runs_sanitizer_clean(tmp_path, host_cc, make_tool):
    _calibrated_case(tmp_path, "gru", 3, "tokens")
    _generate(tmp_path)
    _assert_host_passes(_host(tmp_path, "host-sanitize"))
