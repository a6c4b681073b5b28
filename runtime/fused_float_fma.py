"""f32's register-blocked product: a few input vectors times a block of W^T's columns, the sums held in registers.

    FMA[streams, blocks](buf, acc, acc_stride, w, woff, n, src, src_stride, k)

adds to buf[acc + s acc_stride + i], for s < streams and i < 16 blocks, the sum over k of W^T[kk, i] v_s[kk],
v_s = buf[src + s src_stride ..], W^T (k, n) float32 at woff in w (row stride n). The streams x blocks
accumulators (16 lanes each) stay in registers for the whole k loop: each weight vector is loaded once and used
for every stream, each input once and used for every block. Every sum is one chain of fused multiply-adds, in
the order kk = 0, 1, .. -- the same numbers whichever block a row or a stream falls in, so a stream's outputs do
not depend on the batch, and a whole sequence's input projection (all T steps' rows at once) equals the step's.

FMA8 is the same with int8 weights, each 16 converted to float32 as they are loaded: int8w's sums on a CPU without
AVX512-VNNI (fused_float_step.layer_int8w_fma). Given float32 weights it loads them as FMA does: the same sums,
bit for bit, on a float32 copy of the int8 weights (the conversion is exact), which is how int8w's run() spares
itself a conversion per weight per step on a CPU with 128-bit vector units (fused_float.float_copy); given a
uint16 array it reads float16 bits and widens them (F16C's vcvtph2ps, one operation per 8 weights where int8 takes
a sign extension and a conversion): the same sums again on a float16 copy, which int8w's step and run() read on a
CPU with F16C (fused_float.half_copy; Zen 3, kws' W_hh^T alone in C: 26 -> 34 G multiply-adds per second). Where the
CPU has 16 vector registers (AVX2), `tiles` splits a call into passes of at most four 16-lane sums, so none
spills; each sum's chain is unchanged.

A block past n reads lanes of the next rows of W^T (or whatever follows the matrix in w: `reach` says how far,
the generator keeps it within w) into accumulator lanes nobody reads: the accumulators are padded to blocks of 16.

The generators keep W^T in panels (layout.panelled, fused_float_blob.py): its columns in groups of PANEL, each group
stored (k, PANEL) row-major, one after another, the last group (fewer columns) likewise at its own width. A call on
the group at column c then reads from the group's start with row stride PANEL (`panel_at`): the k loop walks one
256-byte run of consecutive cache lines per row instead of 64 bytes out of every row of the whole matrix (a row
stride of a power of two maps every row of a block to the same few L1 sets, and the hardware prefetcher sees one
stream). Measured (Zen 3, kws' W_hh^T 128 x 512, a numba loop of FMA[4, 4] calls over 64 streams): 31 -> 41 G
multiply-adds per second; FMA[1, 4] (one stream) 14 -> 22. The same numbers: only where the weights sit moves.

DOT and ADD keep the few other float sums of a step in one order too: DOT a head row times a stream's input (16
lanes of FMA chains, a fixed tree, then the tail), ADD one addition LLVM may not reorder (a softmax's total).
"""

from __future__ import annotations

from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rnnedge.runtime.layout import PANEL

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


def tiles(streams: int, count: int, wide: bool) -> list[tuple[range, range]]:
    """The (streams, blocks) each pass over k holds in registers. AVX-512 (wide): all of them, up to 4 x 4 sums in
    32 zmm registers. Else 16 vector registers, a 16-lane sum taking two ymm: passes of at most four sums (eight
    registers, beside the weight vectors), so nothing spills -- one stream's blocks four at a time, or every
    stream's sums of one block (each weight vector loaded, and FMA8's converted, once for all the streams: on Zen 1
    15.9 GMAC/s against 12.9 for 2 streams x 2 blocks). Every sum's chain and order are the same."""
    if wide:
        return [(range(streams), range(count))]
    if streams == 1:
        return [(range(1), range(u, min(u + 4, count))) for u in range(0, count, 4)]
    return [(range(streams), range(u, u + 1)) for u in range(count)]


assert PANEL == BLOCKS * LANES  # a panel: one call's blocks (layout.PANEL)


def panel_at(woff, K: int, N: int, column) -> tuple[str, int]:
    """(start, row stride) of the panel holding W^T's column `column` (a multiple of PANEL: an int, or the name of
    a loop variable over full panels), W^T (K, N) panelled at woff."""
    if isinstance(column, str):
        return f"{woff} + {column} * {K}", PANEL
    return f"{woff} + {column * K}", min(PANEL, N - column)


def describe(streams: int = STREAMS, count: int = BLOCKS) -> str:
    """What a call of FMA[streams, count] holds in registers per pass over k, for kernel_info."""
    if WIDE:
        return f"{streams} streams x {count} blocks of 16 rows of sums in registers"
    return (f"{streams} streams x 1 block of 16 rows of sums in registers per pass ({count} passes; "
            f"one stream: {min(count, 4)} blocks)")


WIDE = bool(llvm.get_host_cpu_features().get("avx512f"))  # 32 zmm registers here


def _vec_at(builder, base, off):
    """A pointer to the 16 float32 lanes at base + off."""
    return builder.bitcast(cgutils.gep(builder, base, off), ir.VectorType(ir.FloatType(), LANES).as_pointer())


def weight_kind(dtype) -> str:
    """How FMA8 reads a weight array of this numba dtype: "int8" (converted as loaded), "half" (uint16 holding
    float16 bits: widened as loaded, F16C's vcvtph2ps) or "float32" (loaded as FMA does)."""
    return {types.int8: "int8", types.uint16: "half"}.get(dtype, "float32")


def _weights_at(builder, wdata, off, kind: str, lanes: int = LANES):
    """The 16 weights at wdata + off as float32 lanes: loaded as they are ("float32"), 16 int8 loaded and converted
    ("int8": int8 -> int32 -> float32), or `lanes` float16 widened ("half": their bits in a uint16 array) --
    exactly, each way, for weights that are int8 values."""
    f32x16 = ir.VectorType(ir.FloatType(), LANES)
    if kind == "half":
        bits = ir.VectorType(ir.IntType(16), lanes)
        raw = builder.load(builder.bitcast(cgutils.gep(builder, wdata, off), bits.as_pointer()), align=2)
        return builder.fpext(builder.bitcast(raw, ir.VectorType(ir.HalfType(), lanes)),
                             ir.VectorType(ir.FloatType(), lanes))
    if kind == "float32":
        return builder.load(_vec_at(builder, wdata, off), align=4)
    i8x16 = ir.VectorType(ir.IntType(8), LANES)
    q = builder.load(builder.bitcast(cgutils.gep(builder, wdata, off), i8x16.as_pointer()), align=1)
    return builder.sitofp(builder.sext(q, ir.VectorType(ir.IntType(32), LANES)), f32x16)


def _fma(streams: int, count: int, int8: bool = False, start: str = "acc"):
    """FMA[streams, count]; int8: the weights are int8 (FMA8: W^T (k, n) int8 at woff in w, each 16 converted to
    float32 once per load, exactly, for all the streams). start: where each sum begins -- "acc" what buf holds there
    (FMA, FMA8), "bias" the 16 lanes at boff + 16 u of an extra argument `bias` for every stream (FMA_BIAS: f32's
    b + W v without a pass writing b into every stream's sums first), "zero" 0 (FMA8_ZERO: int8w's W v), "scaled"
    0, each finished sum then stored as b + s sum, one fused multiply-add with the 16 lanes at soff + 16 u and
    boff + 16 u of an extra argument `sb` (FMA8_SCALED: int8w's row scale and bias, kernels_int8w's b + s * sum,
    applied to the sums in registers, four streams per load of s and b, instead of by every stream's cell update).
    The chains are the same: a sum that starts from b in a register equals one that starts from b in buf.

    One stream on float16 bits on AVX-512 (`halves`) holds each block's 16 sums as two 8-lane halves and widens its
    weights 8 at a time: a 512-bit vcvtph2ps is two operations on Zen 4 and bounded a stream's sums (kws' W_hh^T
    alone in C, one stream: 29 G multiply-adds per second with 16-lane conversions, 46 G with 8-lane ones and
    8-lane sums, 33 G with 8-lane conversions joined into 16-lane sums). Each lane's sum is the same chain of fused
    multiply-adds either way: the same numbers."""

    def body(typingctx, buf, acc, acc_stride, w, woff, n, src, src_stride, k, *extra):
        sig = types.void(buf, acc, acc_stride, w, woff, n, src, src_stride, k, *extra)

        def codegen(context, builder, signature, args):
            f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
            vec = ir.VectorType(f32, LANES)
            fused = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                                   "llvm.fma.v16f32")
            kind = weight_kind(signature.args[3].dtype) if int8 else "float32"  # FMA8 on float32: FMA's load
            halves = kind == "half" and streams == 1 and WIDE  # each sum as two 8-lane halves (docstring)
            width = LANES // 2 if halves else LANES
            parts = range(LANES // width)
            part = ir.VectorType(f32, width)  # a slot: `width` lanes of a block's sums
            fused_part = fused if not halves else cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(part, [part, part, part]), "llvm.fma.v8f32")
            split = [ir.Constant(ir.VectorType(i32, width), list(range(h * width, (h + 1) * width))) for h in parts]
            joined = ir.Constant(ir.VectorType(i32, LANES), list(range(LANES)))
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            wdata = context.make_array(signature.args[3])(context, builder, args[3]).data
            acc_off, acc_st, w_off, stride, src_off, src_st, K = (
                builder.sext(a, i64) if a.type != i64 else a for a in (args[1], args[2], *args[4:9]))

            if start in ("bias", "scaled"):  # the extra array, then its offsets: (b) or (s, b)
                bdata = context.make_array(signature.args[9])(context, builder, args[9]).data
                offs = [builder.sext(a, i64) if a.type != i64 else a for a in args[10:]]
            inputs = [builder.add(src_off, builder.mul(src_st, ir.Constant(i64, s))) for s in range(streams)]
            for ss, us in tiles(streams, count, WIDE):
                ptrs = {(s, u): _vec_at(builder, data, builder.add(acc_off, builder.add(
                            builder.mul(acc_st, ir.Constant(i64, s)), ir.Constant(i64, LANES * u))))
                        for s in ss for u in us}
                slots = {(s, u, h): cgutils.alloca_once(builder, part) for s, u in ptrs for h in parts}
                for (s, u), ptr in ptrs.items():
                    first = (builder.load(ptr, align=4) if start == "acc" else ir.Constant(vec, [0.0] * LANES)
                             if start in ("zero", "scaled") else builder.load(_vec_at(builder, bdata, builder.add(
                                 offs[0], ir.Constant(i64, LANES * u))), align=4))
                    for h in parts:
                        builder.store(first if not halves else builder.shuffle_vector(first, first, split[h]),
                                      slots[s, u, h])
                with cgutils.for_range(builder, K) as loop:
                    kk = loop.index
                    row = builder.add(w_off, builder.mul(kk, stride))
                    wv = {(u, h): _weights_at(builder, wdata, builder.add(row, ir.Constant(i64, LANES * u + width * h)),
                                              kind, width)
                          for u in us for h in parts}
                    for s in ss:
                        x = builder.load(cgutils.gep(builder, data, builder.add(inputs[s], kk)))
                        x = builder.shuffle_vector(builder.insert_element(ir.Constant(part, None), x,
                                                                          ir.Constant(i32, 0)),
                                                   ir.Constant(part, None), ir.Constant(ir.VectorType(i32, width),
                                                                                        [0] * width))
                        for u in us:
                            for h in parts:
                                slot = slots[s, u, h]
                                builder.store(builder.call(fused_part, [wv[u, h], x, builder.load(slot)]), slot)
                for (s, u), ptr in ptrs.items():
                    total = (builder.load(slots[s, u, 0]) if not halves else
                             builder.shuffle_vector(builder.load(slots[s, u, 0]), builder.load(slots[s, u, 1]), joined))
                    if start == "scaled":  # b + s * sum: offs = (the scales', the biases')
                        scale, bias = (builder.load(_vec_at(builder, bdata, builder.add(o, ir.Constant(
                            i64, LANES * u))), align=4) for o in offs)
                        total = builder.call(fused, [scale, total, bias])
                    builder.store(total, ptr, align=4)
            return context.get_dummy_value()

        return sig, codegen

    if start == "bias":
        @intrinsic
        def fma(typingctx, buf, acc, acc_stride, w, woff, n, src, src_stride, k, bias, boff):
            return body(typingctx, buf, acc, acc_stride, w, woff, n, src, src_stride, k, bias, boff)
    elif start == "scaled":
        @intrinsic
        def fma(typingctx, buf, acc, acc_stride, w, woff, n, src, src_stride, k, sb, soff, boff):
            return body(typingctx, buf, acc, acc_stride, w, woff, n, src, src_stride, k, sb, soff, boff)
    else:
        @intrinsic
        def fma(typingctx, buf, acc, acc_stride, w, woff, n, src, src_stride, k):
            return body(typingctx, buf, acc, acc_stride, w, woff, n, src, src_stride, k)
    return fma


@intrinsic
def DOT(typingctx, w, woff, buf, src, n):
    """sum_k W[woff + k] v[k] for k < n, v = buf[src ..]: a head or hidden head layer's row times one stream's
    input (fused_float_cells.rows_times), in one fixed order whatever the code around it: 16 lanes of partial sums
    (lane l: k = l, l + 16, ..; each one chain of fused multiply-adds), added as a fixed tree 16 -> 8 -> 4 -> 2 ->
    1, then the n mod 16 last products as one chain of fused multiply-adds after it. A plain `acc += w[k] * v[k]`
    loop with reordering allowed (the kernels' fast-math) is summed in whatever order LLVM picks where it compiles
    the loop, and that differed between the step inlined into step() and into run()'s sequence function: kws' logits
    1 ulp apart between step() and run(), and between a process that compiled the step and one that loaded it from
    the cache. int8 weights (int8w) are converted to float32 as they are loaded, exactly."""
    sig = types.float32(w, woff, buf, src, n)

    def codegen(context, builder, signature, args):
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(f32, LANES)
        kind = weight_kind(signature.args[0].dtype)  # int8 (int8w's head) or float32
        vfma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]), "llvm.fma.v16f32")
        sfma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32, [f32, f32, f32]), "llvm.fma.f32")
        wdata = context.make_array(signature.args[0])(context, builder, args[0]).data
        data = context.make_array(signature.args[2])(context, builder, args[2]).data
        w_off, src_off, N = (builder.sext(a, i64) if a.type != i64 else a for a in (args[1], args[3], args[4]))

        def wone(off):
            x = builder.load(cgutils.gep(builder, wdata, off))
            return builder.sitofp(x, f32) if kind == "int8" else x

        whole = builder.sdiv(N, ir.Constant(i64, LANES))
        acc = cgutils.alloca_once_value(builder, ir.Constant(vec, [0.0] * LANES))
        with cgutils.for_range(builder, whole) as loop:
            at = builder.mul(loop.index, ir.Constant(i64, LANES))
            v = builder.load(_vec_at(builder, data, builder.add(src_off, at)), align=4)
            builder.store(builder.call(vfma, [_weights_at(builder, wdata, builder.add(w_off, at), kind), v,
                                              builder.load(acc)]), acc)
        total = builder.load(acc)
        width = LANES
        while width > 1:  # the fixed tree: lanes [0, width / 2) + [width / 2, width)
            width //= 2
            low = builder.shuffle_vector(total, total, ir.Constant(ir.VectorType(i32, width), list(range(width))))
            high = builder.shuffle_vector(total, total, ir.Constant(ir.VectorType(i32, width),
                                                                    list(range(width, 2 * width))))
            total = builder.fadd(low, high)
        total = builder.extract_element(total, ir.Constant(i32, 0))
        result = cgutils.alloca_once_value(builder, total)
        first = builder.mul(whole, ir.Constant(i64, LANES))
        with cgutils.for_range(builder, builder.sub(N, first)) as loop:
            k = builder.add(first, loop.index)
            x = builder.load(cgutils.gep(builder, data, builder.add(src_off, k)))
            builder.store(builder.call(sfma, [wone(builder.add(w_off, k)), x, builder.load(result)]), result)
        return builder.load(result)

    return sig, codegen


@intrinsic
def ADD(typingctx, a, b):
    """a + b, two float32, as one addition LLVM may not reorder (no fast-math flags on it): a sum built from it (a
    softmax head's total) keeps its program order, one term after another as firmware_ref adds them, wherever the
    loop is compiled and whether or not numba finds a vector math library that would let LLVM vectorise the loop
    (DOT's reason)."""
    if a != types.float32 or b != types.float32:
        return None
    sig = types.float32(a, b)

    def codegen(context, builder, signature, args):
        return builder.fadd(args[0], args[1])

    return sig, codegen


class _Made(dict):
    """(streams, blocks) -> the intrinsic, made on first use: a module imports the 4 x 16 it could use in a few
    ms, and a model's step binds a quarter of them (a faster start, issue 15)."""

    def __init__(self, **how):
        super().__init__()
        self.how = how

    def __missing__(self, key: tuple[int, int]):
        streams, count = key
        if not (1 <= streams <= STREAMS and 1 <= count <= BLOCKS):
            raise KeyError(key)
        made = self[key] = _fma(streams, count, **self.how)
        return made


FMA, FMA8 = _Made(), _Made(int8=True)
FMA_BIAS, FMA8_ZERO, FMA8_SCALED = _Made(start="bias"), _Made(int8=True, start="zero"), _Made(int8=True, start="scaled")
