"""The peers harness runs end to end in quick mode (rnnedge f32 and ONNX Runtime only, kws) and reports every
column with finite numbers. Nothing here is timed or compared."""

import json
import math

import pytest

from tests.benchmarks import quick_peers

pytestmark = pytest.mark.specialised  # the step a user gets (tests/conftest.py)


def test_peers_quick_reports_every_column_with_finite_numbers(tmp_path):
    proc = quick_peers(tmp_path, "rnnedge_f32,ort_fp32,ort_int8,numba_floor", "kws")
    assert proc.returncode == 0, proc.stderr[-3000:]
    from benchmarks.peers import COLUMNS

    header = next(line for line in proc.stdout.splitlines() if line.startswith("| workload | engine |"))
    assert [c.strip() for c in header.strip("|").split("|")[2:]] == [h for _, h in COLUMNS]
    report = json.loads(next(tmp_path.glob("peers-*.json")).read_text())
    rows = report["table"]["kws"]
    assert set(rows) == {"rnnedge_f32", "ort_fp32", "ort_int8", "numba_floor"}
    floor = rows.pop("numba_floor")  # cold start and RSS only
    assert floor["cold_warm"] > 0 and floor["rss"] > 0 and floor["step"] is None and floor["err"] is None
    gap = report["numba_floor"]["kws"]["rnnedge_f32"]
    assert math.isfinite(gap["cold_warm_over_floor"]) and math.isfinite(gap["rss_above_floor_mb"])
    for engine, row in rows.items():
        assert set(row) == {k for k, _ in COLUMNS}
        assert row["cold_empty"] is None  # --cold-reps 0 leaves the empty-cache cold start out
        for key, value in row.items():
            if key != "cold_empty":
                assert math.isfinite(value) and value >= 0, (engine, key, value)
        assert row["err"] < (1e-5 if engine != "ort_int8" else 0.05)  # same weights in every engine
    r = report["ratios"]["kws"]["rnnedge_f32"]
    assert set(r) == {k for k, _ in COLUMNS[:-1]} - {"cold_empty"}
    assert all(math.isfinite(v["ratio"]) and v["best_peer"] in ("ort_fp32", "ort_int8") for v in r.values())
    assert set(report["runs"]["kws/rnnedge_f32"][0]["columns"]) == {k for k, _ in COLUMNS[:6]}
    floor = report["compute_floor"]["against"]["kws"]["rnnedge_f32"]  # the batched target's floor (compute_floor.py)
    assert floor["floor_us"] > 0 and math.isfinite(floor["b64"]) and math.isfinite(floor["b256"])
    assert report["compute_floor"]["measured"]["ops"]["f32"] == "fma_f32"
    assert "kws, against the compute floor (87552 multiply-adds" in proc.stdout
    targets = {c["target"]: c for c in report["targets"]["kws"]}  # issue 15's, from this run (peer_targets.py)
    assert targets["b64 f32"]["against"] == "ort_fp32" and targets["b64 f32"]["met"] is not None
    assert targets["step int8"]["met"] is None  # rnnedge_int8 was not in this run
    assert "kws, issue 15's targets: " in proc.stdout
