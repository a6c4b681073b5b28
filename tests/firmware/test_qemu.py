"""Cortex-M images under QEMU (firmware_ref/arm/): build the demo for mps2-an385 (Cortex-M3) and mps2-an386
(Cortex-M4F), run it, check its output, exit code, instruction count, symbols and size report.

Needs arm-none-eabi-gcc (+ newlib), arm-none-eabi-binutils, qemu-system-arm and make (.ci/run installs them).
Without them the tests are skipped, except under CI (CI=true), where a missing tool is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARM = ROOT / "firmware_ref" / "arm"
MK = ARM / "arm.mk"
RUN = ARM / "run.sh"
TOOLS = ("make", "arm-none-eabi-gcc", "arm-none-eabi-nm", "arm-none-eabi-size", "qemu-system-arm", "timeout")
LOOP_ITERS = 100_000  # demo/hello.c: known_loop runs 2 instructions per iteration
SH_EXIT_FAULT = 100  # semihost.h
SOFT_FLOAT = re.compile(r"^\s*[0-9a-fA-F]*\s+[A-Za-z]\s+(__aeabi_[fd]\w*)$", re.MULTILINE)


def _require_tools():
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        message = (f"Cortex-M toolchain/emulator missing: {', '.join(missing)} "
                   "(apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm make; .ci/run does)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def _make(build: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["make", "--no-print-directory", "-f", str(MK), f"ARM_BUILD={build}", *args],
                          check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"make {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _run(board: str, elf: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(RUN), board, str(elf), "60"], check=False, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def _nm(elf: Path) -> list[str]:
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    return SOFT_FLOAT.findall(out)


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    _require_tools()
    out = tmp_path_factory.mktemp("arm")
    _make(out, "arm-hello-an385", "arm-hello-an386", "arm-hello-exit3-an385", "arm-hello-wrap-an385",
          "arm-floatprobe-an385")
    return out


def _elf(build: Path, name: str) -> Path:
    return build / name / f"{name}.elf"


def _expected_mulshift() -> tuple[int, int, int]:
    prod = -8589934597 * 1000000007  # fits in int64, as in demo/hello.c
    assert -(2**63) <= prod < 2**63
    quot = -(-prod // 1000) if prod < 0 else prod // 1000  # C division truncates toward zero
    return prod, prod >> 24, quot


@pytest.mark.parametrize("board,cpu,part", [("an385", "cortex-m3", 0xC23), ("an386", "cortex-m4", 0xC24)])
def test_hello_runs_under_qemu(build, board, cpu, part):
    proc = _run(board, _elf(build, f"hello-{board}"))
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr}"
    cpuid = re.search(rf"^hello from {cpu} cpuid=0x([0-9a-f]{{8}})$", out, re.MULTILINE)
    assert cpuid, out
    assert (int(cpuid.group(1), 16) >> 4) & 0xFFF == part
    prod, shifted, quot = _expected_mulshift()
    assert f"i64 mulshift: {prod} >> 24 = {shifted} ; / 1000 = {quot}\n" in out
    # -icount shift=0: 1 instruction = 1 ns; SysTick at 25 MHz = 40 instructions per tick. The measured
    # interval is the loop's 2 * LOOP_ITERS instructions plus a few call instructions, to 40 instructions.
    loop = int(re.search(r"^icount loop: (\d+) expected: (\d+)$", out, re.MULTILINE).group(1))
    assert 2 * LOOP_ITERS - 40 <= loop <= 2 * LOOP_ITERS + 200, out
    at_main = int(re.search(r"^icount at main: (\d+)$", out, re.MULTILINE).group(1))
    assert at_main <= 400, out  # SysTick starts just before main() (sh_board_init) and counts from 0
    empty = int(re.search(r"^icount empty: (\d+)$", out, re.MULTILINE).group(1))
    assert empty <= 80 and empty % 40 == 0, out
    if board == "an386":
        assert "fpu: 1.5*1.5*100 = 225\n" in out  # the reset handler enabled CP10/CP11
    else:
        assert "fpu:" not in out
    used, size = map(int, re.search(r"^stack used: (\d+) of (\d+)$", out, re.MULTILINE).groups())
    assert 0 < used < 1024 and size == 16384
    assert out.rstrip().endswith("exit 0")


def test_instruction_count_spans_systick_wraps(build):
    # hello-wrap-an385: SysTick period 2^10 ticks (40960 instructions), so the 200000-instruction loop spans ~5
    # wraps; a wrong wrap extension would be off by multiples of 40960. Each wrap runs the ~5-instruction handler.
    proc = _run("an385", _elf(build, "hello-wrap-an385"))
    assert proc.returncode == 0, proc.stdout
    loop = int(re.search(r"^icount loop: (\d+) ", proc.stdout, re.MULTILINE).group(1))
    assert 2 * LOOP_ITERS - 40 <= loop <= 2 * LOOP_ITERS + 200, proc.stdout


def test_instruction_count_is_deterministic(build):
    runs = [_run("an385", _elf(build, "hello-an385")).stdout for _ in range(2)]
    loops = [re.search(r"^icount loop: .*$", out, re.MULTILINE).group(0) for out in runs]
    assert loops[0] == loops[1]


def test_exit_code_propagates(build):
    proc = _run("an385", _elf(build, "hello-exit3-an385"))
    assert proc.returncode == 3, f"{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.rstrip().endswith("exit 3")


def test_make_run_target_fails_on_nonzero_exit(build):
    ok = _make(build, "arm-hello-an385-run")
    assert "hello from cortex-m3" in ok.stdout
    bad = _make(build, "arm-hello-exit3-an385-run", check=False)
    assert bad.returncode != 0 and "exit 3" in bad.stdout


def test_m3_image_links_no_soft_float(build):
    elf = _elf(build, "hello-an385")
    assert _nm(elf) == []
    assert _make(build, "arm-hello-an385-nofloat").returncode == 0


def test_soft_float_check_is_real(build):
    elf = _elf(build, "floatprobe-an385")
    found = set(_nm(elf))
    assert {"__aeabi_fdiv", "__aeabi_fmul", "__aeabi_dmul"} <= found, found
    assert _make(build, "arm-floatprobe-an385-nofloat", check=False).returncode != 0
    proc = _run("an385", elf)
    assert proc.returncode == 0 and "float probe: 105 25\n" in proc.stdout


@pytest.mark.parametrize("name", ["hello-an385", "hello-an386", "floatprobe-an385"])
def test_size_report_parses(build, name):
    lines = (build / name / f"{name}.size").read_text().splitlines()
    assert lines[0].split() == ["text", "data", "bss", "dec", "hex", "filename"]
    text, data, bss, dec, hexa = (int(v, 16 if i == 4 else 10) for i, v in enumerate(lines[1].split()[:5]))
    assert 0 < text < 16384 and 0 <= data < 1024 and 0 <= bss < 1024
    assert dec == text + data + bss == hexa
    assert (build / name / f"{name}.map").stat().st_size > 0


def test_any_sources_build_and_a_fault_is_reported(build, tmp_path):
    src = tmp_path / "fault.c"
    src.write_text('#include <stdint.h>\n#include "semihost.h"\n'
                   "int main(void) {\n"
                   '    sh_puts("before\\n");\n'
                   "    return (int)*(volatile uint32_t *)0x30000000u; /* nothing is mapped there: BusFault */\n"
                   "}\n")
    _make(build, "ARM_NAME=fault", "ARM_BOARD=an385", f"ARM_SRCS={src}", "arm-image")
    proc = _run("an385", _elf(build, "fault"))
    assert proc.returncode == SH_EXIT_FAULT, f"{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.startswith("before\n")
    assert "*** exception 3 " in proc.stdout and "BFAR=0x30000000" in proc.stdout


def test_a_hung_image_is_stopped_by_the_timeout(build, tmp_path):
    src = tmp_path / "spin.c"
    src.write_text('#include "semihost.h"\nint main(void) {\n    sh_puts("spin\\n");\n    for (;;) {\n    }\n}\n')
    _make(build, "ARM_NAME=spin", "ARM_BOARD=an386", f"ARM_SRCS={src}", "arm-image")
    proc = subprocess.run(["sh", str(RUN), "an386", str(_elf(build, "spin")), "1"], check=False, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 124 and proc.stdout == "spin\n"


FIRMWARE = ROOT / "firmware_ref"


def _firmware_make(build: Path, *args: str) -> subprocess.CompletedProcess:
    """firmware_ref/Makefile, which includes arm/arm.mk (skip while the library has no Makefile yet)."""
    if not (FIRMWARE / "Makefile").exists() or "arm/arm.mk" not in (FIRMWARE / "Makefile").read_text():
        pytest.skip("firmware_ref/Makefile does not include arm/arm.mk")
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(FIRMWARE), f"ARM_BUILD={build}", *args],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"make {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_library_compiles_for_both_cores_without_soft_float_in_int8(build, tmp_path):
    proc = _firmware_make(tmp_path, "arm-lib")
    assert "int8 objects reference no __aeabi_f*/__aeabi_d* on the Cortex-M3" in proc.stdout


def test_library_image_wiring_links_the_int8_sources(build, tmp_path):
    # stand-ins for the generated model data and the library's ARM test main: checks the make wiring only
    (tmp_path / "model_data.h").write_text("extern const int model_stub;\n")
    (tmp_path / "model_data.c").write_text('#include "model_data.h"\nconst int model_stub = 7;\n')
    (tmp_path / "main.c").write_text('#include "semihost.h"\n#include "rnnedge.h"\n#include "model_data.h"\n'
                                     'int main(void) {\n    sh_puts("stub ");\n    sh_put_i32(model_stub);\n'
                                     '    sh_puts("\\n");\n    return 0;\n}\n')
    out = tmp_path / "build"
    proc = _firmware_make(out, f"MODEL_DIR={tmp_path}", f"ARM_LIB_MAIN={tmp_path / 'main.c'}",
                          "arm-int8-an385-run", "arm-int8-an385-nofloat", "arm-int8-an386")
    assert "stub 7\n" in proc.stdout
    assert (out / "int8-an386" / "int8-an386.elf").exists()
