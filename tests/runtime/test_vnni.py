"""runtime/vnni.py gives the integers of kernels_int8.gemv_t_int8 / gemv_int8 exactly, on VNNI and without it."""

import numpy as np
import pytest

from rnnedge.runtime import vnni
from rnnedge.runtime.kernels_int8 import gemv_int8, gemv_t_int8

SHAPES = [(168, 512), (70, 192), (168, 128), (7, 5), (33, 40), (1, 16), (2, 1), (128, 17), (3, 33)]
PATHS = [pytest.param((vnni.pack_vnni, vnni.gemv_t_vnni), id="avx512_vnni",
                      marks=pytest.mark.skipif(not vnni.has_avx512_vnni(), reason="this CPU has no AVX512-VNNI")),
         pytest.param((vnni.pack_portable, vnni.gemv_t_portable), id="portable")]


def cases(K: int, N: int, rng):
    """(w_t, v, acc0): random values, then the extremes of int8 weights and int16 activations, with a start
    near the int32 limits so the sums wrap."""
    yield (rng.integers(-128, 128, (K, N), dtype=np.int8), rng.integers(-32768, 32768, K).astype(np.int32),
           rng.integers(-1000, 1000, N).astype(np.int32))
    for w_value, v_value in [(-128, -32768), (-128, 32767), (127, -32768), (127, 32767)]:
        yield (np.full((K, N), w_value, np.int8), np.full(K, v_value, np.int32),
               np.full(N, np.iinfo(np.int32).max - 5 if w_value * v_value > 0 else np.iinfo(np.int32).min + 5,
                       np.int32))
    alternating = np.where(np.arange(K) % 2, -32768, 32767).astype(np.int32)
    yield np.where(rng.random((K, N)) < 0.5, -128, 127).astype(np.int8), alternating, np.zeros(N, np.int32)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("K", "N"), SHAPES)
def test_vnni_gemv_matches_gemv_t_int8_bit_exact_on_random_and_extreme_values(path, K, N):
    pack, gemv = path
    rng = np.random.default_rng(K * 1000 + N)
    for w_t, v, acc0 in cases(K, N, rng):
        expected, got = acc0.copy(), acc0.copy()
        gemv_t_int8(expected, w_t, v)
        gemv(got, pack(w_t), v)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("path", PATHS)
def test_vnni_gemv_of_the_transposed_head_matches_gemv_int8(path):
    pack, gemv = path
    rng = np.random.default_rng(7)
    w = rng.integers(-128, 128, (12, 128), dtype=np.int8)  # (N, K): the head's layout
    v = rng.integers(-32768, 32768, 128).astype(np.int32)
    expected, got = np.zeros(12, np.int32), np.zeros(12, np.int32)
    gemv_int8(expected, w, v)
    gemv(got, pack(np.ascontiguousarray(w.T)), v)
    np.testing.assert_array_equal(got, expected)


def test_vnni_kernel_names_the_path_this_cpu_runs():
    assert vnni.KERNEL == ("avx512_vnni" if vnni.has_avx512_vnni() else "portable")
    vnni_cpu = vnni.KERNEL == "avx512_vnni"
    assert vnni.gemv_t is (vnni.gemv_t_vnni if vnni_cpu else vnni.gemv_t_portable)
    assert vnni.pack is (vnni.pack_vnni if vnni_cpu else vnni.pack_portable)  # layout and kernel chosen together


@pytest.mark.parametrize("pack", [vnni.pack_vnni, vnni.pack_portable])
def test_vnni_pack_refuses_what_is_not_an_int8_matrix(pack):
    with pytest.raises(ValueError, match="2-D int8 matrix"):
        pack(np.zeros((4, 4), np.int16))
    with pytest.raises(ValueError, match="2-D int8 matrix"):
        pack(np.zeros(4, np.int8))


def test_vnni_pack_puts_each_input_pair_side_by_side_per_output():
    w_t = np.arange(3 * 17, dtype=np.int8).reshape(3, 17)  # K=3 (odd), N=17 (one full block and one lane)
    wp = vnni.pack_vnni(w_t)
    assert wp.shape == (2, 2, 32) and wp.dtype == np.int8
    assert wp[0, 0, 2 * 5] == w_t[0, 5] and wp[0, 0, 2 * 5 + 1] == w_t[1, 5]
    assert wp[1, 1, 0] == w_t[2, 16] and wp[1, 1, 1] == 0  # zero past K
    assert not wp[1, :, 2:].any()  # zero past N
