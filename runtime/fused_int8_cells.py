"""A specialised int8 step's pieces (runtime/fused_int8.py), written into its generated source: the blob that
holds every constant, the source text, each recurrent layer's constants and gate stage, the head's hidden dense
layers. The step (fused_int8.py) and the whole-sequence run (fused_int8_seq.py) emit the same stages from the same
constants, so their integers are the same by construction.

    blob = Blob(); src = Source(path)          # path: vnni.best_path()'s names
    k = layer_constants(blob, lay, row, path)    # packed weights, biases, requantisation rows of one layer
    src.matvec(...); gates(src, k, indent, AX, AH, "st", h, c, table)   # one step of that layer
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnedge.runtime import layout as L
from rnnedge.runtime import vnni, vnni_quad
from rnnedge.runtime.fused_int8_math import rounding_rows
from rnnedge.runtime.vnni import LANES

ALIGN = 64  # bytes: every blob piece starts on a cache line
GATES = {L.CELL_RNN_TANH: 1, L.CELL_RNN_RELU: 1, L.CELL_LSTM: 4, L.CELL_GRU: 3}


def up(n: int, to: int = LANES) -> int:
    return -(-n // to) * to


class Blob:
    """The step's one int32 array, built piece by piece, each piece 64-byte aligned (offsets in its own units)."""

    def __init__(self):
        self.pieces: list[tuple[int, bytes]] = []
        self.size = 0  # bytes

    def _put(self, data: bytes) -> int:
        start = up(self.size, ALIGN)
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
        n = up(max(self.size, 4), ALIGN) // 4
        raw = np.zeros(n + ALIGN // 4, dtype=np.int32)
        skip = (-raw.ctypes.data % ALIGN) // 4
        blob = raw[skip : skip + n]
        as_bytes = blob.view(np.uint8)
        for start, data in self.pieces:
            as_bytes[start : start + len(data)] = np.frombuffer(data, dtype=np.uint8)
        blob.flags.writeable = False
        return blob


class Source:
    """The generated module's text: literal offsets, the mat-vec path's code."""

    def __init__(self, path: str):
        self.portable = path == "portable"  # plain loops; else the blocked mat-vecs of vnni.py / vnni_quad.py
        self.isa = "avx2" if path == "avx2" else "quad"  # their instructions (vnni.matvec_avx2_at, vnni_quad's)
        self.lines: list[str] = []

    def add(self, indent: int, text: str) -> None:
        pad = " " * (4 * indent)
        self.lines.extend(pad + line if line else "" for line in text.strip("\n").split("\n"))

    def matvec(self, indent: int, dst: int | str, w: int, bias: int, v: tuple[str, int | str], K: int, N: int,
               out: str = "s") -> None:
        """out[dst : dst + N] = blob[bias : bias + N] + W^T v (N a multiple of 16); v = (array, offset), the
        scratch s or the stream's state st. Portable: four input rows per pass over the outputs, as
        kernels_int8.gemv_t_int8 (int32 sums, exact in any order)."""
        if not self.portable:
            self.add(indent, f"matvec_{self.isa}_at({out}, {dst}, w8, {w}, blob, {bias}, {v[0]}, {v[1]}, {K}, {N // LANES})")
            return
        rows = "\n".join(f"    v{i} = np.int32({v[0]}[{v[1]} + k + {i}])" for i in range(4))
        terms = " + ".join(f"np.int32(w8[{w} + (k + {i}) * {N} + n]) * v{i}" for i in range(4))
        self.add(indent, f"""
for n in range({N}):
    {out}[{dst} + n] = blob[{bias} + n]
for k in range(0, {K - K % 4}, 4):
{rows}
    for n in range({N}):
        {out}[{dst} + n] += np.int32({terms})
for k in range({K - K % 4}, {K}):
    v0 = np.int32({v[0]}[{v[1]} + k])
    for n in range({N}):
        {out}[{dst} + n] += np.int32(np.int32(w8[{w} + k * {N} + n]) * v0)""")

    def matmat(self, indent: int, out: str, dst: int | str, dst_stride: int, w: int, bias: int, v: str,
               v_off: int | str, v_stride: int, K: int, N: int, rows: str) -> None:
        """matvec for `rows` rows: out[dst + r dst_stride ...] from v[v_off + r v_stride ...], r < rows; on VNNI
        and AVX2 each weight load serves four rows (vnni_quad.matmat_quad_at, vnni.matmat_avx2_at)."""
        if not self.portable:
            self.add(indent, f"matmat_{self.isa}_at({out}, {dst}, {dst_stride}, w8, {w}, blob, {bias}, {v}, {v_off}, "
                             f"{v_stride}, {K}, {N // LANES}, {rows})")
            return
        self.add(indent, f"for r in range({rows}):")
        self.matvec(indent + 1, f"{dst} + r * {dst_stride}", w, bias, (v, f"{v_off} + r * {v_stride}"), K, N, out)


def quantise_input(mean: int, std: int, scale: int, x: str, dst: str) -> str:
    """The body of a loop over k quantising one dense input value x (its feature k) into dst, the same text in the
    step and in run() (fused_int8_seq), so the same integers: v = (x - mean_k) / std_k, `finite` cleared where v
    is not finite, dst = sat(rint(v / scale)) in int16's range, the blob's float32 constants at their offsets."""
    return (f"v = ({x} - fl[{mean} + k]) / fl[{std} + k]\n"
            "finite &= np.isfinite(v)\n"
            f"q = np.rint(v / fl[{scale}])  # a non-finite v's integer is never read: the function returns 1 below\n"
            f"{dst} = np.int32(min(max(q, np.float32(-32767)), np.float32(32767)))")

def pack(blob: Blob, w_t: np.ndarray, path: str) -> int:
    """Byte offset of W^T (K, N) int8 in the path's layout: as is (portable), pack_vnni's pairs (avx2) or
    vnni_quad.pack_quad's quads (avx512_vnni)."""
    w_t = np.ascontiguousarray(w_t)
    return blob.int8(w_t if path == "portable" else vnni.pack_vnni(w_t) if path == "avx2" else vnni_quad.pack_quad(w_t))


def _pad_gates(a: np.ndarray, gates: int, H: int, HP: int) -> np.ndarray:
    """a (..., gates H) -> (..., gates HP): gate k's rows at k HP .. k HP + H - 1, zeros between."""
    out = np.zeros((*a.shape[:-1], gates * HP), dtype=a.dtype)
    for k in range(gates):
        out[..., k * HP : k * HP + H] = a[..., k * H : (k + 1) * H]
    return out


@dataclass(frozen=True)
class Extensions:
    """A layer-direction's ONNX extensions as kernels_int8_ext computes them (None / False: without)."""

    clip: int | None  # every pre-activation clamped to [-clip, clip] (L_CLIP_Q, in the pre-activation's integers)
    input_forget: bool  # f = min(32768 - i, 32767)
    peepholes: tuple | None  # (int32 offset of [p_i; p_f; p_o] (3H), (M_i, M_f, M_o), (S_i, S_f, S_o))
    reset_before: tuple | None  # a GRU's linear_before_reset false: (byte offset of W_hn^T (H, HP) packed, int32
    # offset of HP zero biases): n's recurrent sums are W_hn (r h)


# what a step with extensions calls beyond HEADER's names (fused_int8.py adds them to such a model's source only)
EXT_IMPORTS = """from rnnedge.runtime.kernels_int8 import peephole_int8
"""


@dataclass(frozen=True)
class LayerConstants:
    cell: int
    H: int  # hidden units
    HP: int  # H rounded up to 16: gate k of unit j is row k HP + j
    K: int  # inputs
    w_ih: int  # byte offsets of the packed W_ih^T (K, GP), W_hh^T (H, GP)
    w_hh: int
    b_x: int  # int32 offsets of the biases (GP) and the requantisation rows
    b_h: int
    sides: dict  # "x" / "h" -> [M, S] or [M, e, half, half_neg] row offsets (right: see layer_constants)
    fn: str  # the requantisation function name
    right: bool  # every row shifts right: mbqm_right with precomputed rounding rows
    param: int  # lstm: the cell state's scale exponent p (s_c = 2^p)
    init: int | None  # offset of [h0 | c0] (int32 rows of H) where the layer-direction has an initial state
    bounded: bool = False  # right, and |acc| + 2^e < 2^30 for every accumulator (the *_bounded_at intrinsics)
    ext: Extensions | None = None  # the ONNX extensions (layout.F_STEP), None without

    @property
    def GP(self) -> int:
        return GATES[self.cell] * self.HP


def layer_constants(blob: Blob, lay, row, path: str) -> LayerConstants:
    """One layer-direction's constants in the blob (weights padded to 16 rows per gate)."""
    cell, H, K = int(row[L.L_CELL]), int(row[L.L_HIDDEN]), int(row[L.L_N_IN])
    gates, HP = GATES[cell], up(H)
    G = gates * H

    def matrix(off: int, rows: int) -> np.ndarray:
        return _pad_gates(lay.qblob[off : off + rows * G].reshape(rows, G), gates, H, HP)

    def ivec(off: int, n: int) -> np.ndarray:
        return lay.iblob[off : off + n]

    m_ih, m_hh = matrix(int(row[L.L_OFF_WIH]), K), matrix(int(row[L.L_OFF_WHH]), H)
    bias_x, bias_h = (_pad_gates(ivec(int(row[off]), G), gates, H, HP) for off in (L.L_OFF_BIH, L.L_OFF_BHH))
    w_ih, w_hh = pack(blob, m_ih, path), pack(blob, m_hh, path)
    b_x, b_h = blob.int32(bias_x), blob.int32(bias_h)
    rq = _pad_gates(ivec(int(row[L.L_OFF_SIH]), 4 * G).reshape(4, G), gates, H, HP)
    # the requantisation: int8_math's general MBQM where a row shifts left (as the generic kernel chooses), else
    # mbqm_right with each row's rounding constants in the blob (shifts in [-31, 0], multipliers >= 0: the
    # artifact's range)
    right = not row[L.L_LEFT_SHIFT] and rq[[0, 2]].min() >= 0 and rq[[1, 3]].min() >= -31
    sides = {}
    for side, (M, S) in (("x", (rq[0], rq[1])), ("h", (rq[2], rq[3]))):
        sides[side] = [blob.int32(M)] + [blob.int32(a) for a in (rounding_rows(S) if right else (S,))]
    fn = "mbqm_right" if right else ("multiply_by_quantized_multiplier" if row[L.L_LEFT_SHIFT]
                                     else "multiply_by_quantized_multiplier_right")
    init = None
    if int(row[L.L_FLAGS]) & L.F_INIT:
        h0 = np.zeros(2 * H, dtype=np.int32)
        n0 = 2 * H if cell == L.CELL_LSTM else H
        h0[:n0] = ivec(int(row[L.L_OFF_INIT]), n0)
        init = blob.int32(h0)
    # the bounded gate sums' proof: every accumulator's |b + W v| (layout.int32_sum_bound) + 2^max(e) < 2^30
    largest = max(int(L.int32_sum_bound(m.T, b).max(initial=0)) for m, b in ((m_ih, bias_x), (m_hh, bias_h)))
    bounded = right and largest + 2 ** int(-rq[[1, 3]].min()) < 2**30
    return LayerConstants(cell, H, HP, K, w_ih, w_hh, b_x, b_h, sides, fn, right, int(row[L.L_PARAM]), init,
                          bool(bounded), _extensions(blob, lay, row, m_hh, path))


def _extensions(blob: Blob, lay, row, m_hh: np.ndarray, path: str) -> Extensions | None:
    """The layer-direction's extensions and the constants they read (kernels_int8_ext's), None without.
    m_hh: its W_hh^T padded (H, gates HP), whose n columns a reset-before GRU's W_hn (r h) takes alone."""
    flags, H = int(row[L.L_FLAGS]), int(row[L.L_HIDDEN])
    if not flags & L.F_STEP:
        return None
    peepholes = reset_before = None
    if flags & L.F_PEEPHOLES:  # iblob: [p (3H) | M (3) | S (3)]
        v = lay.iblob[int(row[L.L_OFF_P]) : int(row[L.L_OFF_P]) + 3 * H + 6]
        peepholes = (blob.int32(v[: 3 * H]), tuple(int(a) for a in v[3 * H : 3 * H + 3]),
                     tuple(int(a) for a in v[3 * H + 3 :]))
    if flags & L.F_RESET_BEFORE:
        HP = up(H)
        reset_before = (pack(blob, m_hh[:, 2 * HP :], path), blob.int32(np.zeros(HP, dtype=np.int32)))
    return Extensions(int(row[L.L_CLIP_Q]) if flags & L.F_CLIP else None, bool(flags & L.F_INPUT_FORGET),
                      peepholes, reset_before)


def each(src: Source, indent: int, s: str, dst: int, rows: int, value: str) -> None:
    """One loop of the gate stage, storing to one array alone (LLVM vectorises it): s[dst + j] = value for
    j < rows (value an expression of j)."""
    src.add(indent, f"for j in range({rows}):")
    src.add(indent + 1, f"{s}[{dst} + j] = {value}")


def gates(src: Source, k: LayerConstants, indent: int, AX: int, AH: int, st: str, h: int | str, c: int | str,
          table: int, s: str = "s", out: str | None = None) -> None:
    """The layer's step after its two mat-vecs: s[AX:] holds b_x + W_ih x, s[AH:] b_h + W_hh h (GP rows each), s
    the name of the int32 array holding them (the step's scratch, or one stream's view of it); writes the new h
    (and lstm c) to st[h:], st[c:], and the new h to out[0:H] too where out names an array (run(): the layer's
    output row, written in the loop that forms h rather than copied from st after it)."""
    H, HP = k.H, k.HP

    def hidden_h(fn: str, offsets: str, *flags: str) -> str:
        """The call forming the new h of rows j < H into st[h:] (and out[0:]): fused_int8_state's vector IR."""
        rest = "".join(f", {f}" for f in flags)
        if out is None:
            return f"{fn}_at({s}, {offsets}, {st}, {h}, {H}{rest})"
        return f"{fn}_out_at({s}, {offsets}, {st}, {h}, {H}{rest}, {out}, 0)"

    def term(side: str, first: int = 0) -> str:
        """One requantised term (int64) of row `first` + j."""
        acc = AX if side == "x" else AH
        constants = ", ".join(f"blob[{off + first} + j]" for off in k.sides[side])
        return f"np.int64({k.fn}({s}[{acc + first} + j], {constants}))"

    def pre(rows: int, first: int = 0) -> None:
        """Rows first .. first+rows-1 of ax in place: sat16(yx + yh); 16 lanes of vector IR (fused_int8_simd)
        where the rounding constants are rows, else one loop storing to the scratch alone (LLVM vectorises it)."""
        if k.right:
            src.add(indent, f"gate_sums_{'bounded' if k.bounded else 'rows'}_at({s}, {AX + first}, {AH + first}, "
                            f"{rows}, blob, {', '.join(str(off + first) for off in k.sides['x'] + k.sides['h'])})")
            return
        each(src, indent, s, AX + first, rows, f"np.int32(sat16({term('x', first)} + {term('h', first)}))")

    def act(fn: str, first: int, rows: int) -> None:
        src.add(indent, f"{fn}_rows_at({s}, {AX + first}, {rows}, blob, {table})")

    ext = k.ext

    def clip(first: int, rows: int) -> None:
        """The extension's clip of rows first .. first+rows-1 (kernels_int8.clip_rows_int8), where it has one."""
        if ext is not None and ext.clip is not None:
            each(src, indent, s, AX + first, rows, f"min(max({s}[{AX + first} + j], {-ext.clip}), {ext.clip})")

    if k.cell in (L.CELL_RNN_TANH, L.CELL_RNN_RELU):
        pre(HP)
        clip(0, HP)
        if k.cell == L.CELL_RNN_TANH:
            act("tanh", 0, HP)
        src.add(indent, hidden_h("rnn_hidden", f"{AX}", f"{int(k.cell == L.CELL_RNN_RELU)}"))
    elif k.cell == L.CELL_LSTM:
        if ext is None:
            pre(4 * HP)
            act("sigmoid", 0, 2 * HP)
            act("tanh", 2 * HP, HP)
            act("sigmoid", 3 * HP, HP)
        else:
            _lstm_extended(k, AX, st, c, s, pre, act, clip, term, src, indent)
        p = k.param
        e = p + 12  # the cell's scale 2^p to Q3.12 (int8_math.tanh_of_cell_q15)
        # ah is free once the gates are formed: it holds the new c in Q3.12, then its tanh (the i rows' part: o's
        # accumulators, at 3 HP, stay for a peephole's o)
        src.add(indent, f"lstm_cell_at({s}, {AX + HP}, {AX}, {AX + 2 * HP}, {st}, {c}, {AH}, {H}, {30 + p}, {e})")
        if ext is not None and ext.peepholes is not None:  # o's pre-activation with its term of the new c
            P, M, S = ext.peepholes
            o_pre = (f"sat16({term('x', 3 * HP)} + {term('h', 3 * HP)} + peephole_int8(blob[{P + 2 * H} + j], "
                     f"{st}[{c} + j], np.int32({M[2]}), np.int32({S[2]})))")
            each(src, indent, s, AX + 3 * HP, H, f"np.int32({o_pre})")
            clip(3 * HP, HP)
            act("sigmoid", 3 * HP, HP)
        src.add(indent, f"tanh_rows_at({s}, {AH}, {HP}, blob, {table})")
        src.add(indent, hidden_h("lstm_hidden", f"{AX + 3 * HP}, {AH}"))
    else:
        pre(2 * HP)
        clip(0, 2 * HP)
        act("sigmoid", 0, 2 * HP)
        if ext is not None and ext.reset_before is not None:
            # linear_before_reset false (kernels_int8_ext.gru_reset_before_int8): rh = RDBPOT(r h, 15) into the r
            # rows' spent recurrent accumulators, n's recurrent sums W_hn rh (no bias: b_hn is in b_x), then n's
            # pre-activation as every gate's
            w_hn, zeros = ext.reset_before
            each(src, indent, s, AH, H, f"rounding_divide_by_pot(np.int64({s}[{AX} + j]) * np.int64({st}[{h} + j]), 15)")
            src.matvec(indent, AH + 2 * HP, w_hn, zeros, (s, AH), H, HP, s)
            pre(HP, 2 * HP)
        elif k.right:  # 16 lanes of vector IR (fused_int8_simd), as pre()
            consts = ", ".join(str(off + 2 * HP) for off in k.sides["x"] + k.sides["h"])
            src.add(indent, f"gru_candidate_{'bounded' if k.bounded else 'rows'}_at({s}, {AX + 2 * HP}, {AX}, "
                            f"{AH + 2 * HP}, {HP}, blob, {consts})")
        else:
            n_pre = (f"sat16({term('x', 2 * HP)} + np.int64(rounding_divide_by_pot(np.int64({s}[{AX} + j]) * "
                     f"{term('h', 2 * HP)}, 15)))")
            each(src, indent, s, AX + 2 * HP, HP, f"np.int32({n_pre})")
        clip(2 * HP, HP)
        act("tanh", 2 * HP, HP)
        src.add(indent, hidden_h("gru_blend", f"{AX + HP}, {AX + 2 * HP}"))


def _lstm_extended(k: LayerConstants, AX: int, st: str, c: int | str, s: str, pre, act, clip, term, src: Source,
                   indent: int) -> None:
    """An LSTM's gates with extensions (kernels_int8_ext.lstm_update_ext_int8's integers) before gates() forms c
    and h as for PyTorch's cell: the pre-activations clipped, input_forget's f = 1 - i between the passes; with
    peepholes i and f first take their terms of the previous c from their accumulators, and o waits for the new c
    (gates() forms it after the cell)."""
    ext, H, HP = k.ext, k.H, k.HP
    if ext.peepholes is None:
        pre(4 * HP)
        clip(0, 4 * HP)
        act("sigmoid", 3 * HP, HP)
    else:
        P, M, S = ext.peepholes
        rows = "\n".join(f"    {s}[{AX + first} + j] = np.int32(sat16({term('x', first)} + {term('h', first)} + "
                         f"peephole_int8(blob[{P + n * H} + j], pc_, np.int32({M[n]}), np.int32({S[n]}))))"
                         for n, first in ((0, 0), (1, HP)))
        src.add(indent, f"""
for j in range({H}):
    pc_ = {st}[{c} + j]
{rows}""")
        pre(HP, 2 * HP)
        clip(0, 3 * HP)  # o's rows wait for the new c: their accumulators kept until then
    act("sigmoid", 0, HP)
    if ext.input_forget:
        each(src, indent, s, AX + HP, HP, f"min(32768 - {s}[{AX} + j], 32767)")  # 1 - i in Q0.15 (Q15_ONE)
    else:
        act("sigmoid", HP, HP)
    act("tanh", 2 * HP, HP)


@dataclass(frozen=True)
class HiddenConstants:
    U: int
    UP: int
    K: int
    w: int
    bias: int
    M: int
    S: int
    activation: int


def hidden_constants(blob: Blob, row, lay, path: str) -> HiddenConstants:
    """A head's hidden dense layer (kernels_int8.dense_int8's integers), rows padded to 16."""
    U, n_in, activation = int(row[L.D_UNITS]), int(row[L.D_N_IN]), int(row[L.D_ACTIVATION])
    UP = up(U)

    def padded(values: np.ndarray, dtype) -> np.ndarray:
        rows = np.zeros((*values.shape[:-1], UP), dtype=dtype)
        rows[..., :U] = values
        return rows

    w = lay.qblob[int(row[L.D_OFF_W]) : int(row[L.D_OFF_W]) + U * n_in].reshape(U, n_in)
    rq = lay.iblob[int(row[L.D_OFF_S]) : int(row[L.D_OFF_S]) + 2 * U]
    M, S = blob.int32(padded(rq[:U], np.int32)), blob.int32(padded(rq[U:], np.int32))
    bias = blob.int32(padded(lay.iblob[int(row[L.D_OFF_B]) : int(row[L.D_OFF_B]) + U], np.int32))
    return HiddenConstants(U, UP, n_in, pack(blob, padded(w.T, np.int8), path), bias, M, S, activation)


def hidden(src: Source, k: HiddenConstants, indent: int, v: tuple[str, int | str], out: int, table: int) -> None:
    """s[out : out + U] = act(sat16(MBQM(b + W v))) per row."""
    src.matvec(indent, out, k.w, k.bias, v, k.K, k.UP)
    q = f"np.int32(sat16(multiply_by_quantized_multiplier(s[{out} + j], blob[{k.M} + j], blob[{k.S} + j])))"
    value = {L.HID_RELU: f"max({q}, np.int32(0))", L.HID_GELU: f"np.int32(gelu_q12({q}))",
             L.HID_GELU_TANH: f"np.int32(gelu_q12({q}))"}.get(k.activation, q)
    src.add(indent, f"""
for j in range({k.UP}):
    s[{out} + j] = {value}""")
    if k.activation in (L.HID_TANH, L.HID_SIGMOID):
        src.add(indent, f"{'tanh' if k.activation == L.HID_TANH else 'sigmoid'}_rows_at(s, {out}, {k.UP}, blob, "
                        f"{table})")
