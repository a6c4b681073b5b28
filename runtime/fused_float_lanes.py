"""A float step's gate stage for a layer of few units, 16 streams at a time in the vector lanes (fused_float_step.py
writes it for f32, from a batch of 16 streams).

Not int8w: its step from 16 streams is step_wide (each group of W^T's columns converted once), while run() steps
`layers`; the same lanes code compiled into both came out 1 ulp apart in some GRU layers of 5 units (LLVM optimises
the two functions apart), which would break step() == run() bit for bit. int8w keeps update()'s per-stream code.

Below FEW_ROWS units, fused_float_cells.update forms one stream's gates in passes over its 2H / 4H rows: an LSTM of
5 units takes two 16-lane passes of sigmoids for its 20 gate rows, one of tanh for its 5 cells and scalar loops for
the rest, per stream (lstm5x2-in8-out1 f32 at B = 256 on Zen 4: ~90 of its ~104 ns a stream-step in the gate
stages, the products ~14). Here each gate row's value for 16 streams is copied into one 16-lane vector of the
scratch `ln` (the streams' rows are read where the sums put them, 16 apart in ln), then every exponential and the
state update run as passes over ln, one vector per row for 16 streams, and the new h (and c) are copied back into
each stream's state. The streams past a multiple of 16 take update()'s per-stream code.

Every element is update()'s expression, written the same way and in the same loops (an LSTM's f c + i g, its g as
2 sigmoid(2 x) - 1; the GRU's gh + gx, n from gx_n + r gh_n stored, then the blend), and the step and run() share
this code, so they agree bit for bit. A stream among 16 or more therefore gets the numbers update() gives it alone
to float32 rounding, not always bit for bit: where update()'s loops over a few rows end in scalar code, LLVM fuses
and orders some of the same operations otherwise than in these 16-lane passes (measured: LSTMs of 1-10 units and
GRUs of 1-15, each stream of 37 against the same stream alone over 40 steps: at most 2.4e-7 apart; equal for
LSTMs of 3-10 units and GRUs of 8-15, which keep no scalar loop there).

    ln (16 lanes per row):  LSTM  i f g o (4H), then c, h (2H)
                            GRU   r z (2H), gx_n, gh_n (2H), then h (H)
"""

from __future__ import annotations

from rnnedge.runtime.fused_float_cells import FEW_ROWS
from rnnedge.runtime.fused_float_ext import extensions
from rnnedge.runtime.fused_float_source import Lines, reset_before
from rnnedge.runtime.layout import CELL_GRU, CELL_LSTM, L_CELL, L_HIDDEN, L_OFF_C, L_OFF_H
from rnnedge.runtime.vnni import LANES

LANE_STREAMS = LANES  # streams per pass: one float32 lane each of a 16-lane vector
# the units for which a layer's gates go in the lanes, per cell (Zen 4, f32 at B = 256, ns a stream-step, per-stream
# passes -> lanes: lstm3 42-48 -> 25, lstm5x2 104-105 -> 64, lstm8 60-61 -> 52, lstm10 76 -> 66-75, lstm12 79-85
# -> 78-90 (its 48 gate rows fill three 16-lane passes a stream); gru3 44 -> 20, gru5x2 100 -> 42, gru8x2 125-132
# -> 69-80, gru10 75 -> 46, gru12 61 -> 59; a plain RNN's one pass of tanh per stream is already cheaper:
# rnn_relu4x2 17 -> 21)
LANES_UNITS = {CELL_LSTM: range(1, 11), CELL_GRU: range(1, FEW_ROWS)}


def in_lanes(row, ext) -> bool:
    """Whether the step forms this layer's gates with streams in the lanes: an LSTM or GRU of few units
    (LANES_UNITS), no extension, not a GRU with linear_before_reset false (those keep update()'s per-stream code)."""
    return ext is None and int(row[L_HIDDEN]) in LANES_UNITS.get(int(row[L_CELL]), ()) and not reset_before(row)


def lane_rows(row) -> int:
    """Rows of ln one layer uses (module docstring), each LANE_STREAMS floats."""
    cell, H = int(row[L_CELL]), int(row[L_HIDDEN])
    return 6 * H if cell == CELL_LSTM else 5 * H


def lanes_info() -> str:
    """kernel_info's words for a step that has such a layer."""
    lstm, gru = LANES_UNITS[CELL_LSTM], LANES_UNITS[CELL_GRU]
    return (f"from {LANE_STREAMS} streams, the gates of an LSTM of {lstm.start}-{lstm.stop - 1} units or a GRU of "
            f"{gru.start}-{gru.stop - 1}, {LANE_STREAMS} streams at a time in the vector lanes")


def lanes_scratch(lay, rows) -> int:
    """Floats of ln the step of the layout's layers (rows) needs (shared by every stream; 0 without such a layer),
    from a cache line (+ 15)."""
    used = [lane_rows(row) for row in rows if in_lanes(row, extensions(lay.blob, row))]
    return LANE_STREAMS * max(used) + 15 if used else 0


def update_lanes(out: Lines, row, gx, gh, sums: int, S: int) -> None:
    """The layer's gates and state update for streams 0 .. b1 - 1 (b1 = B - B % 16), 16 at a time; gx(off) /
    gh(off) as update()'s: gate row off + j of the stream whose sums `av` views. Leaves b1 for the per-stream loop
    that follows (the streams from b1 on)."""
    cell, H = int(row[L_CELL]), int(row[L_HIDDEN])
    h, c, L = int(row[L_OFF_H]), int(row[L_OFF_C]), LANE_STREAMS
    out(f"b1 = B - B % {L}  # streams in the lanes (fused_float_lanes.py), then the rest one at a time",
        f"for b0 in range(0, b1, {L}):")
    out.depth += 1

    def copy_in(rows: int, first: int, value) -> None:  # ln row first + j, lane l <- value (of j, stream b0 + l)
        out(f"for l in range({L}):",
            f"    av = buf[A + (b0 + l) * {sums}:]",
            f"    for j in range({rows}):",
            f"        ln[({first} + j) * {L} + l] = {value}")

    def state(at: int, first: int, back: bool) -> None:  # state row at + j <-> ln row first + j, for H rows
        out(f"for l in range({L}):",
            f"    st = buf[S0 + (b0 + l) * {S}:]",
            f"    for j in range({H}):",
            f"        st[{at} + j] = ln[({first} + j) * {L} + l]" if back else
            f"        ln[({first} + j) * {L} + l] = st[{at} + j]")

    if cell == CELL_LSTM:  # gate order i f g o, g as 2 sigmoid(2 x) - 1 (update()'s pass)
        copy_in(4 * H, 0, f"{gx(0)} + {gh(0)}")
        out(f"for i in range({4 * H * L}):",
            f"    k_ = TWO if {2 * H * L} <= i < {3 * H * L} else ONE",
            "    ln[i] = k_ * (ONE / (ONE + exp_f32(-(k_ * ln[i])))) - (k_ - ONE)")
        state(c, 4 * H, False)
        out(f"for i in range({H * L}):",
            f"    c_ = ln[{H * L} + i] * ln[{4 * H * L} + i] + ln[i] * ln[{2 * H * L} + i]",
            f"    ln[{4 * H * L} + i] = c_",
            "    t_ = TWO / (ONE + exp_f32(-TWO * c_)) - ONE",
            f"    ln[{5 * H * L} + i] = ln[{3 * H * L} + i] * t_")
        out(f"for l in range({L}):",  # the new c and h back into each stream's state
            f"    st = buf[S0 + (b0 + l) * {S}:]",
            f"    for j in range({H}):",
            f"        st[{c} + j] = ln[({4 * H} + j) * {L} + l]",
            f"        st[{h} + j] = ln[({5 * H} + j) * {L} + l]")
    else:  # a GRU, gate order r z n
        copy_in(2 * H, 0, f"{gh(0)} + {gx(0)}")
        copy_in(H, 2 * H, gx(2 * H))
        copy_in(H, 3 * H, gh(2 * H))
        out(f"for i in range({2 * H * L}):",
            "    ln[i] = ONE / (ONE + exp_f32(-(ln[i])))")
        state(h, 4 * H, False)
        out(f"for i in range({H * L}):",  # n into gh_n's rows, then the blend: update()'s two loops
            f"    ln[{3 * H * L} + i] = TWO / (ONE + exp_f32(-TWO * (ln[{2 * H * L} + i] + ln[i] * ln[{3 * H * L} + i])))"
            " - ONE",
            f"for i in range({H * L}):",
            f"    z_ = ln[{H * L} + i]",
            f"    ln[{4 * H * L} + i] = (ONE - z_) * ln[{3 * H * L} + i] + z_ * ln[{4 * H * L} + i]")
        state(h, 4 * H, True)
    out.depth -= 1
