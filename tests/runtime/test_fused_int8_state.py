"""The specialised int8 step's state update in vector IR (runtime/fused_int8_state.py) against the scalar loops it
replaced (int8_math's integers, lane for lane): every row below H written, nothing beyond it, for H on and off
the 16-lane grid."""

import numpy as np
import pytest
from numba import njit

from rnnedge.runtime.fused_int8_math import rdbpot32, sat16_32
from rnnedge.runtime.fused_int8_state import (
    gru_blend_at,
    gru_blend_out_at,
    lstm_cell_at,
    lstm_hidden_at,
    lstm_hidden_out_at,
    rnn_hidden_at,
    rnn_hidden_out_at,
)

SIZES = [1, 5, 15, 16, 17, 40, 64]
Z, N, Q, ST, OUT = 8, 88, 168, 8, 4  # offsets into the scratch, the state and out (none of them on the lane grid)
SENTINEL = -12345


@njit
def _blend(s, st, out, H, with_out):
    if with_out:
        gru_blend_out_at(s, Z, N, st, ST, H, out, OUT)
    else:
        gru_blend_at(s, Z, N, st, ST, H)


@njit
def _blend_ref(s, st, out, H):
    for j in range(H):
        z = s[Z + j]
        h = sat16_32(rdbpot32(np.int32(np.int32((32768 - z) * s[N + j]) + np.int32(z * np.int32(st[ST + j]))), 15))
        st[ST + j] = h
        out[OUT + j] = h


@njit
def _lstm(s, st, out, H, add_shift, q_shift, with_out):
    lstm_cell_at(s, Z, N, Q, st, ST + H, 248, H, add_shift, q_shift)
    if with_out:
        lstm_hidden_out_at(s, Z + 40, 248, st, ST, H, out, OUT)
    else:
        lstm_hidden_at(s, Z + 40, 248, st, ST, H)


@njit
def _lstm_ref(s, st, out, H, add_shift, q_shift):
    for j in range(H):
        kept = sat16_32(rdbpot32(np.int32(s[Z + j] * np.int32(st[ST + H + j])), 15))
        added = sat16_32(rdbpot32(np.int32(s[N + j] * s[Q + j]), add_shift))
        cn = sat16_32(kept + added)
        st[ST + H + j] = cn
        if q_shift > 0:
            s[248 + j] = sat16_32(cn << np.int32(q_shift))
        elif q_shift == 0:
            s[248 + j] = cn
        else:
            s[248 + j] = rdbpot32(cn, -q_shift)
    for j in range(H):
        h = sat16_32(rdbpot32(np.int32(s[Z + 40 + j] * s[248 + j]), 15))
        st[ST + j] = h
        out[OUT + j] = h


@njit
def _rnn(s, st, out, H, relu, with_out):
    if with_out:
        rnn_hidden_out_at(s, Z, st, ST, H, relu, out, OUT)
    else:
        rnn_hidden_at(s, Z, st, ST, H, relu)


def _arrays(H: int, seed: int):
    rng = np.random.default_rng(seed)
    s = rng.integers(-32768, 32768, 400).astype(np.int32)
    s[Z : Z + 80] = rng.integers(0, 32769, 80)  # gate values in Q0.15 (a sigmoid's: 0 .. 2^15)
    s[Z : Z + 4] = [0, 32768, 32767, 1]
    st = np.full(ST + 2 * H + 20, SENTINEL, np.int32)
    st[ST : ST + 2 * H] = rng.integers(-32768, 32768, 2 * H)
    st[ST : ST + min(H, 3)] = [-32768, 32767, 0][: min(H, 3)]
    return s, st, np.full(OUT + H + 20, SENTINEL, np.int32)


def _check(got, ref, with_out):
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_array_equal(g, r)
    if not with_out:
        assert (got[2] == SENTINEL).all()


@pytest.mark.parametrize("with_out", [False, True])
@pytest.mark.parametrize("H", SIZES)
def test_gru_blend_equals_the_scalar_loop_and_writes_only_rows_below_H(H, with_out):
    s, st, out = _arrays(H, H)
    ref = [a.copy() for a in (s, st, out)]
    _blend_ref(*ref, H)
    if not with_out:
        ref[2][:] = SENTINEL
    _blend(s, st, out, H, with_out)
    _check((s, st, out), ref, with_out)  # the whole state: rows from H on (the next stream's) as they were


@pytest.mark.parametrize("with_out", [False, True])
@pytest.mark.parametrize("add_shift,q_shift", [(30, -3), (31, 0), (17, 2), (29, -1), (30, 3)])
@pytest.mark.parametrize("H", SIZES)
def test_lstm_cell_and_hidden_equal_the_scalar_loops_and_write_only_rows_below_H(H, add_shift, q_shift, with_out):
    s, st, out = _arrays(H, 100 + H)
    ref = [a.copy() for a in (s, st, out)]
    _lstm_ref(*ref, H, add_shift, q_shift)
    if not with_out:
        ref[2][:] = SENTINEL
    _lstm(s, st, out, H, add_shift, q_shift, with_out)
    _check((s, st, out), ref, with_out)  # s too: the cell's Q3.12 copy at rows below H, nothing else
    assert (st[ST + 2 * H :] == SENTINEL).all() and (st[:ST] == SENTINEL).all()


@pytest.mark.parametrize("with_out", [False, True])
@pytest.mark.parametrize("relu", [0, 1])
@pytest.mark.parametrize("H", SIZES)
def test_rnn_hidden_is_the_activation_or_its_relu_for_rows_below_H(H, relu, with_out):
    s, st, out = _arrays(H, 200 + H)
    before = st.copy()
    _rnn(s, st, out, H, relu, with_out)
    want = s[Z : Z + H] if not relu else np.maximum(s[Z : Z + H], 0)
    np.testing.assert_array_equal(st[ST : ST + H], want)
    np.testing.assert_array_equal(st[ST + H :], before[ST + H :])
    assert (st[:ST] == SENTINEL).all()
    if with_out:
        np.testing.assert_array_equal(out[OUT : OUT + H], want)
        assert (out[OUT + H :] == SENTINEL).all() and (out[:OUT] == SENTINEL).all()
    else:
        assert (out == SENTINEL).all()
