"""Symmetric per-row int8 quantisation: its error bound, its range, and the error it reports."""

import numpy as np
import pytest

from rnnedge.export.quantize import QMAX, dequantize_rows, quantize_int8w, quantize_rows
from rnnedge.runtime import file_tensors
from rnnedge.runtime import spec as specs
from tests.helpers import make_spec


def test_quantize_rows_round_trip_error_is_at_most_half_a_step_per_element():
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((64, 37)) * rng.uniform(1e-3, 10, (64, 1))).astype(np.float32)
    q, scale, error = quantize_rows(w)
    assert q.dtype == np.int8 and scale.dtype == np.float32 and scale.shape == (64,)
    assert q.min() >= -QMAX and q.max() <= QMAX
    err = np.abs(dequantize_rows(q, scale).astype(np.float64) - w)
    # half a step, plus the rounding of the float32 product scale * q (half an ulp of |w|)
    assert np.all(err <= scale[:, None] / 2 + np.spacing(np.abs(w)))
    assert error == pytest.approx(err.max())
    assert np.array_equal(np.abs(q).max(axis=1), np.full(64, QMAX))  # each row's largest weight uses the range


def test_a_row_of_zeros_gets_scale_one_and_comes_back_exactly():
    w = np.zeros((3, 5), np.float32)
    w[1] = [0.5, -1.0, 0.25, 0.0, 1.0]
    q, scale, error = quantize_rows(w)
    assert scale[0] == scale[2] == 1.0 and not q[0].any() and not q[2].any()
    assert scale[1] == np.float32(1.0 / 127)
    assert error <= float(scale[1]) / 2


def test_quantize_rows_refuses_non_finite_or_non_matrix_input():
    with pytest.raises(ValueError, match="NaN"):
        quantize_rows(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="matrix"):
        quantize_rows(np.zeros(4))


def test_quantize_int8w_makes_every_tensor_the_int8w_file_holds():
    spec = specs.validate(make_spec("gru", layers=2, bidirectional=True, kind="tokens"))
    rng = np.random.default_rng(1)
    tensors = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in specs.tensor_shapes(spec).items()}
    out, errors = quantize_int8w(spec, tensors)
    expected = file_tensors.artifact_tensors(spec, "int8w")
    assert set(out) == set(expected)
    for name, (shape, dtype) in expected.items():
        assert out[name].shape == shape and out[name].dtype == np.dtype(dtype), name
    assert set(errors) == set(file_tensors.quantized_matrices(spec))
    assert "embedding.weight" in errors and "head.weight" in errors and "layers.1.bwd.w_hh" in errors
    # biases stay float32; gru's r and z rows fold b_hh into b_ih, its n rows keep b_hn apart
    H = spec["layers"][0]["hidden"]
    b_ih, b_hh = tensors["layers.0.fwd.b_ih"], tensors["layers.0.fwd.b_hh"]
    np.testing.assert_array_equal(out["layers.0.fwd.b_ih"][: 2 * H], b_ih[: 2 * H] + b_hh[: 2 * H])
    np.testing.assert_array_equal(out["layers.0.fwd.b_ih"][2 * H :], b_ih[2 * H :])
    np.testing.assert_array_equal(out["layers.0.fwd.b_hh"], b_hh[2 * H :])
