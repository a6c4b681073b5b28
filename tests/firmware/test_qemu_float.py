"""The f32 and int8w C library on the Cortex-M4F under QEMU: the golden vectors within 1e-5 on mps2-an386.

Every case builds a small seeded f32 or int8w model, its vectors and the generated model_data.{h,c} /
vectors_data.h (tests/firmware/test_host_float.py's `_case`), builds firmware_ref/tests/arm_test_float.c with
firmware_ref/Makefile's `arm-float-an386` target (arm/arm.mk: FLOAT_FLAGS, i.e. strict C99, -Wdouble-promotion,
-Werror; hard-float FPv4-SP) and runs it under QEMU (arm/run.sh): the float state and outputs must lie within 1e-5
of the runtime's at every step and the exit code must be 0. Tools missing: skip, or fail under CI=true
(test_qemu.py's check).
"""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.firmware import write_vector_sources
from rnnedge.export.vectors import ATOL, read_vectors, save_vectors
from tests.firmware import test_host, test_host_float_extensions
from tests.firmware.test_host_float import CELLS, STEPS, _case
from tests.firmware.test_qemu import RUN, _nm, _require_tools

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_ref"
SUMMARY = re.compile(r"^(f32|int8w): (\d+) steps, (\d+) mismatches, max \|diff\| (\d+\.\d{9})$", re.MULTILINE)
ICOUNT = re.compile(r"^icount_per_step: (\d+)$", re.MULTILINE)
ICOUNT_STATS = re.compile(r"^icount_step_stats: min (\d+) median (\d+) max (\d+) total (\d+) steps (\d+)$",
                          re.MULTILINE)
MISMATCH = re.compile(r"^mismatch: step (-?\d+), (\w+)\[(\d+)\](?: \((.*)\))?: actual (\S+), expected (\S+)$")


@pytest.fixture(scope="module")
def arm_tools() -> None:
    _require_tools()


def _make(folder: Path, *targets: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", str(FIRMWARE), f"MODEL_DIR={folder}",
                           f"ARM_BUILD={folder / 'arm'}", *targets],
                          check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _build(folder: Path, image: str = "float-an386") -> Path:
    proc = _make(folder, f"arm-{image}")
    assert proc.returncode == 0, f"make arm-{image} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return folder / "arm" / image / f"{image}.elf"


def _run(elf: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(RUN), "an386", str(elf), "60"], check=False, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def _mismatches(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("mismatch")]


def _decimal(x: float) -> str:
    """arm_test_float.c's put_float: x rounded to a multiple of 1e-9 (ties away from zero), 9 fraction digits."""
    v = Fraction(float(x))
    n = int(abs(v) * 10**9 + Fraction(1, 2))
    return f"{'-' if np.signbit(x) else ''}{n // 10**9}.{n % 10**9:09d}"


def _icount(out: str) -> int:
    per_step = int(ICOUNT.search(out).group(1))
    lo, median, hi, total, steps = map(int, ICOUNT_STATS.search(out).groups())
    assert steps == STEPS and 0 < lo <= median <= hi and lo <= per_step <= hi, out[-500:]
    assert abs(total - per_step * steps) <= steps, out[-500:]
    return per_step


def _assert_passes(proc: subprocess.CompletedProcess, precision: str) -> int:
    """0 mismatches, exit 0, max |diff| within ATOL, a plausible instruction count; returns instructions per step."""
    out = proc.stdout
    assert (proc.returncode, _mismatches(out)) == (0, []), f"{out[-3000:]}\n{proc.stderr[-2000:]}"
    head = f"arm_test_float: cortex-m4 cpuid=0x410fc240, {precision} {STEPS} steps of model.{precision}.safetensors"
    assert head in out.splitlines(), out[:500]  # `make arm-float-an386-run` prints the size report first
    name, steps, count, max_diff = SUMMARY.search(out).groups()
    assert (name, int(steps), int(count)) == (precision, STEPS, 0), out[-2000:]
    assert float(max_diff) <= ATOL
    per_step = _icount(out)
    lo, _, hi, _, _ = map(int, ICOUNT_STATS.search(out).groups())
    assert hi - lo < 0.2 * per_step, out[-500:]  # one model step costs about the same every time
    return per_step


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_cortex_m4f_matches_float_vectors(arm_tools, tmp_path, cell, layers, kind, precision):
    _case(tmp_path, precision, cell, layers, kind, seed=CELLS.index(cell))
    elf = _build(tmp_path)
    assert _nm(elf) == [], "the hard-float image links soft-float / double helpers"
    _assert_passes(_run(elf), precision)


@pytest.mark.parametrize(("precision", "case"), [("f32", test_host_float_extensions.COMBINED[0]),
                                                 ("int8w", test_host_float_extensions.COMBINED[1])],
                         ids=["f32-lstm", "int8w-gru"])
def test_cortex_m4f_runs_onnx_layer_extensions(arm_tools, tmp_path, precision, case):
    """2 layers of every streaming extension together (lstm: peepholes, clip, input_forget, initial_state, other
    functions; gru: linear_before_reset false, clip, initial_state, elu): the vectors within 1e-5 from h0 / c0."""
    cell, ext = case
    test_host_float_extensions.ext_case(tmp_path, precision, test_host_float_extensions.ext_model(cell, ext, layers=2))
    elf = _build(tmp_path)
    assert _nm(elf) == [], "the hard-float image links soft-float / double helpers"
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    assert not re.findall(r"\s(log1pf?|logf?|expf?)$", symbols, re.MULTILINE), "softplus pulled in libm"
    _assert_passes(_run(elf), precision)


def test_make_run_target_passes_and_is_deterministic(arm_tools, tmp_path):
    _case(tmp_path, "int8w", "gru", 3, "tokens", seed=3)
    runs = [_make(tmp_path, "arm-float-an386-run") for _ in range(2)]  # build, run, fail on a nonzero exit
    for proc in runs:
        assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    counts = [_assert_passes(proc, "int8w") for proc in runs]
    assert counts[0] == counts[1]
    assert runs[0].stdout.splitlines()[-4:] == runs[1].stdout.splitlines()[-4:]
    size = _make(tmp_path, "arm-float-an386-size")
    assert size.returncode == 0 and "float-an386.elf" in size.stdout, size.stdout + size.stderr


def test_a_tampered_expected_value_is_reported_and_fails_the_run(arm_tools, tmp_path):
    _case(tmp_path, "f32", "lstm", 1, "dense")
    vectors = tmp_path / "model.f32.vectors.safetensors"
    meta, v = read_vectors(vectors)
    state, output = v["state"].copy(), v["output"].copy()
    state[5, 15] += np.float32(1e-3)  # position 15 of an lstm of 12: layer 0 c[3]
    output[40, 2] -= np.float32(0.01)
    save_vectors(vectors, meta, {**v, "state": state, "output": output})
    write_vector_sources(vectors, tmp_path)
    proc = _run(_build(tmp_path))
    assert proc.returncode == 1, proc.stdout[-2000:]
    parsed = [MISMATCH.match(line) for line in _mismatches(proc.stdout)]
    assert all(parsed), proc.stdout[-2000:]
    assert [(int(m[1]), m[2], int(m[3]), m[4]) for m in parsed] == [(5, "state", 15, "layer 0 c[3]"),
                                                                    (40, "output", 2, None)]
    for m, tampered, original in zip(parsed, (state[5, 15], output[40, 2]), (v["state"][5, 15], v["output"][40, 2])):
        assert m[6] == _decimal(tampered)  # the float's exact value, rounded to 1e-9
        assert abs(float(m[5]) - float(original)) <= ATOL + 1e-9
    assert SUMMARY.search(proc.stdout).group(3) == "2"
    made = _make(tmp_path, "arm-float-an386-run")
    assert made.returncode != 0 and "f32: 64 steps, 2 mismatches" in made.stdout, made.stdout[-2000:]


def test_vectors_of_another_weight_file_or_precision_are_refused(arm_tools, tmp_path):
    _case(tmp_path, "f32", "gru", 1, "tokens", seed=0)
    other = tmp_path / "other"
    other.mkdir()
    _case(other, "int8w", "gru", 1, "tokens", seed=0)  # same shapes, another weight file and precision
    (other / "vectors_data.h").replace(tmp_path / "vectors_data.h")
    proc = _run(_build(tmp_path))
    assert proc.returncode == 2 and "error: the vectors were made with model.int8w.safetensors (int8w" in proc.stdout, \
        proc.stdout[-2000:]


def test_instructions_per_step_f32_int8w_int8(arm_tools, tmp_path_factory):
    """The same spec (lstm, 1 layer, hidden 12, 5 features, dense) in the three precisions on the Cortex-M4F."""
    counts = {}
    for precision in ("f32", "int8w"):
        folder = tmp_path_factory.mktemp(precision)
        _case(folder, precision, "lstm", 1, "dense")
        counts[precision] = _assert_passes(_run(_build(folder)), precision)
    folder = tmp_path_factory.mktemp("int8")
    test_host._calibrated_case(folder, "lstm", 1, "dense")
    test_host._generate(folder)
    proc = _run(_build(folder, "int8-an386"))
    assert proc.returncode == 0 and test_host.SUMMARY.search(proc.stdout).groups() == (str(STEPS), "0"), proc.stdout
    counts["int8"] = _icount(proc.stdout)
    print(f"instructions per step on the Cortex-M4F (lstm 12, 5 inputs, dense, -Os): {counts}")
    assert all(n > 1000 for n in counts.values()), counts
