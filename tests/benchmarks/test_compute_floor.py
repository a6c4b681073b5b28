"""The compute floor the peers harness holds rnnedge's batched streams to (issue 15: within 1.5x at B >= 64):
multiply-adds of a stream-step counted from the spec, and the peak rate of the instruction each precision's
batched products use, measured. Counts are checked against hand-computed figures; rates only for being measured
(a positive, finite figure, the same instruction the runtime's path uses): nothing here is timed or compared."""

import math

import pytest

from benchmarks import compute_floor
from benchmarks.peer_build import workload_spec
from rnnedge.runtime import vnni
from tests.helpers import make_spec


@pytest.mark.parametrize("text, macs", [
    ("kws", 4 * 128 * (40 + 128) + 128 * 12),  # LSTM(40 -> 128) + Linear(12): 87,552
    ("har", 3 * 64 * (6 + 64) + 3 * 64 * (64 + 64) + 64 * 6),  # GRU(6 -> 64) x 2 + Linear(6)
    ("lstm5x2-in8-out1", 4 * 5 * (8 + 5) + 4 * 5 * (5 + 5) + 5),
    ("rnn_tanh7x2bi-out3", 2 * 7 * (16 + 7) + 2 * 7 * (14 + 7) + 14 * 3),  # both directions; layer 2 reads 2H
])
def test_multiply_adds_of_a_stream_step(text, macs):
    assert compute_floor.stream_step_macs(workload_spec(text)[1]) == macs


def test_token_input_and_hidden_head_layers_count_their_weights():
    spec = make_spec("gru", hidden=32, kind="tokens", out=10)
    width = spec["input"]["embed_dim"]  # the embedding row is read, not multiplied
    spec["head"]["hidden"] = [{"units": 24, "activation": "relu"}]
    assert compute_floor.stream_step_macs(spec) == 3 * 32 * (width + 32) + 32 * 24 + 24 * 10


def test_each_precision_is_held_to_the_instruction_its_path_uses():
    ops = compute_floor.ops_used()
    assert ops["f32"] == ops["int8w"] == "fma_f32"
    assert ops["int8"] == {"avx512_vnni": "vpdpbusd", "avx2": "pmaddwd"}.get(vnni.best_path())


def test_the_instructions_in_use_have_a_measured_rate():
    ops = {o for o in compute_floor.ops_used().values() if o} | ({"pmaddwd"} if vnni.has_avx2() else set())
    for op in sorted(ops):  # this CPU's paths' instructions (and the AVX2 path's, which a VNNI CPU also has)
        rate = compute_floor.rate(op, seconds=0.02, runs=2)
        assert math.isfinite(rate) and rate > 1e8, op  # multiply-adds per second: any CPU that has the instruction


def test_floors_and_ratios_from_a_table_row():
    spec = workload_spec("kws")[1]
    measured = {"ops": {"f32": "fma_f32", "int8w": "fma_f32", "int8": None}, "rates": {"fma_f32": 87552e6}}
    rows = {"rnnedge_f32": {"b64": 2.0, "b256": None}, "rnnedge_int8": {"b64": 1.0, "b256": 1.0},
            "ort_int8": {"b64": 1.0, "b256": 1.0}}
    got = compute_floor.against_floor(rows, spec, measured)
    assert set(got) == {"rnnedge_f32", "rnnedge_int8"}  # peers have no floor of rnnedge's
    assert got["rnnedge_f32"] == {"floor_us": pytest.approx(1.0), "b64": pytest.approx(2.0), "b256": None}
    assert got["rnnedge_int8"] == {"floor_us": None, "b64": None, "b256": None}  # the portable path: no floor
    line = compute_floor.summary_line("kws", 87552, got)
    assert "rnnedge_f32 1.000 us, B = 64 ; 256 at 2.00x ; -" in line and "rnnedge_int8 no floor" in line
