"""The f32/int8w/int8 benchmark runs end to end and writes the JSON it promises. Nothing here is timed or compared."""

import json
import math
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
        kws = w is report["workloads"]["kws"]
        names = (["step_vs_ort_step", "step_vs_torch_cell", "run_vs_torch_forward",
                  "int8w_step_vs_f32_step", "int8w_size_ratio"] + (["int8w_accuracy"] if kws else [])
                 + ["int8_step_vs_f32_step", "int8_size_ratio"] + (["int8_accuracy"] if kws else []))
        assert [t["name"] for t in w["targets"]] == names
        assert all(isinstance(t["met"], bool) for t in w["targets"])
        assert "cold_start" not in w
        assert w["outputs_agree"], w["max_abs_diff_vs_torch"]  # correctness, not speed
        q = w["int8w"]
        dynq = q["torch_dynq_available"]
        assert dynq or q["torch_dynq_unavailable_reason"]
        assert set(q["step"]) == {"runtime_int8w"} | ({"torch_dynq"} if dynq else set())
        assert set(q["sequence"]) == {"runtime_int8w"} | ({"torch_dynq"} if dynq else set())
        for e in q["step"].values():
            assert len(e["us_per_step"]) == 1 and e["median_us_per_step"] > 0
            assert e["runtime_over_this"] > 0 and e["torch_cell_over_this"] > 0
        for e in q["sequence"].values():
            assert len(e["ms"]) == 1 and e["median_ms"] > 0 and e["torch_over_this"] > 0
        assert q["accuracy"]["steps"] == 2000
        assert 0 < q["accuracy"]["runtime_int8w"] < 0.05  # int8 weights: close to float, not equal
        assert 0 < q["size"]["tensor_bytes_ratio"] < 0.5
        assert 0 < q["size"]["int8w_model_nbytes"] < q["size"]["f32_model_nbytes"]
        # int8: the integer model's rows exist, in the same repetitions, with finite numbers
        q8 = w["int8"]
        assert set(q8["step"]) == {"runtime_int8"} and set(q8["sequence"]) == {"runtime_int8"}
        e = q8["step"]["runtime_int8"]
        assert len(e["us_per_step"]) == 1 and 0 < e["median_us_per_step"] < math.inf
        for key in ("this_over_runtime", "runtime_over_this", "torch_cell_over_this", "max_abs_diff_vs_torch"):
            assert math.isfinite(e[key]), key
        assert (e["torch_dynq_over_this"] is not None) == dynq
        e = q8["sequence"]["runtime_int8"]
        assert len(e["ms"]) == 1 and 0 < e["median_ms"] < math.inf
        for key in ("this_over_runtime", "torch_over_this", "max_abs_diff_vs_torch"):
            assert math.isfinite(e[key]), key
        a = q8["accuracy"]
        assert a["steps"] == 2000 and a["stream_equals_run"]
        assert 0 < a["runtime_int8"] < 0.05  # integers: close to float, not equal
        z = q8["size"]
        assert 0 < z["weight_matrix_bytes_ratio"] < z["tensor_bytes_ratio"] < 0.5
        assert sum(z["bytes_by_kind"].values()) == z["int8_tensor_bytes"]
        assert 0 < z["int8_model_nbytes"] < z["f32_model_nbytes"]
        assert q8["calibration"]["steps"] > 0 and math.isfinite(q8["calibration"]["input_absmax"])
    assert "int8 per step" in proc.stdout and "runtime int8 stream.step" in proc.stdout
