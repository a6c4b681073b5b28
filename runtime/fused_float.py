"""The f32 and int8w step compiled for the loaded model (runtime/fused.py's generators for those precisions).

    step = generate(model)      # a fused.Specialised, or None with the reason in model.kernel_info["why"]

The generator writes the model's step as numba source with its sizes and offsets as literals
(fused_float_source.py), loads it through runtime/specialize.py (kept in the cache folder, so a second process
loads the compiled code) and hands Stream the same call as the generic kernels': `step(buf, x, *weights) ->
status` on the same buffer, weights the layout's own arrays ((blob,) f32; int8w on FMA8 (qblob, blob, qw), qw a
float16 copy of the part of qblob its sums read where the CPU has F16C (half_copy), else that part itself:
_step_weights; int8w's VNNI limbs, where the copy is refused on such a CPU, (qblob, blob): nothing copied); f32's
blob, and int8w's qblob on FMA8, is rewritten once, at generation:
its recurrent matrices in panels of 64 columns (layout.panelled, the same size; layout.matrix still reads them
row-major), the largest ones from a cache line: fused_float_blob.py).
It covers dense and token inputs, stacked forward rnn_tanh / rnn_relu / lstm / gru layers (an initial state
too: it only sets where a stream starts), every ONNX extension that changes the step's arithmetic (layout.F_STEP):
clip, other activation functions, peepholes, input_forget (fused_float_ext.py) and a GRU's linear_before_reset
false (on FMA: f32, int8w's FMA8; fused_float_source.reset_before; int8w's VNNI limbs leave that one to the
generic kernels and say why), the head's hidden dense layers and its activation.

The arithmetic is the generic kernels' (kernels_f32 / kernels_int8w: float32 activations, int8w's row scales
on finished sums), summed in another order (f32: one chain of fused multiply-adds per sum, fused_float_fma.py;
int8w: FMA8's chains too, or the activations' two int16 limbs on VNNI: limb_sums), so the two
agree to float32 rounding, not bit for bit. model.run() of
a model that streams therefore runs this same compiled step over the sequence (`run_function`), keeping
step() == run() bit for bit: below four sequences it first computes the first layer's input sums of ~16 steps
at a time as one product, the same sums the step would form (fused_float_run.py; int8w on FMA8: the same code,
reading the step's qw, as the step does -- or, on a CPU with 128-bit vector units, a float32 copy of it made per
run(): _run_weights; int8w's VNNI limbs step at every t). A bidirectional or reverse model is never
stepped: its run() is compiled on its own (fused_float_sequence.py: every step's input projections at once, then
the recurrence), kernel_info["path"] "fused_float_sequence".
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from rnnedge.runtime import fused, fused_float_run, fused_float_sequence, specialize
from rnnedge.runtime import fused_float_fma as fma
from rnnedge.runtime import fused_float_vnni as vnni
from rnnedge.runtime import spec as specs
from rnnedge.runtime.fused_float_blob import line_offset, matrix_parts, panel_blob, placed, readable
from rnnedge.runtime.fused_float_lanes import lanes_info, lanes_scratch
from rnnedge.runtime.fused_float_source import (
    CONVERT_FROM,
    CONVERT_FROM_HALF,
    converted_scratch,
    qw_start,
    scratch_per_stream,
    source,
)
from rnnedge.runtime.jit import target_cpu
from rnnedge.runtime.layout import CACHE_LINE, F_RESET_BEFORE, F_STEP, L_FLAGS


def why_not(model) -> str | None:
    """What keeps the model off the specialised step (None: it can run there)."""
    if not specs.can_stream(model.spec):
        return fused_float_sequence.why_not(model)
    lay = model.layout
    # int8w: the reach of the sums this CPU runs, their int8 weights in qblob (asked once; f32 never asks)
    reach, what = ((vnni.reach, "VNNI") if model.precision == "int8w" and limb_sums() else (fma.reach, "blocked FMA"))
    for l in range(len(model.spec["layers"])):
        row = lay.layers[2 * l]
        # every extension on FMA (f32, int8w's FMA8); VNNI's limbs all but a GRU's linear_before_reset false
        why = fused.extensions_refused(l, int(row[L_FLAGS]), F_STEP & ~F_RESET_BEFORE if reach is vnni.reach else F_STEP)
        if why is not None:
            return why
        if model.precision == "int8w" and max(reach(*part) for part in matrix_parts(row)) > (
                lay.qblob.size if reach is vnni.reach else readable(lay, lay.qblob)):  # the limbs read it in place
            return f"layer {l}'s {what} sums would read past the int8 weights"
        if model.precision == "f32" and max(fma.reach(*part) for part in matrix_parts(row)) > readable(lay, lay.blob):
            return f"layer {l}'s blocked FMA sums would read past the float32 weights"
    return None


def generate(model) -> fused.Specialised | None:
    """The model's specialised f32 / int8w step, or None (then model.__dict__["_specialised_why"] says why)."""
    reason = why_not(model)
    if reason is not None:
        model.__dict__["_specialised_why"] = reason
        return None
    lay = model.layout
    if not specs.can_stream(model.spec):  # whole sequences only: run() compiled for them, no step
        return _sequence(model, lay)
    rows = [lay.layers[2 * l] for l in range(len(model.spec["layers"]))]
    cells = "_".join(layer["cell"] for layer in model.spec["layers"])
    what = (f"{model.precision}, {model.spec['input']['kind']} input, {cells}, "
            f"{len(lay.dense)} hidden head layer(s), head {model.spec['head']['activation']}")
    q8 = model.precision == "int8w"
    half = q8 and half_copy()  # asked once: int8w's sums read a float16 copy (then never the limbs)
    limbs = q8 and limb_sums(half)  # int8w's limb sums on VNNI; else f32's sums (FMA, or FMA8)
    if q8:  # the VNNI sums read the layout's W^T in place (fused_float_vnni.reach: within qblob); FMA8 in panels
        if not limbs:
            panel_blob(lay, rows)
            weights = _step_weights(lay, rows, half)
        else:
            weights = (lay.qblob, lay.blob)
        text = source(model, rows, what, "avx512_vnni" if limbs else "fma")
    else:  # the FMA sums load 64-byte weight vectors from the recurrent matrices' panels, each on a cache line
        panel_blob(lay, rows)  # the layout's own array, rewritten once: nothing held twice
        weights = (lay.blob,)
        text = source(model, rows, what)
    module = specialize.load_source(f"{model.precision}_{cells}", text)
    fma8 = q8 and not limbs
    pv_n = 0 if limbs else fused_float_run.pv_size(model, rows)  # run() projects ahead (fused_float_run.py)
    per_stream = scratch_per_stream(lay, rows, q8, limbs)
    shared = converted_scratch(rows) + 15 if fma8 else 0  # FMA8's converted columns, from a multiple of 16
    lanes = 0 if q8 else lanes_scratch(lay, rows)
    shared += lanes  # f32: 16 streams' gate rows of a layer of few units (fused_float_lanes.py)
    run_weights = _run_weights(lay, rows, weights, fma8)
    wide_from = CONVERT_FROM_HALF if half else CONVERT_FROM
    info = {"path": "fused_float", "source": str(specialize.source_path(f"{model.precision}_{cells}", text)),
            "model": what, "batched": "weights read once per step for all streams" + (f"; {lanes_info()}" if lanes
                                                                                        else "")}
    if q8:
        info["matvec"] = ("avx512_vnni: [x] and [h] as two int16 limbs per step, int32 sums of the int8 weights "
                          "read in place"
                          if limbs else
                          "fma: float32 sums of the int8 weights (W^T in panels of 64 columns"
                          + (f"; read from a float16 copy, {weights[2].nbytes} bytes, F16C" if half else "")
                          + ("; one stream's sums as 8-lane halves" if half and fma.WIDE else "")
                          + f"), {fma.describe()}; "
                          f"from {wide_from} streams each group of W^T's columns converted once per step for all "
                          "of them (step_wide, compiled for such a stream only), else as loaded")
    else:
        info["matvec"] = f"fma: {fma.describe()}, each weight vector loaded once for them; W^T in panels of 64 columns"
    if not limbs:
        info["run"] = (f"below {fma.STREAMS} sequences, the first layer's input sums of each ~"
                       f"{fused_float_run.PROJECT_ROWS} rows (t, b) as one product, then the step at every t"
                       + (("; its sums on a float32 copy of the int8 weights made per run()" if float_copy() else
                           "; its sums on the step's float16 copy of the int8 weights" if half else
                           "; its sums converting the int8 weights as loaded, as the step") if q8 else ""))
    return fused.Specialised(
        kernel=module.step, weights=weights, scratch=lambda batch: batch * per_stream + shared,
        info=info,
        run=run_function(model, module.sequence, run_weights, per_stream, shared, pv_n), run_checks=True,
        wide=(wide_from, module.step_wide) if fma8 else None)


# CPUs whose vector units are 128 bits wide (each 256-bit conversion is two operations): int8w's run() sums a
# float32 copy of its weights there (Zen 1: measured faster than converting as loaded, stop 24)
FLOAT_COPY_CPUS = ("znver1",)


def float_copy() -> bool:
    """Whether int8w's run() on FMA8 sums a float32 copy of the int8 weights (else it converts them as it loads
    them, as the step does: on Zen 3, kws B = 1 6.2-6.8 -> 4.7 us per step, B = 32 3.8-3.9 -> 3.2-3.4; each weight
    is read as one byte instead of four, and L2's bandwidth, not the conversion, bounds the sums)."""
    return target_cpu() in FLOAT_COPY_CPUS


def half_copy() -> bool:
    """Whether int8w's sums run on FMA8 reading a float16 copy of its int8 weights, made once at load (step and
    run()), instead of converting the int8 weights as they load them (or, on AVX512-VNNI, summing them as two int16
    limbs, limb_sums): where the CPU has F16C (one vcvtph2ps widens 8 weights, where int8 takes a sign extension
    and a conversion), except FLOAT_COPY_CPUS (whose run() sums a float32 copy; not measured there) and a cache
    compiled for another CPU (NUMBA_CPU_NAME). int8 and float16 hold the same values: the same sums, bit for bit.
    Zen 3, the int8w step at B = 1: kws 4.44-4.81 -> 3.59-3.90 us, har 2.35-2.59 -> 1.96-2.31; Zen 4 (against the
    VNNI limbs): kws 3.33-3.41 -> 2.71-2.84, har 1.96-1.99 -> 1.52, B = 64 kws 2.22-2.29 -> 1.90-1.92 us per
    stream-step, har 1.21-1.26 -> 0.85-0.95. The model's memory grows by two bytes per weight of the copy
    (model.nbytes counts it). RNNEDGE_INT8W_FLOAT16=0 refuses the copy (the weights then stay int8 in memory:
    summed as limbs on VNNI, else converted as loaded)."""
    from llvmlite import binding as llvm

    return (os.environ.get("RNNEDGE_INT8W_FLOAT16", "1") != "0"
            and target_cpu() == llvm.get_host_cpu_name()
            and target_cpu() not in FLOAT_COPY_CPUS and bool(llvm.get_host_cpu_features().get("f16c")))


def limb_sums(half: bool | None = None) -> bool:
    """Whether int8w's sums run as two int16 limbs on AVX512-VNNI (fused_float_vnni.py): on such a CPU where the
    float16 copy is not made (half_copy()), as the int8 weights converted as loaded are slower there (a 512-bit
    conversion per 16 weights; the limbs read them in place, two vpdpwssd per pair of weights). half: half_copy()'s
    answer where the caller has it."""
    return vnni.KERNEL == "avx512_vnni" and not (half_copy() if half is None else half)


def _sequence(model, lay) -> fused.Specialised:
    """The compiled run() of a model that cannot stream (fused_float_sequence.py). int8w: its recurrent sums read
    the float16 copy (half_copy()) where a layer-direction's W_hh^T as float32 would not fit in the L1 data cache
    (l1_data_bytes()) -- at every step they read it all again, from L2 -- below fused_float_sequence.HALF_BELOW
    sequences; else float32 copies made per run().
    Zen 4, run() of one sequence, us a step: 2-layer bidirectional lstm48 2.41-3.23 -> 2.08-2.09 (f32 2.41-2.88),
    bidirectional lstm128 5.83-7.13 -> 3.91-3.94 (f32 5.46-5.53), 2-layer bidirectional rnn_tanh96 2.27-2.29 ->
    2.00-2.06; below L1 the conversions cost more than they save (2-layer bidirectional gru48, W_hh^T 27 KB: 5%
    slower on the float16 copy; the seed classifier's rnn_tanh64, 16 KB: 6%)."""
    rows = fused_float_sequence.model_rows(model)
    panel_blob(lay, rows)
    if model.precision != "int8w":
        return fused_float_sequence.generate(model, (lay.blob,))
    half = half_copy() and max(4 * H * G for _, H, G in (matrix_parts(row)[1] for row in rows)) > l1_data_bytes()
    return fused_float_sequence.generate(model, _step_weights(lay, rows, half), half)


def l1_data_bytes() -> int:
    """This CPU's L1 data cache in bytes (Linux's sysconf), 32 KiB where it does not say."""
    try:
        size = os.sysconf("SC_LEVEL1_DCACHE_SIZE")
    except (ValueError, OSError):
        size = 0
    return size if size > 0 else 32768


def _step_weights(lay, rows, half: bool) -> tuple:
    """The int8w step's arrays: (qblob, blob, qw), qw what its sums read: qblob from the first layer's W_ih^T on
    (fused_float_source.qw_start), as a view, or (half: half_copy()) as float16 bits in a uint16 array (numba has
    no float16 arrays; fused_float_fma.weight_kind), made after the panels are written, read-only."""
    q0 = qw_start(rows)
    part = lay.qblob[q0:]
    if half:  # placed as qblob is, its largest matrices from a cache line (fused_float_blob.line_offset)
        part = placed(part.astype(np.float16).view(np.uint16), (line_offset(rows, 2) + 2 * q0) % CACHE_LINE)
        part.flags.writeable = False
    return lay.qblob, lay.blob, part


def _run_weights(lay, rows, weights: tuple, fma8: bool):
    """The arrays run()'s `sequence` takes: the step's (for int8w on FMA8 qw, the array its sums read: the int8
    weights converted as loaded, or their float16 copy), or where float_copy() the same with a float32 copy of qw
    made per run() (exact: the same numbers every way, and the model keeps its int8 weights only)."""
    if fma8 and float_copy():
        return lambda: weights[:2] + (lay.qblob[qw_start(rows):].astype(np.float32),)
    return lambda: weights


def run_function(model, sequence, weights: Callable[[], tuple], per_stream: int, shared: int, pv_n: int = 0):
    """model.run() on the specialised step, as a function run(X, lengths, valid): X (B, T, F) float32 (checked by
    run) or (B, T) token ids -> as run. A closure over what it reads at every call: for a short sequence its
    Python is most of run()'s cost (Zen 4, lstm8 f32 at T = 1: run() 6.0-6.4 -> 3.6-4.0 us).

    Every sequence steps all T steps in one buffer (inputs past a length replaced by harmless ones: the mean, or
    token 0), so each output up to its length is exactly what a stream gives; later ones are dropped. weights():
    the arrays `sequence` takes after the lengths (_run_weights); pv_n: the elements of the projections array it
    takes last (fused_float_run.py; 0: it takes none)."""
    O, S, init = model.out, model.layout.state_size, model.initial_state
    every = model.spec["head"]["on"] != "last_step"
    per_row = O + S + per_stream

    def run(X: np.ndarray, lengths: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        B, T = X.shape[0], X.shape[1]
        buf = np.zeros(B * per_row + shared, dtype=np.float32)
        if init is not None:
            buf[B * O : B * (O + S)].reshape(B, S)[:] = init
        Xt = fused.time_major(model, X, valid)
        Y = np.empty((T, B, O) if every else (B, O), dtype=np.float32)  # sequence() writes every element
        if (sequence(buf, Xt, Y, lengths, *weights(), np.zeros(pv_n if B < fma.STREAMS else 1, dtype=np.float32))
                if pv_n else sequence(buf, Xt, Y, lengths, *weights())):
            fused.refused(model, X, valid)  # a dense value whose normalised form is not finite: run()'s ValueError
        return fused.batch_major(Y, valid) if every else Y

    return run


fused.GENERATORS.update({"f32": generate, "int8w": generate})
