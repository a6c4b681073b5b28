"""int8w's specialised mat-vecs: the VNNI limb sums (runtime/fused_float_vnni.py) are the int32 sums of the plain
product, and a model's step on either path (VNNI limbs, or FMA8's float sums of the int8 weights where a CPU has
no VNNI) follows the generic kernels."""

from __future__ import annotations

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.runtime import fused_float_vnni as vnni
from tests.helpers import make_model, make_spec, random_inputs, stream_all, write_artifact

pytestmark = pytest.mark.specialised  # the step a user gets (tests/conftest.py)

needs_vnni = pytest.mark.skipif(vnni.KERNEL != "avx512_vnni", reason="this CPU has no AVX512-VNNI")


def _words(rng, pairs: int) -> np.ndarray:
    """Limb pair words: two int16 limbs (the extremes included) in each int32."""
    limbs = rng.integers(-32767, 32768, size=(pairs, 2)).astype(np.int64)
    limbs[0] = (32767, -32767)
    return ((limbs[:, 0] & 0xFFFF) | (limbs[:, 1] << 16)).astype(np.int64).astype(np.int32)


@needs_vnni
@pytest.mark.parametrize("K, N", [(1, 16), (7, 64), (40, 512), (129, 80), (6, 24)])
def test_vnni_limb_sums_are_the_integers_of_the_plain_product(K, N):
    rng = np.random.default_rng(K * N)
    w_t = rng.integers(-128, 128, size=(K, N)).astype(np.int8)
    w_t[0, :] = -128
    pairs, blocks = -(-K // 2), -(-N // 16)
    wq = np.concatenate([w_t.ravel(), rng.integers(-128, 128, vnni.reach(0, K, N) - K * N).astype(np.int8)])
    words = np.concatenate([_words(rng, pairs), _words(rng, pairs)])  # hi words, then lo words
    if K % 2:  # an odd K's last pair has no second input: its limbs are zero
        words[[pairs - 1, 2 * pairs - 1]] &= 0xFFFF
    start = np.concatenate([rng.integers(-1000, 1000, size=2 * 16 * blocks).astype(np.int32), words])
    hi, lo, wh = 0, 16 * blocks, 32 * blocks
    ibuf = start.copy()
    vnni.dp2_vnni(ibuf, hi, lo, wq, 0, N, wh, wh + pairs, pairs, blocks)
    halves = words.astype(np.int64).reshape(2, pairs)
    limbs = np.stack([(halves << 48) >> 48, halves >> 16], 2).reshape(2, 2 * pairs)[:, :K]  # input 2p, then 2p + 1
    for limb, off in ((limbs[0], hi), (limbs[1], lo)):  # both are the plain product w_t^T @ limbs, per limb,
        want = w_t.astype(np.int64).T @ limb  # whatever the sums held before
        assert np.array_equal(ibuf[off : off + N], want)


@pytest.mark.parametrize("path", [pytest.param("avx512_vnni", marks=needs_vnni), "fma"])
@pytest.mark.parametrize("kind", ["dense", "tokens"])
def test_an_int8w_model_steps_on_either_path_as_the_generic_kernels_do(kind, path, tmp_path, monkeypatch):
    spec = make_spec("lstm", layers=2, kind=kind, hidden=20)
    file = write_artifact(make_model(spec), tmp_path / "m.int8w.safetensors", "int8w")
    monkeypatch.setattr(vnni, "KERNEL", path)
    if path == "avx512_vnni":  # the limbs where int8w's float16 copy is refused (else FMA8 on the copy)
        monkeypatch.setenv("RNNEDGE_INT8W_FLOAT16", "0")
    fast = runtime.load(file)
    assert fast.kernel_info["matvec"].startswith(path)  # the step is built here, on first use
    monkeypatch.setenv("RNNEDGE_SPECIALISE", "0")
    plain = runtime.load(file)
    assert plain.kernel_info["step"] == "generic"
    X = random_inputs(spec, 9, 100)  # two groups of four streams and one alone
    got, want = stream_all(fast.stream(9), X), stream_all(plain.stream(9), X)
    assert np.abs(got - want).max() <= 1e-5  # float32 rounding of other sum orders (test_fused_float.TOLERANCE)
    assert np.array_equal(stream_all(fast.stream(1), X[4:5]), got[4:5])  # a stream's numbers, alone or among 9
