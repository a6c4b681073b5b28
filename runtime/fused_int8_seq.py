"""model.run() of an int8 model on its specialised step's arithmetic (runtime/fused_int8.py): the generated
`sequence` function, written from the same constants and stages as the step, so run() equals a loop of step()
bit for bit, and the generic run() too.

    sequence(X, lengths, Y, s, st, sa, sb, gx, blob)    # X quantised or embedded into sa, then layer by layer:

For each layer-direction and each sequence b: the input projections of its lengths[b] steps as one matrix
product (vnni.matmat_vnni_at: every weight load serves four steps; portable: plain loops) into gx, then the
recurrence step by step (the W_hh mat-vec and the gate stage of the step), each h written to the layer's output
rows (sb). A backward direction (the second half of a bidirectional layer, or a reverse layer) runs from step
lengths[b] - 1 down to 0; each layer-direction starts from its initial state (h0, c0) or zeros, as
kernels_int8.sequence_layer_int8 does. The head then reads every step's row (every_step) or each sequence's final
features (last_step: forward at lengths[b] - 1, backward at 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnedge.runtime import spec as specs
from rnnedge.runtime.fused_int8_cells import gates, up


@dataclass(frozen=True)
class Frame:
    """Where a step's pieces sit in the scratch s, and the blob offsets the head and the input read."""
    AX: int  # gate rows from x (GP max)
    AH: int  # gate rows from h
    HD: int  # head accumulators
    outs: list  # each hidden head layer's output
    FE: int  # run(): a last_step head's features (the step: every stream's quantised input)
    table: int  # the sigmoid pair table
    inputs: tuple  # dense: (mean, std, scale) float32 offsets; tokens: (embedding byte offset,)
    head: dict  # the head's constants (fused_int8._head_constants)


def sequence(src, model, layers: list, hiddens: list, frame: Frame, head_code) -> dict:
    """Writes `sequence` into src; returns the sizes of its working arrays (per sequence step: W, GP; st; s)."""
    spec = model.spec
    n_in = int(layers[0][0].K)
    widths = [n_in] + [len(ks) * ks[0].H for ks in layers]
    W, GP = max(widths), max(k.GP for ks in layers for k in ks)
    HM = max(k.H for ks in layers for k in ks)
    src.add(0, """

@njit(cache=True, nogil=True, error_model="numpy")
def sequence(X, lengths, Y, s, st, sa, sb, gx, blob):
    B, T = X.shape[0], X.shape[1]
    w8 = blob.view(np.int8)
    fl = blob.view(np.float32)
    for b in range(B):
        for t in range(lengths[b]):""")
    if model.dense:  # run() has refused a value whose normalised form is not finite
        mean, std, scale = frame.inputs
        src.add(3, f"""
for k in range({n_in}):
    q = np.rint(((X[b, t, k] - fl[{mean} + k]) / fl[{std} + k]) / fl[{scale}])
    sa[(b * T + t) * {n_in} + k] = np.int32(min(max(q, np.float32(-32767)), np.float32(32767)))""")
    else:
        emb = frame.inputs[0]
        src.add(3, f"""
for k in range({n_in}):
    sa[(b * T + t) * {n_in} + k] = np.int32(w8[{emb} + X[b, t] * {n_in} + k])""")
    names = ["sa", "sb"]
    for l, ks in enumerate(layers):
        inp, out = names[l % 2], names[(l + 1) % 2]
        K, width = widths[l], widths[l + 1]
        for d, k in enumerate(ks):
            backward = d == 1 or spec["layers"][l].get("reverse", False)
            h0 = (f"blob[{k.init} + j]", f"blob[{k.init + k.H} + j]") if k.init is not None else ("0", "0")
            src.add(1, """
for b in range(B):
    steps = lengths[b]""")
            src.matmat(2, "gx", 0, k.GP, k.w_ih, k.b_x, inp, f"b * T * {K}", K, k.K, k.GP, "steps")
            src.add(2, f"""
for j in range({k.H}):
    st[j] = {h0[0]}
    st[{HM} + j] = {h0[1]}
for i in range(steps):
    t = {'steps - 1 - i' if backward else 'i'}
    for j in range({k.GP}):
        s[{frame.AX} + j] = gx[t * {k.GP} + j]""")
            src.matvec(3, frame.AH, k.w_hh, k.b_h, ("st", 0), k.H, k.GP)
            gates(src, k, 3, frame.AX, frame.AH, "st", 0, HM, frame.table)
            src.add(3, f"""
for j in range({k.H}):
    {out}[(b * T + t) * {width} + {d * k.H} + j] = st[j]""")
    last, width = names[len(layers) % 2], widths[-1]
    if spec["head"]["on"] != "last_step":
        src.add(1, """
for b in range(B):
    for t in range(lengths[b]):""")
        head_code(src, frame, hiddens, 3, (last, f"(b * T + t) * {width}"), width, "Y[b, t]")
    else:
        top = spec["layers"][-1]
        H = top["hidden"]
        if top.get("reverse", False):
            forward, backward = 0, width
        else:
            forward, backward = (H, width) if specs.directions(top) == 2 else (width, width)
        src.add(1, f"""
for b in range(B):
    steps = lengths[b]
    for j in range({forward}):
        s[{frame.FE} + j] = {last}[(b * T + steps - 1) * {width} + j]
    for j in range({forward}, {backward}):
        s[{frame.FE} + j] = {last}[b * T * {width} + j]""")
        head_code(src, frame, hiddens, 2, ("s", frame.FE), width, "Y[b]")
    src.add(1, "return 0")
    return {"W": W, "GP": GP, "HM": HM, "S": frame.FE + up(width)}


def run_sequence(model, sequence, blob: np.ndarray, sizes: dict, X: np.ndarray, lengths: np.ndarray,
                 valid: np.ndarray) -> np.ndarray:
    """model.run() through `sequence`: X (B, T, F) float32 (checked by run) or (B, T) token ids -> as run."""
    B, T = X.shape[:2]
    if not model.dense:
        X = model._check_tokens(X, valid)
    every = model.spec["head"]["on"] != "last_step"
    Y = np.zeros((B, T, model.out) if every else (B, model.out), dtype=np.float32)
    s = np.zeros(sizes["S"], dtype=np.int32)
    st = np.zeros(2 * sizes["HM"], dtype=np.int32)
    sa, sb = (np.zeros(B * T * sizes["W"], dtype=np.int32) for _ in range(2))
    gx = np.zeros(T * sizes["GP"], dtype=np.int32)
    sequence(X, np.ascontiguousarray(lengths, dtype=np.int64), Y, s, st, sa, sb, gx, blob)
    return Y
