"""run() of f32 / int8w models that cannot stream (bidirectional or reverse layers) on the functions compiled for
the model (runtime/fused_float_sequence.py): lengths, initial states, token inputs and both head placements
follow the generic kernels (RNNEDGE_SPECIALISE=0) within float32 rounding, at batch 1 and an odd batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.runtime.layout import line_zeros
from rnnedge.runtime.model import Model
from tests.helpers import make_model, make_spec, random_inputs, write_artifact
from tests.runtime.test_extensions import CASES, F32_TOLERANCE, INT8W_TOLERANCE, _case

pytestmark = pytest.mark.specialised  # the step a user gets (tests/conftest.py)

# Both sum each gate row in float32, in other orders (here one FMA chain per row; int8w: its int8 weights as
# floats, exact, the row scale on the finished sum, as kernels_int8w), so they differ by float32 roundings (6e-8
# relative each) carried through 2 layers and up to 40 steps: the largest measured over the bidirectional cases is
# 3e-8 (softmax outputs). 1e-6 leaves 30x margin and is still 10x tighter than the 1e-5 held against PyTorch.
TOLERANCE = 1e-6
CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


def _pair(tmp_path, spec, precision, monkeypatch):
    path = write_artifact(make_model(spec), tmp_path / f"m.{precision}.safetensors", precision)
    fast = runtime.load(path)
    assert fast.kernel_info["step"] == "specialised", fast.kernel_info
    assert fast.kernel_info["path"] == "fused_float_sequence"
    monkeypatch.setenv("RNNEDGE_SPECIALISE", "0")
    slow = runtime.load(path)
    assert slow.kernel_info["step"] == "generic"  # decided once per model, here
    monkeypatch.delenv("RNNEDGE_SPECIALISE")
    return fast, slow


def _check(fast, slow, X, lengths) -> None:
    got, want = fast.run(X, lengths), slow.run(X, lengths)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= TOLERANCE
    if got.ndim == 3:  # every_step: zero past each length, as the generic run() gives
        assert not got[np.arange(X.shape[1])[None, :] >= lengths[:, None]].any()


# each cell once per test, the precisions alternating between the two tests (each case compiles its own run())
ALTERNATE = [(cell, ("f32", "int8w")[i % 2]) for i, cell in enumerate(CELLS)]
OTHER = [(cell, ("int8w", "f32")[i % 2]) for i, cell in enumerate(CELLS)]


@pytest.mark.parametrize("cell,precision", ALTERNATE)
def test_bidirectional_two_layer_run_with_lengths_follows_the_generic_kernels(cell, precision, tmp_path,
                                                                               monkeypatch):
    on = "last_step" if cell in ("rnn_tanh", "gru") else "every_step"
    spec = make_spec(cell, layers=2, bidirectional=True, on=on, hidden=20, head_hidden=((9, "relu"),))
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    X = random_inputs(spec, 5, 40)
    _check(fast, slow, X, np.array([40, 1, 17, 33, 2]))
    _check(fast, slow, X[2:3], np.array([25]))
    with pytest.raises(ValueError, match="cannot stream"):
        fast.stream()


@pytest.mark.parametrize("cell,precision", OTHER)
def test_reverse_layer_with_initial_states_on_tokens_follows_the_generic_kernels(cell, precision, tmp_path,
                                                                                  monkeypatch):
    on = "every_step" if cell in ("rnn_tanh", "gru") else "last_step"
    spec = make_spec(cell, layers=2, on=on, kind="tokens", hidden=18)
    spec["version"] = 2
    spec["layers"] = [{**spec["layers"][0], "initial_state": True},
                      {**spec["layers"][1], "reverse": True, "initial_state": True}]
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    X = random_inputs(spec, 7, 30)
    _check(fast, slow, X, np.array([30, 3, 1, 29, 12, 30, 8]))
    _check(fast, slow, X[3:4], np.array([30]))


@pytest.mark.parametrize("precision", ["f32", "int8w"])
def test_sums_started_in_registers_equal_the_passes_they_replace_bit_for_bit(precision, tmp_path, monkeypatch):
    """proj and recur start their sums from b in registers (f32) or store b + s * sum (int8w) where every bias and
    scale can be read in whole blocks inside the blob (in_registers); else a pass writes b (or 0) first and int8w
    scales after. Both give the same numbers."""
    from rnnedge.runtime import fused_float_sequence

    spec = make_spec("gru", layers=2, bidirectional=True, hidden=20, on="every_step")
    path = write_artifact(make_model(spec), tmp_path / f"m.{precision}.safetensors", precision)
    fast = runtime.load(path)
    assert fused_float_sequence.in_registers(fast)
    text = Path(fast.kernel_info["source"]).read_text()
    assert ("fma8s_" if precision == "int8w" else "fmab_") in text and "d_[j] = " not in text  # no pass first
    monkeypatch.setattr(fused_float_sequence, "in_registers", lambda model: False)
    passes = runtime.load(path)
    text = Path(passes.kernel_info["source"]).read_text()
    assert "fma8s_" not in text and "fmab_" not in text and "d_[j] = " in text
    assert ("fma8_4_" if precision == "int8w" else "fma_4_") in text  # FMA8: int8w's float16 copy too
    X = random_inputs(spec, 5, 31)
    lengths = np.array([31, 1, 17, 30, 2])
    np.testing.assert_array_equal(fast.run(X, lengths), passes.run(X, lengths))


@pytest.mark.parametrize("registers", [True, False])
def test_int8w_recurrent_sums_on_the_float16_copy_or_a_float32_one_give_the_same_numbers(registers, tmp_path,
                                                                                       monkeypatch):
    """int8w's recur reads the float16 copy of its weights below HALF_BELOW sequences where W_hh^T as float32 would
    not fit in L1 (here: every layer, L1 said to be empty), else a float32 copy made per run() (fused_float._sequence);
    proj always a float32 copy of W_ih^T. Each sequence's outputs do not depend on which: the same exact weights, the
    same chains, bit for bit."""
    from rnnedge.runtime import fused_float, fused_float_sequence

    if not registers:
        monkeypatch.setattr(fused_float_sequence, "in_registers", lambda model: False)
    spec = make_spec("gru", layers=2, bidirectional=True, hidden=6, on="every_step")  # gate rows not blocks of 16
    path = write_artifact(make_model(spec), tmp_path / "m.int8w.safetensors", "int8w")
    small = runtime.load(path)
    assert "float16" not in small.kernel_info["matvec"]  # 6 x 18 floats fit in any L1
    monkeypatch.setattr(fused_float, "l1_data_bytes", lambda: 0)
    fast, slow = _pair(tmp_path, spec, "int8w", monkeypatch)
    half = fused_float.half_copy()
    assert ("float16 copy" in fast.kernel_info["matvec"]) == half, fast.kernel_info
    B = fused_float_sequence.HALF_BELOW + 1
    X = random_inputs(spec, B, 23, seed=3)
    lengths = np.arange(B) * 5 % 23 + 1
    wide = fast.run(X, lengths)  # a float32 copy
    np.testing.assert_array_equal(small.run(X, lengths), wide)
    for b in (0, 2, B - 1):  # one sequence: the float16 copy where half
        np.testing.assert_array_equal(fast.run(X[b : b + 1], lengths[b : b + 1]), wide[b : b + 1])
        np.testing.assert_array_equal(small.run(X[b : b + 1], lengths[b : b + 1]), wide[b : b + 1])
    np.testing.assert_array_equal(fast.run(X[:3], lengths[:3]), wide[:3])
    assert np.abs(wide - slow.run(X, lengths)).max() <= TOLERANCE


def test_layer_directions_of_one_shape_share_one_inlined_function(tmp_path, monkeypatch):
    spec = make_spec("lstm", layers=3, bidirectional=True, hidden=16, features=32)
    fast, _ = _pair(tmp_path, spec, "f32", monkeypatch)
    # six layer-directions, every input 32 wide (32 features, 2 x 16 after): one proj and one recur for all
    source = Path(fast.kernel_info["source"]).read_text()
    assert source.count("\ndef proj_") == 1 and source.count("\ndef recur_") == 1
    assert source.count("@fast_entry") == 1 and "@fast_kernel\n" not in source  # sequence; the rest inlined into it


@pytest.mark.parametrize("precision", ["f32", "int8w"])
def test_a_bidirectional_gru_with_linear_before_reset_false_runs_compiled_as_onnx_runtime_does(precision):
    """Keras' GRU(reset_after=False), ONNX's GRU default: W_hn multiplies r h (fused_float_layers.recur)."""
    _, op, attrs, keys, kw = next(c for c in CASES if c[0] == "gru-reset-before-bidirectional")
    spec, tensors, X, expected = _case(op, attrs, keys, **kw)
    if precision == "int8w":
        from rnnedge.export.quantize import quantize_int8w

        tensors, _ = quantize_int8w(spec, tensors)
    model = Model(spec, precision, tensors)
    assert model.kernel_info["step"] == "specialised" and model.kernel_info["path"] == "fused_float_sequence"
    assert np.abs(model.run(X) - expected).max() <= (F32_TOLERANCE if precision == "f32" else INT8W_TOLERANCE)
    lengths = np.array([X.shape[1], 4, 17])
    got = model.run(X, lengths)
    for b, n in enumerate(lengths):  # a sequence alone, cut to its length, gives the same numbers
        np.testing.assert_array_equal(model.run(X[b : b + 1, :n])[0], got[b, :n])


@pytest.mark.parametrize("precision", ["f32", "int8w"])
def test_layers_of_different_widths_follow_the_generic_kernels(precision, tmp_path, monkeypatch):
    # an LSTM of 12 (48 gate rows) under a bidirectional GRU of 8 (24, padded to 32): each layer-direction's input
    # projections are laid out at the widest one's stride, which its recurrence reads
    spec = make_spec("lstm", layers=2, bidirectional=True, kind="tokens", on="last_step", hidden=12)
    spec["layers"] = [{"cell": "lstm", "hidden": 12, "bidirectional": False},
                      {"cell": "gru", "hidden": 8, "bidirectional": True}]
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    X = random_inputs(spec, 3, 30)
    _check(fast, slow, X, np.array([30, 1, 11]))
    _check(fast, slow, X[:1], np.array([30]))


@pytest.mark.parametrize("precision", ["f32", "int8w"])
def test_matrices_of_several_panels_of_64_columns_and_a_tail_follow_the_generic_kernels(precision, tmp_path,
                                                                                      monkeypatch):
    # W^T in panels of 64 columns (fused_float_blob.py): a bidirectional LSTM of 36 has 144 gate rows, two whole
    # panels and a tail of 16; a GRU of 30 (90) one panel and a tail of 26 that ends inside a block; batch 5: a
    # group of four sequences and one
    spec = make_spec("lstm", layers=2, bidirectional=True, hidden=36)
    spec["layers"][1] = {"cell": "gru", "hidden": 30, "bidirectional": True}
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    assert fast.layout.panels  # the layout says which matrices it holds in panels
    X = random_inputs(spec, 5, 25)
    _check(fast, slow, X, np.array([25, 3, 25, 10, 1]))



def test_run_buffers_start_on_a_cache_line():
    # sequence's regions start at multiples of 16 elements of it, so its 16-lane vectors each sit on one line
    for n in (1, 17, 4096, 300_000):  # small ones from malloc, large ones mapped (16 bytes past a page)
        buf = line_zeros(n)
        assert buf.ctypes.data % 64 == 0 and buf.shape == (n,) and buf.dtype == np.float32 and not buf.any()
