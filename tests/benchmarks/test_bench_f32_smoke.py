"""The f32 benchmark runs end to end and writes the JSON it promises. Nothing here is timed or compared."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_f32_quick_writes_json(tmp_path):
    out = tmp_path / "f32.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_f32", "--quick", "--steps", "50", "--no-cold-start",
         "--json", str(out)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MET" in proc.stdout  # every target gets a verdict, met or not
    report = json.loads(out.read_text())
    for key in ("machine", "config", "targets", "workloads", "all_outputs_agree", "all_targets_met"):
        assert key in report
    for key in ("cpu_model", "numba", "torch", "onnxruntime"):
        assert key in report["machine"]
    assert set(report["workloads"]) == {"kws", "har"}
    for w in report["workloads"].values():
        assert set(w["step"]) == {"runtime", "torch_eager", "torch_cell", "ort_step"}
        assert set(w["sequence"]) == {"runtime", "torch", "ort"}
        for e in w["step"].values():
            assert len(e["us_per_step"]) == 1 and e["median_us_per_step"] > 0 and e["ratio_vs_runtime"] > 0
        for e in w["sequence"].values():
            assert len(e["ms"]) == 1 and e["median_ms"] > 0
        assert w["memory"]["model_nbytes"] > 0 and w["memory"]["stream_nbytes"] > 0
        assert [t["name"] for t in w["targets"]] == ["step_vs_ort_step", "step_vs_torch_cell", "run_vs_torch_forward"]
        assert all(isinstance(t["met"], bool) for t in w["targets"])
        assert "cold_start" not in w
        assert w["outputs_agree"], w["max_abs_diff_vs_torch"]  # correctness, not speed
