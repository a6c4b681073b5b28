"""The gate activations of a specialised int8 step (runtime/fused_int8.py), 16 lanes at a time, in LLVM vector IR.

    sigmoid_rows_at(a, off, n, table, toff)    a[off : off + n] = sigmoid_q15(a[...]) in place, n a multiple of 16
    tanh_rows_at(a, off, n, table, toff)       ... tanh_q15
    gate_sums_rows_at(a, ax, ah, n, blob, ...)  a[ax + r] = sat16(yx + yh), the pre-activations (see its docstring)
    as_int8(blob), as_float32(blob)             the int32 blob's bytes / float32 values (blob.view's, compiled ~10x cheaper)

a is int32 (Q3.12 values in, Q0.15 out); table[toff:] holds fused_int8_math.pair_table(). The integers are
int8_math.sigmoid_q15 / tanh_q15's, in int32 lanes (every value fits, fused_int8_math): with a = |3x|,
u = a >> s (s = 9 sigmoid, 8 tanh), one gather of the pair TABLE[k] | (TABLE[k+1] - TABLE[k]) << 16 at
k = min(u, 254), r = (TABLE[k] << s) + (a & (2^s - 1)) (TABLE[k+1] - TABLE[k]), saturated for u >= 255, then
the sign's rounding. Why IR: LLVM's cost model on this CPU will not vectorise a loop with a table read (it
would need gathers), so a numba loop over the table formula stays scalar; written as vector IR with llvm.masked.gather,
the loop runs 16 lanes per pass on AVX-512 and LLVM lowers the same IR to what any other CPU has. The index is
clamped unsigned, so any int32 (a padded row's leftover) reads inside the table.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

LANES = 16


def _lanes_gep(builder, base, index):
    """The vector of pointers base + index[lane] (one i32 pointer, an int32 vector of indices): LLVM sees one base
    and 32-bit indices, so a gather through it is one `vpgatherdd` (pointers formed as 64-bit integers lowered to
    two `vpgatherqd`). llvmlite's gep does not type a vector index, so the instruction's type is set here."""
    gep = ir.GEPInstr(builder.block, base, [index], inbounds=True, name="", source_etype=base.type.pointee)
    gep.type = ir.VectorType(base.type, index.type.count)
    builder._insert(gep)
    return gep


def _activation_rows(shift: int, saturated: int, positive, negative):
    """An intrinsic (a, off, n, table, toff) applying the table activation of `shift` to n rows of a in place;
    positive(builder, r, c) / negative(builder, r, c) give the result for x >= 0 / x < 0 (c makes constants)."""

    @intrinsic
    def rows(typingctx, a, off, n, table, toff):
        sig = types.void(a, off, n, table, toff)

        def codegen(context, builder, signature, args):
            i1, i32, i64 = ir.IntType(1), ir.IntType(32), ir.IntType(64)
            v32, v1 = ir.VectorType(i32, LANES), ir.VectorType(i1, LANES)

            def c(value, ty=v32):
                return ir.Constant(ty, [value] * LANES)

            arr = context.make_array(signature.args[0])(context, builder, args[0])
            tab = context.make_array(signature.args[3])(context, builder, args[3])
            off_, n_, toff_ = (builder.sext(v, i64) if v.type.width < 64 else v for v in (args[1], args[2], args[4]))
            rows_p = cgutils.gep(builder, arr.data, off_)
            tab_p = cgutils.gep(builder, tab.data, toff_)
            gather_ty = ir.FunctionType(v32, [ir.VectorType(i32.as_pointer(), LANES), i32, v1, v32])
            gather = cgutils.get_or_insert_function(builder.module, gather_ty, "llvm.masked.gather.v16i32.v16p0")
            chunks = builder.sdiv(n_, ir.Constant(i64, LANES))
            with cgutils.for_range(builder, chunks) as loop:
                ptr = builder.bitcast(cgutils.gep(builder, rows_p, builder.mul(loop.index, ir.Constant(i64, LANES))),
                                      v32.as_pointer())
                x = builder.load(ptr, align=4)
                x3 = builder.mul(x, c(3))
                a_ = builder.select(builder.icmp_signed("<", x3, c(0)), builder.sub(c(0), x3), x3)
                u = builder.lshr(a_, c(shift))
                k = builder.select(builder.icmp_unsigned("<", u, c(254)), u, c(254))
                ptrs = _lanes_gep(builder, tab_p, k)
                pair = builder.call(gather, [ptrs, ir.Constant(i32, 4), ir.Constant(v1, [1] * LANES),
                                             ir.Constant(v32, None)])
                lo = builder.and_(pair, c(0xFFFF))
                step = builder.lshr(pair, c(16))
                r = builder.add(builder.shl(lo, c(shift)), builder.mul(builder.and_(a_, c((1 << shift) - 1)), step))
                r = builder.select(builder.icmp_unsigned(">=", u, c(255)), c(saturated), r)
                y = builder.select(builder.icmp_signed(">=", x, c(0)), positive(builder, r, c), negative(builder, r, c))
                builder.store(y, ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return rows


sigmoid_rows_at = _activation_rows(
    9, 0x7FFF << 10,
    lambda b, r, c: b.ashr(b.add(r, c(1 << 9)), c(10)),
    lambda b, r, c: b.ashr(b.sub(c((1 << 25) + (1 << 9) - 1), r), c(10)))
tanh_rows_at = _activation_rows(
    8, 0xFFFF << 8,
    lambda b, r, c: b.ashr(b.sub(r, c((1 << 23) - (1 << 7))), c(8)),
    lambda b, r, c: b.ashr(b.sub(c((1 << 23) + (1 << 7) - 1), r), c(8)))


@intrinsic
def gate_sums_rows_at(typingctx, a, ax, ah, n, blob, mx, ex, hx, nx, mh, eh, hh, nh):
    """a[ax + r] = sat16(yx + yh) for rows r < n (a multiple of 16), in place, 16 rows per pass:
    yx = fused_int8_math.mbqm_right(a[ax + r], blob[mx + r], blob[ex + r], blob[hx + r], blob[nx + r]) and yh
    likewise from a[ah + r] and the (mh, eh, hh, nh) rows. The same integers as the numba loop over mbqm_right, with
    64-bit lanes only for the products (even and odd lanes, `vpmuldq`): SRDHM's result, high, fits int32 (M >= 0,
    |high| <= |x|), so the rest runs in 16 int32 lanes -- the rounding shift as (high >> e) + (((high & (2^e - 1)) +
    half) >>> e), whose unsigned sum stays below 2^32 for e <= 31, and the two terms' sum saturated where it
    overflows int32 (its true value is then far outside int16 on the side of the terms' sign)."""
    sig = types.void(a, ax, ah, n, blob, mx, ex, hx, nx, mh, eh, hh, nh)

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        v32, v64 = ir.VectorType(i32, LANES), ir.VectorType(i64, LANES // 2)

        def c(value, ty=v32):
            return ir.Constant(ty, [value] * len(ty))

        arr = context.make_array(signature.args[0])(context, builder, args[0])
        consts = context.make_array(signature.args[4])(context, builder, args[4])
        offs = [builder.sext(v, i64) if v.type.width < 64 else v for v in args[1:4] + args[5:]]
        ax_p, ah_p = (cgutils.gep(builder, arr.data, o) for o in offs[:2])
        n_ = offs[2]
        rows = [cgutils.gep(builder, consts.data, o) for o in offs[3:]]

        def load(base, index):
            ptr = builder.bitcast(cgutils.gep(builder, base, index), v32.as_pointer())
            return builder.load(ptr, align=4), ptr

        def srdhm(acc, M):
            """floor((acc M + 2^30) / 2^31) per lane: even and odd lanes as 64-bit products, the results as int32."""
            a64, m64 = builder.bitcast(acc, v64), builder.bitcast(M, v64)
            highs = []
            for lanes in ((builder.ashr(builder.shl(a64, c(32, v64)), c(32, v64)),
                           builder.ashr(builder.shl(m64, c(32, v64)), c(32, v64))),
                          (builder.ashr(a64, c(32, v64)), builder.ashr(m64, c(32, v64)))):
                highs.append(builder.ashr(builder.add(builder.mul(*lanes), c(1 << 30, v64)), c(31, v64)))
            even = builder.and_(highs[0], c(0xFFFFFFFF, v64))
            return builder.bitcast(builder.or_(even, builder.shl(highs[1], c(32, v64))), v32)

        def term(acc, M, e, half, half_neg):
            high = srdhm(acc, M)
            nudge = builder.select(builder.icmp_signed("<", high, c(0)), half_neg, half)
            rest = builder.and_(high, builder.sub(builder.shl(c(1), e), c(1)))
            return builder.add(builder.ashr(high, e), builder.lshr(builder.add(rest, nudge), e))

        chunks = builder.sdiv(n_, ir.Constant(i64, LANES))
        with cgutils.for_range(builder, chunks) as loop:
            first = builder.mul(loop.index, ir.Constant(i64, LANES))
            x, x_ptr = load(ax_p, first)
            h, _ = load(ah_p, first)
            yx = term(x, *[load(p, first)[0] for p in rows[:4]])
            yh = term(h, *[load(p, first)[0] for p in rows[4:]])
            total = builder.add(yx, yh)
            overflow = builder.icmp_signed("<", builder.and_(builder.xor(yx, total), builder.xor(yh, total)), c(0))
            total = builder.select(builder.icmp_signed("<", total, c(-32768)), c(-32768), total)
            total = builder.select(builder.icmp_signed(">", total, c(32767)), c(32767), total)
            wide = builder.select(builder.icmp_signed("<", yx, c(0)), c(-32768), c(32767))
            builder.store(builder.select(overflow, wide, total), x_ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


def _reinterpret(dtype):
    """An intrinsic: a contiguous 1-D int32 array's memory as a 1-D C array of `dtype` (a numba scalar type of 1 or
    4 bytes), sharing its data: what `a.view(np.int8)` / `a.view(np.float32)` give, without numba's general view
    (it compiles a helper checking shapes and strides: ~0.3 s of an empty cache's first compile, every view)."""

    @intrinsic
    def reinterpret(typingctx, a):
        if not isinstance(a, types.Array) or a.ndim != 1 or a.layout != "C" or a.dtype != types.int32:
            return None
        result = types.Array(dtype, 1, "C", readonly=not a.mutable)

        def codegen(context, builder, signature, args):
            src = context.make_array(signature.args[0])(context, builder, args[0])
            out = context.make_array(result)(context, builder)
            width = context.get_abi_sizeof(context.get_data_type(dtype))
            i64 = ir.IntType(64)
            n = builder.mul(builder.extract_value(src.shape, 0), ir.Constant(i64, 4 // width))
            context.populate_array(out, data=builder.bitcast(src.data, context.get_data_type(dtype).as_pointer()),
                                   shape=cgutils.pack_array(builder, [n]),
                                   strides=cgutils.pack_array(builder, [ir.Constant(i64, width)]),
                                   itemsize=ir.Constant(i64, width), meminfo=src.meminfo, parent=src.parent)
            return impl_ret_borrowed(context, builder, result, out._getvalue())

        return result(a), codegen

    return reinterpret


as_int8, as_float32 = _reinterpret(types.int8), _reinterpret(types.float32)
