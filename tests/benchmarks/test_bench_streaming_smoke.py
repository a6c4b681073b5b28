"""The streaming benchmark runs end to end (--quick) and writes the JSON and plot it promises. Nothing is timed."""

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_streaming_quick_writes_json(tmp_path):
    out, png = tmp_path / "streaming.json", tmp_path / "streaming.png"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_streaming", "--quick", "--json", str(out), "--plot", str(png)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "MET" in proc.stdout
    assert png.stat().st_size > 0
    report = json.loads(out.read_text())
    assert report["all_outputs_agree"] and all(c["agree"] for c in report["checks"].values())
    assert all(report["shape_checks"].values()), report["shape_checks"]
    points = report["positions"]
    assert points[0] == 10 and points[-1] == report["config"]["steps"] == 300 and 100 in points
    models = report["models"]
    names = {"transformer", "tcn"} | {f"{p}_{c}{s}" for c in ("rnn_tanh", "lstm", "gru")
                                       for p, s in (("runtime", ""), ("runtime", "_int8"), ("torch", ""))}
    assert set(models) == names
    for m in models.values():
        for key in ("latency_us", "state_bytes", "flops_per_step"):
            assert len(m[key]) == len(points), key
        assert all(math.isfinite(v) and v > 0 for v in m["latency_us"])
        assert all(math.isfinite(v) and v > 0 for v in m["flops_per_step"])
        assert all(v > 0 for v in m["state_bytes"]) and m["params"] > 0
    # parameter counts matched within 20% of their median
    counts = list(report["params"].values())
    median = sorted(counts)[len(counts) // 2]
    assert all(abs(c / median - 1) <= 0.2 for c in counts)
    # the KV cache grows with t (linearly), the RNN's state and the TCN's rings do not
    kv = models["transformer"]["state_bytes"]
    assert all(b > a for a, b in itertools.pairwise(kv))
    assert all(b == kv[0] // points[0] * t for b, t in zip(kv, points))  # bytes per cached position x t
    for name in ("runtime_rnn_tanh", "runtime_lstm", "runtime_gru", "runtime_gru_int8", "tcn"):
        assert len(set(models[name]["state_bytes"])) == 1, name
    f = models["transformer"]["flops_per_step"]
    assert all(b > a for a, b in itertools.pairwise(f))
