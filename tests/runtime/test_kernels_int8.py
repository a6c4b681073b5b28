"""lstm_step_int8 equals a plain NumPy twin bit for bit over 5000 steps with random constants that saturate, and
its dequantised output follows a float64 LSTM on moderate inputs."""

import numpy as np

from runtime.int8_math import quantize_multiplier
from runtime.kernels_int8 import (
    CELL_FC_M,
    CELL_FC_S,
    CELL_FIELDS,
    CELL_H_M,
    CELL_H_S,
    CELL_IG_M,
    CELL_IG_S,
    CELL_P,
    CELL_ZH,
    lstm_step_int8,
)
from tests.runtime.test_int8_math import mbqm_twin, sigmoid_twin, tanh_of_cell_twin, tanh_twin

FLOAT_ERROR = 0.03  # max |dequantised h - float64 h| on moderate inputs; measured 0.014 (1.8 s_h)


def lstm_step_twin(h, c, x, w, r, bx, bh, mx, sx, mh, sh, cell):
    """INT8.md steps 1-4 on int64 arrays; returns the new (h, c)."""
    H = h.size
    i32 = (-(2**31), 2**31 - 1)
    acc_x = np.clip(w.astype(np.int64) @ x.astype(np.int64) + bx, *i32)
    acc_h = np.clip(r.astype(np.int64) @ h.astype(np.int64) + bh, *i32)
    yx = np.clip(mbqm_twin(acc_x, mx.astype(np.int64), sx.astype(np.int64)), -32768, 32767)
    yh = np.clip(mbqm_twin(acc_h, mh.astype(np.int64), sh.astype(np.int64)), -32768, 32767)
    pre = np.clip(yx + yh, -32768, 32767)
    i, f, o = sigmoid_twin(pre[:H]), sigmoid_twin(pre[H : 2 * H]), sigmoid_twin(pre[3 * H :])
    g = tanh_twin(pre[2 * H : 3 * H])

    def mbqm(v, m, s):
        return mbqm_twin(v, np.full(H, cell[m], np.int64), np.full(H, cell[s], np.int64))

    kept = np.clip(mbqm(f * c.astype(np.int64), CELL_FC_M, CELL_FC_S), -32768, 32767)
    added = np.clip(mbqm(i * g, CELL_IG_M, CELL_IG_S), -32768, 32767)
    c_new = np.clip(kept + added, -32768, 32767)
    tanh_c = tanh_of_cell_twin(c_new, int(cell[CELL_P]))
    h_new = np.clip(mbqm(o * tanh_c, CELL_H_M, CELL_H_S) + cell[CELL_ZH], -128, 127)
    return h_new.astype(np.int8), c_new.astype(np.int16)


def _cell_constants(p, s_h, z_h):
    cell = np.zeros(CELL_FIELDS, dtype=np.int32)
    cell[CELL_FC_M], cell[CELL_FC_S] = quantize_multiplier(2.0**-15)
    cell[CELL_IG_M], cell[CELL_IG_S] = quantize_multiplier(2.0**-30 / 2.0**p)
    cell[CELL_H_M], cell[CELL_H_S] = quantize_multiplier(2.0**-30 / s_h)
    cell[CELL_P], cell[CELL_ZH] = p, z_h
    return cell


def _multipliers(ms):
    qm = [quantize_multiplier(float(m)) for m in ms]
    return np.array([q[0] for q in qm], dtype=np.int32), np.array([q[1] for q in qm], dtype=np.int32)


def _random_problem(rng, I, H):
    """int8 weights and inputs with random per-row multipliers wide enough to saturate every stage."""
    w = rng.integers(-127, 128, (4 * H, I), dtype=np.int8)
    r = rng.integers(-127, 128, (4 * H, H), dtype=np.int8)
    bx = rng.integers(-(2**16), 2**16, 4 * H).astype(np.int32)
    bh = rng.integers(-(2**16), 2**16, 4 * H).astype(np.int32)
    mx, sx = _multipliers(np.exp2(rng.uniform(-12, 0, 4 * H)))
    mh, sh = _multipliers(np.exp2(rng.uniform(-12, 0, 4 * H)))
    cell = _cell_constants(int(rng.integers(-16, -9)), float(np.exp2(rng.uniform(-9, -3))), int(rng.integers(-30, 30)))
    return w, r, bx, bh, mx, sx, mh, sh, cell


def test_lstm_int8_step_matches_numpy_twin_bit_exact_over_5000_saturating_steps():
    rng = np.random.default_rng(0)
    I, H = 7, 12
    saw_c_limit = saw_h_limit = False
    for _ in range(10):
        args = _random_problem(rng, I, H)
        h = rng.integers(-128, 128, H, dtype=np.int8)
        c = rng.integers(-32768, 32768, H, dtype=np.int16)
        gates = np.zeros(4 * H, dtype=np.int16)
        h_ref, c_ref = h.copy(), c.copy()
        for t in range(500):
            x = rng.integers(-128, 128, I, dtype=np.int8)
            lstm_step_int8(h, c, gates, x, *args)
            h_ref, c_ref = lstm_step_twin(h_ref, c_ref, x, *args)
            assert np.array_equal(h, h_ref) and np.array_equal(c, c_ref), (t, h, h_ref, c, c_ref)
            saw_c_limit |= bool(np.any(np.abs(c.astype(np.int64)) >= 32767))
            saw_h_limit |= bool(np.any((h == 127) | (h == -128)))
    assert saw_c_limit and saw_h_limit


def _float_lstm_step(h, c, x, W, R, b):
    gates = W @ x + R @ h + b
    H = h.size
    i, f, o = (1 / (1 + np.exp(-gates[k * H : (k + 1) * H])) for k in (0, 1, 3))
    g = np.tanh(gates[2 * H : 3 * H])
    c = f * c + i * g
    return o * np.tanh(c), c


def test_lstm_int8_follows_a_float_lstm_on_moderate_inputs():
    rng = np.random.default_rng(1)
    I, H, T = 6, 16, 200
    W, R = rng.normal(0, 0.4, (4 * H, I)), rng.normal(0, 0.4, (4 * H, H))
    b = rng.normal(0, 0.3, 4 * H)
    s_x, z_x = 2.0 / 255, -64  # x in [-0.5, 1.5]
    s_h, z_h, p = 2.0 / 255, 0, -12  # h in [-1, 1]; |c| < 8
    s_w = np.abs(W).max(axis=1) / 127
    s_r = np.abs(R).max(axis=1) / 127
    wq = np.round(W / s_w[:, None]).astype(np.int8)
    rq = np.round(R / s_r[:, None]).astype(np.int8)
    bx = (np.round(b / (s_x * s_w)) - z_x * wq.sum(axis=1, dtype=np.int64)).astype(np.int32)
    bh = (-z_h * rq.sum(axis=1, dtype=np.int64)).astype(np.int32)
    mx, sx = _multipliers(s_x * s_w / 2.0**-12)
    mh, sh = _multipliers(s_h * s_r / 2.0**-12)
    cell = _cell_constants(p, s_h, z_h)
    hq, cq, gates = np.full(H, z_h, np.int8), np.zeros(H, np.int16), np.zeros(4 * H, np.int16)
    h, c = np.zeros(H), np.zeros(H)
    err = 0.0
    for _ in range(T):
        x = rng.uniform(-0.5, 1.5, I)
        xq = np.clip(np.round(x / s_x) + z_x, -128, 127).astype(np.int8)
        lstm_step_int8(hq, cq, gates, xq, wq, rq, bx, bh, mx, sx, mh, sh, cell)
        h, c = _float_lstm_step(h, c, x, W, R, b)
        err = max(err, np.abs((hq.astype(np.float64) - z_h) * s_h - h).max())
    print(f"max abs error of dequantised h vs float64 over {T} steps: {err:.4f} (s_h = {s_h:.4f})")
    assert err <= FLOAT_ERROR
