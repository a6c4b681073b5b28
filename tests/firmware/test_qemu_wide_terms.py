"""The int8 C library on a Cortex-M3 under QEMU, on gate terms beyond int16 of opposite signs: the golden vectors
bit for bit (the models of tests/firmware/test_host_wide_terms.py; the build and run of test_qemu_vectors.py)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnedge.export.calibrate import calibrate
from rnnedge.export.quantize_int8 import quantize_int8
from rnnedge.export.weights import canonical_tensors
from tests.firmware.test_host import STEPS, _generate
from tests.firmware.test_host_wide_terms import _write_case
from tests.firmware.test_qemu import _nm
from tests.firmware.test_qemu_vectors import _assert_passes, _build, _run, arm_tools  # noqa: F401 (a fixture)
from tests.runtime.test_int8_saturation import GATE_ROW_CASES, gate_row_model, raw_scale_forecaster


@pytest.mark.parametrize("name", ["rnn_relu-clip", "lstm-peepholes-clip-input_forget", "gru", "gru-reset_before-clip",
                                  "forecaster"])
def test_cortex_m3_matches_vectors_on_wide_gate_terms(arm_tools, tmp_path, name):  # noqa: F811
    if name == "forecaster":
        model, X, _ = raw_scale_forecaster()
        tensors, _ = quantize_int8(model.spec, canonical_tensors(model), calibrate(model, X[: len(X) // 2]))
        _write_case(tmp_path, model.spec, tensors, X[-1])
    else:
        spec, tensors = gate_row_model(*GATE_ROW_CASES[name], left=True)
        _write_case(tmp_path, spec, tensors, np.random.default_rng(2).standard_normal((STEPS, 2)).astype(np.float32))
    _generate(tmp_path)
    elf = _build(tmp_path, "an385")
    assert _nm(elf) == [], "the Cortex-M3 int8 image links soft-float helpers"
    _assert_passes(_run("an385", elf), "cortex-m3")
