"""A specialised int8 step's state update (runtime/fused_int8_cells.gates), 16 lanes at a time, in LLVM vector IR.

    gru_blend_at(s, z, n, st, h, H)               st[h + j] = sat16(rdbpot((2^15 - z_j) n_j + z_j st[h + j], 15))
    lstm_cell_at(s, f, i, g, st, c, q, H, a, e)    st[c + j] = the new c; s[q + j] = it in Q3.12 (for its tanh)
    lstm_hidden_at(s, o, t, st, h, H)              st[h + j] = sat16(rdbpot(o_j t_j, 15))
    rnn_hidden_at(s, a, st, h, H, relu)            st[h + j] = s[a + j] (or max(s[a + j], 0))
    ..._out_at(..., out, at)                       the same, the new h also to out[at + j] (run()'s layer output)

for j < H, s[z + j] etc. the gates in the step's scratch (int32 holding int16 values). The integers are
kernels_int8's cell updates' (int8_math: int32 products, which wrap nowhere within docs/int8.md's bounds, rdbpot32,
sat16_32), lane for lane; tests/runtime/test_fused_int8_state.py holds them against the scalar loops.

Why IR: the generated step formed them in numba loops of H iterations, a count known when compiling. LLVM unrolls
such a loop of ~16-20 iterations in full before its loop vectoriser runs, and as the unrolled stores to the state
may alias the scratch's loads, the SLP vectoriser left it scalar (Zen 4, B = 64, per stream-step: a GRU's blend over
16 rows 18 ns, 2-4 vectorised; an LSTM's cell and h over 16 rows 25 ns against 12); a longer loop of H not a
multiple of 16 ended in a scalar remainder. Here H takes H // 16 whole passes, then one masked to the rows left:
the state's lanes from H on are neither read (a masked load gives 0) nor written, so the next stream's state is
untouched; s[q + j] likewise only below H. The int8 step at B = 64 (Zen 4, ns per stream-step, before -> after):
gru16 96 -> 71, lstm16 115 -> 88, gru8 78 -> 64, lstm8 109 -> 97; at H >= 24 level (kws 1.13 us either way).
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnedge.runtime.fused_int8_simd import _Rows
from rnnedge.runtime.vnni import LANES, lanes_below, masked_16, splat


class _Lanes(_Rows):
    """_Rows' 16 int32 lanes (its constants and int16 clamp), with loads and stores at base[index:] masked to the
    lanes below `left` where given, and rdbpot32 per lane."""

    def __init__(self, builder, left=None):
        super().__init__(builder)
        if left is None:  # a whole pass: every lane (LLVM's masked load and store become plain ones)
            self.mask = ir.Constant(ir.VectorType(ir.IntType(1), LANES), [True] * LANES)
        else:
            self.mask = lanes_below(builder, left)

    def every(self, value):
        """An i64 scalar (a shift count) in every lane."""
        return splat(self.b, self.b.trunc(value, ir.IntType(32)), self.v32)

    def _ptr(self, base, index):
        return self.b.bitcast(cgutils.gep(self.b, base, index), self.v32.as_pointer())

    def masked_load(self, base, index):
        """base[index + lane] for the lanes of the mask, 0 beyond."""
        return self.b.call(masked_16(self.b, False), [self._ptr(base, index), ir.Constant(ir.IntType(32), 4),
                                                      self.mask, self.c(0)])

    def masked_store(self, value, base, index):
        self.b.call(masked_16(self.b, True), [value, self._ptr(base, index), ir.Constant(ir.IntType(32), 4),
                                              self.mask])

    def rdbpot(self, x, e):
        """fused_int8_math.rdbpot32(x, e) per lane (e a lane vector, 1 <= e <= 31): (x + 2^(e-1) - [x < 0]) >> e."""
        b = self.b
        half = b.shl(self.c(1), b.sub(e, self.c(1)))
        negative = b.zext(b.icmp_signed("<", x, self.c(0)), self.v32)
        return b.ashr(b.sub(b.add(x, half), negative), e)


def _passes(builder, n, body):
    """body(lanes, first) for first = 0, 16, .. < n (an i64): whole passes, then one masked to the lanes below n."""
    i64 = ir.IntType(64)
    whole = builder.sdiv(n, ir.Constant(i64, LANES))
    with cgutils.for_range(builder, whole) as loop:
        body(_Lanes(builder), builder.mul(loop.index, ir.Constant(i64, LANES)))
    first = builder.mul(whole, ir.Constant(i64, LANES))
    left = builder.sub(n, first)
    with builder.if_then(builder.icmp_signed(">", left, ir.Constant(i64, 0))):
        body(_Lanes(builder, builder.trunc(left, ir.IntType(32))), first)


def _data(context, builder, signature, args, i):
    return context.make_array(signature.args[i])(context, builder, args[i]).data


def _i64(builder, value):
    return builder.sext(value, ir.IntType(64)) if value.type.width < 64 else value


def _hidden(n_offsets: int, n_flags: int, value, with_out: bool):
    """The codegen of an intrinsic forming a layer's new h: value(v, s, st, h, offsets, flags, first) -> its lanes,
    stored to st[h + j] (and to out[at + j] with_out). Its arguments: s, n_offsets scratch offsets, st, h, H, n_flags
    integers, then (with_out) out, at."""

    def codegen(context, builder, signature, values):
        s, st = (_data(context, builder, signature, values, k) for k in (0, 1 + n_offsets))
        offsets = [_i64(builder, x) for x in values[1 : 1 + n_offsets]]
        h, n, *flags = (_i64(builder, x) for x in values[2 + n_offsets : 4 + n_offsets + n_flags])
        out, at = ((_data(context, builder, signature, values, len(values) - 2), _i64(builder, values[-1]))
                   if with_out else (None, None))

        def body(v, first):
            lanes = value(v, s, st, h, offsets, flags, first)
            v.masked_store(lanes, st, builder.add(h, first))
            if with_out:
                v.masked_store(lanes, out, builder.add(at, first))

        _passes(builder, n, body)
        return context.get_dummy_value()

    return codegen


def _blend(v, s, st, h, offsets, flags, first):
    """kernels_int8's GRU blend: sat16(rdbpot32((2^15 - z) n + z h, 15)) in int32 lanes (|sum| <= 2^30)."""
    b = v.b
    z, cand = (v.masked_load(s, b.add(o, first)) for o in offsets)
    old = v.masked_load(st, b.add(h, first))
    return v.clamp16(v.rdbpot(b.add(b.mul(b.sub(v.c(32768), z), cand), b.mul(z, old)), v.c(15)))


def _lstm_hidden(v, s, st, h, offsets, flags, first):
    """sat16(rdbpot32(int32(o tanh(c)), 15))."""
    b = v.b
    o, t = (v.masked_load(s, b.add(x, first)) for x in offsets)
    return v.clamp16(v.rdbpot(b.mul(o, t), v.c(15)))


def _rnn_hidden(v, s, st, h, offsets, flags, first):
    """The pre-activation's tanh (already in place) as h, or its relu: max(a, 0) where flags[0]."""
    b = v.b
    a = v.masked_load(s, b.add(offsets[0], first))
    relu = b.icmp_signed("!=", flags[0], ir.Constant(ir.IntType(64), 0))
    return b.select(relu, b.select(b.icmp_signed("<", a, v.c(0)), v.c(0), a), a)


@intrinsic
def gru_blend_at(typingctx, s, z, n, st, h, H):
    """A GRU's new h for rows j < H: sat16(rdbpot32((2^15 - s[z + j]) s[n + j] + s[z + j] st[h + j], 15))."""
    return types.void(s, z, n, st, h, H), _hidden(2, 0, _blend, False)


@intrinsic
def gru_blend_out_at(typingctx, s, z, n, st, h, H, out, at):
    """gru_blend_at, the new h also to out[at + j]."""
    return types.void(s, z, n, st, h, H, out, at), _hidden(2, 0, _blend, True)


@intrinsic
def lstm_hidden_at(typingctx, s, o, t, st, h, H):
    """An LSTM's new h for rows j < H: sat16(rdbpot32(s[o + j] s[t + j], 15)), t the new cell's tanh."""
    return types.void(s, o, t, st, h, H), _hidden(2, 0, _lstm_hidden, False)


@intrinsic
def lstm_hidden_out_at(typingctx, s, o, t, st, h, H, out, at):
    """lstm_hidden_at, the new h also to out[at + j]."""
    return types.void(s, o, t, st, h, H, out, at), _hidden(2, 0, _lstm_hidden, True)


@intrinsic
def rnn_hidden_at(typingctx, s, a, st, h, H, relu):
    """A plain RNN's new h for rows j < H: s[a + j] (its tanh, formed in place), or max(s[a + j], 0) where relu."""
    return types.void(s, a, st, h, H, relu), _hidden(1, 1, _rnn_hidden, False)


@intrinsic
def rnn_hidden_out_at(typingctx, s, a, st, h, H, relu, out, at):
    """rnn_hidden_at, the new h also to out[at + j]."""
    return types.void(s, a, st, h, H, relu, out, at), _hidden(1, 1, _rnn_hidden, True)


@intrinsic
def lstm_cell_at(typingctx, s, f, i, g, st, c, q, n, add_shift, q_shift):
    """An LSTM's new cell state for rows j < n: kept = sat16(rdbpot32(int32(f_j st[c + j]), 15)), added =
    sat16(rdbpot32(int32(i_j g_j), add_shift)), st[c + j] = sat16(kept + added) and s[q + j] that value in Q3.12:
    sat16(cn << q_shift) for q_shift > 0, cn for 0, rdbpot32(cn, -q_shift) below (fused_int8_cells.gates). With
    int8_math's cell powers p in [-15, 1]: add_shift = 30 + p in [15, 31], q_shift = p + 12 in [-3, 13]."""

    def codegen(context, builder, signature, values):
        s_, st_ = (_data(context, builder, signature, values, k) for k in (0, 4))
        f_, i_, g_ = (_i64(builder, x) for x in values[1:4])
        c_, q_, n_, add_, qs_ = (_i64(builder, x) for x in values[5:])
        i64 = ir.IntType(64)

        def body(v, first):
            b = v.b
            fv, iv, gv = (v.masked_load(s_, b.add(o, first)) for o in (f_, i_, g_))
            kept = v.clamp16(v.rdbpot(b.mul(fv, v.masked_load(st_, b.add(c_, first))), v.c(15)))
            added = v.clamp16(v.rdbpot(b.mul(iv, gv), v.every(add_)))
            cn = v.clamp16(b.add(kept, added))
            v.masked_store(cn, st_, b.add(c_, first))
            left = v.clamp16(b.shl(cn, v.every(qs_)))
            right = v.rdbpot(cn, v.every(b.neg(qs_)))
            zero = ir.Constant(i64, 0)
            q = b.select(b.icmp_signed(">", qs_, zero), left, b.select(b.icmp_signed("==", qs_, zero), cn, right))
            v.masked_store(q, s_, b.add(q_, first))

        _passes(builder, n_, body)
        return context.get_dummy_value()

    return types.void(s, f, i, g, st, c, q, n, add_shift, q_shift), codegen
