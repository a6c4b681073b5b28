"""An LSTM or GRU layer of few units forms its gates 16 streams at a time in the vector lanes once the f32 step has
16 streams or more (runtime/fused_float_lanes.py, LANES_UNITS): the generic kernels' numbers within float32
rounding, each stream what it gives streamed alone to float32 rounding, run() equal to the step bit for bit, the
streams past a multiple of 16 on the per-stream code, and the lanes exactly where LANES_UNITS puts them (never in
int8w, whose step from 16 streams and run() are two functions: they keep the per-stream code and agree)."""

from pathlib import Path

import numpy as np
import pytest

from rnnedge.runtime import fused_float
from rnnedge.runtime.fused_float_lanes import LANE_STREAMS, LANES_UNITS
from rnnedge.runtime.layout import CELL_GRU, CELL_LSTM
from tests.helpers import make_spec, random_inputs, stream_all
from tests.runtime.test_fused_float_few_units import _pair as few_units_pair

pytestmark = pytest.mark.specialised
TOLERANCE = 1e-5
ULPS = 1e-6  # a stream alone against the same stream in the lanes: a few float32 roundings of values below ~4
LANES_MARK = f"for b0 in range(0, b1, {LANE_STREAMS}):"  # the line only update_lanes writes
UNITS = {"lstm": LANES_UNITS[CELL_LSTM], "gru": LANES_UNITS[CELL_GRU]}


def _pair(tmp_path, spec, precision, monkeypatch):
    monkeypatch.setattr(fused_float, "limb_sums", lambda half=None: False)  # int8w on FMA8, as with F16C
    return few_units_pair(tmp_path, spec, precision, monkeypatch)


# each side of each cell's bounds, both precisions, one and two layers (each case compiles a step of its own)
CASES = [("lstm", 5, 2, "f32"), ("lstm", UNITS["lstm"].stop - 1, 1, "int8w"), ("lstm", UNITS["lstm"].stop, 1, "f32"),
         ("gru", 5, 2, "int8w"), ("gru", UNITS["gru"].stop - 1, 1, "f32"), ("gru", UNITS["gru"].stop, 1, "int8w")]


@pytest.mark.parametrize("cell,hidden,layers,precision", CASES)
def test_few_units_in_the_lanes_follow_the_generic_kernels(cell, hidden, layers, precision, tmp_path,
                                                            monkeypatch):
    spec = make_spec(cell, layers=layers, hidden=hidden)
    fast, slow = _pair(tmp_path, spec, precision, monkeypatch)
    in_lanes = precision == "f32" and hidden in UNITS[cell]
    assert (LANES_MARK in Path(fast.kernel_info["source"]).read_text()) == in_lanes
    B = 2 * LANE_STREAMS + 5  # two passes of 16 streams, then five one at a time
    X = random_inputs(spec, B, 25, seed=hidden)
    stream = fast.stream(B)
    got = stream_all(stream, X)
    assert np.abs(got - stream_all(slow.stream(B), X)).max() <= TOLERANCE
    assert stream._buf[-1] == B  # the batch word after the scratch: nothing written past the lanes' rows
    assert np.array_equal(fast.run(X), got)  # run() steps its sequences through the same code (int8w: as its step)
    for b in (0, LANE_STREAMS + 3, B - 1):  # a stream alone takes the per-stream code: float32 rounding apart
        assert np.abs(stream_all(fast.stream(1), X[b : b + 1]) - got[b : b + 1]).max() <= ULPS


def test_every_batch_from_16_streams_gives_each_stream_its_own_numbers(tmp_path, monkeypatch):
    spec = make_spec("lstm", layers=1, hidden=5, out=1, activation="none")
    fast, slow = _pair(tmp_path, spec, "f32", monkeypatch)
    X = random_inputs(spec, 64, 20, seed=64)
    want = stream_all(fast.stream(64), X)
    assert np.abs(want - slow.run(X)).max() <= TOLERANCE
    for batch in (1, LANE_STREAMS - 1, LANE_STREAMS, LANE_STREAMS + 1):
        assert np.abs(stream_all(fast.stream(batch), X[:batch]) - want[:batch]).max() <= ULPS


@pytest.mark.parametrize("keys", [{"linear_before_reset": False}, {"clip": 2.0}])
def test_a_layer_with_an_extension_keeps_the_per_stream_code(keys, tmp_path, monkeypatch):
    from rnnedge.runtime import spec as specs

    spec = make_spec("gru", layers=1, hidden=8)
    spec["version"] = specs.EXTENDED_VERSION
    spec["layers"] = [{**spec["layers"][0], **keys}]
    fast, slow = _pair(tmp_path, specs.validate(spec), "f32", monkeypatch)
    assert LANES_MARK not in Path(fast.kernel_info["source"]).read_text()
    X = random_inputs(spec, LANE_STREAMS + 2, 20, seed=2)
    assert np.abs(stream_all(fast.stream(LANE_STREAMS + 2), X) - slow.run(X)).max() <= TOLERANCE
