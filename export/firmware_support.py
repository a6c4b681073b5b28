"""What firmware_ref/ can run: the ONNX layer extensions and hidden head activations each precision's C step
implements (FIRMWARE_EXTENSIONS, firmware_unsupported, check_firmware_runs), whether a model needs the library built
with them (uses_firmware_extensions), and the RAM a stream needs (model_sizes)."""

from __future__ import annotations

from rnnedge.runtime import layout
from rnnedge.runtime import spec as specs

# f32 / int8w: every extension that can stream (rnnedge.h RNNEDGE_EXT_FLOAT; a reverse layer cannot)
FLOAT_FIRMWARE_EXTENSIONS = ("linear_before_reset", "input_forget", "peepholes", "clip", "activations",
                             "initial_state")
# The ONNX layer extensions (runtime/spec.py EXTENSIONS) each precision's C step implements; a model using any
# other one gets no firmware sources in that precision (firmware_unsupported names what is missing)
FIRMWARE_EXTENSIONS = {"f32": frozenset(FLOAT_FIRMWARE_EXTENSIONS), "int8w": frozenset(FLOAT_FIRMWARE_EXTENSIONS),
                       "int8": frozenset({"linear_before_reset", "input_forget", "peepholes", "clip",
                                          "initial_state"})}


# The hidden head layers' activations (runtime/spec.py HIDDEN_ACTIVATIONS) each precision's C head implements
FIRMWARE_HIDDEN_ACTIVATIONS = {precision: frozenset(specs.HIDDEN_ACTIVATIONS) for precision in FIRMWARE_EXTENSIONS}


def firmware_unsupported(spec: dict, precision: str) -> list[str]:
    """What firmware_ref/'s `precision` step cannot run in this spec, one "layers[l] <extension>" per layer and ONNX
    layer extension (runtime/spec.py) outside FIRMWARE_EXTENSIONS[precision], and one "head.hidden[k] <activation>"
    per hidden head layer outside FIRMWARE_HIDDEN_ACTIVATIONS[precision]. [] = it runs the spec's layers and head."""
    if precision not in FIRMWARE_EXTENSIONS:
        raise ValueError(f"precision {precision!r} is not supported (supported: {', '.join(FIRMWARE_EXTENSIONS)})")
    return ([f"layers[{l}] {key}" for l, layer in enumerate(spec["layers"]) for key in specs.extensions(layer)
             if key not in FIRMWARE_EXTENSIONS[precision]]
            + [f"head.hidden[{k}] {dense['activation']}" for k, dense in enumerate(specs.head_hidden(spec))
               if dense["activation"] not in FIRMWARE_HIDDEN_ACTIVATIONS[precision]])


def check_firmware_runs(spec: dict, precision: str, artifact_path) -> None:
    """Raise ValueError naming why firmware_ref/ cannot run this model in `precision`: ONNX layer extensions its C
    step does not implement (each layer and extension), or a layer that cannot stream (bidirectional or reverse:
    the firmware steps one sample at a time)."""
    missing = firmware_unsupported(spec, precision)
    if missing:
        raise ValueError(f"{artifact_path}: firmware_ref's {precision} step does not implement these parts of the "
                         f"model (ONNX layer extensions, hidden head layers): {', '.join(missing)}")
    if not specs.can_stream(spec):
        raise ValueError(f"{artifact_path}: the model has a bidirectional or reverse layer, which the firmware (one "
                         "step at a time) cannot run")


def uses_firmware_extensions(spec: dict) -> bool:
    """True when a layer of the spec has ONNX layer extension flags (runtime/layout.py layer_flags) or the head has
    hidden dense layers: its firmware needs firmware_ref built with RNNEDGE_EXTENSIONS 1 (the default); False:
    PyTorch's cells and a single linear head, which a library built with -DRNNEDGE_EXTENSIONS=0 runs."""
    return any(layout.layer_flags(layer) != 0 for layer in spec["layers"]) or bool(specs.head_hidden(spec))


def model_sizes(spec: dict, precision: str = "int8") -> dict[str, int]:
    """Elements of state and scratch a stream of this forward-only spec needs (rnnedge.h's macros): int16 for
    int8, float for f32 and int8w.

    The layer part of the scratch is the widest layer's RNNEDGE_LAYER_SCRATCH_LEN (G gate sums, + H for a GRU), or
    the hidden head layers' outputs (the sum of their units), whichever is larger.
    In front of it: int8 tokens, the widened embedding row; f32/int8w dense, the normalised input; int8w tokens,
    the dequantised embedding row (f32 tokens read the row in place, int8 dense takes the caller's x_q).
    """
    state = sum(2 * layer["hidden"] if layer["cell"] == "lstm" else layer["hidden"] for layer in spec["layers"])
    layer_scratch = max(specs.GATES[layer["cell"]] * layer["hidden"] + (layer["hidden"] if layer["cell"] == "gru"
                                                                          else 0) for layer in spec["layers"])
    layer_scratch = max(layer_scratch, layout.head_scratch(spec))
    tokens = spec["input"]["kind"] == "tokens"
    front = tokens if precision == "int8" else not (tokens and precision == "f32")
    return {"state": state, "scratch": (specs.input_size(spec) if front else 0) + layer_scratch}
