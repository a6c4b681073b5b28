"""The int8 step compiled for one loaded model: numba source written with the model's sizes, offsets, cells and
head as literals (runtime/specialize.py), integers identical to runtime/kernels_int8.py's generic step.

    step = generate(model)         # a fused.Specialised, or None: a model part this step does not cover
    step.kernel(buf, x, blob)      # the generic kernel's buffers, buf = [logits | state | scratch], then the
                                   # stream's batch (fused.py); y (B, out) as float32 bits in the scratch at
                                   # step.y_at(B): one array less to pass than the generic kernel's (y, buf, ...)

What it covers: dense or token input, stacked forward layers of rnn_tanh, rnn_relu, lstm and gru (PyTorch's
cells; initial_state too, which only changes where a stream starts) with the ONNX step extensions int8 runs (clip,
input_forget, peepholes, a GRU's linear_before_reset false: kernels_int8_ext's integers, fused_int8_cells.Extensions;
int8 refuses other activation functions at load), and a linear head with any activation;
model.run() of such layers, bidirectional and reverse ones too, through the generated `sequence` / `sequence_grouped`
(fused_int8_seq.py; a model with those cannot stream, so it gets no step). A head's hidden dense layers (spec head.hidden) run as kernels_int8.dense_int8 does: the mat-vec,
sat16(MBQM) per row, then the layer's activation.

How it differs from the generic kernel (the integers do not):

- One int32 array, `blob`, holds every constant, each piece at a 64-byte boundary: the weight matrices as int8
  bytes in the chosen mat-vec's layout, biases and the requantisation rows as int32 (each row's M, and either its
  shift S or, where no row shifts left, e = -S with its rounding halves: fused_int8_math.rounding_rows), the input
  normalisation and the head's scales as float32 bits, and the sigmoid table as pairs (fused_int8_math). A step
  passes three arrays (buf, x, blob; y is written into buf) and reads everything at literal offsets: no tables, no views in the loops
  (one view of the scratch and one of the stream's state per stream, so every index is provably >= 0 and numba's
  negative-index wrap folds away).
- Each gate's rows are padded to HP = H rounded up to 16 (zero weights, bias and multipliers), so every mat-vec
  writes whole 16-lane blocks and gate k of unit j sits at row k HP + j.
- Mat-vecs: on AVX512-VNNI vnni_quad's (weights in pack_quad's layout: one row on `vpdpbusd` with the values split
  into two unsigned bytes, four rows per weight load); else on AVX2, pack_vnni's pairs on `vpmaddwd` + `vpaddd`
  (`vnni.matvec_avx2_at`, path "avx2"); else
  the portable path, plain loops over W^T (K, GP) that LLVM vectorises with this CPU's instructions. The path is
  chosen when the step is generated (vnni.best_path; RNNEDGE_VNNI=0 forces the portable one); kernel_info names
  it. int32 sums are exact in any order (the export's bound), so every path gives the generic kernel's integers.
- The gate stage runs in passes that each store to one array, so LLVM vectorises them: the pre-activations of
  all gate rows (two requantised terms, int64 lanes for the products only, added exactly and saturated once,
  docs/int8.md), the sigmoid / tanh rows as vector IR with one gather per 16 lanes (fused_int8_simd; two AVX2
  vpgatherdd where explicit_gathers()), the GRU candidate's pre-activation in int32 lanes (gru_candidate_rows_at),
  then the cell update and the GRU blend in int32 lanes (fused_int8_math).
- Every stream's input is quantised (and checked) into the scratch in one branch-free pass before any state
  changes: a refused step (BAD_VALUE, BAD_TOKEN) leaves the state as the generic kernel does. Before that the step
  checks x's shape against its stream's (BAD_SHAPE: the batch from the buffer's last element, fused.py).

Batches: the streams run in groups of vnni.ROWS (four), B read from x, so any B runs without recompiling. For a
group, each layer's two mat-vecs are matrix products (vnni_quad.matmat_quad_at: each weight load serves the
group's streams) written straight into each stream's rows of a group region, where that stream's gate
stage then reads them in place (a view per stream, no copies); the head is one matrix product per group too (four
independent accumulator chains; a head with hidden dense layers runs per stream). B = 1, and a batch's last 1-3
streams, run one stream at a time (on VNNI, vpdpbusd). The portable path runs the same products row by row.
"""

from __future__ import annotations

import os

import numpy as np

from rnnedge.runtime import fused, fused_int8_simd, specialize, vnni
from rnnedge.runtime import layout as L
from rnnedge.runtime import spec as specs
from rnnedge.runtime.fused import GENERATORS, Specialised, shape_refused
from rnnedge.runtime.fused_int8_cells import (
    EXT_IMPORTS,
    Blob,
    Source,
    gates,
    hidden,
    hidden_constants,
    layer_constants,
    pack,
    quantise_input,
    up,
)
from rnnedge.runtime.fused_int8_math import pair_table
from rnnedge.runtime.fused_int8_seq import CHUNK, Frame, run_function, sequence
from rnnedge.runtime.kernels_f32 import BAD_SHAPE
from rnnedge.runtime.vnni import ROWS

HEADER = """
import numpy as np

from rnnedge.runtime.jit import entry_kernel
from rnnedge.runtime.fused_int8_math import mbqm_right, rdbpot32, sat16_32
from rnnedge.runtime.fused_int8_state import (gru_blend_at, gru_blend_out_at, lstm_cell_at, lstm_hidden_at,
                                               lstm_hidden_out_at, rnn_hidden_at, rnn_hidden_out_at)
from rnnedge.runtime.fused_int8_simd import (as_float32, as_int8, gate_sums_bounded_at, gate_sums_rows_at,
                                              gru_candidate_bounded_at, gru_candidate_rows_at, sigmoid_rows_at,
                                              tanh_rows_at)
from rnnedge.runtime.int8_math import (multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_right,
                                       gelu_q12, rounding_divide_by_pot, sat16)
from rnnedge.runtime.kernels_f32 import activate_head_f32
from rnnedge.runtime.vnni import matmat_avx2_at, matvec_avx2_at
from rnnedge.runtime.vnni_quad import matmat_quad_at, matvec_quad_at
"""


# kernel_info's "products": which instructions each path's mat-vecs and matrix products run on
PRODUCTS = {"avx512_vnni": "weights in quads of inputs; vpdpbusd on each value's two unsigned bytes, each weight "
                           "load serving four streams",
            "avx2": "weights in pairs of inputs; vpmaddwd + vpaddd, four streams per weight load",
            "portable": "plain loops over W^T, vectorised by LLVM"}


def portable_forced() -> bool:
    return os.environ.get("RNNEDGE_VNNI", "1") == "0"


def uncovered(model) -> str | None:
    """What of `model` this step does not cover (the generic kernels run it), or None."""
    lay = model.layout
    for l, layer in enumerate(model.spec["layers"]):
        for d in range(specs.directions(layer)):
            # every extension int8 runs (spec.unsupported refuses other activation functions at load)
            why = fused.extensions_refused(l, int(lay.layers[2 * l + d][L.L_FLAGS]), L.F_STEP & ~L.F_ACTIVATIONS)
            if why is not None:
                return why
    return None


def generate(model, path: str | None = None) -> Specialised | None:
    """The model's specialised int8 step (module docstring), or None for a model part it does not cover.
    path: "avx512_vnni", "avx2" or "portable"; by default the best this CPU has (vnni.best_path), portable where
    RNNEDGE_VNNI is 0."""
    why = uncovered(model)
    if why is not None:
        model.__dict__["_specialised_why"] = why
        return None
    if path is None:
        path = "portable" if portable_forced() else vnni.best_path()
    if path not in ("avx512_vnni", "avx2", "portable"):
        raise ValueError(f"int8 mat-vec path {path!r} is not one of 'avx512_vnni', 'avx2', 'portable'")
    if path == "avx512_vnni" and not vnni.has_avx512_vnni():
        raise ValueError("int8 mat-vec path 'avx512_vnni' asked for, but this CPU has no AVX512-VNNI")
    if path == "avx2" and not vnni.has_avx2():
        raise ValueError("int8 mat-vec path 'avx2' asked for, but this CPU has no AVX2")
    portable = path == "portable"
    lay, m = model.layout, model.layout.model
    blob, src = Blob(), Source(path)
    OUT, STATE, n_in = int(m[L.M_OUT]), int(m[L.M_STATE]), int(m[L.M_N_IN])
    table = blob.int32(pair_table())
    layers = [[layer_constants(blob, lay, lay.layers[2 * l + d], path) for d in range(specs.directions(layer))]
              for l, layer in enumerate(model.spec["layers"])]
    hiddens = [hidden_constants(blob, row, lay, path) for row in lay.dense]
    head = _head_constants(blob, lay, path)
    if model.dense:
        inputs = tuple(blob.float32(lay.blob[int(m[a]) : int(m[a]) + n]) for a, n in
                       ((L.M_OFF_IN_A, n_in), (L.M_OFF_IN_B, n_in), (L.M_OFF_IN_S, 1)))
    else:
        vocab = int(m[L.M_VOCAB])
        inputs = (blob.int8(lay.qblob[int(m[L.M_OFF_IN_A]) : int(m[L.M_OFF_IN_A]) + vocab * n_in]),)

    # scratch: [ax (GP) | ah (GP) | head accumulators (OP) | hidden head layers' outputs | run()'s features or the
    # step's part]: the step forms (and checks) the input of all B streams before any state changes
    gp_max = max(k.GP for ks in layers for k in ks)
    AX, NP = 0, up(n_in)
    AH = AX + gp_max
    HD = AH + gp_max
    outs = []  # where each hidden head layer's output sits (padded to 16 rows), after the head's accumulators
    for k in hiddens:
        outs.append(HD + head["OP"] + sum(h.UP for h in hiddens[: len(outs)]))
    FE = HD + head["OP"] + sum(h.UP for h in hiddens)
    frame = Frame(AX=AX, AH=AH, HD=HD, outs=outs, FE=FE, table=table, inputs=inputs, head=head)
    # the step's scratch after the frame's: [group region: ROWS streams x (ax | ah) | the group's head accumulators
    # (ROWS x OP) | every stream's quantised input (B x NP)]
    frame_step = {"Z": FE, "ZS": 2 * gp_max, "HG": FE + ROWS * 2 * gp_max}
    XQ = frame_step["HG"] + ROWS * head["OP"]

    src.add(0, HEADER + (EXT_IMPORTS if any(k.ext is not None for ks in layers for k in ks) else ""))
    streams = specs.can_stream(model.spec)
    if streams:
        _step(src, model, layers, hiddens, frame, frame_step, OUT, STATE, NP, XQ)
    for grouped in (True, False):  # sequence_grouped and sequence: the same working arrays' sizes
        seq = sequence(src, model, layers, hiddens, frame, _head_code, grouped)

    text, stem = "\n".join(src.lines) + "\n", f"int8_{'vnni' if path == 'avx512_vnni' else path}"
    module = specialize.load_source(stem, text)
    weights = blob.finish()
    return Specialised(kernel=module.step if streams else None, weights=(weights,),
                       # the quantised inputs, one x, then y
                       scratch=lambda batch: XQ + (batch + 1) * NP + batch * OUT,
                       y_at=lambda batch: XQ + (batch + 1) * NP,
                       info={"path": path, "source": str(specialize.source_path(stem, text)),
                             "blob_bytes": int(weights.nbytes), "activations": fused_int8_simd.describe(),
                             "products": PRODUCTS[path],
                             "run": "forward layers: sequences in groups of four (a function compiled only for "
                                    "four sequences and more), each step's products as matrix products; else "
                                    f"input projections of {CHUNK} steps at a time as one, then their recurrence"
                                    if not portable else "the step's stages over whole sequences"},
                       run=run_function(model, module, weights, seq), run_checks=True)


def _head_constants(blob: Blob, lay, path: str) -> dict:
    m = lay.model
    OUT, head_in = int(m[L.M_OUT]), int(m[L.M_HEAD_IN])
    OP = up(OUT)
    w = lay.qblob[int(m[L.M_OFF_HEAD_W]) : int(m[L.M_OFF_HEAD_W]) + OUT * head_in].reshape(OUT, head_in)
    w_t = np.zeros((head_in, OP), dtype=np.int8)
    w_t[:, :OUT] = w.T
    bias = np.zeros(OP, dtype=np.int32)
    bias[:OUT] = lay.iblob[int(m[L.M_OFF_HEAD_B]) : int(m[L.M_OFF_HEAD_B]) + OUT]
    return {"OUT": OUT, "OP": OP, "w": pack(blob, w_t, path), "b": blob.int32(bias),
            "s": blob.float32(lay.blob[int(m[L.M_OFF_HEAD_S]) : int(m[L.M_OFF_HEAD_S]) + OUT]),
            "activation": int(m[L.M_ACTIVATION])}


def _head_code(src: Source, frame: Frame, hiddens: list, indent: int, v: tuple[str, int | str], K: int, y: str,
               logits: str | None = None) -> None:
    """The head's hidden layers, its mat-vec and dequantisation into y (a row of float32), its activation; the
    integer logits also to `logits` (an expression with o) where given."""
    for k, out in zip(hiddens, frame.outs):
        hidden(src, k, indent, v, out, frame.table)
        v, K = ("s", out), k.U
    head = frame.head
    src.matvec(indent, frame.HD, head["w"], head["b"], v, K, head["OP"])
    keep = f"\n    {logits} = a" if logits else ""
    src.add(indent, f"""
for o in range({head['OUT']}):
    a = s[{frame.HD} + o]{keep}
    {y}[o] = np.float32(a) * fl[{head['s']} + o]""")
    if head["activation"] != L.ACT_NONE:
        src.add(indent, f"activate_head_f32({y}, {head['activation']})")


def _step(src: Source, model, layers, hiddens, frame: Frame, frame_step: dict, OUT: int, STATE: int, NP: int,
          XQ: int) -> None:
    """The stream's step: step(buf, x, blob) -> status, the streams in groups of ROWS; y (B, OUT) float32 into
    buf's scratch after one x (Specialised.y_at)."""
    n_in = int(model.layout.model[L.M_N_IN])
    src.add(0, """

@entry_kernel
def step(buf, x, blob):
    B = x.shape[0]""")
    src.add(1, f"""
if {shape_refused(model.dense, n_in)}:  # before anything is read (fused.py)
    return {BAD_SHAPE}
w8 = as_int8(blob)
fl = as_float32(blob)
y = as_float32(buf)[B * {OUT + STATE + NP} + {XQ + NP} :]  # y (B, {OUT}), after the quantised inputs and one x""")
    if model.dense:
        mean, std, scale = frame.inputs
        src.add(1, f"""
s = buf[B * {OUT + STATE} :]
xr = as_float32(buf)[B * {OUT + STATE + NP} + {XQ} :]  # one stream's x as float32, after the quantised inputs
finite = True
for b in range(B):
    for k in range({n_in}):
        xr[k] = x[b, k]  # x of any layout (the entry's): one plain copy, so the arithmetic below vectorises
    for k in range({n_in}):""")
        src.add(3, quantise_input(mean, std, scale, "xr[k]", f"s[{XQ} + b * {NP} + k]"))
        src.add(1, """
if not finite:
    return 1""")
    else:
        vocab, emb = model.vocab, frame.inputs[0]
        src.add(1, f"""
for b in range(B):
    if x[b] < 0 or x[b] >= {vocab}:
        return 2
s = buf[B * {OUT + STATE} :]
for b in range(B):
    row = w8[{emb} + x[b] * {n_in} : {emb} + (x[b] + 1) * {n_in}]
    for k in range({n_in}):
        s[{XQ} + b * {NP} + k] = np.int32(row[k])""")
    # streams in groups of ROWS: each layer's two mat-vecs for the group as matrix products (every weight load
    # serves the group's streams, vnni_quad.matmat_quad_at) written straight into each stream's rows of the group
    # region, then each stream's gate stage on its own rows (a view, so indices stay provably >= 0); the head
    # likewise for the group
    ST, Z, ZS = f"B * {OUT}", frame_step["Z"], frame_step["ZS"]
    src.add(1, f"""
for g in range(0, B, {ROWS}):
    rows = min({ROWS}, B - g)""")
    v, K, stride = ("s", f"{XQ} + g * {NP}"), n_in, NP
    for (k,), row in zip(layers, model.layout.layers[::2]):
        h, c = int(row[L.L_OFF_H]), int(row[L.L_OFF_C])
        src.matmat(2, "s", Z, ZS, k.w_ih, k.b_x, v[0], v[1], stride, K, k.GP, "rows")
        src.matmat(2, "s", Z + k.GP, ZS, k.w_hh, k.b_h, "buf", f"{ST} + g * {STATE} + {h}", STATE, k.H, k.GP, "rows")
        src.add(2, f"""
for r in range(rows):
    b = g + r
    st = buf[{ST} + b * {STATE} : {ST} + (b + 1) * {STATE}]
    ga = s[{Z} + r * {ZS} : {Z} + (r + 1) * {ZS}]""")
        gates(src, k, 3, 0, k.GP, "st", h, c, frame.table, "ga")
        v, K, stride = ("buf", f"{ST} + g * {STATE} + {h}"), k.H, STATE
    head = frame.head
    if hiddens:
        src.add(2, f"""
for r in range(rows):
    b = g + r
    st = buf[{ST} + b * {STATE} : {ST} + (b + 1) * {STATE}]
    yb = y[b * {OUT} : (b + 1) * {OUT}]""")
        _head_code(src, frame, hiddens, 3, ("st", h), K, "yb", f"buf[b * {OUT} + o]")
    else:
        HG = frame_step["HG"]
        src.matmat(2, "s", HG, head["OP"], head["w"], head["b"], v[0], v[1], stride, K, head["OP"], "rows")
        src.add(2, f"""
for r in range(rows):
    b = g + r
    for o in range({head['OUT']}):
        a = s[{HG} + r * {head['OP']} + o]
        buf[b * {OUT} + o] = a
        y[b * {OUT} + o] = np.float32(a) * fl[{head['s']} + o]""")
        if head["activation"] != L.ACT_NONE:
            src.add(3, f"activate_head_f32(y[b * {OUT} : (b + 1) * {OUT}], {head['activation']})")
    src.add(1, "return 0")


GENERATORS["int8"] = generate
