"""The head contract (log_softmax, hidden dense layers) on Cortex-M under QEMU: the int8 C library bit for bit on
the Cortex-M3 (mps2-an385, no soft-float routine linked), the f32 / int8w library within 1e-5 on the Cortex-M4F
(mps2-an386, no libm), both against the runtime's golden vectors (tests/firmware/test_host_heads.py's cases)."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.firmware import test_qemu_float, test_qemu_vectors
from tests.firmware.test_host_heads import heads_case, hot_heads_case
from tests.firmware.test_qemu import _nm, _require_tools

INT8_FORMS = ["log_softmax-tokens", "relu", "tanh-sigmoid-tokens", "gelu", "gelu_tanh", "none-relu"]
FLOAT_FORMS = [("f32", "gelu"), ("int8w", "tanh-sigmoid-tokens"), ("f32", "log_softmax")]


@pytest.fixture(scope="module")
def arm_tools() -> None:
    _require_tools()


@pytest.mark.parametrize("form", INT8_FORMS)
def test_cortex_m3_runs_int8_head_form_bit_exact(arm_tools, tmp_path, form):
    heads_case(tmp_path, form, "int8", seed=3)
    elf = test_qemu_vectors._build(tmp_path, "an385")
    assert _nm(elf) == [], "the Cortex-M3 int8 image links soft-float helpers"
    test_qemu_vectors._assert_passes(test_qemu_vectors._run("an385", elf), "cortex-m3")


def test_cortex_m3_runs_a_hot_int8_head_stack_bit_exact(arm_tools, tmp_path):
    """Random constants that saturate the head's requantised sums, every int8 hidden activation, 2 gru layers."""
    hot_heads_case(tmp_path, "gru", "dense", seed=12)
    elf = test_qemu_vectors._build(tmp_path, "an385")
    assert _nm(elf) == [], "the Cortex-M3 int8 image links soft-float helpers"
    test_qemu_vectors._assert_passes(test_qemu_vectors._run("an385", elf), "cortex-m3")


@pytest.mark.parametrize(("precision", "form"), FLOAT_FORMS, ids=[f"{p}-{f}" for p, f in FLOAT_FORMS])
def test_cortex_m4f_runs_float_head_form_within_1e_5(arm_tools, tmp_path, precision, form):
    heads_case(tmp_path, form, precision, seed=4)
    elf = test_qemu_float._build(tmp_path)
    assert _nm(elf) == [], "the hard-float image links soft-float / double helpers"
    symbols = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    assert not re.findall(r"\s(logf?|expf?|erff?|tanhf?)$", symbols, re.MULTILINE), "the head pulled in libm"
    test_qemu_float._assert_passes(test_qemu_float._run(elf), precision)
