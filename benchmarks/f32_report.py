"""benchmarks.bench_f32's printed report: one workload's table (f32, int8w and int8 sections), memory, cold start
and targets."""

from __future__ import annotations

from benchmarks.f32_targets import TOLERANCE, target_text


def print_workload(name: str, spec: dict, r: dict) -> None:
    layers = " -> ".join(f"{layer['cell'].upper()} {layer['hidden']}" for layer in spec["layers"])
    print(f"\n=== {name}: dense {spec['input']['features']} -> {layers} -> Linear {spec['head']['out']} "
          f"(batch 1, {r['steps']} steps, median of {r['reps']} reps) ===")
    print(f"{'per step':34s} {'us/step':>10s} {'min':>9s} {'max':>9s} {'ratio':>8s} {'max|diff|':>10s}")
    for e in r["step"].values():
        us = e["us_per_step"]
        print(f"  {e['label']:32s} {e['median_us_per_step']:10.2f} {min(us):9.2f} {max(us):9.2f} "
              f"{e['ratio_vs_runtime']:7.2f}x {e['max_abs_diff_vs_torch']:10.2e}")
    print(f"{'whole sequence':34s} {'ms/seq':>10s} {'us/step':>9s} {'':>9s} {'ratio':>8s} {'max|diff|':>10s}")
    for e in r["sequence"].values():
        print(f"  {e['label']:32s} {e['median_ms']:10.3f} {e['median_us_per_step']:9.2f} {'':9s} "
              f"{e['ratio_vs_runtime']:7.2f}x {e['max_abs_diff_vs_torch']:10.2e}")
    print("  (ratio = other / runtime: the runtime is that many times faster; max|diff| vs PyTorch forward)")
    mem = r["memory"]
    print(f"memory: model.nbytes {mem['model_nbytes']:,} B, stream.nbytes {mem['stream_nbytes']:,} B "
          f"(artifact file {mem['artifact_file_bytes']:,} B, torch params {mem['torch_param_bytes']:,} B)")
    cold = r.get("cold_start")
    if cold:
        for key in ("empty_cache", "warm_cache"):
            c = cold[key]
            print(f"cold start, {key.replace('_', ' ')}: {c['median_wall_s']:.2f} s wall "
                  f"(import {c['median_import_s']:.2f} s, first step {c['median_first_step_s'] * 1e3:.1f} ms), "
                  f"peak RSS {c['median_maxrss_mb']:.1f} MB")
    agree = r["outputs_agree"]
    print(f"outputs agree with PyTorch (<= {TOLERANCE:g}): {'YES' if agree else 'NO -- TIMINGS ARE MEANINGLESS'}")
    print_int8w(r["int8w"])
    print_int8(r["int8"])
    for t in r["targets"]:
        verdict = "MET" if t["met"] else "NOT MET"
        print(f"  target {t['description']}: {verdict} ({target_text(t)})")


def print_int8w(q: dict) -> None:
    print(f"{'int8w per step':34s} {'us/step':>10s} {'min':>9s} {'max':>9s} {'f32/this':>9s} "
          f"{'cell/this':>9s} {'eager/this':>10s} {'max|diff|':>10s}")
    for e in q["step"].values():
        us = e["us_per_step"]
        print(f"  {e['label']:32s} {e['median_us_per_step']:10.2f} {min(us):9.2f} {max(us):9.2f} "
              f"{e['runtime_over_this']:8.2f}x {e['torch_cell_over_this']:8.2f}x {e['torch_eager_over_this']:9.2f}x "
              f"{e['max_abs_diff_vs_torch']:10.2e}")
    print(f"{'int8w whole sequence':34s} {'ms/seq':>10s} {'us/step':>9s} {'':>9s} {'f32/this':>9s} "
          f"{'torch/this':>10s} {'':>9s} {'max|diff|':>10s}")
    for e in q["sequence"].values():
        print(f"  {e['label']:32s} {e['median_ms']:10.3f} {e['median_us_per_step']:9.2f} {'':9s} "
              f"{e['runtime_over_this']:8.2f}x {e['torch_over_this']:9.2f}x {'':9s} {e['max_abs_diff_vs_torch']:10.2e}")
    if not q["torch_dynq_available"]:
        print(f"  PyTorch quantize_dynamic: not available: {q['torch_dynq_unavailable_reason']}")
    print("  (f32/this = runtime f32 time / this; cell, eager = PyTorch LSTMCell/GRUCell, nn.LSTM/GRU per step;"
          " torch = PyTorch float forward; > 1 means this is faster)")
    a = q["accuracy"]
    dynq = "not available" if a["torch_dynq"] is None else f"{a['torch_dynq']:.2e}"
    print(f"int8w accuracy ({a['steps']}-step stream, max abs logit error vs PyTorch float, logits up to "
          f"{a['reference_max_abs_logit']:.2f}): runtime int8w {a['runtime_int8w']:.2e} "
          f"(stream {a['runtime_int8w_stream']:.2e}, run {a['runtime_int8w_run']:.2e}), "
          f"PyTorch quantize_dynamic {dynq}")
    z = q["size"]
    print(f"int8w size: tensors {z['int8w_tensor_bytes']:,} B / f32 {z['f32_tensor_bytes']:,} B = "
          f"{z['tensor_bytes_ratio']:.2%} (files {z['int8w_file_bytes']:,} / {z['f32_file_bytes']:,} B); "
          f"model.nbytes int8w {z['int8w_model_nbytes']:,} B vs f32 {z['f32_model_nbytes']:,} B")


def _times(x) -> str:
    """A ratio 'N.NNx' in a 9-wide column, or 'n/a' where the other engine was not measured."""
    return f"{x:8.2f}x" if x is not None else f"{'n/a':>9s}"


def print_int8(q8: dict) -> None:
    print(f"{'int8 per step':34s} {'us/step':>10s} {'min':>9s} {'max':>9s} {'this/f32':>9s} "
          f"{'cell/this':>9s} {'dynq/this':>9s} {'max|diff|':>10s}")
    for e in q8["step"].values():
        us = e["us_per_step"]
        print(f"  {e['label']:32s} {e['median_us_per_step']:10.2f} {min(us):9.2f} {max(us):9.2f} "
              f"{_times(e['this_over_runtime'])} {_times(e['torch_cell_over_this'])} "
              f"{_times(e['torch_dynq_over_this'])} {e['max_abs_diff_vs_torch']:10.2e}")
    print(f"{'int8 whole sequence':34s} {'ms/seq':>10s} {'us/step':>9s} {'':>9s} {'this/f32':>9s} "
          f"{'torch/this':>9s} {'dynq/this':>9s} {'max|diff|':>10s}")
    for e in q8["sequence"].values():
        print(f"  {e['label']:32s} {e['median_ms']:10.3f} {e['median_us_per_step']:9.2f} {'':9s} "
              f"{_times(e['this_over_runtime'])} {_times(e['torch_over_this'])} "
              f"{_times(e['torch_dynq_over_this'])} {e['max_abs_diff_vs_torch']:10.2e}")
    print("  (this/f32 = int8 time / runtime f32 time, < 1 means int8 is faster; cell/this, torch/this, dynq/this ="
          " PyTorch LSTMCell/GRUCell, float forward, quantize_dynamic time / int8 time, > 1 means int8 is faster)")
    a = q8["accuracy"]
    print(f"int8 accuracy ({a['steps']}-step stream, max abs logit error vs PyTorch float, logits up to "
          f"{a['reference_max_abs_logit']:.2f}): runtime int8 {a['runtime_int8']:.2e} "
          f"(stream {a['runtime_int8_stream']:.2e}, run {a['runtime_int8_run']:.2e}, "
          f"stream == run: {'yes' if a['stream_equals_run'] else 'NO'}; mean {a['runtime_int8_mean_abs']:.2e}, "
          f"argmax agrees {a['argmax_agreement']:.2%})")
    c = q8["calibration"]
    hidden = ", ".join(f"{v:.3f}" for v in c["hidden_absmax"])
    cells = ", ".join(f"{v:.3f} (scale 2^{L['cell_power']})" for v, L in zip(c["cell_absmax"], q8["scales"])
                      if L["cell_power"] is not None)
    print(f"int8 calibration ({c['steps']}-step stream, seed {c['seed']}): max |x norm| {c['input_absmax']:.3f} "
          f"(input scale {q8['input_scale']:.3g}), max |h| per layer {hidden}" + (f", max |c| {cells}" if cells else ""))
    z = q8["size"]
    kinds = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in z["bytes_by_kind"].items() if v)
    print(f"int8 size: tensors {z['int8_tensor_bytes']:,} B / f32 {z['f32_tensor_bytes']:,} B = "
          f"{z['tensor_bytes_ratio']:.2%}: weight matrices alone {z['weight_matrix_bytes_ratio']:.2%}, everything "
          f"else {z['non_matrix_bytes_ratio']:.2%} ({kinds} B); files {z['int8_file_bytes']:,} / "
          f"{z['f32_file_bytes']:,} B; model.nbytes int8 {z['int8_model_nbytes']:,} B vs f32 "
          f"{z['f32_model_nbytes']:,} B, stream.nbytes {z['int8_stream_nbytes']:,} B")
