"""The C library on RISC-V (rv32imac) under QEMU's `virt` machine: the golden vectors bit for bit.

firmware_ref/riscv/ (riscv.mk, included by firmware_ref/Makefile) builds with riscv64-unknown-elf-gcc and picolibc
and runs through riscv/run.sh (qemu-system-riscv32 -machine virt, semihosting, -icount shift=0). The int8 test
program is tests/arm_test.c itself (riscv/semihost.h has arm/semihost.h's functions), on the models of the
Cortex-M3 test (test_qemu_vectors.py): every cell x {1, 3 layers} x {dense, tokens} and the ONNX layer extensions;
the state (int16) and logits (int32) must match at every step and the image must link no soft-float routine.
The f32 / int8w program (arm_test_float.c) runs in soft float (rv32imac has no FPU) by the float rule; the example
prints the runtime's classes; the bench image (arm/bench/step_bench.c) hashes the Cortex-M3's logits.
Tools missing: skip, or fail under CI=true (test_qemu.py's rule).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.vectors import ATOL, read_vectors, save_vectors
from tests.firmware import test_host_float_extensions, test_qemu
from tests.firmware.test_example import _classes, _runtime_classes
from tests.firmware.test_host import CELLS, STEPS, SUMMARY, _calibrated_case, _generate
from tests.firmware.test_host_extensions import GRU_BEFORE, LSTM_ALL, hot_extended_case
from tests.firmware.test_host_float import _case as float_case
from tests.firmware.test_qemu_float import SUMMARY as FLOAT_SUMMARY
from tests.firmware.test_qemu_vectors import ICOUNT, ICOUNT_STATS

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_ref"
RUN = FIRMWARE / "riscv" / "run.sh"
TOOLS = ("make", "riscv64-unknown-elf-gcc", "riscv64-unknown-elf-nm", "riscv64-unknown-elf-size",
         "qemu-system-riscv32", "timeout")
CPU = r"rv32imac cpuid=0x[0-9a-f]{8}"  # sh_cpu_name() from misa (QEMU 7.2: 0x40141105, MXL 1 and I M A C S U)
SOFT_FLOAT = re.compile(r"^\s*[0-9a-fA-F]*\s+[A-Za-z]\s+(__(?:add|sub|mul|div)[sd]f3|__fix[sd]fsi|__float[sd]i[sd]f)$",
                        re.MULTILINE)


def _require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not missing:
        specs = subprocess.run(["riscv64-unknown-elf-gcc", "-print-file-name=picolibc.specs"], check=False,
                               capture_output=True, text=True).stdout.strip()
        if not Path(specs).is_absolute():  # gcc echoes the bare name when it finds no such file
            missing.append("picolibc-riscv64-unknown-elf")
    if missing:
        message = (f"RISC-V toolchain/emulator missing: {', '.join(missing)} (apt-get install gcc-riscv64-unknown-elf "
                   "picolibc-riscv64-unknown-elf qemu-system-misc make; .ci/run does)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="module")
def riscv_tools() -> None:
    _require_tools()


def _make(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", str(FIRMWARE), f"RISCV_BUILD={folder / 'rv'}",
                           *args], check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _build(folder: Path, image: str = "int8", *args: str) -> Path:
    proc = _make(folder, f"MODEL_DIR={folder}", f"riscv-{image}", *args)
    assert proc.returncode == 0, f"make riscv-{image} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return folder / "rv" / image / f"{image}.elf"


def _run(elf: Path, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(RUN), str(elf), str(timeout)], check=False, capture_output=True, text=True,
                          timeout=timeout + 60, stdin=subprocess.DEVNULL)


def _soft_float(elf: Path) -> list[str]:
    out = subprocess.run(["riscv64-unknown-elf-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return SOFT_FLOAT.findall(out)


def _mismatches(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("mismatch")]


def _icount(out: str) -> int:
    per_step = int(ICOUNT.search(out).group(1))
    lo, median, hi, total, steps = map(int, ICOUNT_STATS.search(out).groups())
    assert steps == STEPS and 0 < lo <= median <= hi and lo <= per_step <= hi, out[-500:]
    assert abs(total - per_step * steps) <= steps, out[-500:]
    return per_step


def _assert_passes(proc: subprocess.CompletedProcess) -> int:
    """0 mismatches, exit 0, on an rv32imac hart; returns the instructions per step."""
    out = proc.stdout
    assert (proc.returncode, _mismatches(out)) == (0, []), f"{out[-3000:]}\n{proc.stderr[-2000:]}"
    assert re.match(f"arm_test: {CPU}, {STEPS} steps of model\\.int8\\.safetensors\n", out), out[:200]
    assert SUMMARY.search(out).groups() == (str(STEPS), "0"), out[-2000:]
    return _icount(out)


@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_rv32imac_matches_vectors_bit_for_bit(riscv_tools, tmp_path, cell, layers, kind):
    _calibrated_case(tmp_path, cell, layers, kind)
    _generate(tmp_path)
    elf = _build(tmp_path)
    assert _soft_float(elf) == [], "the rv32imac int8 image links soft-float routines"
    _assert_passes(_run(elf))


@pytest.mark.parametrize("case", [("lstm", LSTM_ALL, "dense"), ("gru", GRU_BEFORE, "tokens"),
                                  ("rnn_relu", {"clip": 0.5, "initial_state": True}, "dense")],
                         ids=["lstm-all", "gru-reset-before", "rnn_relu-clip"])
def test_rv32imac_runs_onnx_layer_extensions_bit_for_bit(riscv_tools, tmp_path, case):
    """Two layers with hot constants and saturating inputs, as on the Cortex-M3."""
    cell, ext, kind = case
    hot_extended_case(tmp_path, cell, ext, 2, kind, seed=5)
    _generate(tmp_path)
    elf = _build(tmp_path)
    assert _soft_float(elf) == []
    _assert_passes(_run(elf))


def test_riscv_test_target_runs_a_plain_model_built_without_extensions(riscv_tools, tmp_path):
    _calibrated_case(tmp_path, "gru", 1, "dense", seed=2)
    _generate(tmp_path)
    proc = _make(tmp_path, f"MODEL_DIR={tmp_path}", "EXTENSIONS=0", "riscv-test")
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    assert "int8.elf: no soft-float routine" in proc.stdout
    _assert_passes(_run(tmp_path / "rv" / "int8" / "int8.elf"))


def test_a_tampered_expected_value_fails_the_run_and_the_make_target(riscv_tools, tmp_path):
    _calibrated_case(tmp_path, "lstm", 1, "dense")
    vectors = tmp_path / "model.int8.vectors.safetensors"
    meta, v = read_vectors(vectors)
    state = v["state"].copy()
    state[5, 15] += 1 if state[5, 15] < 32767 else -1  # position 15 of an lstm of 12: layer 0 c[3]
    save_vectors(vectors, meta, {**v, "state": state})
    _generate(tmp_path)
    proc = _run(_build(tmp_path))
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert _mismatches(proc.stdout) == [
        f"mismatch: step 5, state[15] (layer 0 c[3]): actual {v['state'][5, 15]}, expected {state[5, 15]}"]
    made = _make(tmp_path, f"MODEL_DIR={tmp_path}", "riscv-test")
    assert made.returncode != 0 and "int8: 64 steps, 1 mismatches" in made.stdout


def test_instruction_count_is_exact_and_deterministic(riscv_tools, tmp_path):
    """minstret under -icount shift=0: a loop of exactly 2 instructions per iteration measures 2n plus the call."""
    src = tmp_path / "probe.c"
    src.write_text('#include <stdint.h>\n#include "semihost.h"\n'
                   "static void __attribute__((noinline)) known_loop(uint32_t n)\n{\n"
                   '    __asm__ volatile("1: addi %0, %0, -1\\n\\tbnez %0, 1b" : "+r"(n));\n}\n'
                   "int main(void)\n{\n    uint32_t t0 = sh_icount_now();\n    uint32_t t1 = sh_icount_now();\n"
                   "    uint32_t t2;\n    known_loop(100000u);\n    t2 = sh_icount_now();\n"
                   '    sh_puts("empty ");\n    sh_put_u32(t1 - t0);\n    sh_puts(" loop ");\n'
                   '    sh_put_u32(t2 - t1);\n    sh_puts("\\n");\n    return 3;\n}\n')
    proc = _make(tmp_path, "RISCV_NAME=probe", f"RISCV_SRCS={src}", "riscv-probe")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = [_run(tmp_path / "rv" / "probe" / "probe.elf") for _ in range(2)]
    assert runs[0].returncode == 3 and runs[0].stdout == runs[1].stdout, runs[0].stdout + runs[0].stderr
    empty, loop = map(int, re.fullmatch(r"empty (\d+) loop (\d+)\n", runs[0].stdout).groups())
    assert 1 <= empty <= 8
    assert 200_000 <= loop <= 200_000 + 20


def test_a_trap_is_reported_with_its_cause(riscv_tools, tmp_path):
    src = tmp_path / "fault.c"
    src.write_text('#include <stdint.h>\n#include "semihost.h"\n'
                   "int main(void)\n{\n"
                   '    sh_puts("before\\n");\n'
                   "    return (int)*(volatile uint32_t *)0x90000000u; /* past the 128 MiB of RAM: load access fault */\n"
                   "}\n")
    assert _make(tmp_path, "RISCV_NAME=fault", f"RISCV_SRCS={src}", "riscv-fault").returncode == 0
    proc = _run(tmp_path / "rv" / "fault" / "fault.elf")
    assert proc.returncode == 100, proc.stdout + proc.stderr
    assert proc.stdout.startswith("before\n\n*** trap mcause=0x00000005 ") and "mtval=0x90000000" in proc.stdout


def test_library_compiles_strictly_and_the_soft_float_check_is_real(riscv_tools, tmp_path):
    proc = _make(tmp_path, "riscv-lib")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "riscv-lib: int8 objects reference no soft-float routine on rv32imac" in proc.stdout
    float_case(tmp_path, "f32", "gru", 1, "dense")
    assert {"__addsf3", "__mulsf3"} <= set(_soft_float(_build(tmp_path, "float")))
    made = _make(tmp_path, f"MODEL_DIR={tmp_path}", "riscv-float-nofloat")
    assert made.returncode != 0 and "links soft-float routines" in made.stderr


@pytest.mark.parametrize(("precision", "cell", "layers", "kind"), [
    ("f32", "lstm", 1, "dense"), ("f32", "gru", 3, "tokens"), ("int8w", "rnn_tanh", 1, "tokens"),
    ("int8w", "rnn_relu", 3, "dense")])
def test_rv32imac_soft_float_matches_float_vectors(riscv_tools, tmp_path, precision, cell, layers, kind):
    float_case(tmp_path, precision, cell, layers, kind, seed=CELLS.index(cell))
    proc = _run(_build(tmp_path, "float"))
    out = proc.stdout
    assert (proc.returncode, _mismatches(out)) == (0, []), f"{out[-3000:]}\n{proc.stderr[-2000:]}"
    assert re.match(f"arm_test_float: {CPU}, {precision} {STEPS} steps of model\\.{precision}\\.safetensors\n", out)
    name, steps, count, max_diff = FLOAT_SUMMARY.search(out).groups()
    assert (name, int(steps), int(count)) == (precision, STEPS, 0) and float(max_diff) <= ATOL, out[-2000:]
    assert _icount(out) > 0


def test_rv32imac_runs_float_onnx_layer_extensions(riscv_tools, tmp_path):
    cell, ext = test_host_float_extensions.COMBINED[0]
    test_host_float_extensions.ext_case(tmp_path, "f32", test_host_float_extensions.ext_model(cell, ext, layers=2))
    proc = _run(_build(tmp_path, "float"))
    assert (proc.returncode, _mismatches(proc.stdout)) == (0, []), proc.stdout[-3000:]
    assert FLOAT_SUMMARY.search(proc.stdout).group(3) == "0"


def test_example_prints_the_runtime_classes_on_rv32imac(riscv_tools, tmp_path):
    _calibrated_case(tmp_path, "lstm", 1, "tokens", seed=3)
    _generate(tmp_path)
    elf = _build(tmp_path, "example")
    assert _soft_float(elf) == []
    proc = _run(elf)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    _, v = read_vectors(tmp_path / "model.int8.vectors.safetensors")
    by_output, by_logits = _runtime_classes(tmp_path / "model.int8.safetensors", np.asarray(v["input"]))
    assert _classes(proc.stdout) == by_logits == by_output


@pytest.mark.parametrize(("cell", "layers", "kind"), [("lstm", 1, "dense"), ("gru", 3, "tokens")])
def test_bench_image_steps_to_the_cortex_m3_logits(riscv_tools, tmp_path, cell, layers, kind):
    """arm/bench/step_bench.c (export/footprint.py's image, LCG inputs) on rv32imac and on the Cortex-M3: the same
    hash of every step's logits, and an instruction count per step."""
    test_qemu._require_tools()
    _calibrated_case(tmp_path, cell, layers, kind)
    _generate(tmp_path)
    rv = _run(_build(tmp_path, "bench", "EXTENSIONS=0"))
    sources = f"src/rnnedge_int8.c src/rnnedge_tables.c {tmp_path / 'model_data.c'} arm/bench/step_bench.c"
    arm = _make(tmp_path, f"ARM_BUILD={tmp_path / 'arm'}", "ARM_NAME=bench", "ARM_BOARD=an385", f"ARM_SRCS={sources}",
                f"ARM_EXTRA_CFLAGS=-Iinclude -I{tmp_path} -DRNNEDGE_EXTENSIONS=0 -DBENCH_STEPS=64", "arm-image")
    assert arm.returncode == 0, arm.stdout[-2000:] + arm.stderr[-2000:]
    m3 = test_qemu._run("an385", tmp_path / "arm" / "bench" / "bench.elf")
    values = []
    for proc in (rv, m3):
        assert proc.returncode == 0 and "status: ok\n" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
        values.append(dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line))
    assert values[0]["cpu"] == "rv32imac" and values[1]["cpu"] == "cortex-m3"
    assert values[0]["logits_checksum"] == values[1]["logits_checksum"]
    assert values[0]["steps"] == values[1]["steps"] == "64"
    assert int(values[0]["icount_per_step_median"]) > 0
