"""The int8 step compiled for one loaded model: numba source written with the model's sizes, offsets, cells and
head as literals (runtime/specialize.py), integers identical to runtime/kernels_int8.py's generic step.

    step = generate(model)         # a fused.Specialised, or None: a model part this step does not cover
    step.kernel(y, buf, x, blob)   # the generic kernel's call and buffers: buf = [logits | state | scratch]

What it covers: dense or token input, stacked forward layers of rnn_tanh, rnn_relu, lstm and gru (PyTorch's
cells; initial_state too, which only changes where a stream starts), and a linear head with any activation.
Anything else (the ONNX step extensions: clip, input_forget, peepholes, linear_before_reset false, other
activation functions; bidirectional or reverse layers) returns None and the generic kernels
run the model. A head's hidden dense layers (spec head.hidden) run as kernels_int8.dense_int8 does: the mat-vec,
sat16(MBQM) per row, then the layer's activation.

How it differs from the generic kernel (the integers do not):

- One int32 array, `blob`, holds every constant, each piece at a 64-byte boundary: the weight matrices as int8
  bytes in the chosen mat-vec's layout, biases and the requantisation rows as int32 (each row's M, and either its
  shift S or, where no row shifts left, e = -S with its rounding halves: fused_int8_math.rounding_rows), the input
  normalisation and the head's scales as float32 bits, and the sigmoid table as pairs (fused_int8_math). A step
  passes four arrays (y, buf, x, blob) and reads everything at literal offsets: no tables, no views in the loops
  (one view of the scratch and one of the stream's state per stream, so every index is provably >= 0 and numba's
  negative-index wrap folds away).
- Each gate's rows are padded to HP = H rounded up to 16 (zero weights, bias and multipliers), so every mat-vec
  writes whole 16-lane blocks and gate k of unit j sits at row k HP + j.
- Mat-vecs: on AVX512-VNNI (`vnni.matvec_vnni_at`, `vpdpwssd`, weights in pack_vnni's layout), else the
  portable path, plain loops over W^T (K, GP) that LLVM vectorises with this CPU's instructions. The path is
  chosen when the step is generated (RNNEDGE_VNNI=0 forces the portable one); kernel_info names it. int32 sums
  are exact in any order (the export's bound), so both paths give the generic kernel's integers.
- The gate stage runs in passes that each store to one array, so LLVM vectorises them: the pre-activations of
  all gate rows (two requantised terms in int64 lanes, added exactly and saturated once, docs/int8.md), the
  sigmoid / tanh rows as vector IR with one gather per 16 lanes (fused_int8_simd), then the cell update and the
  GRU blend in int32 lanes (fused_int8_math).
- Every stream's input is quantised (and checked) into the scratch in one branch-free pass before any state
  changes: a refused step (BAD_VALUE, BAD_TOKEN) leaves the state as the generic kernel does.

Batches: every stream runs the same code one after another, B read from x, so any B runs without recompiling.
"""

from __future__ import annotations

import os

import numpy as np

from rnnedge.runtime import specialize, vnni
from rnnedge.runtime.fused import GENERATORS, Specialised
from rnnedge.runtime.fused_int8_math import pair_table, rounding_rows
from rnnedge.runtime.layout import (
    ACT_NONE,
    CELL_GRU,
    CELL_LSTM,
    CELL_RNN_RELU,
    CELL_RNN_TANH,
    D_ACTIVATION,
    D_N_IN,
    D_OFF_B,
    D_OFF_S,
    D_OFF_W,
    D_UNITS,
    F_REVERSE,
    F_STEP,
    HID_GELU,
    HID_GELU_TANH,
    HID_RELU,
    HID_SIGMOID,
    HID_TANH,
    L_CELL,
    L_FLAGS,
    L_HIDDEN,
    L_LEFT_SHIFT,
    L_N_IN,
    L_OFF_BHH,
    L_OFF_BIH,
    L_OFF_C,
    L_OFF_H,
    L_OFF_SIH,
    L_OFF_WHH,
    L_OFF_WIH,
    L_PARAM,
    M_ACTIVATION,
    M_HEAD_IN,
    M_N_IN,
    M_OFF_HEAD_B,
    M_OFF_HEAD_S,
    M_OFF_HEAD_W,
    M_OFF_IN_A,
    M_OFF_IN_B,
    M_OFF_IN_S,
    M_OUT,
    M_STATE,
    M_VOCAB,
)

LANES = 16
ALIGN = 64  # bytes: every blob piece starts on a cache line
GATES = {CELL_RNN_TANH: 1, CELL_RNN_RELU: 1, CELL_LSTM: 4, CELL_GRU: 3}


def _up(n: int, to: int = LANES) -> int:
    return -(-n // to) * to


def portable_forced() -> bool:
    return os.environ.get("RNNEDGE_VNNI", "1") == "0"


def uncovered(model) -> str | None:
    """What of `model` this step does not cover (the generic kernels run it), or None."""
    lay = model.layout
    for l, layer in enumerate(model.spec["layers"]):
        if layer["bidirectional"] or lay.layers[2 * l][L_FLAGS] & (F_STEP | F_REVERSE):
            return f"layer {l} has a bidirectional, reverse or ONNX step extension"
    return None


class _Blob:
    """The step's one int32 array, built piece by piece, each piece 64-byte aligned (offsets in its own units)."""

    def __init__(self):
        self.pieces: list[tuple[int, bytes]] = []
        self.size = 0  # bytes

    def _put(self, data: bytes) -> int:
        start = _up(self.size, ALIGN)
        self.pieces.append((start, data))
        self.size = start + len(data)
        return start

    def int8(self, arr: np.ndarray) -> int:
        """Byte offset of int8 data (read through blob.view(np.int8))."""
        return self._put(np.ascontiguousarray(arr, dtype=np.int8).tobytes())

    def int32(self, arr: np.ndarray) -> int:
        return self._put(np.ascontiguousarray(arr, dtype=np.int32).tobytes()) // 4

    def float32(self, arr: np.ndarray) -> int:
        return self._put(np.ascontiguousarray(arr, dtype=np.float32).tobytes()) // 4

    def finish(self) -> np.ndarray:
        """The int32 array, its data 64-byte aligned (read-only)."""
        n = _up(max(self.size, 4), ALIGN) // 4
        raw = np.zeros(n + ALIGN // 4, dtype=np.int32)
        skip = (-raw.ctypes.data % ALIGN) // 4
        blob = raw[skip : skip + n]
        as_bytes = blob.view(np.uint8)
        for start, data in self.pieces:
            as_bytes[start : start + len(data)] = np.frombuffer(data, dtype=np.uint8)
        blob.flags.writeable = False
        return blob


def _pad_gates(a: np.ndarray, gates: int, H: int, HP: int) -> np.ndarray:
    """a (..., gates H) -> (..., gates HP): gate k's rows at k HP .. k HP + H - 1, zeros between."""
    out = np.zeros((*a.shape[:-1], gates * HP), dtype=a.dtype)
    for k in range(gates):
        out[..., k * HP : k * HP + H] = a[..., k * H : (k + 1) * H]
    return out


class _Source:
    """The generated module's text: literal offsets, the mat-vec path's code."""

    def __init__(self, portable: bool):
        self.portable = portable
        self.lines: list[str] = []

    def add(self, indent: int, text: str) -> None:
        self.lines.extend(" " * (4 * indent) + line if line else "" for line in text.strip("\n").split("\n"))

    def matvec(self, indent: int, dst: int, w: int, bias: int, v: tuple[str, int | str], K: int, N: int) -> None:
        """s[dst : dst + N] = blob[bias : bias + N] + W^T v (N a multiple of 16); v = (array, offset), the
        scratch s or the stream's state st. Portable: four input rows per pass over the outputs, as
        kernels_int8.gemv_t_int8 (int32 sums, exact in any order)."""
        if not self.portable:
            self.add(indent, f"matvec_vnni_at(s, {dst}, w8, {w}, blob, {bias}, {v[0]}, {v[1]}, {K}, {N // LANES})")
            return
        rows = "\n".join(f"    v{i} = np.int32({v[0]}[{v[1]} + k + {i}])" for i in range(4))
        terms = " + ".join(f"np.int32(w8[{w} + (k + {i}) * {N} + n]) * v{i}" for i in range(4))
        self.add(indent, f"""
for n in range({N}):
    s[{dst} + n] = blob[{bias} + n]
for k in range(0, {K - K % 4}, 4):
{rows}
    for n in range({N}):
        s[{dst} + n] += np.int32({terms})
for k in range({K - K % 4}, {K}):
    v0 = np.int32({v[0]}[{v[1]} + k])
    for n in range({N}):
        s[{dst} + n] += np.int32(np.int32(w8[{w} + k * {N} + n]) * v0)""")


def _pack(blob: _Blob, w_t: np.ndarray, portable: bool) -> int:
    """Byte offset of W^T (K, N) int8 in the mat-vec's layout: as is (portable) or pack_vnni's blocks."""
    return blob.int8(w_t if portable else vnni.pack_vnni(np.ascontiguousarray(w_t)))


def generate(model, path: str | None = None) -> Specialised | None:
    """The model's specialised int8 step (module docstring), or None for a model part it does not cover.
    path: "avx512_vnni" or "portable"; by default VNNI where this CPU has it and RNNEDGE_VNNI is not 0."""
    if uncovered(model) is not None:
        return None
    if path is None:
        path = "portable" if portable_forced() or vnni.KERNEL != "avx512_vnni" else "avx512_vnni"
    if path not in ("avx512_vnni", "portable"):
        raise ValueError(f"int8 mat-vec path {path!r} is not one of 'avx512_vnni', 'portable'")
    if path == "avx512_vnni" and not vnni.has_avx512_vnni():
        raise ValueError("int8 mat-vec path 'avx512_vnni' asked for, but this CPU has no AVX512-VNNI")
    portable = path == "portable"
    lay, m = model.layout, model.layout.model
    blob, src = _Blob(), _Source(portable)
    OUT, STATE, n_in = int(m[M_OUT]), int(m[M_STATE]), int(m[M_N_IN])
    table = blob.int32(pair_table())

    # scratch: [ax (GP) | ah (GP) | head accumulators (OP) | every stream's quantised input (B x NP)]: the input
    # of all B streams is formed (and checked) before any state changes, the rest serves one stream at a time
    gp_max = max(GATES[int(row[L_CELL])] * _up(int(row[L_HIDDEN])) for row in lay.layers[::2])
    AX, NP = 0, _up(n_in)
    AH = AX + gp_max
    HD = AH + gp_max
    OP = _up(OUT)
    hidden = []  # where each hidden head layer's output sits (padded to 16 rows), after the head's accumulators
    for row in lay.dense:
        hidden.append(HD + OP + sum(_up(int(r[D_UNITS])) for r in lay.dense[: len(hidden)]))
    XQ = HD + OP + sum(_up(int(r[D_UNITS])) for r in lay.dense)

    src.add(0, """
import numpy as np
from numba import njit

from rnnedge.runtime.fused_int8_math import mbqm_right, rdbpot32, sat16_32
from rnnedge.runtime.fused_int8_simd import gate_sums_rows_at, sigmoid_rows_at, tanh_rows_at
from rnnedge.runtime.int8_math import (multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_right,
                                       gelu_q12, rounding_divide_by_pot, sat16)
from rnnedge.runtime.kernels_f32 import activate_head_f32
from rnnedge.runtime.vnni import matvec_vnni_at


@njit(cache=True, nogil=True, error_model="numpy")
def step(y, buf, x, blob):
    B = x.shape[0]
    w8 = blob.view(np.int8)
    fl = blob.view(np.float32)""")
    if model.dense:
        mean = blob.float32(lay.blob[int(m[M_OFF_IN_A]) : int(m[M_OFF_IN_A]) + n_in])
        std = blob.float32(lay.blob[int(m[M_OFF_IN_B]) : int(m[M_OFF_IN_B]) + n_in])
        scale = blob.float32(lay.blob[int(m[M_OFF_IN_S]) : int(m[M_OFF_IN_S]) + 1])
        src.add(1, f"""
s = buf[B * {OUT + STATE} :]
finite = True
for b in range(B):
    for k in range({n_in}):
        v = (x[b, k] - fl[{mean} + k]) / fl[{std} + k]
        ok = np.isfinite(v)
        finite &= ok
        q = np.rint(v / fl[{scale}]) if ok else np.float32(0)
        s[{XQ} + b * {NP} + k] = np.int32(min(max(q, np.float32(-32767)), np.float32(32767)))
if not finite:
    return 1
for b in range(B):
    st = buf[B * {OUT} + b * {STATE} : B * {OUT} + (b + 1) * {STATE}]""")
    else:
        vocab = int(m[M_VOCAB])
        emb = blob.int8(lay.qblob[int(m[M_OFF_IN_A]) : int(m[M_OFF_IN_A]) + vocab * n_in])
        src.add(1, f"""
for b in range(B):
    if x[b] < 0 or x[b] >= {vocab}:
        return 2
s = buf[B * {OUT + STATE} :]
for b in range(B):
    st = buf[B * {OUT} + b * {STATE} : B * {OUT} + (b + 1) * {STATE}]
    row = w8[{emb} + x[b] * {n_in} : {emb} + (x[b] + 1) * {n_in}]
    for k in range({n_in}):
        s[{XQ} + b * {NP} + k] = np.int32(row[k])""")

    v, K = ("s", f"{XQ} + b * {NP}"), n_in
    for row in lay.layers[::2]:
        v, K = _layer(src, blob, lay, row, v, K, AX, AH, table, portable)
    for row, out in zip(lay.dense, hidden):
        v, K = _hidden(src, blob, lay, row, v, K, out, table, portable)

    head_in = int(m[M_HEAD_IN])
    w = lay.qblob[int(m[M_OFF_HEAD_W]) : int(m[M_OFF_HEAD_W]) + OUT * head_in].reshape(OUT, head_in)
    w_t = np.zeros((head_in, OP), dtype=np.int8)
    w_t[:, :OUT] = w.T
    bias = np.zeros(OP, dtype=np.int32)
    bias[:OUT] = lay.iblob[int(m[M_OFF_HEAD_B]) : int(m[M_OFF_HEAD_B]) + OUT]
    head_w, head_b = _pack(blob, w_t, portable), blob.int32(bias)
    head_s = blob.float32(lay.blob[int(m[M_OFF_HEAD_S]) : int(m[M_OFF_HEAD_S]) + OUT])
    src.matvec(2, HD, head_w, head_b, v, K, OP)
    src.add(2, f"""
for o in range({OUT}):
    a = s[{HD} + o]
    buf[b * {OUT} + o] = a
    y[b, o] = np.float32(a) * fl[{head_s} + o]""")
    if int(m[M_ACTIVATION]) != ACT_NONE:
        src.add(2, f"activate_head_f32(y[b], {int(m[M_ACTIVATION])})")
    src.add(1, "return 0")

    text, stem = "\n".join(src.lines) + "\n", f"int8_{'portable' if portable else 'vnni'}"
    module = specialize.load_source(stem, text)
    weights = blob.finish()
    return Specialised(kernel=module.step, weights=(weights,), scratch=lambda batch: XQ + batch * NP,
                       info={"path": path, "source": str(specialize.source_path(stem, text)),
                             "blob_bytes": int(weights.nbytes)})


def _layer(src: _Source, blob: _Blob, lay, row, v: tuple[str, int | str], K: int, AX: int, AH: int, table: int,
           portable: bool) -> tuple[tuple[str, int], int]:
    """One forward layer's step into the source; returns where its h sits (the next layer's input) and H."""
    cell, H = int(row[L_CELL]), int(row[L_HIDDEN])
    gates, HP = GATES[cell], _up(H)
    G, GP = gates * H, gates * HP
    n_in = int(row[L_N_IN])
    assert n_in == K

    def matrix(off: int, rows: int) -> np.ndarray:
        return _pad_gates(lay.qblob[off : off + rows * G].reshape(rows, G), gates, H, HP)

    def ivec(off: int, n: int) -> np.ndarray:
        return lay.iblob[off : off + n]

    w_ih = _pack(blob, matrix(int(row[L_OFF_WIH]), K), portable)
    w_hh = _pack(blob, matrix(int(row[L_OFF_WHH]), H), portable)
    b_x = blob.int32(_pad_gates(ivec(int(row[L_OFF_BIH]), G), gates, H, HP))
    b_h = blob.int32(_pad_gates(ivec(int(row[L_OFF_BHH]), G), gates, H, HP))
    rq = _pad_gates(ivec(int(row[L_OFF_SIH]), 4 * G).reshape(4, G), gates, H, HP)
    # the requantisation: int8_math's general MBQM where a row shifts left (as the generic kernel chooses), else
    # mbqm_right with each row's rounding constants in the blob (shifts in [-31, 0], multipliers >= 0: the
    # artifact's range)
    right = not row[L_LEFT_SHIFT] and rq[[0, 2]].min() >= 0 and rq[[1, 3]].min() >= -31
    sides = {}
    for side, (M, S) in (("x", (rq[0], rq[1])), ("h", (rq[2], rq[3]))):
        sides[side] = [blob.int32(M)] + [blob.int32(a) for a in (rounding_rows(S) if right else (S,))]
    fn = "mbqm_right" if right else ("multiply_by_quantized_multiplier" if row[L_LEFT_SHIFT]
                                     else "multiply_by_quantized_multiplier_right")
    h, c = int(row[L_OFF_H]), int(row[L_OFF_C])
    src.matvec(2, AX, w_ih, b_x, v, K, GP)
    src.matvec(2, AH, w_hh, b_h, ("st", h), H, GP)

    def term(side: str, first: int = 0) -> str:
        """One requantised term (int64) of row `first` + j."""
        acc = AX if side == "x" else AH
        constants = ", ".join(f"blob[{off + first} + j]" for off in sides[side])
        return f"np.int64({fn}(s[{acc + first} + j], {constants}))"

    def pre(rows: int) -> None:
        """Rows 0 .. rows-1 of ax in place: sat16(yx + yh); 16 lanes of vector IR (fused_int8_simd) where the
        rounding constants are rows, else one loop storing to the scratch alone (LLVM vectorises it)."""
        if right:
            src.add(2, f"gate_sums_rows_at(s, {AX}, {AH}, {rows}, blob, {', '.join(map(str, sides['x'] + sides['h']))})")
            return
        src.add(2, f"for j in range({rows}):")
        src.add(3, f"s[{AX} + j] = np.int32(sat16({term('x')} + {term('h')}))")

    def act(fn: str, first: int, rows: int) -> None:
        src.add(2, f"{fn}_rows_at(s, {AX + first}, {rows}, blob, {table})")

    if cell in (CELL_RNN_TANH, CELL_RNN_RELU):
        pre(HP)
        if cell == CELL_RNN_TANH:
            act("tanh", 0, HP)
        value = f"max(s[{AX} + j], np.int32(0))" if cell == CELL_RNN_RELU else f"s[{AX} + j]"
        src.add(2, f"""
for j in range({H}):
    st[{h} + j] = {value}""")
    elif cell == CELL_LSTM:
        pre(4 * HP)
        act("sigmoid", 0, 2 * HP)
        act("tanh", 2 * HP, HP)
        act("sigmoid", 3 * HP, HP)
        p = int(row[L_PARAM])
        e = p + 12  # the cell's scale 2^p to Q3.12 (int8_math.tanh_of_cell_q15)
        cell_q = (f"sat16_32(cn << np.int32({e}))" if e > 0 else "cn" if e == 0 else f"rdbpot32(cn, {-e})")
        # ah is free once the gates are formed: it holds the new c in Q3.12, then its tanh
        src.add(2, f"""
for j in range({H}):
    kept = sat16_32(rdbpot32(np.int32(s[{AX + HP} + j] * np.int32(st[{c} + j])), 15))
    added = sat16_32(rdbpot32(np.int32(s[{AX} + j] * s[{AX + 2 * HP} + j]), {30 + p}))
    cn = sat16_32(kept + added)
    st[{c} + j] = cn
    s[{AH} + j] = {cell_q}
tanh_rows_at(s, {AH}, {HP}, blob, {table})
for j in range({H}):
    st[{h} + j] = sat16_32(rdbpot32(np.int32(s[{AX + 3 * HP} + j] * s[{AH} + j]), 15))""")
    else:
        pre(2 * HP)
        act("sigmoid", 0, 2 * HP)
        n_pre = (f"sat16({term('x', 2 * HP)} + np.int64(rounding_divide_by_pot(np.int64(s[{AX} + j]) * "
                 f"{term('h', 2 * HP)}, 15)))")
        src.add(2, f"""
for j in range({HP}):
    s[{AX + 2 * HP} + j] = np.int32({n_pre})""")
        act("tanh", 2 * HP, HP)
        src.add(2, f"""
for j in range({H}):
    z = s[{AX + HP} + j]
    st[{h} + j] = sat16_32(rdbpot32(np.int32(np.int32((32768 - z) * s[{AX + 2 * HP} + j])
                                    + np.int32(z * np.int32(st[{h} + j]))), 15))""")
    return ("st", h), H



def _hidden(src: _Source, blob: _Blob, lay, row, v: tuple[str, int | str], K: int, out: int, table: int,
            portable: bool) -> tuple[tuple[str, int], int]:
    """One hidden head layer into the source (kernels_int8.dense_int8's integers): s[out : out + U] = act(sat16(
    MBQM(b + W v))) per row; returns where its output sits and U."""
    U, n_in, activation = int(row[D_UNITS]), int(row[D_N_IN]), int(row[D_ACTIVATION])
    assert n_in == K
    UP = _up(U)

    def padded(values: np.ndarray, dtype) -> np.ndarray:
        rows = np.zeros((*values.shape[:-1], UP), dtype=dtype)
        rows[..., :U] = values
        return rows

    w = lay.qblob[int(row[D_OFF_W]) : int(row[D_OFF_W]) + U * n_in].reshape(U, n_in)
    rq = lay.iblob[int(row[D_OFF_S]) : int(row[D_OFF_S]) + 2 * U]
    M, S = blob.int32(padded(rq[:U], np.int32)), blob.int32(padded(rq[U:], np.int32))
    bias = blob.int32(padded(lay.iblob[int(row[D_OFF_B]) : int(row[D_OFF_B]) + U], np.int32))
    src.matvec(2, out, _pack(blob, padded(w.T, np.int8), portable), bias, v, K, UP)
    q = f"np.int32(sat16(multiply_by_quantized_multiplier(s[{out} + j], blob[{M} + j], blob[{S} + j])))"
    value = {HID_RELU: f"max({q}, np.int32(0))", HID_GELU: f"np.int32(gelu_q12({q}))",
             HID_GELU_TANH: f"np.int32(gelu_q12({q}))"}.get(activation, q)
    src.add(2, f"""
for j in range({UP}):
    s[{out} + j] = {value}""")
    if activation in (HID_TANH, HID_SIGMOID):
        src.add(2, f"{'tanh' if activation == HID_TANH else 'sigmoid'}_rows_at(s, {out}, {UP}, blob, {table})")
    return ("s", out), U


GENERATORS["int8"] = generate
