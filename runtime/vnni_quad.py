"""The specialised int8 steps' products on AVX512-VNNI (runtime/fused_int8.py, path "avx512_vnni"): one weight
layout, one instruction (`vpdpbusd`). The integers of kernels_int8.gemv_t_int8, exactly.

    wq = pack_quad(w_t)     once, at load: w_t (K, N) int8 -> quads of inputs per lane, then a correction row
    matvec_quad_at(...)     one row (a stream at batch 1, a recurrence at batch 1): vpdpbusd on 8-bit limbs
    matmat_quad_at(...)     rows four at a time (streams of a batch, steps of a sequence): vpdpbusd as for one row,
                            each weight load serving the four rows' limbs; a group's last 1-3 rows as matvec_quad_at

Layout: block b holds outputs 16b .. 16b+15; for the quad of inputs (4q .. 4q+3) its 64 int8 are, for each of the
16 outputs n in turn, w_t[4q, n], w_t[4q+1, n], w_t[4q+2, n], w_t[4q+3, n] (zero past K and N): one 32-bit lane per
output, the order `vpdpbusd` reads. After the blocks, an int32 row of 16 per block: -2^15 sum_k w_t[k, n] (mod 2^32).

`vpdpbusd` (unsigned 8-bit x signed 8-bit, four products summed into each 32-bit lane): a row's values v (int16,
in int32) are split into two unsigned bytes, lo = v & 255 and hi' = (v >> 8) + 128, so v = lo + 2^8 (hi' - 128)
and W^T v = W^T lo + 2^8 W^T hi' - 2^15 colsum(W): two instructions per 64 weight bytes and row, the weights read as
stored (int16 pairs on `vpdpwssd` sign-extend every weight load, `vpmovsxbw`, which bounds one row at ~75 G
multiply-adds/s on Zen 4; this one measured 100-105 G in C for kws' W_hh^T, 128 x 512: 0.64 against 0.95 us).
The correction row starts the lo limb's sums with the bias. Four rows: each 64-byte weight load feeds eight
instructions (the four rows' two limbs, each row's four bytes of a limb broadcast), two blocks per pass, 16
accumulators. In C for kws' W_hh^T, four rows: 0.59-0.60 us a row (109-112 G of the instruction's 117 G) against
0.60-0.62 (105-109 G) for the same quads on `vpdpwssd` through one `vpermb` + `vpmovsxbw` per load (the four-row path this one replaced).
One row's lone block of 16 outputs (a head, a layer's last rows) has only its two limbs' sums to carry: a chain of
dependent `vpdpbusd` as long as k / 4, at their latency, so its quads go to SPLIT sets of sums, added at the end
(Zen 4, in a numba loop, ns a call: 16 outputs over k = 128 52 -> 41, k = 512 176 -> 123; 32 outputs over 512, two
lone blocks, 305 -> 203). int32 sums wrap and addition mod 2^32 associates, so each output is the exact sum (it fits int32: the export's
bound) whatever the order or the split. Each row's values are packed as limbs into a stack buffer before
the passes, CHUNK inputs at a time; a longer k runs in chunks, its sums carried in dst from one to the next.
"""

from __future__ import annotations

import functools

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnedge.runtime.jit import int_inline
from rnnedge.runtime.vnni import LANES, ROWS, function_buffer, in_chunks, in_groups, lanes_below, masked_16, splat

CHUNK = 1024  # inputs per row packed into the stack buffer before a chunk's passes (a multiple of 16)
GROUP_ONE = 4  # blocks per pass of one row: 8 accumulators (two limbs each)
GROUP_ROWS = 2  # blocks per pass of four rows: 16 accumulators (two limbs each)
SPLIT = 4  # sets of sums of one row's lone block (blocks_pass): 8 accumulators


def pack_quad(w_t: np.ndarray) -> np.ndarray:
    """w_t (K, N) int8 -> 1-D int8: (ceil(N/16), ceil(K/4), 64) in the module docstring's layout, then the int32
    correction row (16 per block) as bytes."""
    if not isinstance(w_t, np.ndarray) or w_t.ndim != 2 or w_t.dtype != np.int8:
        raise ValueError(f"pack_quad needs a 2-D int8 matrix (K, N), got {getattr(w_t, 'dtype', type(w_t).__name__)} "
                         f"with shape {getattr(w_t, 'shape', None)}")
    K, N = w_t.shape
    blocks, quads = -(-N // LANES), -(-K // 4)
    padded = np.zeros((4 * quads, blocks * LANES), np.int8)
    padded[:K, :N] = w_t
    # (quad, 4, block, lane) -> (block, quad, lane, 4): a lane's four weights side by side
    wq = padded.reshape(quads, 4, blocks, LANES).transpose(2, 0, 3, 1)
    correction = (-(2**15) * padded.astype(np.int64).sum(axis=0)).astype(np.int32)  # wraps mod 2^32, as the sums
    return np.concatenate([np.ascontiguousarray(wq).reshape(-1), correction.view(np.int8)])



def _busd(builder, acc, unsigned, signed):
    """acc (16 x i32) + vpdpbusd(unsigned, signed), 64 bytes each."""
    i32x16, i8x64 = ir.VectorType(ir.IntType(32), 16), ir.VectorType(ir.IntType(8), 64)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32x16, [i32x16, i8x64, i8x64]),
                                        "llvm.x86.avx512.vpdpbusd.512")
    return builder.call(fn, [acc, builder.bitcast(unsigned, i8x64), builder.bitcast(signed, i8x64)])


@intrinsic
def matmat_quad_at(typingctx, dst, dst_off, dst_stride, wq, w_off, bias, b_off, v, v_off, v_stride, k, blocks, rows):
    """For r < rows: dst[dst_off + r dst_stride : ... + 16 blocks] = bias[b_off : ...] + W^T v[v_off + r v_stride :
    ... + k], W^T packed by pack_quad at wq[w_off:] (bytes; dst, bias, v int32, v's values int16): rows four at a time
    (each weight load serving the four), the rest one at a time, all on vpdpbusd (module docstring). Every operand an offset into a flat array,
    so a kernel compiled for one model passes literals and holds no array views."""
    sig = types.void(dst, dst_off, dst_stride, wq, w_off, bias, b_off, v, v_off, v_stride, k, blocks, rows)

    def codegen(context, builder, signature, args):
        i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
        v8x64, v32x16 = ir.VectorType(i8, 64), ir.VectorType(i32, 16)
        arrays = [context.make_array(signature.args[a])(context, builder, args[a]) for a in (0, 3, 5, 7)]

        def as_i64(value):
            return builder.sext(value, i64) if value.type.width < 64 else value

        def c64(n):
            return ir.Constant(i64, n)

        dst_off_, dst_stride_, w_off_, b_off_, v_off_, v_stride_, k_, nblocks, nrows = (
            as_i64(args[a]) for a in (1, 2, 4, 6, 8, 9, 10, 11, 12))
        w_p = cgutils.gep(builder, arrays[1].data, w_off_)
        b_p = cgutils.gep(builder, arrays[2].data, b_off_)
        quads = builder.sdiv(builder.add(k_, c64(3)), c64(4))
        corr_p = builder.bitcast(cgutils.gep(builder, w_p, builder.mul(builder.mul(nblocks, quads), c64(64))),
                                 i32.as_pointer())
        limbs = function_buffer(builder, "quad_limbs", i8, 2 * ROWS * CHUNK)  # each row's lo bytes, then hi' bytes

        def vec_ptr(base, index):
            return builder.bitcast(cgutils.gep(builder, base, builder.mul(index, c64(LANES))), v32x16.as_pointer())

        def v_row(r):
            return cgutils.gep(builder, arrays[3].data, builder.add(v_off_, builder.mul(r, v_stride_)))

        def pack_values(row, i0, count, store):
            """store(j, x) for the chunk's values i0 + j, 16 lanes x at a time up to count (the buffers hold
            CHUNK, a multiple of 16): lanes past k masked off the load (zeros: their weights are zero)."""
            load = masked_16(builder, store=False)
            with cgutils.for_range(builder, builder.sdiv(builder.add(count, c64(LANES - 1)), c64(LANES))) as loop:
                j = builder.mul(loop.index, c64(LANES))
                inside = builder.sub(k_, builder.add(i0, j))  # > 0: count never starts a chunk past k
                inside = builder.trunc(builder.select(builder.icmp_signed("<", inside, c64(LANES)), inside,
                                                      c64(LANES)), i32)
                mask = lanes_below(builder, inside)
                ptr = builder.bitcast(cgutils.gep(builder, row, builder.add(i0, j)), v32x16.as_pointer())
                store(j, builder.call(load, [ptr, ir.Constant(i32, 4), mask, ir.Constant(v32x16, [0] * LANES)]))

        def start_of(dst_row, block, first):
            """The sums a pass starts from: the bias plus the correction row (the lo limb's) in the first chunk,
            else dst's sums so far."""
            at_bias = builder.add(builder.load(vec_ptr(b_p, block), align=4),
                                  builder.load(vec_ptr(corr_p, block), align=4))
            return builder.select(first, at_bias, builder.load(vec_ptr(dst_row, block), align=4))

        def limb_rows(r0, nrows, q0, count_q, first, group):
            """Rows r0 .. r0 + nrows - 1's chunk of count_q quads from quad q0, on vpdpbusd: each row's values
            packed as two limbs (lo bytes, then hi' bytes, CHUNK apart), then passes of `group` blocks, each 64-byte
            weight load feeding the rows' two limbs (2 nrows instructions)."""
            i0 = builder.mul(q0, c64(4))
            for r in range(nrows):
                lo_p, hi_p = (cgutils.gep(builder, limbs, c64((2 * r + h) * CHUNK)) for h in (0, 1))

                def store(j, x, lo_p=lo_p, hi_p=hi_p):
                    v8x16 = ir.VectorType(i8, LANES)
                    hi = builder.add(builder.ashr(x, ir.Constant(v32x16, [8] * LANES)), ir.Constant(v32x16, [128] * LANES))
                    for limb, at in ((x, lo_p), (hi, hi_p)):
                        builder.store(builder.trunc(limb, v8x16), builder.bitcast(cgutils.gep(builder, at, j),
                                                                                 v8x16.as_pointer()), align=1)

                pack_values(v_row(builder.add(r0, c64(r))), i0, builder.mul(count_q, c64(4)), store)
            limbs32 = builder.bitcast(limbs, i32.as_pointer())
            dst_rows = [cgutils.gep(builder, arrays[0].data, builder.add(dst_off_, builder.mul(
                builder.add(r0, c64(r)), dst_stride_))) for r in range(nrows)]

            def blocks_pass(b0, nb):
                # one row's lone block: its quads split over SPLIT sets of sums (q mod SPLIT), so the chain of
                # dependent vpdpbusd is SPLIT times shorter (a head of <= 16 outputs over k = 512: 256 in a row)
                sets = SPLIT if nrows == 1 and nb == 1 else 1
                slots = [[[(cgutils.alloca_once(builder, v32x16), cgutils.alloca_once(builder, v32x16))
                           for _ in range(sets)] for _ in range(nb)] for _ in range(nrows)]
                for r in range(nrows):
                    for u, parts in enumerate(slots[r]):
                        for i, (a_lo, a_hi) in enumerate(parts):
                            builder.store(start_of(dst_rows[r], builder.add(b0, c64(u)), first) if i == 0 else
                                          ir.Constant(v32x16, [0] * LANES), a_lo)
                            builder.store(ir.Constant(v32x16, [0] * LANES), a_hi)

                def quad(q, i):
                    """Quad q0 + q into set i of every row's and block's sums."""
                    ws = []
                    for u in range(nb):
                        at = builder.mul(builder.add(builder.mul(builder.add(b0, c64(u)), quads), builder.add(q0, q)),
                                         c64(64))
                        ws.append(builder.load(builder.bitcast(cgutils.gep(builder, w_p, at), v8x64.as_pointer()),
                                               align=1))
                    for r in range(nrows):
                        s_lo, s_hi = (splat(builder, builder.load(cgutils.gep(builder, limbs32, builder.add(
                            c64((2 * r + h) * CHUNK // 4), q))), v32x16) for h in (0, 1))
                        for u, parts in enumerate(slots[r]):
                            a_lo, a_hi = parts[i]
                            builder.store(_busd(builder, builder.load(a_lo), s_lo, ws[u]), a_lo)
                            builder.store(_busd(builder, builder.load(a_hi), s_hi, ws[u]), a_hi)

                whole = builder.sdiv(count_q, c64(sets))
                with cgutils.for_range(builder, whole) as loop:
                    for i in range(sets):
                        quad(builder.add(builder.mul(loop.index, c64(sets)), c64(i)), i)
                with cgutils.for_range_slice(builder, builder.mul(whole, c64(sets)), count_q, c64(1)) as (q, _):
                    quad(q, 0)
                for r in range(nrows):
                    for u, parts in enumerate(slots[r]):
                        lo, hi = (functools.reduce(builder.add, (builder.load(p[h]) for p in parts)) for h in (0, 1))
                        total = builder.add(lo, builder.shl(hi, ir.Constant(v32x16, [8] * LANES)))
                        builder.store(total, vec_ptr(dst_rows[r], builder.add(b0, c64(u))), align=4)

            in_groups(builder, nblocks, group, blocks_pass)

        def rows_of(r0, nrows):
            """Rows r0 .. r0 + nrows - 1 over k's quads, CHUNK / 4 at a time."""
            group = GROUP_ROWS if nrows > 1 else GROUP_ONE
            in_chunks(builder, quads, CHUNK // 4, lambda q0, count_q, first: limb_rows(r0, nrows, q0, count_q, first,
                                                                                        group))

        in_groups(builder, nrows, ROWS, rows_of)
        return context.get_dummy_value()

    return sig, codegen


@int_inline
def matvec_quad_at(dst, dst_off, wq, w_off, bias, b_off, v, v_off, k, blocks):
    """dst[dst_off : dst_off + 16 blocks] = bias[b_off : ...] + W^T v[v_off : v_off + k] (pack_quad's W^T at
    wq[w_off:]): matmat_quad_at of one row, on vpdpbusd."""
    matmat_quad_at(dst, dst_off, 0, wq, w_off, bias, b_off, v, v_off, 0, k, blocks, 1)
