"""The f32 dot products with the Cortex-M4F's fused multiply-add (RNNEDGE_FMA in src/rnnedge_f32_cells.h).

The mps2-an386 image of tests/arm_test_float.c is built twice from the same f32 model: by default (VFMA.F32, one
per product) and with the Makefile's FMA=0 (-DRNNEDGE_FMA=0: the runtime's unfused order, VMUL/VMLA). Both must
meet the float rule at every step; only the first may contain VFMA, and it must take fewer instructions per step.
Tools missing: skip, or fail under CI=true (test_qemu.py's rule).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.firmware.test_host_float import _case
from tests.firmware.test_qemu import _require_tools
from tests.firmware.test_qemu_float import _assert_passes, _run

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_ref"
VFMA = re.compile(r"\tvfma\.f32\t")


def _build(folder: Path, fma: int) -> Path:
    build = folder / f"arm-fma{fma}"
    proc = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(FIRMWARE), f"MODEL_DIR={folder}",
                           f"ARM_BUILD={build}", f"FMA={fma}", "arm-float-an386"],
                          check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return build / "float-an386" / "float-an386.elf"


def _fused(elf: Path) -> int:
    listing = subprocess.run(["arm-none-eabi-objdump", "-d", str(elf)], capture_output=True, text=True,
                             check=True).stdout
    return len(VFMA.findall(listing))


@pytest.mark.parametrize(("cell", "layers", "kind"), [("lstm", 1, "dense"), ("gru", 3, "tokens")])
def test_cortex_m4f_f32_fuses_multiply_adds_within_the_float_rule_and_in_fewer_instructions(tmp_path, cell, layers,
                                                                                            kind):
    _require_tools()
    _case(tmp_path, "f32", cell, layers, kind, seed=1)
    fused, plain = _build(tmp_path, 1), _build(tmp_path, 0)
    assert _fused(fused) >= 9 and _fused(plain) == 0  # 8 in the unrolled pass, 1 in the tail
    with_fma, without = _assert_passes(_run(fused), "f32"), _assert_passes(_run(plain), "f32")
    assert with_fma < without, (with_fma, without)
