"""What one firmware_ref step of a model costs on a microcontroller, predicted from its spec alone (issue 17):
instructions per step, flash and RAM, per target (TARGETS) and precision.

The formula, one per target x precision, linear in counts that follow from the spec (`features`):

    instructions/step = sum over cells c of (a_c * MACs_c + b_c * gate rows_c + c_c * layers_c)
                        + r * rnn_relu gate rows + t * tail MACs + w * wide MACs
                        + d * head MACs + e * head outputs + f * dense input features
                        + g' * (token input) + g

MACs_c: the multiply-accumulates of the layers of cell c (G * H * (I + H) each; G = 4 LSTM, 3 GRU, 1 RNN);
gate rows_c: their G * H; layers_c: how many layers of cell c; head MACs / outputs: the linear head's; dense input
features: a dense input's width (normalised and quantised every step); a token model instead has a constant of its
own (the embedding row's copy, a few instructions per value, is left in it: fitting it per value over the few
embedding widths measured extrapolated badly).
rnn_tanh and rnn_relu share the "rnn" columns, rnn_relu rows adding r each (a max instead of the tanh lookup);
tail MACs: the products past the last multiple of 4 of every dot product (rows x (length mod 4), each matrix), which
the Cortex-M4's DSP kernel does one at a time after its 4-wide blocks; wide MACs: those of dot products over vectors
longer than 256 values, which the DSP kernel leaves to the plain C loop (it packs up to 256). The coefficients are
fitted by least squares on relative residuals to QEMU measurements of varied shapes (benchmarks/cost_fit.py, `make
cost-fit`) and live in runtime/cost_coefficients.py (a Python table that script writes, with every shape's measured
and fitted figures, the residuals and the tool versions). A prediction outside the fitted shapes says so
(outside_fit).

Flash: the library's code and constants for the target (the largest measured over the fitted shapes) plus the
model's constants (linear in weights, gate rows, GRU units, layers, head outputs, dense inputs and vocabulary:
exact on every fitted shape). RAM: state + scratch of one stream (export/firmware.py model_sizes' formula, restated here because runtime/
cannot import export/) plus the largest stack the fit's measurements used (painted stack, high-water mark).

QEMU's -icount counts executed instructions, not cycles: a Cortex-M4 takes 1 cycle for most instructions, more for
loads, branches and multiplies; the counts compare kernels and targets, they are not a time on a given board.
"""

from __future__ import annotations

from rnnedge.runtime import layout
from rnnedge.runtime import spec as specs

# Every target rnnedge inspect --target names: what QEMU machine runs it, how firmware_ref is built for it and
# which precisions it runs. A target whose (target, precision) has no coefficients in runtime/cost_coefficients.py
# is "not measured yet": inspect says so instead of guessing.
TARGETS = {
    "cortex-m3": {"cpu": "Cortex-M3", "board": "an385", "qemu": "qemu-system-arm -machine mps2-an385",
                  "build": "plain C int8 (no DSP extension, soft float)", "precisions": ("int8",)},
    "cortex-m4": {"cpu": "Cortex-M4", "board": "an386", "qemu": "qemu-system-arm -machine mps2-an386",
                  "build": "int8 with the DSP extension (SMLAD, SXTB16: src/rnnedge_dsp.h)", "precisions": ("int8",)},
    "cortex-m4f": {"cpu": "Cortex-M4F", "board": "an386", "qemu": "qemu-system-arm -machine mps2-an386",
                   "build": "f32 / int8w on the FPv4-SP FPU with fused multiply-add; int8 as cortex-m4",
                   "precisions": ("f32", "int8w", "int8")},
    "rv32": {"cpu": "RV32IMAC", "board": "virt", "qemu": "qemu-system-riscv32 -machine virt",
             "build": "plain C int8, rv32imac ilp32 (no FPU)", "precisions": ("int8",)},
    "cortex-m55": {"cpu": "Cortex-M55", "board": "an547", "qemu": "qemu-system-arm -machine mps3-an547",
                   "build": "int8 with Helium (MVE)", "precisions": ("int8",)},
}
# cortex-m4f's int8 is the same image as cortex-m4's (the same board and flags): one set of coefficients
SAME_AS = {("cortex-m4f", "int8"): ("cortex-m4", "int8")}
CELL_GROUPS = {"lstm": "lstm", "gru": "gru", "rnn_tanh": "rnn", "rnn_relu": "rnn"}
INSTRUCTION_FEATURES = ("lstm_macs", "lstm_rows", "lstm_layers", "gru_macs", "gru_rows", "gru_layers",
                        "rnn_macs", "rnn_rows", "rnn_layers", "relu_rows", "tail_macs", "wide_macs", "head_macs", "head_out",
                        "dense_inputs", "tokens", "one")
CONST_FEATURES = ("weights", "rows", "gru_units", "layers", "head_out", "inputs", "vocab", "one")
DSP_PACKED_VALUES = 256  # src/rnnedge_dsp.h: the DSP kernel packs vectors of up to 4 * RNNEDGE_DSP_WORDS (64) values
VALUE_BYTES = {"int8": 2, "f32": 4, "int8w": 4}  # a value of state or scratch on the device


class CostModelError(ValueError):
    """No prediction: an unknown target, a precision the target does not run, a model the cost model does not
    cover, or a target that has not been measured yet; the message says which."""


def features(spec: dict) -> dict[str, int]:
    """The counts the formulas are linear in (module docstring); a forward-only spec of PyTorch's cells with a linear
    head (what the measurements cover)."""
    covered_spec(spec)
    f = dict.fromkeys(INSTRUCTION_FEATURES, 0)
    n_in = specs.input_size(spec)
    for layer in spec["layers"]:
        group, hidden = CELL_GROUPS[layer["cell"]], layer["hidden"]
        rows = specs.GATES[layer["cell"]] * hidden
        f[f"{group}_macs"] += rows * (n_in + hidden)
        f[f"{group}_rows"] += rows
        f[f"{group}_layers"] += 1
        f["relu_rows"] += rows if layer["cell"] == "rnn_relu" else 0
        f["tail_macs"] += rows * (n_in % 4 + hidden % 4)
        f["wide_macs"] += rows * sum(n for n in (n_in, hidden) if n > DSP_PACKED_VALUES)
        n_in = hidden
    f["head_macs"] = spec["head"]["out"] * n_in
    f["tail_macs"] += spec["head"]["out"] * (n_in % 4)
    f["wide_macs"] += spec["head"]["out"] * n_in if n_in > DSP_PACKED_VALUES else 0
    f["head_out"] = spec["head"]["out"]
    tokens = spec["input"]["kind"] == "tokens"
    f["dense_inputs"] = 0 if tokens else specs.input_size(spec)
    f["tokens"] = int(tokens)
    f["one"] = 1
    return f


def const_features(spec: dict) -> dict[str, int]:
    """The counts the model-constants formula is linear in: weight matrix elements (embedding included), gate rows
    (a bias and requantisation words or scales each), GRU units (their b_hn), layers (a struct each), head outputs,
    dense input features (their mean and std), the vocabulary (int8w: a scale per embedding row)."""
    f = features(spec)
    weights = sum(f[f"{g}_macs"] for g in ("lstm", "gru", "rnn")) + f["head_macs"]
    vocab = spec["input"]["vocab"] if spec["input"]["kind"] == "tokens" else 0
    if vocab:
        weights += vocab * spec["input"]["embed_dim"]
    return {"weights": weights, "rows": sum(f[f"{g}_rows"] for g in ("lstm", "gru", "rnn")),
            "gru_units": sum(layer["hidden"] for layer in spec["layers"] if layer["cell"] == "gru"),
            "layers": len(spec["layers"]), "head_out": f["head_out"], "inputs": f["dense_inputs"], "vocab": vocab,
            "one": 1}


def covered_spec(spec: dict) -> None:
    """Raise CostModelError naming what the fitted shapes do not cover: bidirectional or reverse layers, ONNX layer
    extensions, hidden head layers."""
    problems = []
    for i, layer in enumerate(spec["layers"]):
        if layer["bidirectional"] or specs.option(layer, "reverse"):
            problems.append(f"layers[{i}] is bidirectional or reverse (firmware_ref steps forward layers only)")
        extra = [e for e in specs.extensions(layer) if e != "reverse"]
        if extra:
            problems.append(f"layers[{i}] uses ONNX layer extensions ({', '.join(extra)})")
    if specs.head_hidden(spec):
        problems.append("the head has hidden dense layers")
    if problems:
        raise CostModelError("the cost model is fitted to forward layers of PyTorch's cells and a linear head: "
                             + "; ".join(problems))


def ram_bytes(spec: dict, precision: str) -> dict[str, int]:
    """State and scratch bytes of one stream (export/firmware_support.py model_sizes; rnnedge.h's macros)."""
    state = sum(2 * layer["hidden"] if layer["cell"] == "lstm" else layer["hidden"] for layer in spec["layers"])
    scratch = max(specs.GATES[layer["cell"]] * layer["hidden"] + (layer["hidden"] if layer["cell"] == "gru" else 0)
                  for layer in spec["layers"])
    scratch = max(scratch, layout.head_scratch(spec))
    tokens = spec["input"]["kind"] == "tokens"
    front = tokens if precision == "int8" else not (tokens and precision == "f32")
    scratch += specs.input_size(spec) if front else 0
    size = VALUE_BYTES[precision]
    return {"state": size * state, "scratch": size * scratch}


def _dot(coefficients: dict[str, float], values: dict[str, int]) -> float:
    return sum(coefficients[name] * values[name] for name in coefficients)


def _key(target: str, precision: str) -> str:
    """runtime/cost_coefficients.py's key of (target, precision)."""
    return "/".join(SAME_AS.get((target, precision), (target, precision)))


def coefficients(target: str, precision: str) -> dict:
    """The fitted entry of (target, precision); CostModelError for an unknown target, a precision it does not run,
    or a pair not measured yet."""
    from rnnedge.runtime.cost_coefficients import COEFFICIENTS

    if target not in TARGETS:
        raise CostModelError(f"unknown target {target!r}: one of {', '.join(TARGETS)}")
    if precision not in TARGETS[target]["precisions"]:
        raise CostModelError(f"{target} runs firmware_ref's {', '.join(TARGETS[target]['precisions'])} step, not "
                             f"{precision}")
    key = _key(target, precision)
    if key not in COEFFICIENTS:
        raise CostModelError(f"{target} {precision} has not been measured yet: no cost-model coefficients for it "
                             "(runtime/cost_coefficients.py; `make cost-fit` measures and fits them when firmware_ref "
                             f"builds for {TARGETS[target]['board']})")
    return COEFFICIENTS[key]


def measured_precisions(target: str) -> list[str]:
    """The precisions `target` runs that have coefficients (CostModelError for an unknown target)."""
    from rnnedge.runtime.cost_coefficients import COEFFICIENTS

    if target not in TARGETS:
        raise CostModelError(f"unknown target {target!r}: one of {', '.join(TARGETS)}")
    return [p for p in TARGETS[target]["precisions"] if _key(target, p) in COEFFICIENTS]


def predict(spec: dict, target: str, precision: str) -> dict:
    """Predicted cost of one step of `spec` in `precision` on `target` (module docstring): instructions per step and
    per MAC, flash (library code and constants, model constants) and RAM (state, scratch, stack)."""
    entry = coefficients(target, precision)
    f = features(spec)
    instructions = _dot(entry["instructions"], f)
    macs = sum(f[f"{g}_macs"] for g in ("lstm", "gru", "rnn")) + f["head_macs"]
    model_const = _dot(entry["model_const"], const_features(spec))
    ram = ram_bytes(spec, precision)
    return {
        "target": target, "precision": precision, "cpu": TARGETS[target]["cpu"],
        "instructions_per_step": round(instructions), "macs_per_step": macs,
        "instructions_per_mac": instructions / macs if macs else None,
        "flash": {"library_code": entry["library_code_bytes"], "library_const": entry["library_const_bytes"],
                  "model_const": round(model_const)},
        "ram": {"state": ram["state"], "scratch": ram["scratch"], "stack": entry["stack_bytes"]},
        "fit": {"shapes": len(entry["fit"]["shapes"]), "max_relative_residual": entry["fit"]["max_relative_residual"],
                "measured": entry["fit"]["measured"]},
        "outside_fit": outside_fit(spec, entry["fit"], instructions),
    }


def outside_fit(spec: dict, fit: dict, instructions: float) -> str | None:
    """Why the prediction extrapolates (a vector wider, more layers, or fewer instructions than any fitted shape),
    or None. The fixed costs of a step weigh more in a tiny model, where a linear fit is least accurate."""
    widths = [specs.input_size(spec), *(layer["hidden"] for layer in spec["layers"])]
    reasons = []
    smallest = min(s["measured"] for s in fit["shapes"])
    if instructions < smallest:
        reasons.append(f"a step smaller than the smallest fitted one ({smallest:,.0f} instructions)")
    if max(widths) > fit["max_width"]:
        reasons.append(f"a vector of {max(widths)} values (the fitted shapes reach {fit['max_width']})")
    if len(spec["layers"]) > fit["max_layers"]:
        reasons.append(f"{len(spec['layers'])} layers (the fitted shapes reach {fit['max_layers']})")
    return f"extrapolated: {' and '.join(reasons)}" if reasons else None


def summary(p: dict) -> str:
    """One line: the prediction of `predict` in words."""
    flash, ram = p["flash"], p["ram"]
    per_mac = f", {p['instructions_per_mac']:.2f} per MAC" if p["instructions_per_mac"] else ""
    note = f" ({p['outside_fit']})" if p.get("outside_fit") else ""
    return (f"{p['target']} {p['precision']}: ~{p['instructions_per_step']:,} instructions per step{per_mac} "
            f"(QEMU instruction counts, not cycles){note}; flash {flash['library_code'] + flash['library_const']:,} B "
            f"library + {flash['model_const']:,} B model constants; RAM {ram['state']:,} B state + "
            f"{ram['scratch']:,} B scratch + ~{ram['stack']:,} B stack")
