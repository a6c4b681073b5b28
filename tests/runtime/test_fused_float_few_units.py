"""A float step of fewer than 16 units forms its LSTM / GRU gates in passes over 4H / 2H rows
(runtime/fused_float_cells.update, FEW_ROWS): the generic kernels' numbers within float32 rounding, step() and
run() bit for bit, and the passes exactly below FEW_ROWS. Tiny layers before a one-output head run specialised
(fused_float_blob.TAIL)."""

from pathlib import Path

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.runtime.fused_float_cells import FEW_ROWS
from tests.helpers import make_model, make_spec, random_inputs, stream_all, write_artifact

pytestmark = pytest.mark.specialised
TOLERANCE = 1e-5
PASS_MARK = {"lstm": "k_ = TWO if", "gru": "for j in range({2H}):"}  # a line only the passes write


def _pair(tmp_path, spec, precision, monkeypatch):
    path = write_artifact(make_model(spec, 3), tmp_path / f"m.{precision}.safetensors", precision)
    fast = runtime.load(path)
    assert fast.kernel_info["step"] == "specialised"
    monkeypatch.setenv("RNNEDGE_SPECIALISE", "0")
    slow = runtime.load(path)
    assert slow.kernel_info["step"] == "generic"  # decided when first asked: before the variable goes
    monkeypatch.delenv("RNNEDGE_SPECIALISE")
    return fast, slow


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("hidden", [4, 9, FEW_ROWS - 1, FEW_ROWS])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_few_units_follow_the_generic_kernels_and_run_equals_step(cell, hidden, precision, tmp_path, monkeypatch):
    spec = make_spec(cell, layers=2, hidden=hidden)
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    text = Path(fast.kernel_info["source"]).read_text()
    if "limbs" not in fast.kernel_info.get("matvec", ""):  # int8w's VNNI limbs keep the loops (no scratch slot)
        assert (PASS_MARK[cell].replace("{2H}", str(2 * hidden)) in text) == (hidden < FEW_ROWS)
    X = random_inputs(spec, 5, 60, seed=hidden)
    got = stream_all(fast.stream(5), X)
    assert np.abs(got - stream_all(slow.stream(5), X)).max() <= TOLERANCE
    assert np.array_equal(fast.run(X), got)
    assert np.array_equal(fast.run(X[:1]), got[:1])  # one sequence: the first layer's input sums projected ahead


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_few_units_bidirectional_run_follows_the_generic_run(cell, precision, tmp_path, monkeypatch):
    spec = make_spec(cell, layers=2, hidden=6, bidirectional=True, on="last_step")
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    assert fast.kernel_info["path"] == "fused_float_sequence"
    X = random_inputs(spec, 3, 40, seed=1)
    assert np.abs(fast.run(X) - slow.run(X)).max() <= TOLERANCE


@pytest.mark.parametrize("limbs", [False, True])
def test_an_odd_width_int8w_layer_is_refused_only_by_the_reach_of_the_sums_that_would_run(limbs, monkeypatch):
    # the last W_hh^T (9 x 36): VNNI's limbs read whole pairs of rows and blocks of 16 outputs, 48 bytes past it,
    # where the head's 36 weights (four outputs) follow; FMA8's panels read 12 past it. Refusing it for the limbs on
    # a CPU whose int8w sums run on FMA8 sent it to the generic kernels for nothing (52 of 234 int8w shapes of 3-100
    # units on Zen 4; FMA8 reads the panelled qblob, TAIL bytes of zeros after it: test_tiny_layers_...)
    from rnnedge.export.quantize import quantize_int8w
    from rnnedge.export.weights import canonical_tensors
    from rnnedge.runtime import fused_float
    from rnnedge.runtime.model import Model

    spec = make_spec("lstm", layers=2, hidden=9, out=4)
    tensors, _ = quantize_int8w(spec, canonical_tensors(make_model(spec)))
    monkeypatch.setattr(fused_float, "limb_sums", lambda half=None: limbs)
    why = fused_float.why_not(Model(spec, "int8w", tensors))
    assert why == ("layer 1's VNNI sums would read past the int8 weights" if limbs else None)


# (cell, hidden, layers, bidirectional, precision): a head of one output after a few units -- the last matrix's
# 16-lane blocks read up to 15 elements past the weights, which sent 22 of 468 int8w and 2 f32 shapes of 3-100 units
# to the generic kernels before panel_blob put TAIL bytes of zeros after the array they read
TINY = [("rnn_tanh", 3, 1, False, "f32"), ("rnn_tanh", 3, 2, False, "f32"), ("lstm", 5, 2, False, "int8w"),
        ("lstm", 9, 1, False, "int8w"), ("gru", 3, 1, False, "int8w"), ("rnn_tanh", 5, 2, False, "int8w"),
        ("gru", 3, 2, True, "int8w"), ("lstm", 5, 1, True, "int8w")]


@pytest.mark.parametrize("cell,hidden,layers,bidirectional,precision", TINY)
def test_tiny_layers_with_a_one_output_head_run_specialised_and_follow_the_generic_kernels(
        cell, hidden, layers, bidirectional, precision, tmp_path, monkeypatch):
    from rnnedge.runtime import fused_float
    from rnnedge.runtime.fused_float_blob import TAIL

    spec = make_spec(cell, layers=layers, hidden=hidden, out=1, activation="none", bidirectional=bidirectional,
                     on="last_step" if bidirectional else "every_step")
    monkeypatch.setattr(fused_float, "limb_sums", lambda half=None: False)  # FMA8 (the limbs read qblob in place)
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    array = fast.layout.blob if precision == "f32" else fast.layout.qblob
    assert not array[array.size - TAIL // array.itemsize :].any()
    X = random_inputs(spec, 5, 30, seed=hidden)
    want = slow.run(X)
    assert np.abs(fast.run(X) - want).max() <= TOLERANCE
    if not bidirectional:
        assert np.abs(stream_all(fast.stream(5), X) - want).max() <= TOLERANCE


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("hidden", [3, 9, FEW_ROWS])
def test_a_tanh_rnn_below_16_units_forms_its_tanh_in_one_16_lane_pass(hidden, precision, tmp_path, monkeypatch):
    """fused_float_cells.update: the pass over 16 rows where the sums' padded rows may be read (f32; int8w on
    FMA8, whose products store b + s * sum: its float blob ends in fused_float_blob.TAIL zeros), the loop over H
    else; the generic kernels' numbers either way."""
    spec = make_spec("rnn_tanh", layers=2, hidden=hidden)
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    text = Path(fast.kernel_info["source"]).read_text()
    if "limbs" not in fast.kernel_info["matvec"]:
        assert ("av[16 + j] = TWO / (ONE" in text) == (hidden < FEW_ROWS)
    X = random_inputs(spec, 5, 60, seed=hidden)
    got = stream_all(fast.stream(5), X)
    assert np.abs(got - stream_all(slow.stream(5), X)).max() <= TOLERANCE
    assert np.array_equal(fast.run(X), got)
    bi = make_spec("rnn_tanh", layers=2, hidden=hidden, bidirectional=True, on="last_step")
    fast, slow = _pair(tmp_path, bi, precision, monkeypatch)
    X = random_inputs(bi, 3, 40, seed=1)
    assert np.abs(fast.run(X) - slow.run(X)).max() <= TOLERANCE
