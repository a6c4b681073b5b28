"""The int8 C library on Cortex-M under QEMU: the golden vectors bit for bit on mps2-an385 and mps2-an386.

Every case builds a small seeded int8 model and its vectors (tests/firmware/test_host.py's helpers), generates
model_data.{h,c} and vectors_data.h, builds firmware_ref/tests/arm_test.c with firmware_ref/Makefile's
`arm-int8-<board>` target (arm/arm.mk: strict C99 flags, -Werror) and runs it under QEMU (arm/run.sh): the
state (int16) and logits (int32) must match at every step, the exit code must be 0, and the Cortex-M3 image
must link no soft-float routine; PyTorch's cells, and the ONNX layer extensions the int8 step implements (clip,
input_forget, peepholes, gru linear_before_reset false, initial_state). Tools missing: skip, or fail under CI=true (test_qemu.py's check).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from rnnedge.export.vectors import read_vectors, save_vectors
from tests.firmware.test_host import CELLS, STEPS, SUMMARY, _calibrated_case, _generate
from tests.firmware.test_host_extensions import GRU_BEFORE, LSTM_ALL, calibrated_extended_case, hot_extended_case
from tests.firmware.test_qemu import RUN, _nm, _require_tools

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_ref"
ICOUNT = re.compile(r"^icount_per_step: (\d+)$", re.MULTILINE)
ICOUNT_STATS = re.compile(r"^icount_step_stats: min (\d+) median (\d+) max (\d+) total (\d+) steps (\d+)$",
                          re.MULTILINE)


@pytest.fixture(scope="module")
def arm_tools() -> None:
    _require_tools()


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """(cell, layers, kind) -> a folder with the generated sources, made once per module (both boards use it)."""
    made: dict[tuple, Path] = {}

    def get(cell: str, layers: int, kind: str) -> Path:
        key = (cell, layers, kind)
        if key not in made:
            folder = tmp_path_factory.mktemp(f"{cell}-{layers}-{kind}")
            _calibrated_case(folder, cell, layers, kind)
            _generate(folder)
            made[key] = folder
        return made[key]

    return get


def _make(folder: Path, *targets: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", str(FIRMWARE), f"MODEL_DIR={folder}",
                           f"ARM_BUILD={folder / 'arm'}", *targets],
                          check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _build(folder: Path, board: str) -> Path:
    proc = _make(folder, f"arm-int8-{board}")
    assert proc.returncode == 0, f"make arm-int8-{board} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return folder / "arm" / f"int8-{board}" / f"int8-{board}.elf"


def _run(board: str, elf: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(RUN), board, str(elf), "60"], check=False, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def _mismatches(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("mismatch")]


def _assert_passes(proc: subprocess.CompletedProcess, cpu: str) -> int:
    """0 mismatches, exit 0, a plausible instruction count; returns the instructions per step."""
    out = proc.stdout
    assert (proc.returncode, _mismatches(out)) == (0, []), f"{out[-3000:]}\n{proc.stderr[-2000:]}"
    assert out.startswith(f"arm_test: {cpu} "), out[:200]
    assert SUMMARY.search(out).groups() == (str(STEPS), "0"), out[-2000:]
    per_step = int(ICOUNT.search(out).group(1))
    lo, median, hi, total, steps = map(int, ICOUNT_STATS.search(out).groups())
    assert steps == STEPS and 0 < lo <= median <= hi and lo <= per_step <= hi, out[-500:]
    assert abs(total - per_step * steps) <= steps, out[-500:]
    assert hi - lo < 0.2 * per_step, out[-500:]  # one model step costs about the same every time
    return per_step


@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_cortex_m3_matches_vectors_bit_for_bit(arm_tools, cases, cell, layers, kind):
    folder = cases(cell, layers, kind)
    elf = _build(folder, "an385")
    assert _nm(elf) == [], "the Cortex-M3 int8 image links soft-float helpers"
    _assert_passes(_run("an385", elf), "cortex-m3")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cortex_m4f_matches_vectors_bit_for_bit(arm_tools, cases, cell):
    folder = cases(cell, 1, "dense")
    proc = _make(folder, "arm-int8-an386-run")  # the make target itself: build, run, fail on a nonzero exit
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    _assert_passes(_run("an386", folder / "arm" / "int8-an386" / "int8-an386.elf"), "cortex-m4")


def test_instruction_count_grows_with_depth_and_is_deterministic(arm_tools, cases):
    one = _run("an385", _build(cases("gru", 1, "tokens"), "an385"))
    three = [_run("an385", _build(cases("gru", 3, "tokens"), "an385")) for _ in range(2)]
    counts = [_assert_passes(proc, "cortex-m3") for proc in (one, *three)]
    assert counts[1] == counts[2]
    assert 2 * counts[0] < counts[1] < 4 * counts[0]  # layers 2 and 3 take 12 inputs, layer 1 takes 7


@pytest.mark.parametrize("case", [("lstm", LSTM_ALL, "dense"), ("gru", GRU_BEFORE, "tokens"),
                                  ("rnn_relu", {"clip": 0.5, "initial_state": True}, "dense")],
                         ids=["lstm-all", "gru-reset-before", "rnn_relu-clip"])
def test_cortex_m3_runs_onnx_layer_extensions_bit_for_bit(arm_tools, tmp_path, case):
    """clip, input_forget, peepholes, gru linear_before_reset false and initial_state (two layers, hot constants,
    saturating inputs) on the integer-only target: bit for bit, and still no soft-float routine."""
    cell, ext, kind = case
    hot_extended_case(tmp_path, cell, ext, 2, kind, seed=5)
    _generate(tmp_path)
    elf = _build(tmp_path, "an385")
    assert _nm(elf) == [], "the Cortex-M3 int8 image links soft-float helpers"
    _assert_passes(_run("an385", elf), "cortex-m3")


def test_cortex_m3_runs_a_calibrated_extended_lstm_bit_for_bit(arm_tools, tmp_path):
    calibrated_extended_case(tmp_path, "lstm", LSTM_ALL)
    _generate(tmp_path)
    _assert_passes(_run("an385", _build(tmp_path, "an385")), "cortex-m3")


def test_make_nofloat_target_passes_for_the_cortex_m3_image(arm_tools, cases):
    proc = _make(cases("lstm", 1, "tokens"), "arm-int8-an385-nofloat")
    assert proc.returncode == 0 and "no __aeabi_f*/__aeabi_d* symbol" in proc.stdout, proc.stdout + proc.stderr


def test_a_tampered_expected_value_is_reported_and_fails_the_run(arm_tools, tmp_path):
    _calibrated_case(tmp_path, "lstm", 1, "dense")
    vectors = tmp_path / "model.int8.vectors.safetensors"
    meta, v = read_vectors(vectors)
    state, logits = v["state"].copy(), v["logits_q"].copy()
    state[5, 15] += 1 if state[5, 15] < 32767 else -1  # position 15 of an lstm of 12: layer 0 c[3]
    logits[40, 2] -= 7
    save_vectors(vectors, meta, {**v, "state": state, "logits_q": logits})
    _generate(tmp_path)
    proc = _run("an385", _build(tmp_path, "an385"))
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert _mismatches(proc.stdout) == [
        f"mismatch: step 5, state[15] (layer 0 c[3]): actual {v['state'][5, 15]}, expected {state[5, 15]}",
        f"mismatch: step 40, logits_q[2]: actual {v['logits_q'][40, 2]}, expected {logits[40, 2]}",
    ]
    assert SUMMARY.search(proc.stdout).groups() == (str(STEPS), "2")
    made = _make(tmp_path, "arm-int8-an385-run")
    assert made.returncode != 0 and "int8: 64 steps, 2 mismatches" in made.stdout


def test_vectors_of_another_weight_file_are_refused(arm_tools, tmp_path):
    _calibrated_case(tmp_path, "gru", 1, "tokens", seed=0)
    other = tmp_path / "other"
    other.mkdir()
    _calibrated_case(other, "gru", 1, "tokens", seed=1)
    _generate(tmp_path)
    (other / "model.int8.vectors.safetensors").replace(tmp_path / "model.int8.vectors.safetensors")
    _generate(tmp_path)
    proc = _run("an385", _build(tmp_path, "an385"))
    assert proc.returncode == 2 and "error: the vectors were made with" in proc.stdout, proc.stdout[-2000:]
