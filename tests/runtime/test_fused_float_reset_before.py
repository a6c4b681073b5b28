"""A GRU with linear_before_reset false (Keras' GRU(reset_after=False); ONNX's GRU default) on the float steps
compiled for the model (runtime/fused_float_source.py): its W_hn multiplies r h, so the step forms r h after the
recurrent sums of h, then the sums of W_hh^T (r h) -- only the n rows' panels where 2H is a multiple of 64
(hn_apart), else every row -- and z, n, h. The generic kernels' numbers within float32 rounding, at every batch,
step() and run() bit for bit; VNNI's int8w limbs leave such a layer to the generic kernels and say so by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnedge import runtime
from tests.helpers import make_model, make_spec, random_inputs, stream_all, write_artifact
from tests.runtime.test_fused_float import _pair

pytestmark = pytest.mark.specialised
# measured <= 1.2e-7 over these cases (30 steps; the products summed in another order than the generic kernels')
TOLERANCE = 1e-6


def _spec(hidden: int, layers: int, kind: str = "dense") -> dict:
    spec = make_spec("gru", layers=layers, hidden=hidden, kind=kind, activation="none", out=4)
    spec["layers"] = [{**layer, "linear_before_reset": False} for layer in spec["layers"]]
    return spec


# (hidden, layers, input, precision): 5 and 20 units (every row in both products), 32 and 64 (the n rows' panels
# apart), token input; int8w's step at 20 streams converts W^T's columns once for all of them (step_wide)
CASES = [(5, 1, "dense", "f32"), (20, 2, "tokens", "f32"), (32, 1, "dense", "f32"), (64, 2, "dense", "f32"),
         (5, 2, "dense", "int8w"), (20, 1, "dense", "int8w"), (32, 2, "tokens", "int8w"), (64, 1, "dense", "int8w")]


@pytest.mark.parametrize("hidden,layers,kind,precision", CASES)
def test_a_reset_before_gru_steps_compiled_as_the_generic_kernels_do(hidden, layers, kind, precision, tmp_path,
                                                                     monkeypatch):
    from rnnedge.runtime.fused_float_source import hn_apart

    spec = _spec(hidden, layers, kind)
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    text = Path(fast.kernel_info["source"]).read_text()
    assert "r_ = ONE / (ONE + exp_f32(" in text and "RB = A + B *" in text
    assert hn_apart(fast.layout.layers[0]) == (hidden % 32 == 0)
    for B in (1, 5, 20):
        X = random_inputs(spec, B, 30, seed=hidden + B)
        want = stream_all(slow.stream(B), X)
        got = stream_all(fast.stream(B), X)
        assert np.abs(got - want).max() <= TOLERANCE
        assert np.array_equal(fast.run(X), got)


@pytest.mark.parametrize("precision", ["f32", "int8w"])
def test_reset_before_sums_started_from_a_pass_equal_those_in_registers(precision, tmp_path, monkeypatch):
    """Where biases (and int8w's scales) cannot be read in whole blocks inside the blob, a pass writes b (or int8w
    scales after): the same numbers."""
    from rnnedge.runtime import fused_float_step

    spec = _spec(32, 1)
    fast, _ = _pair(tmp_path, spec, precision, monkeypatch)
    monkeypatch.setattr(fused_float_step, "bias_start", lambda *a: None)
    monkeypatch.setattr(fused_float_step, "scale_start", lambda *a: None)
    passes = runtime.load(tmp_path / f"m.{precision}.safetensors")
    text = Path(passes.kernel_info["source"]).read_text()
    assert ("rv[i] = bv[i]" if precision == "f32" else "] * rb[") in text  # b written first, or scaled after
    X = random_inputs(spec, 6, 25, seed=2)
    np.testing.assert_array_equal(stream_all(passes.stream(6), X), stream_all(fast.stream(6), X))


def test_int8w_limbs_leave_a_reset_before_gru_to_the_generic_kernels_by_name(tmp_path, monkeypatch):
    """(The int8 step runs it: tests/runtime/test_fused_int8_extensions.py.)"""
    from rnnedge.runtime import fused_float

    spec = _spec(16, 1)
    model = make_model(spec)
    said = "layer 0 has the ONNX extension linear_before_reset false, which the specialised step does not cover"
    monkeypatch.setattr(fused_float, "limb_sums", lambda half=None: True)
    limbs = runtime.load(write_artifact(model, tmp_path / "m.int8w.safetensors", "int8w"))
    assert limbs.kernel_info["step"] == "generic" and limbs.kernel_info["why"].startswith(said)
