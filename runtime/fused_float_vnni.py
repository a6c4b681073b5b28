"""int8w's specialised mat-vecs on AVX512-VNNI: float activations as two int16 limbs, int8 weights, int32 sums.

vpdpwssd multiplies int16 pairs; int8w's activations are float32. Per step and stream, each part of a layer's
input ([x] for W_ih, [h] for W_hh) is written as two int16 limbs with one scale s = max|v| / R:

    v = hi s + lo t + e,   hi = round(v / s),  t = s / (2R - 2),  lo = round((v - hi s) / t),  |e| <= t / 2

so |e| <= max|v| / (4 R^2): 2.3e-10 max|v| at R = 32767, below float32's own rounding of the sums. Each matrix
row's product is then two exact int32 sums, hi . w and lo . w (|w| <= 128, so R <= (2^31 - 1) / (128 K) keeps
them exact), and the gate is b + row_scale (s (hi . w) + t (lo . w)): kernels_int8w's arithmetic to float32
rounding (the golden vectors' 1e-5 against firmware_ref's float int8w holds), at VNNI's speed.

    DP2[streams, blocks](ibuf, hi, lo, acc, wq, w, n, wh, wl, word_stride, pairs)
        blocks of 16 rows, both limbs' sums written to ibuf, for 1 stream or STREAMS streams (acc, word_stride apart)
        sharing each weight load; dp2_4 / dp2_1: one stream's 4 or 1 blocks
    dp2_vnni(ibuf, hi, lo, wq, w, n, wh, wl, pairs, count)   `count` blocks: fours, then single blocks

These limbs run only where int8w makes no float16 copy of its weights on such a CPU (fused_float.limb_sums:
RNNEDGE_INT8W_FLOAT16=0, say): elsewhere int8w's sums run on fused_float_fma.FMA8 (float32 sums of the copy, or of
the int8 weights converted as they are loaded: one product per weight where the limbs take two; LLVM lowers it
anywhere), which on Zen 4 is faster than these limbs at every batch (fused_float.half_copy).

A limb pair word holds the int16 limbs of inputs 2p (low half) and 2p + 1 (high half), as vpdpwssd reads them.
The weights are the layout's own W^T (K, N) int8, not a copy: rows 2p and 2p + 1 are loaded 16 outputs at a time,
their bytes interleaved in a register and sign-extended to the instruction's int16 pairs.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnedge.runtime.jit import kernel
from rnnedge.runtime.vnni import LANES, PAIR_DOT, has_avx512_vnni, splat

dpwssd = PAIR_DOT["vnni"]  # vnni.py's vpdpwssd, one declaration for both int8 paths

KERNEL = "avx512_vnni" if has_avx512_vnni() else "fma"  # whether this CPU can run the limbs (fused_float.limb_sums)
GROUP = 4  # blocks advanced together: eight independent accumulator chains (two limbs) hide vpdpwssd's latency
STREAMS = 4  # streams sharing each weight load (with STREAM_BLOCKS blocks: 16 accumulators in registers)
STREAM_BLOCKS = 2


def limb_range(K: int) -> int:
    """R for a part of K inputs: the largest limb magnitude whose int32 sums over K int8 weights stay exact."""
    return int(min(32767, (2**31 - 1) // (128 * max(K, 1))))


def reach(w: int, K: int, N: int) -> int:
    """One past the last byte the sums of W^T (K, N) int8 at w read: whole pairs of rows (an odd K's extra row
    meets zero limbs) and whole blocks of 16 outputs (lanes past N fill sums nobody reads). The generator keeps it
    within the weight array (the head's weights follow every layer's)."""
    return w + (2 * (-(-K // 2)) - 1) * N + LANES * (-(-N // LANES))


def _dp2(streams: int, count: int):
    """An intrinsic for `count` blocks of 16 rows of `streams` streams: ibuf[hi + s acc + 16u + lane] = sum_p
    (w_t[2p, n], w_t[2p + 1, n]) . (stream s's hi limbs of inputs 2p, 2p + 1), n = first + 16u + lane, and lo
    alike; w_t (K, N) int8 at w in wq, row stride N; stream s's words at wh + s word_stride, wl + s word_stride.
    Each pair of weight rows is interleaved and sign-extended once for all the streams."""

    @intrinsic
    def dp2(typingctx, ibuf, hi, lo, acc, wq, w, n, wh, wl, word_stride, pairs):
        sig = types.void(ibuf, hi, lo, acc, wq, w, n, wh, wl, word_stride, pairs)

        def codegen(context, builder, signature, args):
            i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
            i32x16, i16x32 = ir.VectorType(i32, 16), ir.VectorType(ir.IntType(16), 32)
            i8x16 = ir.VectorType(i8, LANES)
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            wdata = context.make_array(signature.args[4])(context, builder, args[4]).data
            hi_off, lo_off, acc_st, w_off, stride, wh_off, wl_off, word_st, npairs = (
                builder.sext(a, i64) if a.type != i64 else a for a in (*args[1:4], *args[5:]))

            def at(base, s, plus=0):
                return builder.add(base, builder.add(builder.mul(acc_st, ir.Constant(i64, s)), ir.Constant(i64, plus)))

            # slots[s][limb * count + u]
            slots = [[cgutils.alloca_once(builder, i32x16) for _ in range(2 * count)] for _ in range(streams)]
            ptrs = [[builder.bitcast(cgutils.gep(builder, data, at(base, s, LANES * u)), i32x16.as_pointer())
                     for base in (hi_off, lo_off) for u in range(count)] for s in range(streams)]
            for slot in (slot for row in slots for slot in row):  # the sums start at zero: no pass clears them
                builder.store(ir.Constant(i32x16, [0] * LANES), slot)
            interleave = ir.Constant(ir.VectorType(i32, 2 * LANES), [i // 2 + (i % 2) * LANES for i in range(2 * LANES)])
            words = [(builder.add(wh_off, builder.mul(word_st, ir.Constant(i64, s))),
                      builder.add(wl_off, builder.mul(word_st, ir.Constant(i64, s)))) for s in range(streams)]

            def splat_words(word):
                return builder.bitcast(splat(builder, word, i32x16), i16x32)

            def row16(off):
                return builder.load(builder.bitcast(cgutils.gep(builder, wdata, off), i8x16.as_pointer()), align=1)

            with cgutils.for_range(builder, npairs) as loop:
                p = loop.index
                even = builder.add(w_off, builder.mul(builder.mul(p, ir.Constant(i64, 2)), stride))
                wv = []
                for u in range(count):
                    first = builder.add(even, ir.Constant(i64, LANES * u))
                    pair = builder.shuffle_vector(row16(first), row16(builder.add(first, stride)), interleave)
                    wv.append(builder.sext(pair, i16x32))  # int8 in memory, the two rows' bytes side by side
                for s in range(streams):
                    for limb, base in enumerate(words[s]):
                        b = splat_words(builder.load(cgutils.gep(builder, data, builder.add(base, p))))
                        for u in range(count):
                            slot = slots[s][limb * count + u]
                            builder.store(dpwssd(builder, builder.load(slot), wv[u], b), slot)
            for s in range(streams):
                for slot, ptr in zip(slots[s], ptrs[s]):
                    builder.store(builder.load(slot), ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return dp2


# (streams, blocks): one stream (batch 1, and the streams past a multiple of STREAMS), and STREAMS streams
DP2 = {key: _dp2(*key) for key in ((1, GROUP), (1, 1), (STREAMS, STREAM_BLOCKS), (STREAMS, 1))}
dp2_4, dp2_1 = DP2[1, GROUP], DP2[1, 1]


@kernel
def dp2_vnni(ibuf, hi, lo, wq, w, n, wh, wl, pairs, count):
    """`count` blocks of dp2_4 / dp2_1 (for tests and callers outside generated code): fours, then single blocks."""
    u = 0
    while u + GROUP <= count:
        dp2_4(ibuf, hi + LANES * u, lo + LANES * u, 0, wq, w + LANES * u, n, wh, wl, 0, pairs)
        u += GROUP
    while u < count:
        dp2_1(ibuf, hi + LANES * u, lo + LANES * u, 0, wq, w + LANES * u, n, wh, wl, 0, pairs)
        u += 1
