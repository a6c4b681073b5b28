"""runtime/cost_model.py against QEMU on shapes the fit never saw (benchmarks/cost_fit.py VALIDATION_SHAPES:
LSTM(13 -> 48), GRU(20 -> 32) x 2, RNN(7 -> 24)): for every target x precision with coefficients, the predicted
instructions per step are within 10% of the measured ones, the predicted model constants within 0.5% and the predicted
state + scratch exact. Each case builds and runs one bench image (benchmarks/cost_measure.py, under a second).
Tools missing: skip, or fail under CI=true (as test_qemu.py and test_riscv.py)."""

from __future__ import annotations

import pytest

from benchmarks.cost_fit import FIT_SHAPES, VALIDATION_SHAPES, shape_name, shape_spec
from benchmarks.cost_measure import family, measure
from rnnedge.runtime import cost_model
from rnnedge.runtime.cost_coefficients import COEFFICIENTS
from tests.firmware import test_qemu, test_riscv

TOLERANCE = 0.10  # issue 17: the predicted instructions per step within 10% of the measured figure
MEASURED = [tuple(key.split("/")) for key in COEFFICIENTS]


def test_validation_shapes_are_not_fitted_and_every_fit_is_within_the_tolerance():
    assert not {shape_name(*s) for s in VALIDATION_SHAPES} & {shape_name(*s) for s in FIT_SHAPES}
    assert {"cortex-m3/int8", "cortex-m4/int8", "cortex-m4f/f32", "cortex-m4f/int8w", "rv32/int8",
            "cortex-m55/int8"} <= set(COEFFICIENTS)
    for key, entry in COEFFICIENTS.items():
        fitted = {s["shape"] for s in entry["fit"]["shapes"]}
        assert fitted == {shape_name(*s) for s in FIT_SHAPES}, key
        assert entry["fit"]["max_relative_residual"] <= TOLERANCE, key


@pytest.mark.parametrize("shape", VALIDATION_SHAPES, ids=[shape_name(*s) for s in VALIDATION_SHAPES])
@pytest.mark.parametrize("target, precision", MEASURED, ids=[f"{t}-{p}" for t, p in MEASURED])
def test_predicted_instructions_per_step_are_within_10_percent_of_qemu_on_unfitted_shapes(tmp_path, target,
                                                                                        precision, shape):
    (test_riscv if family(target) == "riscv" else test_qemu)._require_tools()
    spec = shape_spec(*shape)
    measured = measure(spec, target, precision, tmp_path, steps=8)
    predicted = cost_model.predict(spec, target, precision)
    error = abs(predicted["instructions_per_step"] - measured["instructions_per_step"]) / \
        measured["instructions_per_step"]
    assert error <= TOLERANCE, (f"{target} {precision} {shape_name(*shape)}: predicted "
                                f"{predicted['instructions_per_step']:,}, measured "
                                f"{measured['instructions_per_step']:,.0f} ({error:.1%})")
    model_const = measured["flash"]["model_const"]
    assert abs(predicted["flash"]["model_const"] - model_const) <= 0.005 * model_const, (predicted, measured)
    assert (predicted["ram"]["state"], predicted["ram"]["scratch"]) == (measured["ram"]["state"],
                                                                        measured["ram"]["scratch"])
    assert measured["ram"]["stack"] <= predicted["ram"]["stack"] * 1.1
