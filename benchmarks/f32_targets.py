"""benchmarks.bench_f32's targets: the f32 tolerance, the design's speed ratios, int8w's and int8's step, size and
accuracy targets, checking them against a workload's results and saying how each was measured."""

from __future__ import annotations

from benchmarks.f32_quantised import INT8_ACCURACY_STEPS, INT8W_ACCURACY_STEPS

TOLERANCE = 1e-5  # f32 parity target of the design (max abs error vs PyTorch)

INT8W_ACCURACY_TARGET = 0.0025  # max abs logit error of runtime int8w vs the float PyTorch model
INT8W_SIZE_TARGET = 0.27  # int8w tensor bytes / f32 tensor bytes
INT8W_STEP_SPEED_TARGET = 1.0  # f32 step time / int8w step time: int8w no slower than f32

INT8_ACCURACY_TARGET = 0.01  # max abs logit error of runtime int8 vs the float PyTorch model (kws)
INT8_SIZE_TARGET = 0.27  # int8 tensor bytes (every tensor of the int8 file) / f32 tensor bytes
INT8_STEP_SLOWDOWN_TARGET = 1.5  # int8 step time / f32 step time: int8 no worse than 1.5x f32

# The design's targets, as ratios other / runtime (>= means the runtime is at least that many times faster).
TARGETS = [
    # (name, section, engine, required ratio, description)
    ("step_vs_ort_step", "step", "ort_step", 3.0, "stream.step >= 3x faster than ORT step graph"),
    ("step_vs_torch_cell", "step", "torch_cell", 6.0, "stream.step >= 6x faster than PyTorch LSTMCell/GRUCell"),
    ("run_vs_torch_forward", "sequence", "torch", 1.0, "model.run at least as fast as PyTorch whole-sequence call"),
]

# int8w targets: (name, comparison, required, description, workloads it applies to)
INT8W_TARGETS = [
    ("int8w_step_vs_f32_step", ">=", INT8W_STEP_SPEED_TARGET,
     "int8w stream.step no slower than f32 stream.step (f32 time / int8w time)", ("kws", "har")),
    ("int8w_size_ratio", "<=", INT8W_SIZE_TARGET,
     "int8w tensor bytes <= 27% of f32 tensor bytes", ("kws", "har")),
    ("int8w_accuracy", "<=", INT8W_ACCURACY_TARGET,
     (f"int8w max abs logit error vs PyTorch float <= {INT8W_ACCURACY_TARGET:g} "
      f"({INT8W_ACCURACY_STEPS}-step stream)"), ("kws",)),
]

# int8 targets, the same shape as INT8W_TARGETS
INT8_TARGETS = [
    ("int8_step_vs_f32_step", "<=", INT8_STEP_SLOWDOWN_TARGET,
     "int8 stream.step no worse than 1.5x f32 stream.step (int8 time / f32 time)", ("kws", "har")),
    ("int8_size_ratio", "<=", INT8_SIZE_TARGET,
     "int8 tensor bytes (matrices, biases, requant constants, scales) <= 27% of f32 tensor bytes", ("kws", "har")),
    ("int8_accuracy", "<=", INT8_ACCURACY_TARGET,
     (f"int8 max abs logit error vs PyTorch float <= {INT8_ACCURACY_TARGET:g} "
      f"({INT8_ACCURACY_STEPS}-step stream)"), ("kws",)),
]


def check_int8w_targets(name: str, q: dict) -> list[dict]:
    measured = {
        "int8w_step_vs_f32_step": q["step"]["runtime_int8w"]["runtime_over_this"],
        "int8w_size_ratio": q["size"]["tensor_bytes_ratio"],
        "int8w_accuracy": q["accuracy"]["runtime_int8w"],
    }
    return check_quantised_targets(name, INT8W_TARGETS, measured)


def check_int8_targets(name: str, q8: dict) -> list[dict]:
    measured = {
        "int8_step_vs_f32_step": q8["step"]["runtime_int8"]["this_over_runtime"],
        "int8_size_ratio": q8["size"]["tensor_bytes_ratio"],
        "int8_accuracy": q8["accuracy"]["runtime_int8"],
    }
    return check_quantised_targets(name, INT8_TARGETS, measured)


def check_quantised_targets(name: str, targets: list, measured: dict) -> list[dict]:
    out = []
    for tname, cmp, required, description, workloads in targets:
        if name not in workloads:
            continue
        m = measured[tname]
        met = m >= required if cmp == ">=" else m <= required
        out.append({"name": tname, "description": description, "comparison": cmp, "required": required,
                    "measured": m, "met": bool(met)})
    return out


def target_text(t: dict) -> str:
    """'measured X, required Y' in the target's own unit."""
    if "measured_ratio" in t:
        return f"measured {t['measured_ratio']:.2f}x, required {t['required_ratio']:g}x"
    if t["name"].endswith("_size_ratio"):
        return f"measured {t['measured']:.2%}, required {t['comparison']} {t['required']:.0%}"
    if t["name"].endswith("_accuracy"):
        return f"measured {t['measured']:.2e}, required {t['comparison']} {t['required']:g}"
    return f"measured {t['measured']:.2f}x, required {t['comparison']} {t['required']:g}x"


def check_targets(step: dict, seq: dict) -> list[dict]:
    sections = {"step": step, "sequence": seq}
    out = []
    for name, section, engine, required, description in TARGETS:
        measured = sections[section][engine]["ratio_vs_runtime"]
        out.append({"name": name, "description": description, "required_ratio": required,
                    "measured_ratio": measured, "met": bool(measured >= required)})
    return out
