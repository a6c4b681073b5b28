"""Where everything sits in memory: the weight blobs plus the int64 tables the kernels read.

`build(spec, tensors, precision)` turns an artifact's tensors (PyTorch layout) into the kernel layout: every
recurrent matrix transposed to W^T (inputs, rows) and packed into one contiguous blob, so a step reads
its weights front to back. The tables give offsets into the blobs (weights) and into a stream's state
row (h, c); their column names are the constants below, shared with the kernels. The tables are one int64 array:
`model` (M_*), `layers` (L_*, a row per layer-direction) and `dense` (D_*, a row per hidden head layer of the
spec's head.hidden; none for a single linear head, whose step then runs as it always has).

f32: one float32 blob holds everything; `qblob` is empty. int8w: the weight matrices (W^T of each layer, the
embedding table, the head weight) stay int8 in `qblob`, and the float32 `blob` holds the rest: each matrix's
per-row scales (offsets in the *_S / L_OFF_S* columns), biases and the input normalisation. Every matrix
offset then points into `qblob`, every vector offset into `blob`.

int8 (runtime/kernels_int8.py): the matrices are int8 in `qblob` as for int8w; the int32 `iblob` holds the
folded biases (L_OFF_BIH, L_OFF_BHH: one per row, zeros where the file has none, M_OFF_HEAD_B) and each
layer-direction's (4, G) requantisation block Mx, Sx, Mh, Sh (L_OFF_SIH, from the file's requant and shift); `blob` keeps the float32 host-side numbers: the input normalisation and scale (M_OFF_IN_A/B,
M_OFF_IN_S) and the head's dequantisation scales (M_OFF_HEAD_S). State and scratch are counted in int32
elements. `build` refuses an int8 file whose int32 sums could overflow (see check_int32_sums), and every
precision refuses a spec its kernels cannot run (runtime.spec.unsupported), naming what.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnedge.runtime import spec as specs

CELL_RNN_TANH, CELL_RNN_RELU, CELL_LSTM, CELL_GRU = 0, 1, 2, 3
CELL_CODE = {"rnn_tanh": CELL_RNN_TANH, "rnn_relu": CELL_RNN_RELU, "lstm": CELL_LSTM, "gru": CELL_GRU}
INPUT_DENSE, INPUT_TOKENS = 0, 1
ACT_NONE, ACT_SOFTMAX, ACT_SIGMOID, ACT_LOG_SOFTMAX = 0, 1, 2, 3
ACT_CODE = {"none": ACT_NONE, "softmax": ACT_SOFTMAX, "sigmoid": ACT_SIGMOID, "log_softmax": ACT_LOG_SOFTMAX}

# `layers` table: one row per layer and direction (row 2*l is forward, 2*l + 1 backward)
# (L_OFF_SIH, L_OFF_SHH: the per-row scales of w_ih and w_hh, int8w; int8: L_OFF_SIH is the (4, G)
# requantisation block Mx, Sx, Mh, Sh in `iblob`, L_PARAM the LSTM cell's power p, L_LEFT_SHIFT 1 if any
# shift S of the block is > 0, so the kernels need the general requantisation, else 0)
# The ONNX extensions (runtime/spec.py): L_FLAGS the F_* bits below (0: PyTorch's cell, the kernels' fast
# path); L_OFF_EXT a float32 block in `blob`: [clip (0 without), then code, alpha, beta of each of the
# direction's activation functions (spec.functions)]; L_OFF_P the peepholes [p_i; p_f; p_o] (3H,) in `blob`
# (int8: `iblob`, int32 [P (3H) | M (3) | S (3)]: int16 values, a multiplier and shift per gate);
# L_OFF_INIT the initial state [h0 (H) | c0 (H), lstm] in `blob` (int8: `iblob`, int16 values); L_CLIP_Q the
# int8 clip threshold in the pre-activation's integers (Q3.12; rnn_relu: s_h), 32767 when it clips nothing.
(L_CELL, L_N_IN, L_HIDDEN, L_OFF_WIH, L_OFF_WHH, L_OFF_BIH, L_OFF_BHH, L_OFF_H, L_OFF_C, L_OFF_SIH, L_OFF_SHH,
 L_PARAM, L_LEFT_SHIFT, L_FLAGS, L_OFF_EXT, L_OFF_P, L_OFF_INIT, L_CLIP_Q) = range(18)
L_COLUMNS = 18
F_REVERSE, F_RESET_BEFORE, F_INPUT_FORGET, F_PEEPHOLES, F_CLIP, F_ACTIVATIONS, F_INIT = 1, 2, 4, 8, 16, 32, 64
# the extensions that change a step's arithmetic, which take the kernels' extension path; reverse and initial state
# only change where a sequence runs and starts, so such layers keep the plain step
F_STEP = F_RESET_BEFORE | F_INPUT_FORGET | F_PEEPHOLES | F_CLIP | F_ACTIVATIONS
# activation function codes in the L_OFF_EXT block (spec.ACTIVATION_FNS)
(FN_RELU, FN_TANH, FN_SIGMOID, FN_AFFINE, FN_LEAKYRELU, FN_THRESHOLDEDRELU, FN_SCALEDTANH, FN_HARDSIGMOID, FN_ELU,
 FN_SOFTSIGN, FN_SOFTPLUS) = range(11)
FN_CODE = {"relu": FN_RELU, "tanh": FN_TANH, "sigmoid": FN_SIGMOID, "affine": FN_AFFINE, "leakyrelu": FN_LEAKYRELU,
           "thresholdedrelu": FN_THRESHOLDEDRELU, "scaledtanh": FN_SCALEDTANH, "hardsigmoid": FN_HARDSIGMOID,
           "elu": FN_ELU, "softsign": FN_SOFTSIGN, "softplus": FN_SOFTPLUS}
CLIP_Q_NONE = 32767
# `model` table (M_OFF_IN_S: the embedding's per-row scales, M_OFF_HEAD_S: the head's, int8w only; M_N_DENSE the
# head's hidden dense layers, 0 for a single linear head)
(M_N_LAYERS, M_INPUT_KIND, M_N_IN, M_VOCAB, M_OFF_IN_A, M_OFF_IN_B, M_OFF_HEAD_W, M_OFF_HEAD_B, M_HEAD_IN, M_OUT,
 M_ACTIVATION, M_STATE, M_SCRATCH, M_OFF_IN_S, M_OFF_HEAD_S, M_N_DENSE) = range(16)
M_FIELDS = 16
# `dense` table, after `layers` in the same int64 array: one row per hidden head layer (spec head.hidden), in order.
# D_OFF_W the weight (U, in) as the file holds it, row-major (like the head's: few long rows suit dot products);
# D_OFF_B the bias (U,); D_OFF_S its per-row scales (int8w), or (int8) its requantisation block [M (U) | S (U)] in
# `iblob`; D_OFF_OUT where its output sits in the head's part of the scratch (the layers' part, free once the last
# layer has stepped): the layers one after another.
(D_N_IN, D_UNITS, D_OFF_W, D_OFF_B, D_OFF_S, D_ACTIVATION, D_OFF_OUT) = range(7)
D_COLUMNS = 7
# a hidden head layer's activation (spec.HIDDEN_ACTIVATIONS)
HID_NONE, HID_RELU, HID_TANH, HID_SIGMOID, HID_GELU, HID_GELU_TANH = range(6)
HID_CODE = {"none": HID_NONE, "relu": HID_RELU, "tanh": HID_TANH, "sigmoid": HID_SIGMOID, "gelu": HID_GELU,
            "gelu_tanh": HID_GELU_TANH}


PANEL = 64  # columns of W^T per panel: fused_float_fma's BLOCKS x 16 lanes, one call's blocks
CACHE_LINE = 64  # bytes


def line_bytes(nbytes: int, at: int = 0) -> np.ndarray:
    """nbytes zero bytes starting `at` bytes (0 <= at < 64) past a cache line boundary (numpy's large arrays start 16
    bytes past a page): view them as the dtype wanted."""
    raw = np.zeros(nbytes + 2 * CACHE_LINE, dtype=np.uint8)
    start = -raw.ctypes.data % CACHE_LINE + at
    return raw[start : start + nbytes]


def line_zeros(n: int, dtype=np.float32) -> np.ndarray:
    """n zeros of `dtype` from a cache line boundary on: a buffer whose regions start at multiples of 16 (4-byte)
    elements then loads and stores whole 64-byte vectors on one line (a stream's buffer, run()'s: a 16-lane vector
    across two lines costs two)."""
    return line_bytes(n * np.dtype(dtype).itemsize).view(dtype)


def panelled(a, off: int, K: int, N: int) -> None:
    """Rewrite W^T (K, N) row-major at off in the array a (float32 or int8), in place, as panels of PANEL columns
    (runtime/fused_float_fma.py): the same K x N elements, so every other offset in a stays where it was."""
    m = a[off : off + K * N].reshape(K, N).copy()
    at = off
    for c in range(0, N, PANEL):
        width = min(PANEL, N - c)
        a[at : at + K * width] = m[:, c : c + width].ravel()
        at += K * width


def unpanelled(a, off: int, K: int, N: int):
    """W^T (K, N) row-major (a copy) from its panels at off in a: panelled's inverse."""
    parts, at = [], off
    for c in range(0, N, PANEL):
        width = min(PANEL, N - c)
        parts.append(a[at : at + K * width].reshape(K, width))
        at += K * width
    return np.concatenate(parts, axis=1)



@dataclass
class Layout:
    precision: str  # "f32", "int8w" or "int8"
    blob: np.ndarray  # (W,) float32: every weight (f32), or scales, biases and normalisation (int8w, int8)
    qblob: np.ndarray  # (Q,) int8: every weight matrix (int8w, int8); empty for f32
    table: np.ndarray  # (M_FIELDS + 2L * L_COLUMNS + K * D_COLUMNS,) int64: `model`, `layers`, `dense`, one array
    model: np.ndarray  # (M_FIELDS,) int64, a view of table
    layers: np.ndarray  # (2L, L_COLUMNS) int64, a view of table
    dense: np.ndarray  # (K, D_COLUMNS) int64, a view of table: the head's K hidden dense layers
    state_size: int  # floats of state per stream: every forward layer's h (and c)
    scratch_size: int  # floats (int8: int32 elements) of working memory a step needs
    iblob: np.ndarray = None  # (I,) int32: biases and requantisation constants (int8); empty otherwise
    # {offset: (K, N)} of the matrices the specialised step has rewritten as column panels (panelled, same size, in
    # place) in the array that holds them (f32: blob; int8w: qblob); matrix() reads them back row-major
    panels: dict = None

    def __post_init__(self):
        if self.iblob is None:
            self.iblob = np.zeros(0, dtype=np.int32)
        if self.panels is None:
            self.panels = {}

    @property
    def nbytes(self) -> int:
        return self.blob.nbytes + self.qblob.nbytes + self.iblob.nbytes + self.table.nbytes

    def matrix(self, off: int, rows: int, cols: int) -> np.ndarray:
        """A weight matrix: float32 from `blob` (f32) or int8 from `qblob` (int8w, int8)."""
        weights = self.blob if self.precision == "f32" else self.qblob
        if off in self.panels:
            assert self.panels[off] == (rows, cols), (off, rows, cols)
            return unpanelled(weights, off, rows, cols)
        return weights[off : off + rows * cols].reshape(rows, cols)

    def vector(self, off: int, n: int) -> np.ndarray:
        """A float32 vector (bias, scales, normalisation) from `blob`."""
        return self.blob[off : off + n]

    def ivector(self, off: int, n: int) -> np.ndarray:
        """An int32 vector (int8 biases, requantisation constants) from `iblob`."""
        return self.iblob[off : off + n]


INT32_LIMIT = 2**31
INT16_MAGNITUDE = 2**15  # the largest |value| of an int16 activation


def int32_sum_bound(w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """(rows,) int64: |bias[r]| + sum_k |w[r, k]| * 2^15, the largest |bias + w @ v| over int16 v, per row of a
    matrix (rows, K) int8 (check_int32_sums; the specialised int8 step's bounded gate sums, fused_int8_cells)."""
    rows = max(1, 2**20 // max(1, w.shape[1]))  # a block of rows at a time: the int64 copy stays at 8 MB
    bound = np.concatenate([np.abs(w[r : r + rows].astype(np.int64)).sum(axis=1) for r in range(0, len(w), rows)]
                           or [np.zeros(0, dtype=np.int64)]) * INT16_MAGNITUDE
    if bias is not None:
        bound = bound + np.abs(bias.astype(np.int64))
    return bound


def check_int32_sums(name: str, w: np.ndarray, bias: np.ndarray | None) -> None:
    """Refuse a matrix (rows, K) int8 whose int32 sums bias + w @ v could overflow for some int16 v.

    |bias[r]| + sum_k |w[r, k]| * 2^15 < 2^31 for every row r makes int32 accumulation exact (kernels_int8).
    v is int16 wherever an accumulator reads it: every state and activation write saturates to int16, and a
    reset-before GRU's r * h is RDBPOT(r * h, 15) with r < 2^15, so |r * h| stays within |h|. These accumulators
    are the only sums of the int8 step that need a proof: each requantised term after them is int32 by
    construction (MBQM saturates), and a gate pre-activation adds its terms exactly in int64 before its one
    saturation (|yx + yh + yp| < 3 * 2^31, a GRU's r * yh_n < 2^46; docs/int8.md).
    """
    bound = int32_sum_bound(w, bias)
    if bound.size and bound.max() >= INT32_LIMIT:
        r = int(bound.argmax())
        raise ValueError(f"int8 layout: row {r} of {name} could overflow its int32 sum (bound {int(bound[r])} "
                         f">= 2^31): the matrix is too wide for exact int32 accumulation")


def build(spec: dict, tensors: dict[str, np.ndarray], precision: str = "f32") -> Layout:
    if precision not in specs.PRECISIONS:
        raise ValueError(f"precision {precision!r} is not supported (supported: {', '.join(specs.PRECISIONS)})")
    problems = specs.unsupported(spec, precision)  # rather than running a plainer model than the spec says
    if problems:
        raise ValueError(f"{precision} cannot run this model: " + "; ".join(problems))
    if precision == "int8":
        return _build_int8(spec, tensors)
    quantized = precision == "int8w"
    pieces: list[np.ndarray] = []
    qpieces: list[np.ndarray] = []
    offset = 0
    qoffset = 0

    def put(arr: np.ndarray) -> int:
        nonlocal offset
        start = offset
        pieces.append(np.ascontiguousarray(arr, dtype=np.float32).ravel())
        offset += arr.size
        return start

    def put_matrix(name: str, transpose: bool) -> tuple[int, int]:
        """(offset of the matrix, offset of its per-row scales or 0): float32 in blob, or int8 in qblob."""
        nonlocal qoffset
        arr = tensors[name].T if transpose else tensors[name]
        if not quantized:
            return put(arr), 0
        if arr.dtype != np.int8:
            raise ValueError(f"int8w layout: {name} is {arr.dtype}, not int8 (quantize it first)")
        start = qoffset
        qpieces.append(np.ascontiguousarray(arr, dtype=np.int8).ravel())
        qoffset += arr.size
        return start, put(tensors[f"{name}.scale"])

    model = np.zeros(M_FIELDS, dtype=np.int64)
    inp = spec["input"]
    model[M_N_LAYERS] = len(spec["layers"])
    model[M_N_IN] = specs.input_size(spec)
    if inp["kind"] == "dense":
        model[M_INPUT_KIND] = INPUT_DENSE
        model[M_OFF_IN_A] = put(np.asarray(inp["mean"], dtype=np.float32))
        model[M_OFF_IN_B] = put(np.asarray(inp["std"], dtype=np.float32))
    else:
        model[M_INPUT_KIND] = INPUT_TOKENS
        model[M_VOCAB] = inp["vocab"]
        model[M_OFF_IN_A], model[M_OFF_IN_S] = put_matrix("embedding.weight", transpose=False)

    layers = np.zeros((2 * len(spec["layers"]), L_COLUMNS), dtype=np.int64)
    state_size = 0
    scratch_gates = 0
    for l, (layer, n_in) in enumerate(zip(spec["layers"], specs.layer_input_sizes(spec))):
        H = layer["hidden"]
        for d, name in enumerate(("fwd", "bwd")[: specs.directions(layer)]):
            row = layers[2 * l + d]
            row[L_CELL] = CELL_CODE[layer["cell"]]
            row[L_N_IN], row[L_HIDDEN] = n_in, H
            row[L_OFF_WIH], row[L_OFF_SIH] = put_matrix(f"layers.{l}.{name}.w_ih", transpose=True)
            row[L_OFF_WHH], row[L_OFF_SHH] = put_matrix(f"layers.{l}.{name}.w_hh", transpose=True)
            row[L_OFF_BIH] = put(tensors[f"layers.{l}.{name}.b_ih"])
            row[L_OFF_BHH] = put(_recurrent_bias(tensors, f"layers.{l}.{name}", layer, quantized))
            _extensions_f32(row, layer, d, tensors, f"layers.{l}.{name}", put)
        lstm = layer["cell"] == "lstm"
        layers[2 * l, L_OFF_H] = state_size
        layers[2 * l, L_OFF_C] = state_size + H if lstm else state_size  # no cell state: c is never read
        state_size += 2 * H if lstm else H
        scratch_gates = max(scratch_gates, scratch_rows(layer))

    dense = dense_rows(spec)
    for k, row in enumerate(dense):
        row[D_OFF_W], row[D_OFF_S] = put_matrix(f"head.hidden.{k}.weight", transpose=False)
        row[D_OFF_B] = put(tensors[f"head.hidden.{k}.bias"])
    # (O, Hin) as is: few long rows suit dot products
    model[M_OFF_HEAD_W], model[M_OFF_HEAD_S] = put_matrix("head.weight", transpose=False)
    model[M_OFF_HEAD_B] = put(tensors["head.bias"])
    _head_fields(model, spec, state_size, scratch_gates)
    blob = np.concatenate(pieces).astype(np.float32)
    blob.flags.writeable = False
    qblob = np.concatenate(qpieces) if qpieces else np.zeros(0, dtype=np.int8)
    qblob.flags.writeable = False
    return Layout(precision, blob, qblob, *_tables(model, layers, dense), state_size, int(model[M_SCRATCH]))


def dense_rows(spec: dict) -> np.ndarray:
    """The `dense` table's rows with their sizes, activation and output offsets; weight offsets still 0."""
    hidden = specs.head_hidden(spec)
    dense = np.zeros((len(hidden), D_COLUMNS), dtype=np.int64)
    offset = 0
    for row, layer, n_in in zip(dense, hidden, specs.head_input_sizes(spec)):
        row[D_N_IN], row[D_UNITS], row[D_ACTIVATION], row[D_OFF_OUT] = n_in, layer["units"], \
            HID_CODE[layer["activation"]], offset
        offset += layer["units"]
    return dense


def head_scratch(spec: dict) -> int:
    """Scratch the head's hidden layers need: every one's output, one after another (0 for a single linear head)."""
    return sum(layer["units"] for layer in specs.head_hidden(spec))


def _head_fields(model: np.ndarray, spec: dict, state_size: int, scratch_gates: int) -> None:
    """The `model` fields every precision fills alike: head sizes and activation, state and scratch sizes."""
    model[M_N_DENSE] = len(specs.head_hidden(spec))
    model[M_HEAD_IN] = specs.head_input_sizes(spec)[-1]
    model[M_OUT] = spec["head"]["out"]
    model[M_ACTIVATION] = ACT_CODE[spec["head"]["activation"]]
    model[M_STATE] = state_size
    model[M_SCRATCH] = model[M_N_IN] + max(scratch_gates, head_scratch(spec))


def _tables(model: np.ndarray, layers: np.ndarray, dense: np.ndarray) -> tuple[np.ndarray, ...]:
    """The one read-only int64 array the kernels take, and its `model`, `layers` and `dense` views."""
    table = np.concatenate([model, layers.ravel(), dense.ravel()])
    table.flags.writeable = False
    end = M_FIELDS + layers.size
    return table, table[:M_FIELDS], table[M_FIELDS:end].reshape(layers.shape), table[end:].reshape(dense.shape)


def layer_flags(layer: dict) -> int:
    """The F_* bits of a spec layer's extensions (0 for PyTorch's cells)."""
    flags = 0
    for key, bit in (("reverse", F_REVERSE), ("input_forget", F_INPUT_FORGET), ("peepholes", F_PEEPHOLES),
                     ("initial_state", F_INIT)):
        if layer.get(key, False):
            flags |= bit
    if not layer.get("linear_before_reset", True):
        flags |= F_RESET_BEFORE
    if layer.get("clip") is not None:
        flags |= F_CLIP
    if "activations" in layer:
        flags |= F_ACTIVATIONS
    return flags


def extension_block(layer: dict, direction: int) -> np.ndarray:
    """The float32 L_OFF_EXT block of one layer-direction: clip (0 without), then code, alpha, beta per function."""
    values = [layer.get("clip") or 0.0]
    for fn, alpha, beta in specs.functions(layer, direction):
        values += [float(FN_CODE[fn]), alpha, beta]
    return np.asarray(values, dtype=np.float32)


def scratch_rows(layer: dict) -> int:
    """Scratch a step of this layer needs: input projection and recurrent sums, 2 x (gates x H), plus H for
    the r * h of a gru with linear_before_reset false."""
    extra = layer["hidden"] if not layer.get("linear_before_reset", True) else 0
    return 2 * specs.GATES[layer["cell"]] * layer["hidden"] + extra


def _extensions_f32(row: np.ndarray, layer: dict, direction: int, tensors: dict, prefix: str, put) -> None:
    """Fill a layer-direction's extension columns, float32 data through `put` (f32, int8w)."""
    row[L_FLAGS] = layer_flags(layer)
    row[L_CLIP_Q] = CLIP_Q_NONE
    if row[L_FLAGS] == 0:
        return
    row[L_OFF_EXT] = put(extension_block(layer, direction))
    if layer.get("peepholes"):
        row[L_OFF_P] = put(tensors[f"{prefix}.p"])
    if layer.get("initial_state"):
        init = [tensors[f"{prefix}.h0"]] + ([tensors[f"{prefix}.c0"]] if layer["cell"] == "lstm" else [])
        row[L_OFF_INIT] = put(np.concatenate(init))


def _recurrent_bias(tensors: dict, prefix: str, layer: dict, quantized: bool) -> np.ndarray:
    """b_hh with a row per gate row, as the kernels read it: a quantised file keeps only the rows that cannot
    be folded into b_ih (spec.recurrent_bias_rows); the others are 0."""
    if not quantized:
        return tensors[f"{prefix}.b_hh"]
    b = np.zeros(specs.GATES[layer["cell"]] * layer["hidden"], dtype=tensors[f"{prefix}.b_ih"].dtype)
    keep = specs.recurrent_bias_rows(layer)
    if keep.stop > keep.start:
        b[keep] = tensors[f"{prefix}.b_hh"]
    return b


def lstm_cell(layer: dict) -> bool:
    return layer["cell"] == "lstm"


def _build_int8(spec: dict, tensors: dict[str, np.ndarray]) -> Layout:
    """The int8 layout (module docstring): three blobs by dtype, the same tables as f32. Refuses a spec the
    int8 kernels cannot run (spec.unsupported, checked by build). An lstm's
    peepholes sit in `iblob` at L_OFF_P as int32: [p (3H) | M (3) | S (3)], the file's p, p_requant, p_shift
    (kernels_int8); any int16 p times any int16 c fits int32, so they need no bound check."""
    blobs = {np.float32: [], np.int8: [], np.int32: []}
    sizes = {np.float32: 0, np.int8: 0, np.int32: 0}

    def put(arr, dtype) -> int:
        arr = np.asarray(arr)
        if dtype is not np.float32 and arr.dtype != dtype:
            raise ValueError(f"int8 layout: expected a {np.dtype(dtype).name} tensor, got {arr.dtype}")
        start = sizes[dtype]
        blobs[dtype].append(np.ascontiguousarray(arr, dtype=dtype).ravel())
        sizes[dtype] += arr.size
        return start

    model = np.zeros(M_FIELDS, dtype=np.int64)
    inp = spec["input"]
    model[M_N_LAYERS] = len(spec["layers"])
    model[M_N_IN] = specs.input_size(spec)
    if inp["kind"] == "dense":
        model[M_INPUT_KIND] = INPUT_DENSE
        model[M_OFF_IN_A] = put(np.asarray(inp["mean"], dtype=np.float32), np.float32)
        model[M_OFF_IN_B] = put(np.asarray(inp["std"], dtype=np.float32), np.float32)
        model[M_OFF_IN_S] = put(tensors["input.scale"], np.float32)
    else:
        model[M_INPUT_KIND] = INPUT_TOKENS
        model[M_VOCAB] = inp["vocab"]
        model[M_OFF_IN_A] = put(tensors["embedding.weight"], np.int8)
        model[M_OFF_IN_S] = put(tensors["embedding.scale"], np.float32)

    layers = np.zeros((2 * len(spec["layers"]), L_COLUMNS), dtype=np.int64)
    state_size = 0
    scratch_gates = 0
    for l, (layer, n_in) in enumerate(zip(spec["layers"], specs.layer_input_sizes(spec))):
        H = layer["hidden"]
        power = int(np.asarray(tensors[f"layers.{l}.cell_power"]).reshape(-1)[0])
        for d, name in enumerate(("fwd", "bwd")[: specs.directions(layer)]):
            prefix = f"layers.{l}.{name}"
            row = layers[2 * l + d]
            row[L_CELL] = CELL_CODE[layer["cell"]]
            row[L_N_IN], row[L_HIDDEN] = n_in, H
            b_h = _recurrent_bias(tensors, prefix, layer, quantized=True)
            check_int32_sums(f"{prefix}.w_ih", tensors[f"{prefix}.w_ih"], tensors[f"{prefix}.b_ih"])
            check_int32_sums(f"{prefix}.w_hh", tensors[f"{prefix}.w_hh"], b_h)
            row[L_OFF_WIH] = put(tensors[f"{prefix}.w_ih"].T, np.int8)
            row[L_OFF_WHH] = put(tensors[f"{prefix}.w_hh"].T, np.int8)
            row[L_OFF_BIH] = put(tensors[f"{prefix}.b_ih"], np.int32)
            row[L_OFF_BHH] = put(b_h, np.int32)
            M, S = tensors[f"{prefix}.requant"], tensors[f"{prefix}.shift"]
            row[L_OFF_SIH] = put(np.stack([M[0], S[0], M[1], S[1]]).astype(np.int32), np.int32)
            row[L_PARAM] = power
            row[L_LEFT_SHIFT] = int(np.any(S > 0))
            row[L_FLAGS] = layer_flags(layer)
            row[L_CLIP_Q] = CLIP_Q_NONE
            if row[L_FLAGS]:
                row[L_OFF_EXT] = put(extension_block(layer, d), np.float32)
            if layer.get("clip") is not None:
                unit = float(np.asarray(tensors[f"layers.{l}.scale"]).reshape(-1)[0]) if layer["cell"] == "rnn_relu" \
                    else 2.0**-12  # the pre-activation's scale: Q3.12, or rnn_relu's s_h
                row[L_CLIP_Q] = min(int(np.floor(layer["clip"] / unit + 0.5)), CLIP_Q_NONE)
            if layer.get("peepholes"):
                peep = [tensors[f"{prefix}.p"], tensors[f"{prefix}.p_requant"], tensors[f"{prefix}.p_shift"]]
                row[L_OFF_P] = put(np.concatenate([np.asarray(v).astype(np.int32) for v in peep]), np.int32)
            if layer.get("initial_state"):
                init = [tensors[f"{prefix}.h0"]] + ([tensors[f"{prefix}.c0"]] if lstm_cell(layer) else [])
                row[L_OFF_INIT] = put(np.concatenate(init).astype(np.int32), np.int32)
        lstm = layer["cell"] == "lstm"
        layers[2 * l, L_OFF_H] = state_size
        layers[2 * l, L_OFF_C] = state_size + H if lstm else state_size
        state_size += 2 * H if lstm else H
        scratch_gates = max(scratch_gates, scratch_rows(layer))

    dense = dense_rows(spec)
    for k, row in enumerate(dense):
        prefix = f"head.hidden.{k}"
        check_int32_sums(f"{prefix}.weight", tensors[f"{prefix}.weight"], tensors[f"{prefix}.bias"])
        row[D_OFF_W] = put(tensors[f"{prefix}.weight"], np.int8)
        row[D_OFF_B] = put(tensors[f"{prefix}.bias"], np.int32)
        row[D_OFF_S] = put(np.concatenate([tensors[f"{prefix}.requant"], tensors[f"{prefix}.shift"].astype(np.int32)]),
                           np.int32)
    check_int32_sums("head.weight", tensors["head.weight"], tensors["head.bias"])
    model[M_OFF_HEAD_W] = put(tensors["head.weight"], np.int8)
    model[M_OFF_HEAD_B] = put(tensors["head.bias"], np.int32)
    model[M_OFF_HEAD_S] = put(tensors["head.scale"], np.float32)
    _head_fields(model, spec, state_size, scratch_gates)
    out = {}
    for dtype, pieces in blobs.items():
        out[dtype] = np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)
        out[dtype].flags.writeable = False
    return Layout("int8", out[np.float32], out[np.int8], *_tables(model, layers, dense), state_size,
                  int(model[M_SCRATCH]), out[np.int32])
