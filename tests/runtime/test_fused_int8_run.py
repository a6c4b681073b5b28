"""model.run() of an int8 model on its specialised step (runtime/fused_int8_seq.py): every output bit for bit the
generic run()'s and a loop of stream steps', on both mat-vec paths, every cell, dense and token input, one and two
layers, every_step and last_step heads, lengths shorter than T, batch 1 and several; bidirectional, reverse and
initial-state layers equal the generic run(); the VNNI matrix product equals the portable mat-vec row by row."""

import functools

import numpy as np
import pytest
from numba import njit

from rnnedge.runtime import vnni, vnni_quad
from rnnedge.runtime.kernels_int8 import gemv_t_int8
from rnnedge.runtime.spec import CELLS
from tests.helpers import int8_paths, make_spec, with_paths
from tests.runtime.int8_twin import random_int8_tensors, saturating_dense_inputs
from tests.runtime.test_fused_int8 import _models as step_models

pytestmark = pytest.mark.specialised  # the step a user gets (tests/conftest.py)

VOCAB, T = 20, 70
PATHS = int8_paths()
# every pair of (input kind, layers, head) values, for every cell: each case compiles a model's own kernel
CASES = [(cell, kind, layers, on) for cell in CELLS
         for kind, layers, on in (("dense", 1, "every_step"), ("tokens", 2, "every_step"), ("dense", 2, "last_step"),
                                  ("tokens", 1, "last_step"))]


@functools.cache
def _case(cell, kind, layers, on, bidirectional=False, extra=()):
    """(spec, tensors, X (4, T, ...), lengths): hot constants, inputs that clamp; sizes off the 16-lane grid."""
    i = CASES.index((cell, kind, layers, on)) if (cell, kind, layers, on) in CASES else 7
    spec = make_spec(cell, layers=layers, kind=kind, on=on, bidirectional=bidirectional,
                     activation=("none", "softmax", "log_softmax", "sigmoid")[i % 4], hidden=(5, 19, 12)[i % 3],
                     features=3 + i % 5, vocab=VOCAB, embed_dim=3 + (i + 2) % 5, out=3)
    spec["layers"] = [{**layer, **dict(extra)} for layer in spec["layers"]]
    rng = np.random.default_rng(900 + i)
    tensors = random_int8_tensors(spec, rng, hot=True, cell_powers=[(-15, 1), (-12, -9)][i % 2][:layers])
    if kind == "dense":
        X = saturating_dense_inputs(spec, float(tensors["input.scale"][0]), rng, 4, T)
        X = np.where(np.abs(X) > 1e5, np.float32(0), X).astype(np.float32)
    else:
        X = rng.integers(0, VOCAB, (4, T)).astype(np.int64)
    return spec, tensors, X, np.array([T, 1, 37, T - 1])


def _models(spec, tensors, path, monkeypatch):
    """(generic model, specialised model on `path`): test_fused_int8's pair, its mat-vec path checked."""
    generic, fused = step_models(spec, tensors, path, monkeypatch)
    assert fused.kernel_info["step"] == "specialised" and fused.kernel_info["path"] == path
    return generic, fused


# each cell with two of the four (kind, layers, head) combinations, each combination with two cells
RUN_CASES = [CASES[4 * c + (c + k) % 4] for c in range(len(CELLS)) for k in (0, 2)]


@pytest.mark.parametrize("cell,kind,layers,on,path", with_paths(RUN_CASES, 8))
def test_specialised_int8_run_equals_the_generic_run_and_a_loop_of_steps_bit_exact(cell, kind, layers, on, path,
                                                                                   monkeypatch):
    spec, tensors, X, lengths = _case(cell, kind, layers, on)
    generic, fused = _models(spec, tensors, path, monkeypatch)
    for batch in (1, 4):
        Y = fused.run(X[:batch], lengths[:batch])
        np.testing.assert_array_equal(Y, generic.run(X[:batch], lengths[:batch]), err_msg=f"generic, B={batch}")
    stream = fused.stream(4)
    for t in range(T):
        y = stream.step(np.ascontiguousarray(X[:, t]))
        for b in range(4):
            if on == "every_step" and t < lengths[b]:
                np.testing.assert_array_equal(Y[b, t], y[b], err_msg=f"sequence {b} step {t}")
            elif on == "last_step" and t == lengths[b] - 1:
                np.testing.assert_array_equal(Y[b], y[b], err_msg=f"sequence {b}'s last step {t}")
    if on == "every_step":
        assert not Y[1, 1:].any() and not Y[2, 37:].any()


DIRECTIONS = [(2, (("bidirectional", True),), "every_step"),
              (2, (("bidirectional", True),), "last_step"),
              (1, (("reverse", True),), "last_step"),
              (2, (("reverse", True), ("initial_state", True)), "every_step"),
              (2, (("bidirectional", True), ("initial_state", True)), "last_step")]
# each cell with two of the five layouts, every layout with at least one cell (each case compiles its own run())
DIRECTION_CASES = [(cell, *DIRECTIONS[(2 * c + k) % len(DIRECTIONS)]) for c, cell in enumerate(CELLS) for k in (0, 1)]


@pytest.mark.parametrize("cell,layers,extra,on,path", with_paths(DIRECTION_CASES, 8))
def test_specialised_int8_run_of_bidirectional_reverse_and_initial_state_layers_equals_the_generic_run(
        cell, layers, extra, on, path, monkeypatch):
    spec, tensors, X, lengths = _case(cell, "dense" if cell in ("lstm", "rnn_relu") else "tokens", layers, on,
                                      extra=extra)
    generic, fused = _models(spec, tensors, path, monkeypatch)
    np.testing.assert_array_equal(fused.run(X, lengths), generic.run(X, lengths))
    if "bidirectional" in dict(extra):
        with pytest.raises(ValueError, match="bidirectional"):
            fused.stream()


@pytest.mark.parametrize("path", PATHS[:1])  # the portable run() of hidden head layers: test_fused_int8's step
def test_specialised_int8_run_with_hidden_head_layers_equals_the_generic_run(path, monkeypatch):
    for on in ("every_step", "last_step"):
        spec = make_spec("gru", layers=2, kind="tokens", on=on, activation="none", hidden=6, vocab=VOCAB,
                         embed_dim=5, out=3, head_hidden=[(17, "sigmoid"), (4, "gelu")])
        tensors = random_int8_tensors(spec, np.random.default_rng(3))
        generic, fused = _models(spec, tensors, path, monkeypatch)
        X = np.random.default_rng(4).integers(0, VOCAB, (3, 50))
        np.testing.assert_array_equal(fused.run(X, [50, 9, 1]), generic.run(X, [50, 9, 1]))


@njit
def _matmat_quad(dst, wp, bias, v, rows, K, N, v_stride):
    vnni_quad.matmat_quad_at(dst, 3, N + 5, wp, 0, bias, 0, v, 2, v_stride, K, N // 16, rows)


@njit
def _matmat_avx2(dst, wp, bias, v, rows, K, N, v_stride):
    vnni.matmat_avx2_at(dst, 3, N + 5, wp, 0, bias, 0, v, 2, v_stride, K, N // 16, rows)


# the blocked products this CPU has, with their layouts: vpdpbusd on quads (AVX512-VNNI), vpmaddwd on pairs (AVX2)
ISAS = [pytest.param((_matmat_quad, vnni_quad.pack_quad), id="vnni",
                     marks=pytest.mark.skipif(not vnni.has_avx512_vnni(), reason="no VNNI")),
        pytest.param((_matmat_avx2, vnni.pack_vnni), id="avx2",
                     marks=pytest.mark.skipif(not vnni.has_avx2(), reason="no AVX2"))]


@pytest.mark.parametrize("isa", ISAS)
# K = 1025 and 1024: one input pair past what an AVX2 pass packs beforehand (vnni.PACKED_PAIRS), and all it packs
# (vnni_quad.CHUNK inputs likewise); rows 5, 6, 9: groups of four and the rest one at a time
@pytest.mark.parametrize("K,N,rows", [(1, 16, 1), (7, 48, 5), (40, 512, 9), (33, 80, 4), (64, 128, 3), (64, 80, 6),
                                      (1025, 32, 6), (1024, 48, 5)])
def test_blocked_matmat_equals_gemv_t_int8_row_by_row(K, N, rows, isa):
    _matmat, pack = isa
    rng = np.random.default_rng(K * N + rows)
    w_t = rng.integers(-127, 128, (K, N)).astype(np.int8)
    bias = rng.integers(-2**20, 2**20, N).astype(np.int32)
    v_stride = K + 3
    v = rng.integers(-32768, 32768, 2 + rows * v_stride).astype(np.int32)
    dst = np.full(3 + rows * (N + 5), 7, dtype=np.int32)
    _matmat(dst, pack(w_t).reshape(-1), bias, v, rows, K, N, v_stride)
    for r in range(rows):
        expected = bias.copy()
        gemv_t_int8(expected, w_t, v[2 + r * v_stride : 2 + r * v_stride + K])
        np.testing.assert_array_equal(dst[3 + r * (N + 5) : 3 + r * (N + 5) + N], expected, err_msg=f"row {r}")
        assert (dst[3 + r * (N + 5) + N : 3 + (r + 1) * (N + 5)] == 7).all(), f"row {r} wrote past its N outputs"


# each cell once, the two layouts alternating
MIXED_CASES = [(cell, *[(2, (), "every_step"), (2, (("bidirectional", True), ("initial_state", True)), "last_step")][c % 2])
               for c, cell in enumerate(CELLS)]


@pytest.mark.parametrize("cell,layers,extra,on,path", with_paths(MIXED_CASES))
def test_specialised_int8_run_of_5_and_9_sequences_of_mixed_lengths_equals_the_generic_run_and_steps_bit_exact(
        cell, layers, extra, on, path, monkeypatch):
    """Groups of four sequences whose members end at different steps (a length-1 one among them, finished ones
    before running ones), and a last partial group of one."""
    kind = "tokens" if not extra or cell not in ("lstm", "rnn_relu") else "dense"
    spec, tensors, X, _ = _case(cell, kind, layers, on, extra=extra)
    generic, fused = _models(spec, tensors, path, monkeypatch)
    X9 = np.ascontiguousarray(np.concatenate([X, X[::-1, ::-1], X[2:3, ::-1]]))
    for lengths in (np.array([1, T, 3, 1, 20]), np.array([T, 1, 37, T - 1, 5, T, 2, 1, 40])):
        B = len(lengths)
        Y = fused.run(X9[:B], lengths)
        np.testing.assert_array_equal(Y, generic.run(X9[:B], lengths), err_msg=f"generic, B={B}")
        if extra:
            continue
        stream = fused.stream(B)
        for t in range(T):
            y = stream.step(np.ascontiguousarray(X9[:B, t]))
            for b in range(B):
                if t < lengths[b]:
                    np.testing.assert_array_equal(Y[b, t], y[b], err_msg=f"B={B}, sequence {b} step {t}")
        assert all(not Y[b, lengths[b]:].any() for b in range(B))
