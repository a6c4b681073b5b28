"""Where the float steps' weights sit: the array holding the recurrent matrices (f32: the float32 blob; int8w on
FMA8: the int8 qblob), placed once so its largest matrices start a cache line, with every recurrent
W^T rewritten in panels of 64 columns (layout.panelled: the same size, in place; every other offset unchanged, and
layout.matrix still reads them row-major), and TAIL bytes of zeros after its last element: the sums load whole
16-lane blocks, so the last rows of a matrix at the array's end (a layer with a head of one output, a few units)
read up to 15 elements past it, which without the tail sent such a model to the generic kernels. fused_float.py
(the step) and fused_float_sequence.py (the run() of a model that cannot stream) read them so.

    panel_blob(lay, rows)      once per layout: lay.blob rewritten, lay.panels says which matrices
    readable(lay, array)       the elements the sums may read of the array panel_blob rewrites (tail included)
"""

from __future__ import annotations

import numpy as np

from rnnedge.runtime.fused_float_source import gate_rows
from rnnedge.runtime.layout import CACHE_LINE, L_HIDDEN, L_N_IN, L_OFF_WHH, L_OFF_WIH, line_bytes, panelled

TAIL = CACHE_LINE  # bytes of zeros after the rewritten array: one 16-lane float32 block, or more than one of int8


def readable(lay, array: np.ndarray) -> int:
    """The elements of `array` -- the one panel_blob rewrites (f32: lay.blob; int8w: lay.qblob) -- the specialised
    sums may read: its own and the tail panel_blob puts (or has put) after them."""
    return array.size + (0 if lay.panels else TAIL // array.itemsize)


def panel_blob(lay, rows) -> None:
    """The recurrent matrices of `rows` (layout rows) in panels, in the array that holds them (f32: lay.blob;
    int8w: the int8 lay.qblob), placed so the largest start on a cache line (line_offset), TAIL bytes of zeros
    after it (int8w's float blob of biases and row scales gets them too: its sums then store b + s * sum in
    registers at every size, fused_float_source.scale_start): done once, a second call changes nothing."""
    if lay.panels:
        return
    if lay.precision == "f32":
        lay.blob = _panelled(lay.blob, line_offset(rows, 4), rows)
    else:
        lay.qblob = _panelled(lay.qblob, line_offset(rows, 1), rows)
        lay.blob = placed(lay.blob, 0, tail=TAIL)  # its biases and row scales, read in blocks of 16 as well
    lay.panels = matrices(rows)


def matrix_parts(row) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(offset, K, G) of a layer-direction's W_ih^T and W_hh^T (K, G) in its weight array."""
    G = gate_rows(row)
    return (int(row[L_OFF_WIH]), int(row[L_N_IN]), G), (int(row[L_OFF_WHH]), int(row[L_HIDDEN]), G)


def line_offset(rows, itemsize: int) -> int:
    """Where in a cache line the weight array (elements of `itemsize` bytes) should start so the matrices with the
    most products (by K x G) start on a line boundary."""
    products: dict[int, int] = {}
    for row in rows:
        for off, K, G in matrix_parts(row):
            at = -itemsize * off % CACHE_LINE
            products[at] = products.get(at, 0) + K * G
    return max(products, key=products.get)


def matrices(rows) -> dict[int, tuple[int, int]]:
    """The recurrent matrices the float steps read in panels: {offset: (K, N)} of each layer's W_ih^T and W_hh^T."""
    return {off: (K, G) for row in rows for off, K, G in matrix_parts(row)}


def _panelled(a: np.ndarray, at: int, rows) -> np.ndarray:
    """The weight array with every recurrent W^T in panels (layout.panelled: same size, every other offset
    unchanged), placed `at` bytes past a cache line (placed), then TAIL bytes of zeros, read-only as the layout's
    arrays are."""
    out = placed(a, at, writeable=True, tail=TAIL)
    for off, (K, N) in matrices(rows).items():
        panelled(out, off, K, N)
    out.flags.writeable = a.flags.writeable
    return out


def placed(a: np.ndarray, at: int, writeable: bool = False, tail: int = 0) -> np.ndarray:
    """A copy of a whose first element sits `at` bytes past a cache line boundary (then `tail` bytes of zeros),
    read-only as the layout's arrays are: numba types a writable array apart from a read-only one, and whether the
    blob needs moving depends on where it was allocated, so a writable copy would make a cached step miss in another
    process."""
    out = line_bytes(a.nbytes + tail, at).view(a.dtype)
    out[: a.size] = a
    out.flags.writeable = writeable or a.flags.writeable
    return out
