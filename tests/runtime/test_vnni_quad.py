"""vnni_quad: the layout pack_quad writes, and its products at the values' and weights' extremes (the blocked
products against gemv_t_int8 on random values: test_fused_int8.py, test_fused_int8_run.py)."""

import numpy as np
import pytest
from numba import njit

from rnnedge.runtime import vnni, vnni_quad
from rnnedge.runtime.kernels_int8 import gemv_t_int8

pytestmark = pytest.mark.skipif(not vnni.has_avx512_vnni(), reason="vnni_quad's products need AVX512-VNNI")


def test_pack_quad_puts_four_inputs_of_an_output_in_one_lane_then_the_correction_row():
    K, N = 7, 20
    w_t = np.arange(K * N, dtype=np.int64).reshape(K, N).astype(np.int8)
    packed = vnni_quad.pack_quad(w_t)
    blocks, quads = 2, 2
    wq = packed[: blocks * quads * 64].reshape(blocks, quads, 16, 4)
    for k in range(8):
        for n in range(32):
            expected = w_t[k, n] if k < K and n < N else 0
            assert wq[n // 16, k // 4, n % 16, k % 4] == expected, (k, n)
    correction = packed[blocks * quads * 64 :].view(np.int32)
    assert correction.size == 16 * blocks
    sums = np.zeros(32, np.int64)
    sums[:N] = w_t.astype(np.int64).sum(axis=0)
    np.testing.assert_array_equal(correction, (-(2**15) * sums).astype(np.int32))


@pytest.mark.parametrize("bad", [np.zeros((3, 4), np.int16), np.zeros(12, np.int8), [[1, 2]]])
def test_pack_quad_refuses_what_is_not_a_2d_int8_matrix(bad):
    with pytest.raises(ValueError, match="2-D int8"):
        vnni_quad.pack_quad(bad)


@njit
def _matmat(dst, wq, bias, v, rows, K, N):
    vnni_quad.matmat_quad_at(dst, 0, N, wq, 0, bias, 0, v, 0, K, K, N // 16, rows)


def _assert_rows_equal_gemv_t_int8(matmat, w_t, v, bias, rows):
    """matmat's rows (w_t (K, N), v rows of K, one bias) against gemv_t_int8 row by row."""
    K, N = w_t.shape
    dst = np.zeros(rows * N, np.int32)
    matmat(dst, vnni_quad.pack_quad(w_t), bias, v, rows, K, N)
    for r in range(rows):
        expected = bias.copy()
        gemv_t_int8(expected, w_t, v[r * K : (r + 1) * K])
        np.testing.assert_array_equal(dst[r * N : (r + 1) * N], expected, err_msg=f"row {r}")


@pytest.mark.parametrize("K", [4, 61, 600, 1031])
@pytest.mark.parametrize("rows", [1, 4, 7])
def test_products_at_the_extremes_equal_gemv_t_int8_with_its_wrapping(K, rows):
    """Every value at -32768 or 32767 and every weight at -128 or 127, where the limbs are 0 / 128 and 255 / 127 and
    the correction row wraps mod 2^32 (K = 600, 1031: |2^15 colsum| > 2^31), the sums too (as gemv_t_int8's)."""
    rng = np.random.default_rng(K + rows)
    N = 48
    w_t = rng.choice(np.array([-128, 127], np.int8), (K, N))
    w_t[:, :16] = -128
    v = rng.choice(np.array([-32768, 32767], np.int32), rows * K)
    v[:K] = 32767
    _assert_rows_equal_gemv_t_int8(_matmat, w_t, v, rng.integers(-(2**20), 2**20, N).astype(np.int32), rows)
