"""Issue 15's targets read from a run's table (benchmarks/peer_targets.py): each check against its own limit, a
figure the run lacks reported as not measured (never as met), and the summary naming what was missed and by how
much. Synthetic tables: nothing here is timed."""

from benchmarks import peer_targets

PEERS = ("torch", "ort_fp32", "ort_int8", "litert_fp32", "litert_int8")


def _row(step=None, seq=None, seq32=None, b8=None, b64=None, b256=None, cold_warm=0.4, cold_empty=2.0, rss=150.0):
    return {"step": step, "seq": seq, "seq32": seq32, "b8": b8, "b64": b64, "b256": b256,
            "cold_warm": cold_warm, "cold_empty": cold_empty, "rss": rss}


def _streaming_table():
    return {
        "rnnedge_f32": _row(step=3.0, seq=2.0, b8=2.0, b64=1.5, b256=1.5),
        "rnnedge_int8w": _row(step=2.0, seq=1.0, b8=1.5, b64=1.2, b256=1.2),
        "rnnedge_int8": _row(step=1.0, seq=0.5, b8=1.0, b64=0.9, b256=0.8, cold_warm=0.5, rss=165.0),
        "ort_fp32": _row(step=15.0, seq=2.5, b8=3.0, b64=1.6, b256=1.4),
        "ort_int8": _row(step=14.0, seq=1.8, b8=2.5, b64=1.0, b256=0.9),
        "litert_fp32": _row(step=5.0, b8=3.0, b64=2.0, b256=2.0),
        "litert_int8": _row(step=3.6, b8=2.0, b64=1.0, b256=0.9),
        "numba_floor": _row(cold_warm=0.4, rss=150.0),
    }


def _by_name(checks):
    return {c["target"]: c for c in checks}


def test_each_target_against_its_limit():
    gaps = {"rnnedge_f32": {"b64": 1.2, "b256": 1.2}, "rnnedge_int8w": {"b64": 1.4, "b256": 1.6},
            "rnnedge_int8": {"b64": 1.2, "b256": 1.1}}
    table = _streaming_table()
    c = _by_name(peer_targets.check(table, PEERS, gaps, table["numba_floor"]))
    assert c["step int8"]["met"] and c["step int8"]["value"] == 3.6 and c["step int8"]["against"] == "litert_int8"
    assert not c["step int8w"]["met"] and c["step int8w"]["value"] == 1.8  # 3.6 / 2.0: needs 3x
    assert c["step f32"]["value"] == 5.0 / 3.0 and c["step f32"]["met"]  # against LiteRT fp32 only
    assert c["step int8 <= int8w <= f32"]["met"]
    assert c["seq int8"]["value"] == 3.6 and c["seq int8"]["met"] and not c["seq int8w"]["met"]
    assert c["seq f32"]["value"] == 1.25 and c["seq f32"]["met"]
    assert c["b64 f32"]["value"] == 1.6 / 1.5 and c["b64 f32"]["met"]  # f32 against ORT fp32
    assert not c["b64 int8w"]["met"] and c["b64 int8w"]["against"] == "ort_int8"  # quantised against quantised
    assert c["b256 rnnedge (int8) vs ORT"]["value"] == 0.9 / 0.8 and c["b256 rnnedge (int8) vs ORT"]["met"]
    assert c["b64 int8w vs compute floor"]["met"] and not c["b256 int8w vs compute floor"]["met"]
    assert c["cold warm int8"]["value"] == 0.5 / 0.4 and not c["cold warm int8"]["met"]  # 1.25x > 1.2x
    assert c["RSS int8"]["value"] == 15.0 and not c["RSS int8"]["met"]
    assert c["cold empty f32"]["met"]
    text = peer_targets.summary("kws", list(c.values()))
    assert text.startswith(f"kws, issue 15's targets: {sum(bool(x['met']) for x in c.values())} of {len(c)} met")
    assert "step int8w 1.80x faster than litert_int8 (needs 3x: 1.2 us)" in text  # 3.6 / 3, no floor given
    assert "b256 int8w vs compute floor 1.60x the floor (needs <= 1.5x)" in text
    assert "RSS int8 15.0 MB above the numba floor (needs <= 10)" in text and "not measured" not in text


def test_what_the_run_lacks_is_not_measured_never_met():
    table = _streaming_table()
    for engine in ("litert_fp32", "litert_int8", "numba_floor"):
        del table[engine]
    table["rnnedge_int8w"]["b64"] = None
    c = _by_name(peer_targets.check(table, ("torch", "ort_fp32", "ort_int8")))
    assert c["step f32"]["met"] is None  # LiteRT fp32 left out of the run
    assert c["step int8"]["against"] == "ort_int8"  # the best peer the run has
    assert c["b64 int8w"]["met"] is None and c["b64 int8 vs compute floor"]["met"] is None
    assert c["cold warm f32"]["met"] is None and c["RSS int8"]["met"] is None
    assert "not measured in this run: " in peer_targets.summary("kws", list(c.values()))


def test_a_model_that_cannot_stream_is_held_to_the_best_peer_on_whole_sequences():
    rows = {"rnnedge_f32": _row(seq=0.9, seq32=1.0), "rnnedge_int8w": _row(seq=0.9, seq32=0.8),
            "rnnedge_int8": _row(seq=0.6, seq32=0.5), "ort_int8": _row(seq=4.6, seq32=4.5),
            "ort_fp32": _row(seq=1.0, seq32=0.9)}
    c = _by_name(peer_targets.check(rows, PEERS))
    assert not any(name.startswith(("step", "b8", "b64", "b256")) for name in c)  # no step, no batched streams
    assert c["seq f32 vs best peer"]["value"] == 1.0 / 0.9 and c["seq f32 vs best peer"]["met"]
    assert not c["seq32 f32 vs best peer"]["met"]  # 0.9 / 1.0
    assert c["seq32 int8 vs best peer"]["met"]


def test_a_figure_missed_by_less_than_its_last_digit_shows_one_more():
    c = peer_targets._check("b256 int8w vs compute floor", 1.5024, 1.5, False, "x the floor", "compute floor")
    assert c["met"] is False
    assert "1.502x the floor (needs <= 1.5x)" in peer_targets.summary("har", [c])


def test_a_missed_speed_target_says_the_time_it_needs_and_whether_the_compute_floor_allows_it():
    """needs_us: the peer's time over the factor; below the precision's compute floor, the summary says no
    implementation of that arithmetic reaches it here (the floor's own target is unchanged)."""
    table = _streaming_table()
    gaps = {"rnnedge_f32": {"floor_us": 0.9, "b64": 1.5 / 0.9, "b256": 1.5 / 0.9},
            "rnnedge_int8w": {"floor_us": 0.9, "b64": 1.2 / 0.9, "b256": 1.2 / 0.9},
            "rnnedge_int8": {"floor_us": 0.5, "b64": 0.9 / 0.5, "b256": 0.8 / 0.5}}
    c = _by_name(peer_targets.check(table, PEERS, gaps, table["numba_floor"]))
    seq = c["seq int8w"]  # ORT int8 1.8 us: 3x is 0.6 us, under int8w's floor of 0.9
    assert not seq["met"] and seq["needs_us"] == 1.8 / 3 and seq["floor_us"] == 0.9
    step = c["step int8w"]  # LiteRT int8 3.6 us: 3x is 1.2 us, above the floor: within reach
    assert not step["met"] and step["needs_us"] == 1.2 and step["floor_us"] == 0.9
    assert c["step int8"]["met"] and c["step int8"]["needs_us"] == 1.2  # recorded for met targets too
    text = peer_targets.summary("kws", list(c.values()))
    assert ("seq int8w 1.80x faster than ort_int8 (needs 3x: 0.6 us, under this precision's compute floor of "
            "0.9 us: out of reach at its instruction's peak)") in text
    assert "step int8w 1.80x faster than litert_int8 (needs 3x: 1.2 us);" in text
    assert c["b64 int8w"]["needs_us"] == 1.0 and "b64 int8w 0.83x faster than ort_int8 (needs 1x: 1 us);" in text
