"""The gate activations of a specialised int8 step (runtime/fused_int8.py), 16 lanes at a time, in LLVM vector IR.

    sigmoid_rows_at(a, off, n, table, toff)    a[off : off + n] = sigmoid_q15(a[...]) in place, n a multiple of 16
    tanh_rows_at(a, off, n, table, toff)       ... tanh_q15
    gate_sums_rows_at(a, ax, ah, n, blob, ...)  a[ax + r] = sat16(yx + yh), the pre-activations (see its docstring)
    gru_candidate_rows_at(a, ax, ar, ah, n, blob, ...)   the GRU candidate's: sat16(yx + rdbpot(r yh, 15))
    gate_sums_bounded_at, gru_candidate_bounded_at      the same, fewer operations, where the weights bound |acc|
    as_int8(blob), as_float32(blob)             the int32 blob's bytes / float32 values (blob.view's, compiled ~10x cheaper)

a is int32 (Q3.12 values in, Q0.15 out); table[toff:] holds fused_int8_math.pair_table() (the pairs, then their
byte planes). The integers are
int8_math.sigmoid_q15 / tanh_q15's, in int32 lanes (every value fits, fused_int8_math). int8_math forms, with
a = |3x|, u = a >> s (s = 9 sigmoid, 8 tanh), f = a & (2^s - 1), r = (T[u] << s) + f (T[u+1] - T[u]) (saturated
for u >= 255), sigmoid (r + 2^9) >> 10 for x >= 0 and (2^25 + 2^9 - 1 - r) >> 10 for x < 0, tanh
(r - 2^23 + 2^7) >> 8 and (2^23 + 2^7 - 1 - r) >> 8. Here a is clamped to 255 << s (u = 255 and f = 0 from there
on: entry 255 of the function's pair table, fused_int8_math.pair_table, holds the saturated r with a step of 0,
so no compare and select); one gather reads the pair (T[u+1] - T[u]) | (T[u] - 2^15) << 16, and one pmaddwd with
(f, 2^s) gives r' = r - (2^15 << s); then, as integer identities (floor((k - t) / 2^m) = -floor((t - k') / 2^m)
with k' = k - 2^m + 1), sigmoid = 2^14 + d for x >= 0 and 2^14 - d for x < 0 with d = (r' + 2^9) >> 10 (the
2^15 << 9 taken out is 2^14 << 10), tanh = d and -d with d = (r' + 2^7) >> 8 (at x = 0, d = 0 either way): the
negative side from the positive one's d, no second rounding, as firmware_ref's rnnedge_mve.h takes it (Zen 3:
sigmoid + tanh over 640 rows with their copy 0.40 -> 0.36 us against the compare-and-select form; the gather itself
takes ~8.5 of the ~13 cycles per 8 lanes).

Why IR: LLVM's cost model on this CPU will not vectorise a loop with a table read (it would need gathers), so a
numba loop over the table formula stays scalar; written as vector IR with llvm.masked.gather,
the loop runs 16 lanes per pass on AVX-512 and LLVM lowers the same IR to what any other CPU has (scalar loads
where its tuning says gathers are slow: on Zen 3, whose vpgatherdd is faster than those, the IR calls AVX2's
gather itself, explicit_gathers). On a CPU with AVX512-VBMI (Zen 4, Ice Lake and later) there is no gather: the
table's four byte planes sit in 16 registers and `vpermi2b` reads 64 rows' bytes at once (byte_planes,
_plane_pairs; kws' step on Zen 4, in a numba loop: activations 0.27 -> 0.11 us at B = 1, 0.31 -> 0.09 per
stream-step at B = 64). a is clamped unsigned, so any int32 (a padded row's leftover) reads inside the table.
"""

from __future__ import annotations

from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

from rnnedge.runtime.fused_int8_math import PLANES_AT, TANH_AT
from rnnedge.runtime.jit import target_cpu
from rnnedge.runtime.vnni import LANES, PAIR_DOT, masked_16


def _lanes_gep(builder, base, index):
    """The vector of pointers base + index[lane] (one i32 pointer, an int32 vector of indices): LLVM sees one base
    and 32-bit indices, so a gather through it is one `vpgatherdd` (pointers formed as 64-bit integers lowered to
    two `vpgatherqd`). llvmlite's gep does not type a vector index, so the instruction's type is set here."""
    gep = ir.GEPInstr(builder.block, base, [index], inbounds=True, name="", source_etype=base.type.pointee)
    gep.type = ir.VectorType(base.type, index.type.count)
    builder._insert(gep)
    return gep


# CPUs (AVX2, no AVX-512) whose vpgatherdd beats the scalar loads LLVM lowers llvm.masked.gather to there (its
# tuning for AMD cores assumes slow gathers): Zen 3, sigmoid + tanh over 640 rows 0.47 -> 0.37 us; on Zen 1 and 2
# the instruction is slower than the loads (stop 25), so they keep LLVM's lowering
FAST_GATHER_CPUS = ("znver3",)


def explicit_gathers() -> bool:
    """Whether the activations gather with AVX2's vpgatherdd (two of 8 lanes) instead of llvm.masked.gather (LLVM
    then chooses: a gather instruction where its tuning says fast, else scalar loads). Decided per process from the
    host CPU (numba's cache keeps compiled code per CPU name, so a cached step never crosses over)."""
    features = llvm.get_host_cpu_features()
    return (bool(features.get("avx2")) and not features.get("avx512f")
            and target_cpu() in FAST_GATHER_CPUS)


def byte_planes() -> bool:
    """Whether the activations read their table from its byte planes held in registers (AVX512-VBMI's vpermi2b, 64
    rows per pass: _plane_pairs) instead of gathering (Zen 4, sigmoid over 640 rows in C: 0.13-0.15 against
    0.35-0.42 us). Decided per process from the host CPU, as explicit_gathers()."""
    features = llvm.get_host_cpu_features()
    return bool(features.get("avx512vbmi") and features.get("avx512bw"))


def describe() -> str:
    """How the activations read their table, for kernel_info."""
    return ("table reads: AVX512-VBMI vpermi2b on the table's byte planes, 64 rows per pass" if byte_planes() else
            "table reads: AVX2 vpgatherdd, 8 lanes each" if explicit_gathers() else
            "table reads: llvm.masked.gather (LLVM lowers it for this CPU)")


def _gather16(builder, base, index, v32):
    """base[index[lane]] for 16 int32 lanes (base an i32 pointer, index <16 x i32>)."""
    i32, v1 = ir.IntType(32), ir.VectorType(ir.IntType(1), LANES)
    if explicit_gathers():
        i8p, v8 = ir.IntType(8).as_pointer(), ir.VectorType(i32, 8)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v8, [v8, i8p, v8, v8, ir.IntType(8)]),
                                            "llvm.x86.avx2.gather.d.d.256")
        base8 = builder.bitcast(base, i8p)
        halves = [builder.call(fn, [ir.Constant(v8, [0] * 8), base8,
                                    builder.shuffle_vector(index, index, ir.Constant(v8, list(range(h, h + 8)))),
                                    ir.Constant(v8, [-1] * 8), ir.Constant(ir.IntType(8), 4)]) for h in (0, 8)]
        return builder.shuffle_vector(halves[0], halves[1], ir.Constant(v32, list(range(LANES))))
    gather_ty = ir.FunctionType(v32, [ir.VectorType(i32.as_pointer(), LANES), i32, v1, v32])
    gather = cgutils.get_or_insert_function(builder.module, gather_ty, "llvm.masked.gather.v16i32.v16p0")
    return builder.call(gather, [_lanes_gep(builder, base, index), ir.Constant(i32, 4), ir.Constant(v1, [1] * LANES),
                                 ir.Constant(v32, None)])


def _madd16(builder, pair, mult):
    """pmaddwd of 16 int32 lanes, each read as two int16 (low, high): low(pair) low(mult) + high(pair) high(mult),
    exact in int32 here. vpmaddwd where the CPU has it (AVX-512BW in one instruction, AVX2 in two), else the same
    integers from shifts and multiplies (LLVM lowers them anywhere)."""
    i32, i16 = ir.IntType(32), ir.IntType(16)
    v32, v16 = ir.VectorType(i32, LANES), ir.VectorType(i16, 2 * LANES)
    features = llvm.get_host_cpu_features()
    if features.get("avx512bw"):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v32, [v16, v16]),
                                            "llvm.x86.avx512.pmaddw.d.512")
        return builder.call(fn, [builder.bitcast(pair, v16), builder.bitcast(mult, v16)])
    if features.get("avx2"):
        return PAIR_DOT["avx2"](builder, ir.Constant(v32, [0] * LANES), builder.bitcast(pair, v16),
                                builder.bitcast(mult, v16))
    sixteen = ir.Constant(v32, [16] * LANES)

    def low(v):
        return builder.ashr(builder.shl(v, sixteen), sixteen)

    return builder.add(builder.mul(low(pair), low(mult)),
                       builder.mul(builder.ashr(pair, sixteen), builder.ashr(mult, sixteen)))


def _interleave(builder, a, b, high: bool):
    """punpckl/h of a and b (vectors of 64 bytes or 32 words) in each 128-bit lane: the lane's low (high) halves of
    a and b, element by element (vpunpck[lh]bw / [lh]wd)."""
    count = a.type.count
    per_lane = count // 4
    base = per_lane // 2 if high else 0
    index = [lane * per_lane + base + j // 2 + (count if j % 2 else 0) for lane in range(4) for j in range(per_lane)]
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), count), index))


def _plane_pairs(builder, planes, u):
    """The pair table's entries at u (four vectors of 16 int32 indices, each 0 .. 255) read from its four byte
    planes held in 16 registers (planes[p][q]: bytes 64 q .. 64 q + 63 of plane p): the indices packed to 64
    bytes (vpackusdw, vpackuswb), each plane's byte looked up with two vpermi2b (entries 0-127, 128-255) and a
    blend on the index's top bit, the four planes' bytes joined back into int32 by vpunpck[lh]bw and [lh]wd, which
    undo the packs' lane order exactly: the same four vectors of pairs as four gathers."""
    i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
    v8, v16, v32 = ir.VectorType(i8, 64), ir.VectorType(i16, 32), ir.VectorType(i32, LANES)
    module = builder.module
    packusdw = cgutils.get_or_insert_function(module, ir.FunctionType(v16, [v32, v32]), "llvm.x86.avx512.packusdw.512")
    packuswb = cgutils.get_or_insert_function(module, ir.FunctionType(v8, [v16, v16]), "llvm.x86.avx512.packuswb.512")
    permi2b = cgutils.get_or_insert_function(module, ir.FunctionType(v8, [v8, v8, v8]),
                                             "llvm.x86.avx512.vpermi2var.qi.512")
    index = builder.call(packuswb, [builder.call(packusdw, u[:2]), builder.call(packusdw, u[2:])])
    upper = builder.icmp_signed("<", index, ir.Constant(v8, [0] * 64))  # entries 128-255
    b = [builder.select(upper, builder.call(permi2b, [q[2], index, q[3]]), builder.call(permi2b, [q[0], index, q[1]]))
         for q in planes]
    low = [_interleave(builder, b[0], b[1], h) for h in (False, True)]  # bytes 0, 1 of each entry: words
    high = [_interleave(builder, b[2], b[3], h) for h in (False, True)]
    return [builder.bitcast(_interleave(builder, builder.bitcast(low[h], v16), builder.bitcast(high[h], v16), w), v32)
            for h in (0, 1) for w in (False, True)]


def _activation_rows(shift: int, at: int, out_shift: int, middle: int):
    """An intrinsic (a, off, n, table, toff) applying the table activation of `shift` to n rows of a in place, its
    pairs at table[toff + at:] (fused_int8_math.pair_table; their byte planes at table[toff + PLANES_AT + at:]):
    with r' = r - (2^15 << shift) from one pmaddwd, d = (r' + 2^(out_shift - 1)) >> out_shift and y = middle + d
    for x >= 0, middle - d for x < 0 (the module docstring's identities). With byte_planes(), 64 rows per pass
    (_plane_pairs; the last pass's missing vectors masked off their loads and stores), else 16 with a gather."""

    @intrinsic
    def rows(typingctx, a, off, n, table, toff):
        sig = types.void(a, off, n, table, toff)

        def codegen(context, builder, signature, args):
            i1, i8, i32, i64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
            v32 = ir.VectorType(i32, LANES)

            def c(value, ty=v32):
                return ir.Constant(ty, [value] * LANES)

            arr = context.make_array(signature.args[0])(context, builder, args[0])
            tab = context.make_array(signature.args[3])(context, builder, args[3])
            off_, n_, toff_ = (builder.sext(v, i64) if v.type.width < 64 else v for v in (args[1], args[2], args[4]))
            rows_p = cgutils.gep(builder, arr.data, off_)

            def magnitude(x):
                """a = |3x| clamped to 255 << shift (unsigned: any int32 lands inside the table)."""
                x3 = builder.mul(x, c(3))
                a_ = builder.select(builder.icmp_signed("<", x3, c(0)), builder.sub(c(0), x3), x3)
                return builder.select(builder.icmp_unsigned("<", a_, c(255 << shift)), a_, c(255 << shift))

            def finish(x, a_, pair):
                mult = builder.or_(builder.and_(a_, c((1 << shift) - 1)), c(1 << (shift + 16)))  # (frac, 2^shift)
                d = builder.ashr(builder.add(_madd16(builder, pair, mult), c(1 << (out_shift - 1))), c(out_shift))
                d = builder.select(builder.icmp_signed("<", x, c(0)), builder.sub(c(0), d), d)
                return builder.add(d, c(middle)) if middle else d

            if byte_planes():
                planes_p = builder.bitcast(cgutils.gep(builder, tab.data, builder.add(toff_, ir.Constant(
                    i64, PLANES_AT + at))), ir.VectorType(i8, 64).as_pointer())
                planes = [[builder.load(cgutils.gep(builder, planes_p, ir.Constant(i64, 4 * p + q)), align=4)
                           for q in range(4)] for p in range(4)]
                mask_ty = ir.VectorType(i1, LANES)
                load, store = masked_16(builder, store=False), masked_16(builder, store=True)
                passes = builder.sdiv(builder.add(n_, ir.Constant(i64, 4 * LANES - 1)), ir.Constant(i64, 4 * LANES))
                with cgutils.for_range(builder, passes) as loop:
                    first = builder.mul(loop.index, ir.Constant(i64, 4 * LANES))
                    ptrs, masks, xs, mags = [], [], [], []
                    for j in range(4):
                        at_j = builder.add(first, ir.Constant(i64, j * LANES))
                        inside = builder.icmp_signed("<", at_j, n_)
                        masks.append(builder.select(inside, ir.Constant(mask_ty, [1] * LANES),
                                                    ir.Constant(mask_ty, [0] * LANES)))
                        ptrs.append(builder.bitcast(cgutils.gep(builder, rows_p, at_j), v32.as_pointer()))
                        xs.append(builder.call(load, [ptrs[j], ir.Constant(i32, 4), masks[j], c(0)]))
                        mags.append(magnitude(xs[j]))
                    pairs = _plane_pairs(builder, planes, [builder.lshr(m, c(shift)) for m in mags])
                    for j in range(4):
                        builder.call(store, [finish(xs[j], mags[j], pairs[j]), ptrs[j], ir.Constant(i32, 4), masks[j]])
                return context.get_dummy_value()
            tab_p = cgutils.gep(builder, tab.data, builder.add(toff_, ir.Constant(i64, at)))
            chunks = builder.sdiv(n_, ir.Constant(i64, LANES))
            with cgutils.for_range(builder, chunks) as loop:
                ptr = builder.bitcast(cgutils.gep(builder, rows_p, builder.mul(loop.index, ir.Constant(i64, LANES))),
                                      v32.as_pointer())
                x = builder.load(ptr, align=4)
                a_ = magnitude(x)
                builder.store(finish(x, a_, _gather16(builder, tab_p, builder.lshr(a_, c(shift)), v32)), ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return rows


sigmoid_rows_at = _activation_rows(9, 0, 10, 1 << 14)
tanh_rows_at = _activation_rows(8, TANH_AT, 8, 0)


class _Rows:
    """The vector IR the requantising row intrinsics share: 16 int32 lanes of rows, and mbqm_right per lane."""

    def __init__(self, builder):
        self.b = builder
        i32, i64 = ir.IntType(32), ir.IntType(64)
        self.v32, self.v64 = ir.VectorType(i32, LANES), ir.VectorType(i64, LANES // 2)

    def c(self, value, ty=None):
        ty = ty or self.v32
        return ir.Constant(ty, [value] * ty.count)

    def load(self, base, index):
        """16 lanes at base[index:] and their pointer."""
        ptr = self.b.bitcast(cgutils.gep(self.b, base, index), self.v32.as_pointer())
        return self.b.load(ptr, align=4), ptr

    def srdhm(self, acc, M):
        """floor((acc M + 2^30) / 2^31) per lane: even and odd lanes as 64-bit products, the results as int32."""
        b, c, v64 = self.b, self.c, self.v64
        a64, m64 = b.bitcast(acc, v64), b.bitcast(M, v64)
        highs = []
        for lanes in ((b.ashr(b.shl(a64, c(32, v64)), c(32, v64)), b.ashr(b.shl(m64, c(32, v64)), c(32, v64))),
                      (b.ashr(a64, c(32, v64)), b.ashr(m64, c(32, v64)))):
            highs.append(b.ashr(b.add(b.mul(*lanes), c(1 << 30, v64)), c(31, v64)))
        even = b.and_(highs[0], c(0xFFFFFFFF, v64))
        return b.bitcast(b.or_(even, b.shl(highs[1], c(32, v64))), self.v32)

    def term(self, acc, M, e, half, half_neg):
        """fused_int8_math.mbqm_right(acc, M, e, half, half_neg) per lane (int32)."""
        b, c = self.b, self.c
        high = self.srdhm(acc, M)
        nudge = b.select(b.icmp_signed("<", high, c(0)), half_neg, half)
        rest = b.and_(high, b.sub(b.shl(c(1), e), c(1)))
        return b.add(b.ashr(high, e), b.lshr(b.add(rest, nudge), e))

    def term_bounded(self, acc, M, e, half, half_neg):
        """term() where the caller has proved |high| + half < 2^31 for every row: the rounding as one addition,
        (high + nudge) >> e, without term's split into a shift and a rounded remainder."""
        b, c = self.b, self.c
        high = self.srdhm(acc, M)
        return b.ashr(b.add(high, b.select(b.icmp_signed("<", high, c(0)), half_neg, half)), e)

    def terms(self, ax_p, ah_p, rows, first, bounded: bool = False):
        """The 16 rows at `first`: (pointer to a[ax + first:], yx, yh), the two requantised terms of
        gate_sums_rows_at from a[ax + r] and a[ah + r] with the rows' constants (rows: 8 pointers into the blob,
        [M, e, half, half_neg] per side), by term() or, bounded, term_bounded()."""
        x, x_ptr = self.load(ax_p, first)
        h, _ = self.load(ah_p, first)
        term = self.term_bounded if bounded else self.term
        yx = term(x, *[self.load(p, first)[0] for p in rows[:4]])
        yh = term(h, *[self.load(p, first)[0] for p in rows[4:]])
        return x_ptr, yx, yh

    def reset_times(self, yh, r):
        """rounding_divide_by_pot(r yh, 15) per lane for 0 <= r <= 32767 (gru_candidate_rows_at's int32 form)."""
        b, c = self.b, self.c
        hi, lo = b.ashr(yh, c(15)), b.and_(yh, c(0x7FFF))
        negative = b.and_(b.icmp_signed("<", yh, c(0)), b.icmp_signed(">", r, c(0)))
        low = b.sub(b.add(b.mul(r, lo), c(1 << 14)), b.zext(negative, self.v32))
        return b.add(b.mul(r, hi), b.lshr(low, c(15)))

    def clamp16(self, x):
        """sat16(x) per lane: x clamped to [-32768, 32767]."""
        b, c = self.b, self.c
        x = b.select(b.icmp_signed("<", x, c(-32768)), c(-32768), x)
        return b.select(b.icmp_signed(">", x, c(32767)), c(32767), x)

    def sat16_sum(self, p, q, bounded: bool = False):
        """sat16(p + q) per lane, p and q int32: saturated where the int32 sum overflows (its true value is then far
        outside int16 on the side of the terms' sign); bounded (the caller's proof that |p| + |q| < 2^31): a clamp."""
        b, c = self.b, self.c
        total = b.add(p, q)
        clamped = self.clamp16(total)
        if bounded:
            return clamped
        overflow = b.icmp_signed("<", b.and_(b.xor(p, total), b.xor(q, total)), c(0))
        wide = b.select(b.icmp_signed("<", p, c(0)), c(-32768), c(32767))
        return b.select(overflow, wide, clamped)


def _rows_args(context, builder, signature, args, arrays):
    """(a's data, blob's data, every offset / count argument as int64) of a row intrinsic whose arrays are at
    argument positions `arrays` (a first, blob second)."""
    a = context.make_array(signature.args[arrays[0]])(context, builder, args[arrays[0]])
    blob = context.make_array(signature.args[arrays[1]])(context, builder, args[arrays[1]])
    ints = [builder.sext(v, ir.IntType(64)) if v.type.width < 64 else v
            for i, v in enumerate(args) if i not in arrays]
    return a.data, blob.data, ints


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
        return _gate_sums(context, builder, signature, args, False)

    return sig, codegen


def _gate_sums(context, builder, signature, args, bounded: bool):
    """gate_sums_rows_at's / gate_sums_bounded_at's loop (their arguments: a, ax, ah, n, blob, rows)."""
    a_p, blob_p, (ax_, ah_, n_, *offs) = _rows_args(context, builder, signature, args, (0, 4))
    v = _Rows(builder)
    ax_p, ah_p = (cgutils.gep(builder, a_p, o) for o in (ax_, ah_))
    rows = [cgutils.gep(builder, blob_p, o) for o in offs]
    chunks = builder.sdiv(n_, ir.Constant(ir.IntType(64), LANES))
    with cgutils.for_range(builder, chunks) as loop:
        x_ptr, yx, yh = v.terms(ax_p, ah_p, rows, builder.mul(loop.index, ir.Constant(ir.IntType(64), LANES)),
                                bounded)
        builder.store(v.sat16_sum(yx, yh, bounded), x_ptr, align=4)
    return context.get_dummy_value()


@intrinsic
def gru_candidate_rows_at(typingctx, a, ax, ar, ah, n, blob, mx, ex, hx, nx, mh, eh, hh, nh):
    """The GRU candidate's pre-activation, in place, for rows j < n (a multiple of 16), 16 rows per pass:
    a[ax + j] = sat16(yx + rounding_divide_by_pot(a[ar + j] yh, 15)) with yx = mbqm_right(a[ax + j], blob[mx + j],
    ...), yh = mbqm_right(a[ah + j], blob[mh + j], ...) (gate_sums_rows_at's terms) and a[ar + j] the reset gate,
    a sigmoid output: 0 <= a[ar + j] <= 32767 (Q0.15). The numba loop fused_int8_cells.gates writes otherwise
    (int8_math's integers) is scalar, its products 64-bit (~2 ns a row on Zen 3); here all in int32 lanes: with
    yh = hi 2^15 + lo (lo = yh & 0x7FFF), r yh / 2^15 = r hi + r lo / 2^15 exactly, and r hi, r lo and the rounded
    quotient r hi + ((r lo + 2^14 - [r yh < 0]) >> 15) all fit int32 for r in that range; the sum with yx
    saturated as gate_sums_rows_at does."""
    sig = types.void(a, ax, ar, ah, n, blob, mx, ex, hx, nx, mh, eh, hh, nh)

    def codegen(context, builder, signature, args):
        return _gru_candidate(context, builder, signature, args, False)

    return sig, codegen


def _gru_candidate(context, builder, signature, args, bounded: bool):
    """gru_candidate_rows_at's / gru_candidate_bounded_at's loop (their arguments: a, ax, ar, ah, n, blob, rows)."""
    a_p, blob_p, (ax_, ar_, ah_, n_, *offs) = _rows_args(context, builder, signature, args, (0, 5))
    v = _Rows(builder)
    ax_p, ar_p, ah_p = (cgutils.gep(builder, a_p, o) for o in (ax_, ar_, ah_))
    rows = [cgutils.gep(builder, blob_p, o) for o in offs]
    chunks = builder.sdiv(n_, ir.Constant(ir.IntType(64), LANES))
    with cgutils.for_range(builder, chunks) as loop:
        first = builder.mul(loop.index, ir.Constant(ir.IntType(64), LANES))
        x_ptr, yx, yh = v.terms(ax_p, ah_p, rows, first, bounded)
        builder.store(v.sat16_sum(yx, v.reset_times(yh, v.load(ar_p, first)[0]), bounded), x_ptr, align=4)
    return context.get_dummy_value()


@intrinsic
def gate_sums_bounded_at(typingctx, a, ax, ah, n, blob, mx, ex, hx, nx, mh, eh, hh, nh):
    """gate_sums_rows_at (the same arguments) where the caller has proved |acc| + 2^e < 2^30 for every
    accumulator and row (fused_int8_cells.layer_constants, from the weights and biases): the rounding is one
    addition, (high + nudge) >> e, and the two terms' sum (each below 2^30) needs no overflow check. The same
    integers in fewer operations (kws' 512 rows ~0.07 us less on Zen 3)."""
    sig = types.void(a, ax, ah, n, blob, mx, ex, hx, nx, mh, eh, hh, nh)

    def codegen(context, builder, signature, args):
        return _gate_sums(context, builder, signature, args, True)

    return sig, codegen


@intrinsic
def gru_candidate_bounded_at(typingctx, a, ax, ar, ah, n, blob, mx, ex, hx, nx, mh, eh, hh, nh):
    """gru_candidate_rows_at (the same arguments) with gate_sums_bounded_at's proof (|r yh / 2^15| <= |yh|, so the
    candidate's sum is bounded as the gates' is). The same integers."""
    sig = types.void(a, ax, ar, ah, n, blob, mx, ex, hx, nx, mh, eh, hh, nh)

    def codegen(context, builder, signature, args):
        return _gru_candidate(context, builder, signature, args, True)

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
