"""benchmarks.run_call measures what it says (one model.run() call per window, every precision) and writes its
table and JSON. Nothing is timed against a limit: the check is that each figure is a measured call, T = 50 more
than T = 1 (fifty steps against one), not which figure it is."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_run_call_quick_measures_every_precision(tmp_path):
    out = tmp_path / "run_call.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_call", "--workloads", "har", "--reps", "3", "--calls", "50",
         "--json", str(out)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["windows"] == [1, 50]
    assert [(r["workload"], r["precision"]) for r in report["rows"]] == [("har", p) for p in ("f32", "int8w", "int8")]
    for r in report["rows"]:
        assert all(math.isfinite(r[k]) and r[k] > 0 for k in ("T1_us", "T50_us")), r
        assert r["T50_us"] > r["T1_us"], r  # har's 50 steps (~0.7-2 us each) against one (medians of 3: a hiccup
        # of the machine during one repetition does not decide it)
    assert report["markdown"] in proc.stdout


def test_run_call_refuses_a_bad_count_or_workload_without_a_traceback():
    for args, said in ((["--reps", "0"], "--reps and --calls must be at least 1"),
                       (["--workloads", "har,nope"], "unknown workload 'nope'")):
        proc = subprocess.run([sys.executable, "-m", "benchmarks.run_call", *args],
                              check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
