"""model.run() of an int8 model on its specialised step's arithmetic (runtime/fused_int8.py): the generated
`sequence` functions, written from the same constants and stages as the step, so run() equals a loop of step()
bit for bit, and the generic run() too.

    sequence_grouped(X, lengths, Y, work, blob)   # B a multiple of 4: X quantised or embedded into sa,
    sequence(X, lengths, Y, work, blob)           # then layer by layer; any B, one by one
                                                  # (work: s, st, sa, sb and gx, the parts they take from it)

run() gives the first B - B % 4 sequences to sequence_grouped, four per call, and the rest to sequence (the
sequences are independent): each call takes its sequences through every layer, so the layers' outputs in sa and sb
are a few sequences' and stay in cache from one layer to the next (all B's at once were B x T x 128 int32 each for
the seed classifier: 3.3 MB at B = 32, and its run() took 1.6x as long per sequence-step on Zen 3). Two functions,
so a process compiles only what its run() sizes need (numba compiles a function on its first call). `sequence`
holds no four-row matrix product: run() of one sequence compiles about half as much (seed int8, empty cache:
5.3 -> 2.8 s on Zen 3).

In sequence_grouped, forward layer-directions take the sequences in groups of vnni.ROWS (four), as the batched
step does: at each step t, the group's input products and W_hh products as two matrix products
(vnni_quad.matmat_quad_at: every weight load serves the four; portable: row by row) written into each sequence's rows
of a group region in s, then each sequence's gate stage on its own rows and state (views), its h written to the
layer's output rows (sa or sb). A sequence past its length is left alone (its products are not computed once
every later member of the group has ended too, and are ignored before). Every direction in `sequence`, and every
backward direction in both (the second half of a bidirectional layer, or a reverse layer, from step
lengths[b] - 1 down to 0), runs one sequence at a time: the input projections of CHUNK steps as one matrix
product into gx (each step's rows [ax | ah], 2 GP int32 apart: 64 KB for kws' GP = 512), then those steps'
recurrence, each step's W_hh mat-vec and gate stage working on its own rows of gx, no copy in between. A layer's
new h goes to its output row (sa or sb) in the loop that forms it (fused_int8_cells.gates' out). Each
layer-direction starts from its initial state (h0, c0) or zeros, as kernels_int8_model.sequence_layer_int8 does. The head then reads every step's row
(every_step) or each sequence's final features (last_step: forward at lengths[b] - 1, backward at 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnnedge.runtime import spec as specs
from rnnedge.runtime.fused import refused
from rnnedge.runtime.fused_int8_cells import gates, quantise_input, up
from rnnedge.runtime.vnni import ROWS

CHUNK = 16  # steps whose input projections are one matrix product where a sequence runs alone (ROWS x 4)


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


def sequence(src, model, layers: list, hiddens: list, frame: Frame, head_code, grouped: bool = True) -> dict:
    """Writes `sequence_grouped` (grouped: B a multiple of four, forward layers four sequences at a time) or
    `sequence` (every layer-direction one sequence at a time) into src; returns the sizes of their working arrays
    (per sequence step: W, ZS; per sequence: SS; shared: S)."""
    spec = model.spec
    n_in = int(layers[0][0].K)
    widths = [n_in] + [len(ks) * ks[0].H for ks in layers]
    W, GP = max(widths), max(k.GP for ks in layers for k in ks)
    HM = max(k.H for ks in layers for k in ks)
    # the group's rows: in st each sequence's [h | c] (SS apart); in s, after the frame's pieces, each sequence's
    # [ax | ah] (ZS apart), where its gate stage reads them
    SS, ZS, G0 = 2 * HM, 2 * GP, frame.FE + up(widths[-1])
    S = G0 + ROWS * ZS
    # the working arrays as parts of `work` (one array to pass, allocated per run(): run_function): its
    # sequences' (at most four) inputs and layer outputs, sa and sb, sized for this call's B and T
    src.add(0, f"""

@entry_kernel
def sequence{'_grouped' if grouped else ''}(X, lengths, Y, work, blob):
    B, T = X.shape[0], X.shape[1]
    n_ = min(B, {ROWS})
    s = work[:{S}]
    st = work[{S} : {S} + n_ * {SS}]
    sa = work[{S} + n_ * {SS} : {S} + n_ * ({SS} + T * {W})]
    sb = work[{S} + n_ * ({SS} + T * {W}) : {S} + n_ * ({SS} + 2 * T * {W})]
    gx = work[{S} + n_ * ({SS} + 2 * T * {W}) :]
    w8 = as_int8(blob)
    fl = as_float32(blob)
    finite = True
    for b in range(B):
        for t in range(lengths[b]):""")
    if model.dense:  # a value whose normalised form is not finite: status 1 before any layer (run_function raises)
        mean, std, scale = frame.inputs
        src.add(3, f"""
x_, q_ = X[b, t], sa[(b * T + t) * {n_in} :]
for k in range({n_in}):""")
        src.add(4, quantise_input(mean, std, scale, "x_[k]", "q_[k]"))
    else:
        emb = frame.inputs[0]
        src.add(3, f"""
e_, q_ = w8[{emb} + X[b, t] * {n_in} :], sa[(b * T + t) * {n_in} :]
for k in range({n_in}):
    q_[k] = np.int32(e_[k])""")
    src.add(1, """
if not finite:
    return 1""")
    names = ["sa", "sb"]
    for l, ks in enumerate(layers):
        inp, out = names[l % 2], names[(l + 1) % 2]
        K, width = widths[l], widths[l + 1]
        for d, k in enumerate(ks):
            backward = d == 1 or spec["layers"][l].get("reverse", False)
            h0 = (f"blob[{k.init} + j]", f"blob[{k.init + k.H} + j]") if k.init is not None else ("0", "0")
            if grouped and not backward:
                # four sequences at once: at step t, their input and W_hh products as two matrix products (each
                # weight load serves the four; those past the last one still running are not computed), written
                # into each sequence's rows of the group region, where its gate stage reads them
                src.add(1, f"""
for g in range(0, B, {ROWS}):
    longest = max(lengths[g], lengths[g + 1], lengths[g + 2], lengths[g + 3])
    for m in range({ROWS}):
        for j in range({k.H}):
            st[m * {SS} + j] = {h0[0]}
            st[m * {SS} + {HM} + j] = {h0[1]}
    live = {ROWS}
    for t in range(longest):
        while lengths[g + live - 1] <= t:
            live -= 1""")
                src.matmat(3, "s", G0, ZS, k.w_ih, k.b_x, inp, f"(g * T + t) * {K}", f"T * {K}", k.K, k.GP, "live")
                src.matmat(3, "s", G0 + k.GP, ZS, k.w_hh, k.b_h, "st", 0, SS, k.H, k.GP, "live")
                src.add(3, f"""
for m in range(live):
    b = g + m
    if t < lengths[b]:
        ga = s[{G0} + m * {ZS} : {G0} + (m + 1) * {ZS}]
        sr = st[m * {SS} : (m + 1) * {SS}]
        o_ = {out}[(b * T + t) * {width} + {d * k.H} :]""")
                gates(src, k, 5, 0, k.GP, "sr", 0, HM, frame.table, "ga", "o_")
                continue
            # the input projections of CHUNK steps at a time as one matrix product into gx (all T steps' at once
            # were T x GP int32, 2 MB for kws at T = 1000, written out past L2 and read back)
            src.add(1, f"""
for b in range(B):
    steps = lengths[b]
    for j in range({k.H}):
        st[j] = {h0[0]}
        st[{HM} + j] = {h0[1]}
    for i0 in range(0, steps, {CHUNK}):
        chunk_n = min({CHUNK}, steps - i0)
        chunk_t0 = {'steps - i0 - chunk_n' if backward else 'i0'}""")
            # each step's [ax | ah] rows ZS apart in gx: the step's W_hh product and gate stage work on its rows
            src.matmat(3, "gx", 0, ZS, k.w_ih, k.b_x, inp, f"(b * T + chunk_t0) * {K}", K, k.K, k.GP, "chunk_n")
            src.add(3, f"""
for i in range(chunk_n):
    t = {'chunk_t0 + chunk_n - 1 - i' if backward else 'chunk_t0 + i'}
    ga = gx[(t - chunk_t0) * {ZS} : (t - chunk_t0 + 1) * {ZS}]
    o_ = {out}[(b * T + t) * {width} + {d * k.H} :]""")
            src.matvec(4, k.GP, k.w_hh, k.b_h, ("st", 0), k.H, k.GP, "ga")
            gates(src, k, 4, 0, k.GP, "st", 0, HM, frame.table, "ga", "o_")
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
    return {"W": W, "ZS": ZS, "SS": SS, "S": S}


def run_function(model, module, blob: np.ndarray, sizes: dict):
    """model.run() through the generated module's `sequence` (B < 4) or `sequence_grouped`, as a function
    run(X, lengths, valid): X (B, T, F) float32 (checked by run) or (B, T) token ids -> as run. A closure over
    what it reads at every call (no dictionary or attribute reads): for a short sequence its Python is most of
    run()'s cost (one call, one allocation for the working arrays; Zen 4, lstm8 int8 at T = 1: run() 6.4-6.7 ->
    ~3 us)."""
    dense, out, every = model.dense, model.out, model.spec["head"]["on"] != "last_step"
    S, SS, W2, ZS = sizes["S"], sizes["SS"], 2 * sizes["W"], sizes["ZS"]
    sequence, grouped = module.sequence, module.sequence_grouped

    def run(X: np.ndarray, lengths: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        B, T = X.shape[0], X.shape[1]
        if not dense:
            X = model._check_tokens(X, valid)
        # every output within a length is written; only past one (valid not None) are there zeros to keep
        Y = (np.zeros if valid is not None else np.empty)((B, T, out) if every else (B, out), np.float32)
        # the working arrays: one allocation, the generated functions take their parts (s, st, sa, sb, gx) from it
        n = B if B < ROWS else ROWS  # noqa: FURB136  (min() costs ~80 ns a call here)
        work = np.zeros(S + n * (SS + T * W2) + (T if T < CHUNK else CHUNK) * ZS, dtype=np.int32)  # noqa: FURB136
        G = B - B % ROWS
        if not G:  # below four sequences: one call, on the arrays as they are
            if sequence(X, lengths, Y, work, blob):
                refused(model, X, valid)
            return Y
        # the sequences are independent: four at a time through every layer (so the layers' outputs, sa and sb,
        # are those of four sequences and stay in cache from one layer to the next), the rest together
        for g in range(0, G, ROWS):
            if grouped(X[g : g + ROWS], lengths[g : g + ROWS], Y[g : g + ROWS], work, blob):
                refused(model, X, valid)
        if G < B and sequence(X[G:], lengths[G:], Y[G:], work, blob):
            refused(model, X, valid)
        return Y

    return run
