"""The int8 step compiled for the loaded model (runtime/fused_int8.py) with the ONNX layer extensions int8 runs --
clip, input_forget, peepholes, a GRU's linear_before_reset false (runtime/fused_int8_cells.py) -- gives the generic
kernels' integers bit for bit (kernels_int8_ext; tests/runtime/test_int8_extensions.py holds those to the NumPy
twin): every mat-vec path, sizes on and off the 16-lane grid, both requantisation forms, batch 1 and 5 (a group of
four and one alone), streamed and whole sequences, bidirectional layers too."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from rnnedge.runtime import vnni
from tests.helpers import with_paths
from tests.runtime.test_fused_int8 import _models
from tests.runtime.test_int8_extensions import ext_spec, hot_tensors, inputs

pytestmark = pytest.mark.specialised

STEPS = 300
PEEP_ALL = {"peepholes": True, "clip": 2.0, "input_forget": True}
BEFORE = {"linear_before_reset": False}
# (cell, extensions, layers, input, hidden)
CASES = [("lstm", PEEP_ALL, 2, "dense", 19), ("lstm", {"clip": 1.0, "input_forget": True}, 1, "tokens", 5),
         ("lstm", {"peepholes": True}, 1, "dense", 33), ("gru", {**BEFORE, "clip": 2.0}, 2, "tokens", 19),
         ("gru", BEFORE, 1, "dense", 32), ("gru", {"clip": 1.5}, 1, "dense", 12),
         ("rnn_relu", {"clip": 0.5}, 2, "dense", 12), ("rnn_tanh", {"clip": 0.8}, 1, "tokens", 17)]


@functools.cache
def _case(i: int, bidirectional: bool = False):
    """CASES[i] as (spec, tensors, X (5, T, ...)): hot constants, saturating inputs; a second layer without left
    shifts (the right-shift requantisation form, its rounding rows in the blob)."""
    cell, keys, layers, kind, hidden = CASES[i]
    spec = ext_spec(cell, [{**keys, "bidirectional": bidirectional}] * layers, layers, kind, hidden=hidden)
    tensors = hot_tensors(spec, 300 + i + 50 * bidirectional)
    for name in [n for n in tensors if n.startswith("layers.1.") and n.endswith(".shift")]:
        tensors[name] = np.minimum(tensors[name], 0).astype(np.int8)
    return spec, tensors, inputs(spec, tensors, np.random.default_rng(400 + i), 5, STEPS)


def _paths() -> list:
    """This CPU's blocked path and, where it has AVX-512 VNNI, AVX2's pairs too (the W_hn product's packing)."""
    return with_paths([(i,) for i in range(len(CASES))], 3) + ([(3, "avx2")] if vnni.has_avx512_vnni() else [])


def _name(i: int) -> str:
    cell, keys, layers, kind, hidden = CASES[i]
    return f"{cell}-{'-'.join(keys)}-{layers}x{hidden}-{kind}"


@pytest.mark.parametrize("i,path", _paths(), ids=lambda v: v if isinstance(v, str) else _name(v))
def test_int8_step_with_extensions_equals_the_generic_kernels_bit_for_bit(i, path, monkeypatch):
    keys = CASES[i][1]
    spec, tensors, X = _case(i)
    generic, fused = _models(spec, tensors, path, monkeypatch)
    assert fused.kernel_info["step"] == "specialised" and fused.kernel_info["path"] == path, fused.kernel_info
    text = Path(fused.kernel_info["source"]).read_text()
    if keys.get("peepholes"):
        assert "peephole_int8(blob[" in text
    if keys.get("clip"):
        assert "min(max(" in text
    for batch in (1, 5):
        a, b = generic.stream(batch), fused.stream(batch)
        ys = []
        for t in range(STEPS):
            x = np.ascontiguousarray(X[:batch, t])
            y_generic, y = a.step(x).copy(), b.step(x)
            ys.append(y.copy())
            for what, got, expected in [("state", b.state, a.state), ("integer logits", b.logits_q, a.logits_q),
                                        ("y", y, y_generic)]:
                np.testing.assert_array_equal(got, expected, err_msg=f"{what} at step {t}, batch {batch}")
        assert np.unique(b.state).size > 1  # (a clipped tanh RNN on saturating inputs sits at +-tanh(clip))
        np.testing.assert_array_equal(fused.run(X[:batch]), np.stack(ys, axis=1))  # run(): the same integers


@pytest.mark.parametrize("i", [0, 3], ids=_name)
def test_int8_run_of_bidirectional_layers_with_extensions_equals_the_generic_kernels(i, monkeypatch):
    spec, tensors, X = _case(i, bidirectional=True)
    generic, fused = _models(spec, tensors, vnni.best_path(), monkeypatch)
    assert fused.kernel_info["step"] == "specialised"
    lengths = np.array([STEPS, 1, 170, STEPS - 1, 64])
    np.testing.assert_array_equal(fused.run(X, lengths), generic.run(X, lengths))
