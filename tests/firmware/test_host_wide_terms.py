"""firmware_ref/ on the host, on gate terms beyond int16 of opposite signs: the C library adds them whole and
saturates once (docs/int8.md), bit for bit as the runtime (tests/firmware/test_host.py runs the C)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.calibrate import calibrate
from rnnedge.export.quantize_int8 import quantize_int8
from rnnedge.export.vectors import read_vectors, write_vectors
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import artifact
from tests.firmware.test_host import STEPS, _assert_passes, _generate
from tests.runtime.int8_twin import Int8Twin
from tests.runtime.test_int8_saturation import GATE_ROW_CASES, gate_row_model, raw_scale_forecaster


def _write_case(folder: Path, spec: dict, tensors: dict, X: np.ndarray) -> dict:
    """The weight file and the runtime's vectors of X (T, F); returns the vectors."""
    weights = folder / "model.int8.safetensors"
    artifact.write(weights, tensors, spec, "int8")
    write_vectors(folder / "model.int8.vectors.safetensors", weights, X, steps=STEPS)
    return read_vectors(folder / "model.int8.vectors.safetensors")[1]


@pytest.mark.parametrize("left", [True, False], ids=["left-shift", "right-shift"])
@pytest.mark.parametrize("name", sorted(GATE_ROW_CASES))
def test_gate_terms_of_plus_12_and_minus_5_match_vectors_bit_for_bit(tmp_path, host_cc, make_tool, name, left):
    spec, tensors = gate_row_model(*GATE_ROW_CASES[name], left=left)
    X = np.random.default_rng(2).standard_normal((STEPS, 2)).astype(np.float32)
    _write_case(tmp_path, spec, tensors, X)
    _generate(tmp_path)
    _assert_passes(tmp_path)


def test_a_raw_scale_forecaster_matches_vectors_bit_for_bit(tmp_path, host_cc, make_tool):
    model, X, _ = raw_scale_forecaster()
    tensors, _ = quantize_int8(model.spec, canonical_tensors(model), calibrate(model, X[: len(X) // 2]))
    twin = Int8Twin(model.spec, tensors)
    twin.run(twin.quantize_input(X[-1:, :STEPS]))
    assert twin.counts["yx_wide"] > 0  # the stream replayed reaches input terms beyond int16
    _write_case(tmp_path, model.spec, tensors, X[-1])
    _generate(tmp_path)
    _assert_passes(tmp_path)
