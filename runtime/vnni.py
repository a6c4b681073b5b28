"""The int8 mat-vec on AVX512-VNNI (`vpdpwssd`: int16 x int16 pairs summed into int32 lanes), with a portable
loop chosen at load on CPUs without it; both give the integers of kernels_int8.gemv_t_int8 exactly.

    wp = pack(w_t)            once, at load: w_t (K, N) int8 -> the weights in the chosen kernel's layout
    gemv_t(acc, wp, v)        per step: acc (N,) int32 += w_t^T @ v, v (K,) int32 holding int16 values
    KERNEL                    "avx512_vnni" or "portable": which pack and gemv_t this process runs

The specialised int8 steps (runtime/fused_int8.py) run vnni_quad's products on AVX512-VNNI (their own layout,
vpdpbusd for every row count), or on a CPU with AVX2 but no VNNI matvec_avx2_at / matmat_avx2_at below:
this layout with vpmaddwd + vpaddd in place of each vpdpwssd (best_path() says which this CPU gets).

pack and gemv_t are chosen together: the VNNI pair uses the blocked layout below (pack_vnni, gemv_t_vnni); the
portable pair keeps w_t (K, N) as it is and loops four input rows per pass with lanes across N (pack_portable,
gemv_t_portable), which LLVM vectorises with the CPU's own instructions.

The layout is what `vpdpwssd` wants: block b holds outputs 16b .. 16b+15, and for the pair of inputs (2p, 2p+1)
its 32 int8 are w_t[2p, n], w_t[2p+1, n] interleaved over those 16 outputs (zero past K and N). One instruction
adds v[2p] w_t[2p, n] + v[2p+1] w_t[2p+1, n] to 16 int32 lanes; four blocks share one broadcast of the pair and
run as four independent chains. int32 sums wrap in both paths, and int32 addition mod 2^32 associates, so the
order of the adds never changes the result. The weights stay int8 in memory (half the bytes to stream from
cache) and are sign-extended to int16 as they are loaded (vpmovsxbw); v's values
must fit int16 (the int8 kernels' activations and state do), as `vpdpwssd` reads only their low 16 bits.
"""

from __future__ import annotations

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnedge.runtime.jit import int_inline, kernel
from rnnedge.runtime.kernels_int8 import gemv_t_int8 as gemv_t_portable  # the portable path is today's loop

LANES = 16  # int32 lanes of one zmm register
GROUP = 4  # blocks advanced together: independent accumulator chains hide the instruction's latency


def has_avx512_vnni() -> bool:
    features = llvm.get_host_cpu_features()
    return bool(features.get("avx512vnni") and features.get("avx512bw"))


def has_avx2() -> bool:
    return bool(llvm.get_host_cpu_features().get("avx2"))


def best_path() -> str:
    """The specialised steps' mat-vec path for this CPU: "avx512_vnni", else "avx2" (the same blocked weights and
    integers on vpmaddwd), else "portable" (plain loops)."""
    return "avx512_vnni" if has_avx512_vnni() else "avx2" if has_avx2() else "portable"


def _check(w_t: np.ndarray) -> None:
    if not isinstance(w_t, np.ndarray) or w_t.ndim != 2 or w_t.dtype != np.int8:
        raise ValueError(f"pack needs a 2-D int8 matrix (K, N), got {getattr(w_t, 'dtype', type(w_t).__name__)} "
                         f"with shape {getattr(w_t, 'shape', None)}")


def pack_portable(w_t: np.ndarray) -> np.ndarray:
    """w_t (K, N) int8, C-contiguous: gemv_t_portable's layout is w_t's own."""
    _check(w_t)
    return np.ascontiguousarray(w_t)


def pack_vnni(w_t: np.ndarray) -> np.ndarray:
    """w_t (K, N) int8 -> (ceil(N/16), ceil(K/2), 32) int8 in vpdpwssd's pair-interleaved layout."""
    _check(w_t)
    K, N = w_t.shape
    blocks, pairs = -(-N // LANES), -(-K // 2)
    padded = np.zeros((2 * pairs, blocks * LANES), np.int8)
    padded[:K, :N] = w_t
    # (pair, 2, block, lane) -> (block, pair, lane, 2): the pair's two weights side by side for each lane
    wp = padded.reshape(pairs, 2, blocks, LANES).transpose(2, 0, 3, 1)
    return np.ascontiguousarray(wp.reshape(blocks, pairs, 2 * LANES))


def _dpwssd_ir(builder: ir.IRBuilder, a, w, b):
    """a (16 x i32) + vpdpwssd(w, b) for w, b of 32 int16 each (LLVM's declaration of the instruction)."""
    i32x16, i16x32 = ir.VectorType(ir.IntType(32), 16), ir.VectorType(ir.IntType(16), 32)
    fnty = ir.FunctionType(i32x16, [i32x16, i16x32, i16x32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpwssd.512")
    return builder.call(fn, [a, w, b])


def _pmaddwd_ir(builder: ir.IRBuilder, a, w, b):
    """_dpwssd_ir's integers on AVX2: vpmaddwd on each half (8 lanes: w[2j] b[2j] + w[2j+1] b[2j+1] as int32,
    wrapping alike), then vpaddd. The values stay 16-lane vectors (two ymm registers each)."""
    i32, i16 = ir.IntType(32), ir.IntType(16)
    i32x8, i16x16 = ir.VectorType(i32, 8), ir.VectorType(i16, 16)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i32x8, [i16x16, i16x16]),
                                        "llvm.x86.avx2.pmadd.wd")
    halves = [ir.Constant(ir.VectorType(i32, 16), list(range(16 * h, 16 * h + 16))) for h in (0, 1)]
    parts = [builder.call(fn, [builder.shuffle_vector(w, w, half), builder.shuffle_vector(b, b, half)])
             for half in halves]
    both = builder.shuffle_vector(parts[0], parts[1], ir.Constant(ir.VectorType(i32, 16), list(range(16))))
    return builder.add(a, both)


# the instructions a specialised int8 / int8w mat-vec sums int16 pairs with: "vnni" (vpdpwssd) or "avx2" (vpmaddwd)
PAIR_DOT = {"vnni": _dpwssd_ir, "avx2": _pmaddwd_ir}


@intrinsic
def _vnni_blocks(typingctx, acc, wp, v, full_blocks):
    """acc[:16 full_blocks] += the packed product over v's complete pairs (v[2p], v[2p+1], 2p + 1 < len(v))."""
    sig = types.void(acc, wp, v, full_blocks)

    def codegen(context, builder, signature, args):
        i8, i16, i32, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
        i32x16, i16x32, i8x32 = ir.VectorType(i32, 16), ir.VectorType(i16, 32), ir.VectorType(i8, 32)
        acc_a = context.make_array(signature.args[0])(context, builder, args[0])
        wp_a = context.make_array(signature.args[1])(context, builder, args[1])
        v_a = context.make_array(signature.args[2])(context, builder, args[2])
        nblocks_total = builder.sext(args[3], i64) if args[3].type != i64 else args[3]
        pairs_stride = cgutils.unpack_tuple(builder, wp_a.shape, 3)[1]  # ceil(K/2)
        k = cgutils.unpack_tuple(builder, v_a.shape, 1)[0]
        npairs = builder.sdiv(k, ir.Constant(i64, 2))
        lo_mask, sixteen = ir.Constant(i32, 0xFFFF), ir.Constant(i32, 16)
        slots = [cgutils.alloca_once(builder, i32x16) for _ in range(GROUP)]

        def blocks(b0, count):
            ptrs = [cgutils.gep(builder, acc_a.data, builder.mul(builder.add(b0, ir.Constant(i64, u)),
                                                                  ir.Constant(i64, LANES))) for u in range(count)]
            for u in range(count):
                builder.store(builder.load(builder.bitcast(ptrs[u], i32x16.as_pointer()), align=4), slots[u])
            with cgutils.for_range(builder, npairs) as loop:
                p = loop.index
                two_p = builder.mul(p, ir.Constant(i64, 2))
                lo = builder.load(cgutils.gep(builder, v_a.data, two_p))
                hi = builder.load(cgutils.gep(builder, v_a.data, builder.add(two_p, ir.Constant(i64, 1))))
                pair = builder.or_(builder.and_(lo, lo_mask), builder.shl(hi, sixteen))
                bvec = builder.bitcast(splat(builder, pair, i32x16), i16x32)
                for u in range(count):
                    block = builder.add(b0, ir.Constant(i64, u))
                    off = builder.mul(builder.add(builder.mul(block, pairs_stride), p), ir.Constant(i64, 2 * LANES))
                    wptr = builder.bitcast(cgutils.gep(builder, wp_a.data, off), i8x32.as_pointer())
                    w = builder.sext(builder.load(wptr, align=1), i16x32)  # vpmovsxbw: int8 in memory
                    builder.store(_dpwssd_ir(builder, builder.load(slots[u]), w, bvec), slots[u])
            for u in range(count):
                builder.store(builder.load(slots[u]), builder.bitcast(ptrs[u], i32x16.as_pointer()), align=4)

        in_groups(builder, nblocks_total, GROUP, blocks)
        return context.get_dummy_value()

    return sig, codegen


@kernel
def _blocks_portable(acc, wp, v, first_block):
    """Blocks first_block.. of the packed product in plain loops: a last block of fewer than 16 outputs."""
    K, N = v.shape[0], acc.shape[0]
    for b in range(first_block, wp.shape[0]):
        base = b * LANES
        for p in range(K // 2):
            v0, v1 = np.int32(v[2 * p]), np.int32(v[2 * p + 1])
            for lane in range(min(LANES, N - base)):
                acc[base + lane] += np.int32(wp[b, p, 2 * lane]) * v0 + np.int32(wp[b, p, 2 * lane + 1]) * v1
        if K % 2:
            _odd_input(acc, wp, v, b)


@kernel
def _odd_input(acc, wp, v, b):
    """Block b's share of an odd K's last input, which has no partner in its pair."""
    base, vk, row = b * LANES, np.int32(v[v.shape[0] - 1]), wp[b, v.shape[0] // 2]
    for lane in range(min(LANES, acc.shape[0] - base)):
        acc[base + lane] += np.int32(row[2 * lane]) * vk


@kernel
def gemv_t_vnni(acc, wp, v):
    """acc (N,) int32 += w_t^T @ v from pack(w_t) and v (K,) int32 (int16 values), on AVX512-VNNI."""
    full = acc.shape[0] // LANES
    _vnni_blocks(acc, wp, v, full)
    if v.shape[0] % 2:
        for b in range(full):
            _odd_input(acc, wp, v, b)
    _blocks_portable(acc, wp, v, full)


KERNEL = "avx512_vnni" if has_avx512_vnni() else "portable"
pack, gemv_t = (pack_vnni, gemv_t_vnni) if KERNEL == "avx512_vnni" else (pack_portable, gemv_t_portable)


ROWS = 4  # rows (sequence steps, or streams) sharing each weight load in matmat_avx2_at and vnni_quad.matmat_quad_at


PACKED_PAIRS = 512  # input pairs per row packed before the passes (avx2): a chunk of k, ROWS x 2 KB of stack


def splat(builder, value, ty):
    """The vector `ty` with every lane `value` (a broadcast)."""
    vec = builder.insert_element(ir.Constant(ty, None), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(vec, ir.Constant(ty, None),
                                  ir.Constant(ir.VectorType(ir.IntType(32), ty.count), [0] * ty.count))


def lanes_below(builder, count):
    """The mask of the 16 lanes whose index is below count (an i32): a masked load's or store's first `count`."""
    v32 = ir.VectorType(ir.IntType(32), LANES)
    return builder.icmp_signed("<", ir.Constant(v32, list(range(LANES))), splat(builder, count, v32))


def masked_16(builder, store: bool):
    """LLVM's masked load (ptr, align, mask, passthru) or store (value, ptr, align, mask) of 16 int32 lanes."""
    v32, mask = ir.VectorType(ir.IntType(32), LANES), ir.VectorType(ir.IntType(1), LANES)
    i32 = ir.IntType(32)
    if store:
        return cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.VoidType(), [v32, v32.as_pointer(), i32, mask]), "llvm.masked.store.v16i32.p0")
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(
        v32, [v32.as_pointer(), i32, mask, v32]), "llvm.masked.load.v16i32.p0")


def in_groups(builder, total, size: int, body):
    """body(first, n) over 0 .. total (an i64): whole groups of `size` (n = size), then the rest one by one (n = 1):
    the products' rows in groups of ROWS, their blocks in passes."""
    i64 = ir.IntType(64)
    groups = builder.sdiv(total, ir.Constant(i64, size))
    with cgutils.for_range(builder, groups) as loop:
        body(builder.mul(loop.index, ir.Constant(i64, size)), size)
    with cgutils.for_range_slice(builder, builder.mul(groups, ir.Constant(i64, size)), total,
                                 ir.Constant(i64, 1)) as (index, _):
        body(index, 1)


def in_chunks(builder, total, size: int, body):
    """body(start, count, first) over 0 .. total (an i64) in chunks of `size` (the last may be shorter); first: an
    i1, true in the first chunk (whose sums start from the bias, later ones from dst's)."""
    i64 = ir.IntType(64)
    step = ir.Constant(i64, size)
    chunks = builder.sdiv(builder.add(total, ir.Constant(i64, size - 1)), step)
    with cgutils.for_range(builder, chunks) as loop:
        start = builder.mul(loop.index, step)
        rest = builder.sub(total, start)
        body(start, builder.select(builder.icmp_signed("<", rest, step), rest, step),
             builder.icmp_signed("==", loop.index, ir.Constant(i64, 0)))


def function_buffer(builder, name: str, ty, size: int):
    """A stack buffer of `size` values of `ty` in the function being built, made once per function and name and
    shared by every product in it that asks for it (each uses it only while it runs, before the next starts): a
    step or sequence with many layers holds one, not one per call site (kws-style, three call sites: 16 -> 8 KB)."""
    held = builder.function.__dict__.setdefault("_rnnedge_buffers", {})
    if name not in held:
        held[name] = cgutils.alloca_once(builder, ty, size=size)
    return held[name]


# AVX2 (vpmaddwd + vpaddd): its 16 ymm registers hold a pass of four rows x one block of sums (8 registers), a
# single row GROUP blocks. Before its passes over the blocks, a group of rows (or a single row) writes each
# row's input pairs (v[2p] & 0xFFFF | v[2p+1] << 16, one int32 each) to a stack buffer, and the passes broadcast
# them from there, one load each, instead of forming every row's pair again in every pass (forming the pairs was
# most of a pass's instructions; kws's W_hh, 128 x 512, 50 -> 66-73 GMAC/s for four rows, 53 -> 55-59 for one, on
# Zen 3). The same integers. A k past 2 PACKED_PAIRS runs in chunks of that many pairs, its sums carried in dst
# from one chunk to the next. (AVX512-VNNI CPUs run vnni_quad's products.)
@intrinsic
def matmat_avx2_at(typingctx, dst, dst_off, dst_stride, wq, w_off, bias, b_off, v, v_off, v_stride, k, blocks, rows):
    """For r < rows: dst[dst_off + r dst_stride : ... + 16 blocks] = bias[b_off : ...] + W^T v[v_off + r v_stride :
    ... + k], W^T packed by pack_vnni at wq[w_off:] (matvec_avx2_at's operands, for several rows). Rows go four
    at a time: every weight load (sign-extended once) serves four rows. The same integers as matvec_avx2_at row
    by row (int32 sums wrap and associate)."""
    sig = types.void(dst, dst_off, dst_stride, wq, w_off, bias, b_off, v, v_off, v_stride, k, blocks, rows)

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        i32x16, i16x32, i8x32 = ir.VectorType(i32, 16), ir.VectorType(ir.IntType(16), 32), ir.VectorType(ir.IntType(8), 32)
        arrays = [context.make_array(signature.args[a])(context, builder, args[a]) for a in (0, 3, 5, 7)]

        def as_i64(value):
            return builder.sext(value, i64) if value.type.width < 64 else value

        dst_off_, dst_stride_, w_off_, b_off_, v_off_, v_stride_, k_, nblocks, nrows = (
            as_i64(args[a]) for a in (1, 2, 4, 6, 8, 9, 10, 11, 12))
        w_p = cgutils.gep(builder, arrays[1].data, w_off_)
        b_p = cgutils.gep(builder, arrays[2].data, b_off_)
        one, two = ir.Constant(i64, 1), ir.Constant(i64, 2)
        npairs = builder.sdiv(builder.add(k_, one), two)
        last = builder.sub(k_, one)
        lo_mask, sixteen = ir.Constant(i32, 0xFFFF), ir.Constant(i32, 16)
        slots = [[cgutils.alloca_once(builder, i32x16) for _ in range(GROUP)] for _ in range(ROWS)]
        pairs_at = function_buffer(builder, "avx2_pairs", i32, ROWS * PACKED_PAIRS)

        def vec_ptr(base, index):
            return builder.bitcast(cgutils.gep(builder, base, builder.mul(index, ir.Constant(i64, LANES))),
                                   i32x16.as_pointer())

        def pair_of(v_row, two_p, hi_index):
            lo = builder.load(cgutils.gep(builder, v_row, two_p))
            hi = builder.load(cgutils.gep(builder, v_row, hi_index))
            return builder.or_(builder.and_(lo, lo_mask), builder.shl(hi, sixteen))

        def run(r0, nr, b0, nb, chunk):
            """Rows r0.. x blocks b0.. over the chunk's pairs (p0, count, first) from pairs_at, starting from
            the bias (first) or from dst's sums."""
            dst_rows = [cgutils.gep(builder, arrays[0].data, builder.add(dst_off_, builder.mul(
                builder.add(r0, ir.Constant(i64, r)), dst_stride_))) for r in range(nr)]
            for u in range(nb):
                bias_at = vec_ptr(b_p, builder.add(b0, ir.Constant(i64, u)))
                for r in range(nr):
                    start = builder.load(builder.select(chunk[2], bias_at, vec_ptr(
                        dst_rows[r], builder.add(b0, ir.Constant(i64, u)))), align=4)
                    builder.store(start, slots[r][u])
            with cgutils.for_range(builder, chunk[1]) as loop:
                p = builder.add(chunk[0], loop.index)
                ws = []
                for u in range(nb):
                    block = builder.add(b0, ir.Constant(i64, u))
                    off = builder.mul(builder.add(builder.mul(block, npairs), p), ir.Constant(i64, 2 * LANES))
                    wptr = builder.bitcast(cgutils.gep(builder, w_p, off), i8x32.as_pointer())
                    ws.append(builder.sext(builder.load(wptr, align=1), i16x32))
                for r in range(nr):  # packed by pack_rows
                    pair = builder.load(cgutils.gep(builder, pairs_at, builder.add(
                        loop.index, ir.Constant(i64, r * PACKED_PAIRS))))
                    bvec = builder.bitcast(splat(builder, pair, i32x16), i16x32)
                    for u in range(nb):
                        builder.store(_pmaddwd_ir(builder, builder.load(slots[r][u]), ws[u], bvec), slots[r][u])
            for r in range(nr):
                for u in range(nb):
                    builder.store(builder.load(slots[r][u]),
                                  vec_ptr(dst_rows[r], builder.add(b0, ir.Constant(i64, u))), align=4)

        def over_blocks(r0, nr, chunk):
            # four rows: one block of sums each; one row: GROUP independent chains
            in_groups(builder, nblocks, 1 if nr > 1 else GROUP, lambda b0, nb: run(r0, nr, b0, nb, chunk))

        def pack_rows(r0, nr, p0, count):
            """The nr rows' input pairs p0 .. p0 + count - 1, each as the int32 the loop broadcasts, into
            pairs_at (row r at r PACKED_PAIRS)."""
            with cgutils.for_range(builder, ir.Constant(i64, nr)) as rows_loop:  # one loop: less to compile
                r = rows_loop.index
                v_row = cgutils.gep(builder, arrays[3].data, builder.add(v_off_, builder.mul(
                    builder.add(r0, r), v_stride_)))
                row_at = builder.mul(r, ir.Constant(i64, PACKED_PAIRS))
                with cgutils.for_range(builder, count) as loop:
                    two_p = builder.mul(builder.add(p0, loop.index), two)
                    hi_index = builder.select(builder.icmp_signed("<", builder.add(two_p, one), k_),
                                              builder.add(two_p, one), last)
                    builder.store(pair_of(v_row, two_p, hi_index),
                                  cgutils.gep(builder, pairs_at, builder.add(loop.index, row_at)))

        def row_group(r0, nr):
            def chunk(p0, count, first):  # the pairs in chunks of PACKED_PAIRS (one for k <= 1024)
                pack_rows(r0, nr, p0, count)
                over_blocks(r0, nr, (p0, count, first))

            in_chunks(builder, npairs, PACKED_PAIRS, chunk)

        in_groups(builder, nrows, ROWS, row_group)
        return context.get_dummy_value()

    return sig, codegen


@int_inline
def matvec_avx2_at(dst, dst_off, wq, w_off, bias, b_off, v, v_off, k, blocks):
    """dst[dst_off : dst_off + 16 blocks] = bias[b_off : ...] + W^T v[v_off : v_off + k], W^T packed by pack_vnni
    (blocks, ceil(k/2), 32) at wq[w_off:]: every operand an offset into a flat array, so a kernel compiled for one
    model (runtime/fused_int8.py) passes literals and holds no array views. dst, bias, v int32 (v: int16 values);
    16 blocks outputs are written (pack's zero padding gives the bias past N). An odd k's last pair reads v[k - 1]
    twice: its partner weight is the padding's zero. It is matmat_avx2_at of one row (inlined: its single-row
    pass, GROUP blocks of independent chains)."""
    matmat_avx2_at(dst, dst_off, 0, wq, w_off, bias, b_off, v, v_off, 0, k, blocks, 1)
