"""int8 kernels: integer-only LSTM step in TFLite Micro's order (/work/shared/INT8.md, steps 1-4).

Primitives and their rounding: runtime/int8_math.py. Gates in PyTorch's order (i f g o), as kernels_f32.
Weights are int8 rows, W (4H, I) and R (4H, H), zero point 0; each row has its own requantisation
constants (M, S) (per gate is the special case of equal rows). Zero points are folded into int32 biases on
the host: bx = b - z_x * rowsum(W) (b in scale s_x * s_W), bh = -z_h * rowsum(R). Dot products accumulate in
int64 and saturate to int32 before requantisation (TFLM's int32 accumulator, where it does not overflow).

Cell constants, an int32 array `cell` indexed by the CELL_* names below:
  (M, S) of 2^-15 (f * c -> c's scale), of 2^-30 / s_c (i * g -> c's scale), of 2^-30 / s_h (o * tanh(c) -> h),
  p with s_c = 2^p, and the hidden zero point z_h.
"""

import numpy as np

from runtime.int8_math import (
    clamp_int8,
    multiply_by_quantized_multiplier,
    sat16,
    saturate_int32,
    sigmoid_q15,
    tanh_of_cell_q15,
    tanh_q15,
)
from runtime.jit import kernel

CELL_FC_M, CELL_FC_S, CELL_IG_M, CELL_IG_S, CELL_H_M, CELL_H_S, CELL_P, CELL_ZH = range(8)
CELL_FIELDS = 8


@kernel
def gate_int8(acc_x, acc_h, mx, sx, mh, sh):
    """Step 1 for one gate row: Q3.12 pre = sat16(sat16(MBQM(acc_x)) + sat16(MBQM(acc_h))), int64 -> int16."""
    yx = sat16(multiply_by_quantized_multiplier(saturate_int32(acc_x), mx, sx))
    yh = sat16(multiply_by_quantized_multiplier(saturate_int32(acc_h), mh, sh))
    return sat16(np.int64(yx) + np.int64(yh))


@kernel
def lstm_step_int8(h, c, gates, x, w, r, bx, bh, mx, sx, mh, sh, cell):
    """One integer LSTM step: gates = act(requant(W x + bx) + requant(R h + bh)); c = f c + i g; h = o tanh(c).

    h (H,) int8 hidden, in/out; c (H,) int16 cell in scale 2^p, in/out; gates (4H,) int16 scratch (Q0.15
    gate outputs); x (I,) int8; w (4H, I), r (4H, H) int8; bx, bh (4H,) int32 folded biases; mx, sx, mh, sh
    (4H,) int32 per-row (M, S) of s_x s_W / 2^-12 and s_h s_R / 2^-12; cell (CELL_FIELDS,) int32.
    """
    H = h.shape[0]
    for g in range(4 * H):
        acc_x = np.int64(bx[g])
        for k in range(x.shape[0]):
            acc_x += np.int64(w[g, k]) * np.int64(x[k])
        acc_h = np.int64(bh[g])
        for k in range(H):
            acc_h += np.int64(r[g, k]) * np.int64(h[k])
        pre = gate_int8(acc_x, acc_h, mx[g], sx[g], mh[g], sh[g])
        gates[g] = tanh_q15(pre) if 2 * H <= g < 3 * H else sigmoid_q15(pre)
    for j in range(H):
        i = np.int64(gates[j])
        f = np.int64(gates[H + j])
        g = np.int64(gates[2 * H + j])
        o = np.int64(gates[3 * H + j])
        kept = sat16(multiply_by_quantized_multiplier(f * np.int64(c[j]), cell[CELL_FC_M], cell[CELL_FC_S]))
        added = sat16(multiply_by_quantized_multiplier(i * g, cell[CELL_IG_M], cell[CELL_IG_S]))
        c[j] = sat16(np.int64(kept) + np.int64(added))
        tanh_c = np.int64(tanh_of_cell_q15(c[j], cell[CELL_P]))
        hq = multiply_by_quantized_multiplier(o * tanh_c, cell[CELL_H_M], cell[CELL_H_S])
        h[j] = clamp_int8(np.int64(hq) + np.int64(cell[CELL_ZH]))
