"""f32's register-blocked product: a few input vectors times a block of W^T's columns, the sums held in registers.

    FMA[streams, blocks](buf, acc, acc_stride, w, woff, n, src, src_stride, k)

adds to buf[acc + s acc_stride + i], for s < streams and i < 16 blocks, the sum over k of W^T[kk, i] v_s[kk],
v_s = buf[src + s src_stride ..], W^T (k, n) float32 at woff in w (row stride n). The streams x blocks
accumulators (16 lanes each) stay in registers for the whole k loop: each weight vector is loaded once and used
for every stream, each input once and used for every block. Every sum is one chain of fused multiply-adds, in
the order kk = 0, 1, .. -- the same numbers whichever block a row or a stream falls in, so a stream's outputs do
not depend on the batch, and a whole sequence's input projection (all T steps' rows at once) equals the step's.

A block past n reads lanes of the next rows of W^T (or whatever follows the matrix in w: `reach` says how far,
the generator keeps it within w) into accumulator lanes nobody reads: the accumulators are padded to blocks of 16.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16
STREAMS = 4  # inputs per call: streams x BLOCKS accumulators + BLOCKS weight vectors fit AVX-512's 32 registers
BLOCKS = 4


def blocks(n: int) -> int:
    return -(-n // LANES)


def padded(n: int) -> int:
    """n rounded up to whole blocks: an accumulator row's length."""
    return LANES * blocks(n)


def reach(w: int, K: int, N: int) -> int:
    """One past the last float the product of W^T (K, N) at w reads."""
    return w + (K - 1) * N + padded(N)


def _fma(streams: int, count: int):
    @intrinsic
    def fma(typingctx, buf, acc, acc_stride, w, woff, n, src, src_stride, k):
        sig = types.void(buf, acc, acc_stride, w, woff, n, src, src_stride, k)

        def codegen(context, builder, signature, args):
            f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
            vec = ir.VectorType(f32, LANES)
            fused = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                                   "llvm.fma.v16f32")
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            wdata = context.make_array(signature.args[3])(context, builder, args[3]).data
            acc_off, acc_st, w_off, stride, src_off, src_st, K = (
                builder.sext(a, i64) if a.type != i64 else a for a in (args[1], args[2], *args[4:]))

            def vptr(base, off):
                return builder.bitcast(cgutils.gep(builder, base, off), vec.as_pointer())

            ptrs = [vptr(data, builder.add(acc_off, builder.add(builder.mul(acc_st, ir.Constant(i64, s)),
                                                                ir.Constant(i64, LANES * u))))
                    for s in range(streams) for u in range(count)]
            slots = [cgutils.alloca_once(builder, vec) for _ in ptrs]
            for slot, ptr in zip(slots, ptrs):
                builder.store(builder.load(ptr, align=4), slot)
            inputs = [builder.add(src_off, builder.mul(src_st, ir.Constant(i64, s))) for s in range(streams)]
            zeros = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
            with cgutils.for_range(builder, K) as loop:
                kk = loop.index
                row = builder.add(w_off, builder.mul(kk, stride))
                wv = [builder.load(vptr(wdata, builder.add(row, ir.Constant(i64, LANES * u))), align=4)
                      for u in range(count)]
                for s in range(streams):
                    x = builder.load(cgutils.gep(builder, data, builder.add(inputs[s], kk)))
                    x = builder.shuffle_vector(builder.insert_element(ir.Constant(vec, None), x, ir.Constant(i32, 0)),
                                               ir.Constant(vec, None), zeros)
                    for u in range(count):
                        slot = slots[s * count + u]
                        builder.store(builder.call(fused, [wv[u], x, builder.load(slot)]), slot)
            for slot, ptr in zip(slots, ptrs):
                builder.store(builder.load(slot), ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return fma


FMA = {(s, u): _fma(s, u) for s in range(1, STREAMS + 1) for u in range(1, BLOCKS + 1)}
