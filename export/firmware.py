"""C sources for firmware_ref/: an int8 weight file as const C arrays, and golden vectors as a C header.

`write_model_sources(artifact_path, out_dir)` writes `<prefix>_data.h` and `<prefix>_data.c` (prefix "model"):
every tensor of a `model.int8.safetensors` file as a const array in PyTorch's layout (row-major W (rows, cols),
which is the C library's layout too), the layer and model structs of firmware_ref/include/rnnedge.h
(`const rnnedge_model_int8 model`), and macros for the dimensions and the RAM a stream needs:

    MODEL_STATE_LEN / MODEL_STATE_BYTES       int16 state: every layer's h (and c), export/vectors.py's layout
    MODEL_SCRATCH_LEN / MODEL_SCRATCH_BYTES   int16 scratch of one model step
    MODEL_RAM_BYTES                           their sum: all the RAM a stream needs besides the call stack
    MODEL_CONST_BYTES                         bytes of the integer model's const arrays (flash)

The integer requantisation constants stay integer multiplier/shift pairs (Mx, Sx, Mh, Sh per gate row, the
artifact's requant and shift). The two float steps outside the integer model get float32 arrays, written as
exact hexadecimal literals: the dense input's normalisation and scale (`<prefix>_input_mean`, `_input_std`,
MODEL_INPUT_SCALE; rnnedge_quantize_input_f32) and the head's dequantisation scales (`<prefix>_head_scale`).

`write_float_model_sources(artifact_path, out_dir)` does the same for `model.f32.safetensors` and
`model.int8w.safetensors` (`const rnnedge_model_f32 model` / `rnnedge_model_int8w model`): every float as an exact
hexadecimal literal, int8w's matrices int8 with their per-row float scales; the macros are counted in floats.
A layer with ONNX layer extensions gets its `ext` field (rnnedge_ext_f32: flags, clip, functions, peepholes p, h0,
c0), written only for a layer that has any; f32 and int8w run every extension that can stream.

`write_vector_sources(vectors_path, out_dir)` writes `vectors_data.h`: int8 vectors' inputs, expected state after
every step and expected integer logits, for firmware_ref/tests/host_test.c; f32 / int8w vectors' inputs, expected
float state and outputs, for firmware_ref/tests/host_test_float.c.

`write_firmware_sources(artifact_path, vectors_path, out_dir)` writes all three for a weight file of any precision.

Each precision's C step implements the ONNX layer extensions (runtime/spec.py) FIRMWARE_EXTENSIONS names; every
writer refuses a spec with any other, naming each layer and extension (firmware_unsupported, check_firmware_runs),
and a model with a reverse or bidirectional layer (the firmware streams). int8: a layer's extensions are fields of
its rnnedge_layer_int8 (flags, clip_q, h0, c0, peep, peep_mult, peep_shift), written only for a layer that has any.

Both files' first line says what generated them and from which weight file (name and rnnedge.sha256), and from
which checkpoint when the caller names it.

firmware_ref can be built without the extensions' code (-DRNNEDGE_EXTENSIONS=0, its Makefile's EXTENSIONS=0), a
smaller library for models of PyTorch's cells. Every `<prefix>_data.h` says which its model needs:
`<P>_USES_EXTENSIONS` is 1 when a layer has extension flags (uses_firmware_extensions), 0 otherwise, so a build
system can pick the flag; a header with 1 also stops the compile with an #error naming the model, its layers'
extensions and the fix when RNNEDGE_EXTENSIONS is 0, so a mismatched build fails at compile time (and a library
built with 0 refuses such a model at run time: RNNEDGE_ERR_UNSUPPORTED).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from export.vectors import read_vectors
from runtime import artifact, layout
from runtime import spec as specs
from runtime.int8_math import SIGMOID_TABLE_Q16
from runtime.layout import F_CLIP, F_INIT, F_INPUT_FORGET, F_PEEPHOLES, F_RESET_BEFORE, L_CLIP_Q, L_FLAGS

GENERATOR = "rnnedge export/firmware.py"
CELL_MACRO = {"rnn_tanh": "RNNEDGE_CELL_RNN_TANH", "rnn_relu": "RNNEDGE_CELL_RNN_RELU",
              "lstm": "RNNEDGE_CELL_LSTM", "gru": "RNNEDGE_CELL_GRU"}
VECTORS_HEADER = "vectors_data.h"
PER_LINE = 16  # array values per source line


def _c_int(v: int) -> str:
    v = int(v)
    return "INT32_MIN" if v == -(2**31) else str(v)  # -2147483648 is not an int literal in C


def _c_float(v) -> str:
    """An exact float32 literal: hexadecimal (C99), e.g. 0x1.8p-3f."""
    v = float(np.float32(v))
    if not np.isfinite(v):
        raise ValueError(f"cannot write {v} as a C float constant")
    if v == 0:
        return "0.0f"
    mantissa, exponent = v.hex().split("p")
    return f"{mantissa.rstrip('0')}p{exponent}f"  # 0x1.8p-3f; "0x1.p+0f" is valid C99 too


def _values(arr: np.ndarray, fmt=_c_int, indent: str = "    ") -> str:
    flat = [fmt(v) for v in np.asarray(arr).ravel()]
    lines = [", ".join(flat[i : i + PER_LINE]) for i in range(0, len(flat), PER_LINE)]
    return indent + (",\n" + indent).join(lines)


def _array(ctype: str, name: str, arr: np.ndarray, static: bool = True, fmt=_c_int) -> str:
    """A const C array: 1-D as is; 2-D (rows, cols) with one braced row each (vectors, indexed [t][k])."""
    arr = np.asarray(arr)
    qualifier = "static const" if static else "const"
    if arr.ndim == 2:
        rows = ",\n".join("    {\n" + _values(row, fmt, "        ") + "\n    }" for row in arr)
        return f"{qualifier} {ctype} {name}[{arr.shape[0]}][{arr.shape[1]}] = {{\n{rows}\n}};\n"
    return f"{qualifier} {ctype} {name}[{arr.size}] = {{\n{_values(arr, fmt)}\n}};\n"


def _flat_array(ctype: str, name: str, arr: np.ndarray) -> str:
    """A weight tensor as a flat static const array, row-major, its shape in a comment."""
    arr = np.asarray(arr)
    shape = " x ".join(str(n) for n in arr.shape)
    return f"/* {name}: ({shape}) row-major */\n" + _array(ctype, name, arr.ravel())


def _check_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise ValueError(f"prefix {prefix!r} is not a C identifier")
    return prefix


def _origin(artifact_path, sha256: str, checkpoint) -> str:
    text = f"Generated by {GENERATOR} from {os.path.basename(os.fspath(artifact_path))} (rnnedge.sha256 {sha256})"
    if checkpoint is not None:
        text += f", exported from checkpoint {os.fspath(checkpoint)}"
    return text.replace("*/", "* /") + ". Do not edit."


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


# The extension bits (runtime/layout.py F_*) as a generated header names them in its #error
_FLAG_NAMES = ((layout.F_RESET_BEFORE, "linear_before_reset=0"), (layout.F_INPUT_FORGET, "input_forget"),
               (layout.F_PEEPHOLES, "peepholes"), (layout.F_CLIP, "clip"), (layout.F_ACTIVATIONS, "activations"),
               (layout.F_INIT, "initial_state"), (layout.F_REVERSE, "reverse"))


def uses_firmware_extensions(spec: dict) -> bool:
    """True when a layer of the spec has ONNX layer extension flags (runtime/layout.py layer_flags) or the head has
    hidden dense layers: its firmware needs firmware_ref built with RNNEDGE_EXTENSIONS 1 (the default); False:
    PyTorch's cells and a single linear head, which a library built with -DRNNEDGE_EXTENSIONS=0 runs."""
    return any(layout.layer_flags(layer) != 0 for layer in spec["layers"]) or bool(specs.head_hidden(spec))


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _extensions_guard(P: str, p: str, artifact_path, flags: list[int], hidden: int = 0) -> str:
    """model_data.h's <P>_USES_EXTENSIONS macro, and for a model with extensions (any layer flags != 0, or `hidden`
    dense layers in its head) the #error a compile with RNNEDGE_EXTENSIONS 0 stops at."""
    used = [f"layer {l}: {', '.join(name for bit, name in _FLAG_NAMES if f & bit)}" for l, f in enumerate(flags)
            if f != 0] + ([f"head: {hidden} hidden dense layer{'s' if hidden > 1 else ''}"] if hidden else [])
    if not used:
        return (f"/* {P}_USES_EXTENSIONS 0: PyTorch's cells only, no ONNX layer extension, so firmware_ref may be\n"
                " * built without the extensions' code (-DRNNEDGE_EXTENSIONS=0, Makefile EXTENSIONS=0): a smaller\n"
                " * library. */\n"
                f"#define {P}_USES_EXTENSIONS 0\n")
    name = os.path.basename(os.fspath(artifact_path))
    what = "extension code" if hidden else "ONNX layer extensions"
    message = f"{p} ({name}) uses {what} ({'; '.join(used)}): build firmware_ref without -DRNNEDGE_EXTENSIONS=0"
    return (f"/* {P}_USES_EXTENSIONS 1: layers with ONNX layer extensions or a head with hidden dense layers,\n"
            " * which firmware_ref runs only when\n"
            " * built with them (RNNEDGE_EXTENSIONS 1, the default): with -DRNNEDGE_EXTENSIONS=0 this header stops\n"
            " * here. */\n"
            f"#define {P}_USES_EXTENSIONS 1\n"
            "#if defined(RNNEDGE_EXTENSIONS) && !RNNEDGE_EXTENSIONS\n"
            f"#error {_c_string(message)}\n"
            "#endif\n")


def sigmoid_table_source() -> str:
    """firmware_ref/src/rnnedge_tables.c: runtime.int8_math.SIGMOID_TABLE_Q16 as a const uint16_t array."""
    rows = [", ".join(f"{int(v)}u" for v in SIGMOID_TABLE_Q16[i : i + 12]) for i in range(0, 256, 12)]
    body = "    " + ",\n    ".join(rows)
    return f"""/*
 * rnnedge_tables.c: the sigmoid table of the int8 precision's gate activations (runtime/int8_math.py).
 *
 * TABLE[k] = min(65535, round(65536 * sigmoid(k / 24))), k = 0..255, unsigned Q0.16. Written by
 * export/firmware.py's sigmoid_table_source(); tests/firmware/test_host.py checks it equals
 * runtime.int8_math.SIGMOID_TABLE_Q16.
 */
#include "rnnedge.h"

const uint16_t rnnedge_sigmoid_table_q16[256] = {{
{body}
}};
"""


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


def write_model_sources(artifact_path, out_dir, prefix: str = "model", checkpoint=None) -> list[Path]:
    """Write `<prefix>_data.h` and `<prefix>_data.c` for an int8 weight file; returns their paths.

    checkpoint: the checkpoint the weight file was exported from, named in the first line when given.
    The header defines <P>_USES_EXTENSIONS (1 for a layer with extension flags, with an #error under
    -DRNNEDGE_EXTENSIONS=0; else 0).
    Raises ArtifactError for a bad weight file, ValueError for another precision, a bidirectional or reverse model
    or one with ONNX layer extensions outside FIRMWARE_EXTENSIONS["int8"] (check_firmware_runs).
    """
    prefix = _check_prefix(prefix)
    spec, precision, t = artifact.read(artifact_path)
    if precision != "int8":
        raise ValueError(f"{artifact_path}: write_model_sources writes int8 weight files, this one is {precision} "
                         "(write_float_model_sources or write_firmware_sources write f32 and int8w ones)")
    check_firmware_runs(spec, precision, artifact_path)
    sha = artifact.sha256(spec, precision, t)
    origin = _origin(artifact_path, sha, checkpoint)
    P, p = prefix.upper(), prefix
    dense = spec["input"]["kind"] == "dense"
    n_in, out = specs.input_size(spec), spec["head"]["out"]
    sizes = model_sizes(spec)

    arrays: list[str] = []
    const_bytes = 0

    def add(ctype: str, name: str, arr: np.ndarray) -> str:
        nonlocal const_bytes
        arrays.append(_flat_array(ctype, name, arr))
        const_bytes += np.asarray(arr).nbytes
        return name

    if not dense:
        add("int8_t", f"{p}_embedding", t["embedding.weight"])
    rows = layout.build(spec, t, "int8")  # the runtime's flags and integer clip of every layer
    layer_inits = []
    state_lines = []
    offset = 0
    for l, layer in enumerate(spec["layers"]):
        q, H = f"layers.{l}.fwd", layer["hidden"]
        n = f"{p}_l{l}"
        requant, shift = t[f"{q}.requant"], t[f"{q}.shift"]
        fields = {
            "cell": CELL_MACRO[layer["cell"]], "bidirectional": "0",
            "n_in": str(t[f"{q}.w_ih"].shape[1]), "hidden": str(H),
            "w_ih": add("int8_t", f"{n}_w_ih", t[f"{q}.w_ih"]),
            "w_hh": add("int8_t", f"{n}_w_hh", t[f"{q}.w_hh"]),
            "b_x": add("int32_t", f"{n}_b_x", t[f"{q}.b_ih"]),
            # a gru's b_hn: linear_before_reset only (otherwise it is folded into b_x, and the file has no b_hh)
            "b_hn": add("int32_t", f"{n}_b_hn", t[f"{q}.b_hh"]) if f"{q}.b_hh" in t else "0",
            "mult_x": add("int32_t", f"{n}_mult_x", requant[0]),
            "shift_x": add("int8_t", f"{n}_shift_x", shift[0]),
            "mult_h": add("int32_t", f"{n}_mult_h", requant[1]),
            "shift_h": add("int8_t", f"{n}_shift_h", shift[1]),
            "cell_power": str(int(np.asarray(t[f"layers.{l}.cell_power"]).reshape(-1)[0])),
            **_extension_fields(rows.layers[2 * l], layer, t, q, n, add),
        }
        layer_inits.append("    {\n" + "".join(f"        .{k} = {v},\n" for k, v in fields.items()) + "    }")
        for part in ("h", "c") if layer["cell"] == "lstm" else ("h",):
            state_lines.append(f"#define {P}_LAYER{l}_{part.upper()} {offset} /* state[{offset}, {offset + H}): "
                               f"layer {l} {part} ({layer['cell']}, H = {H}) */")
            offset += H
    dense_inits = []
    for k, dense_layer in enumerate(specs.head_hidden(spec)):
        q, n = f"head.hidden.{k}", f"{p}_dense{k}"
        fields = {"n_in": str(t[f"{q}.weight"].shape[1]), "units": str(dense_layer["units"]),
                  "activation": f"RNNEDGE_HIDDEN_{dense_layer['activation'].upper()}",
                  "w": add("int8_t", f"{n}_w", t[f"{q}.weight"]), "b": add("int32_t", f"{n}_b", t[f"{q}.bias"]),
                  "mult": add("int32_t", f"{n}_mult", t[f"{q}.requant"]),
                  "shift": add("int8_t", f"{n}_shift", t[f"{q}.shift"])}
        dense_inits.append("    {\n" + "".join(f"        .{key} = {v},\n" for key, v in fields.items()) + "    }")
    add("int8_t", f"{p}_head_w", t["head.weight"])
    add("int32_t", f"{p}_head_b", t["head.bias"])
    model_fields = {
        "input_kind": "RNNEDGE_INPUT_DENSE" if dense else "RNNEDGE_INPUT_TOKENS", "n_in": str(n_in),
        "vocab": "0" if dense else str(spec["input"]["vocab"]), "embedding": "0" if dense else f"{p}_embedding",
        "n_layers": str(len(spec["layers"])), "layers": f"{p}_layers",
        **({"n_dense": str(len(dense_inits)), "dense": f"{p}_dense"} if dense_inits else {}), "out": str(out),
        "head_in": str(specs.head_input_sizes(spec)[-1]), "head_w": f"{p}_head_w", "head_b": f"{p}_head_b",
        "state_len": f"{P}_STATE_LEN", "scratch_len": f"{P}_SCRATCH_LEN",
    }
    floats = []
    if dense:
        floats.append(_array("float", f"{p}_input_mean", np.asarray(spec["input"]["mean"], np.float32), False,
                             _c_float))
        floats.append(_array("float", f"{p}_input_std", np.asarray(spec["input"]["std"], np.float32), False,
                             _c_float))
    floats.append(_array("float", f"{p}_head_scale", t["head.scale"], False, _c_float))

    extended = [f"layer {l}: {', '.join(specs.extensions(layer))}" for l, layer in enumerate(spec["layers"])
                 if specs.extensions(layer)]
    extension_note = ""
    if extended:
        extension_note = (" *\n * ONNX layer extensions (runtime/spec.py; rnnedge_layer_int8 flags): "
                          + "; ".join(extended) + ".\n")
        if any(layer.get("initial_state") for layer in spec["layers"]):
            extension_note += (" * rnnedge_state_reset_int8 starts a layer with initial_state from its h0 (and c0), "
                               "the others from zeros.\n")
    guard = f"{P}_DATA_H"
    guard_ext = _extensions_guard(P, p, artifact_path, [int(rows.layers[2 * l][L_FLAGS])
                                                        for l in range(len(spec["layers"]))],
                                  len(specs.head_hidden(spec)))
    float_decls = [(f"extern const float {p}_head_scale[{out}]; /* logit o is logits[o] * {p}_head_scale[o], "
                    f"then the head's activation ({spec['head']['activation']}) */")]
    if dense:
        float_decls = [
            f"extern const float {p}_input_mean[{n_in}]; /* spec input.mean */",
            f"extern const float {p}_input_std[{n_in}];  /* spec input.std */",
            f"#define {P}_INPUT_SCALE {_c_float(t['input.scale'][0])} /* s_x, the quantised input's scale */",
        ] + float_decls
    header = f"""/* {origin} */
/*
 * The int8 model as const data for firmware_ref/include/rnnedge.h. A stream needs {P}_STATE_LEN int16 of
 * state and {P}_SCRATCH_LEN int16 of scratch, both owned by the caller:
 *
 *     static int16_t state[{P}_STATE_LEN], scratch[{P}_SCRATCH_LEN];
 *     rnnedge_state_int8 s = {{state, scratch}};
 *     rnnedge_state_reset_int8(&{p}, &s);
 *     status = rnnedge_model_step_{'dense' if dense else 'tokens'}_int8(&{p}, &s, {'x_q' if dense else 'token'}, logits);
{extension_note} */
#ifndef {guard}
#define {guard}

#include "rnnedge.h"

{guard_ext}
#define {P}_ARTIFACT "{os.path.basename(os.fspath(artifact_path))}"
#define {P}_ARTIFACT_SHA256 "{sha}"
#define {P}_INPUT_KIND {model_fields['input_kind']}
#define {P}_N_IN {n_in} /* {'features' if dense else 'embedding width'} */
#define {P}_VOCAB {model_fields['vocab']}
#define {P}_N_LAYERS {len(spec['layers'])}
#define {P}_OUT {out}
#define {P}_STATE_LEN {sizes['state']} /* int16 */
#define {P}_STATE_BYTES {2 * sizes['state']}
#define {P}_SCRATCH_LEN {sizes['scratch']} /* int16 */
#define {P}_SCRATCH_BYTES {2 * sizes['scratch']}
#define {P}_RAM_BYTES ({P}_STATE_BYTES + {P}_SCRATCH_BYTES) /* per stream */
#define {P}_CONST_BYTES {const_bytes} /* the integer model's const arrays */

/* state layout (export/vectors.py state_layout): offsets into state */
{chr(10).join(state_lines)}

extern const rnnedge_model_int8 {p};

/* The float steps outside the integer model (host or FPU side). */
{chr(10).join(float_decls)}

#endif /* {guard} */
"""
    source = (f"/* {origin} */\n#include \"{p}_data.h\"\n\n" + "\n".join(arrays)
              + f"\nstatic const rnnedge_layer_int8 {p}_layers[{len(layer_inits)}] = {{\n"
              + ",\n".join(layer_inits) + "\n};\n\n"
              + (f"static const rnnedge_dense_int8 {p}_dense[{len(dense_inits)}] = {{\n"
                 + ",\n".join(dense_inits) + "\n};\n\n" if dense_inits else "")
              + f"const rnnedge_model_int8 {p} = {{\n"
              + "".join(f"    .{k} = {v},\n" for k, v in model_fields.items()) + "};\n\n"
              + "\n".join(floats))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{p}_data.h", out_dir / f"{p}_data.c"]
    paths[0].write_text(header)
    paths[1].write_text(source)
    return paths


EXT_MACRO = {F_RESET_BEFORE: "RNNEDGE_EXT_RESET_BEFORE", F_INPUT_FORGET: "RNNEDGE_EXT_INPUT_FORGET",
             F_PEEPHOLES: "RNNEDGE_EXT_PEEPHOLES", F_CLIP: "RNNEDGE_EXT_CLIP", F_INIT: "RNNEDGE_EXT_INIT"}


def _extension_fields(row: np.ndarray, layer: dict, t: dict, q: str, n: str, add) -> dict[str, str]:
    """The rnnedge_layer_int8 fields of a layer's ONNX extensions, from its runtime layout row (L_FLAGS, L_CLIP_Q):
    none for PyTorch's cell (flags 0), else flags, and clip_q, h0 / c0, peep / peep_mult / peep_shift for the
    extensions that need them; `add` writes each array."""
    flags = int(row[L_FLAGS])
    if flags == 0:
        return {}
    unknown = flags & ~sum(EXT_MACRO)
    if unknown:
        raise ValueError(f"layer flags {unknown} have no firmware_ref int8 counterpart")
    fields = {"flags": " | ".join(macro for bit, macro in EXT_MACRO.items() if flags & bit)}
    if flags & F_CLIP:
        fields["clip_q"] = str(int(row[L_CLIP_Q]))
    if flags & F_INIT:
        fields["h0"] = add("int16_t", f"{n}_h0", t[f"{q}.h0"])
        if layer["cell"] == "lstm":
            fields["c0"] = add("int16_t", f"{n}_c0", t[f"{q}.c0"])
    if flags & F_PEEPHOLES:
        fields["peep"] = add("int16_t", f"{n}_peep", t[f"{q}.p"])
        fields["peep_mult"] = add("int32_t", f"{n}_peep_mult", t[f"{q}.p_requant"])
        fields["peep_shift"] = add("int8_t", f"{n}_peep_shift", t[f"{q}.p_shift"])
    return fields


def write_vector_sources(vectors_path, out_dir) -> Path:
    """Write `vectors_data.h` (VEC_* macros, vec_* arrays) from a vectors file; returns its path.

    int8: the raw inputs (dense: float32 exactly, and the expected quantised input_q; tokens: the ids), the
    expected state after every step (int16) with a name per state position, and the expected int32 logits.
    f32 / int8w (for firmware_ref/tests/host_test_float.c): the raw inputs, the expected float state and the
    expected float outputs after every step, every float an exact hexadecimal literal. Raises VectorsError for a
    bad file, ValueError for vectors of a model with ONNX layer extensions (check_firmware_runs).
    """
    meta, v = read_vectors(vectors_path)
    check_firmware_runs(meta["spec"], meta["precision"], vectors_path)
    return _write_vectors_header(vectors_path, meta, v, out_dir)


def _write_vectors_header(vectors_path, meta: dict, v: dict[str, np.ndarray], out_dir) -> Path:
    """vectors_data.h (write_vector_sources): int8 (for host_test.c) inputs (dense: also input_q), int16 state and
    int32 logits per step; f32 / int8w (for host_test_float.c) inputs, float state and outputs per step."""
    spec = meta["spec"]
    integer = meta["precision"] == "int8"
    dense = spec["input"]["kind"] == "dense"
    steps, S, out = meta["steps"], v["state"].shape[1], spec["head"]["out"]
    names = [f'"layer {l} {part}[{j}]"' for l, part, _, n in meta["state_layout"] for j in range(n)]
    origin = (f"Generated by {GENERATOR} from {os.path.basename(os.fspath(vectors_path))} (sha256 {meta['sha256']}), "
              f"golden vectors of {meta['artifact']} (rnnedge.sha256 {meta['artifact_sha256']}). Do not edit.")
    driver = "host_test.c" if integer else "host_test_float.c"
    parts = [f"/* {origin} */",
             f"/* Included once, by firmware_ref/tests/{driver}: every array is static. */",
             "#ifndef VECTORS_DATA_H", "#define VECTORS_DATA_H", "", "#include <stdint.h>", ""]
    if not integer:
        parts.append(f'#define VEC_PRECISION "{meta["precision"]}"')
    parts += [f'#define VEC_ARTIFACT "{meta["artifact"]}"',
              f'#define VEC_ARTIFACT_SHA256 "{meta["artifact_sha256"]}"',
              f"#define VEC_STEPS {steps}", f"#define VEC_N_IN {specs.input_size(spec)}",
              f"#define VEC_STATE_LEN {S}", f"#define VEC_OUT {out}",
              f"#define VEC_INPUT_DENSE {1 if dense else 0}", ""]
    if dense:
        parts.append(_array("float", "vec_input", v["input"], fmt=_c_float))
        if integer:
            parts.append(_array("int16_t", "vec_input_q", v["input_q"]))
    else:
        parts.append(_array("int32_t", "vec_tokens", v["input"]))
    if integer:
        parts.append(_array("int16_t", "vec_state", v["state"]))
        parts.append(_array("int32_t", "vec_logits", v["logits_q"]))
    else:
        parts.append(_array("float", "vec_state", v["state"], fmt=_c_float))
        parts.append(_array("float", "vec_output", v["output"], fmt=_c_float))
    parts.append(f"static const char *const vec_state_names[{S}] = {{\n    " + ",\n    ".join(names) + "\n};\n")
    parts.append("#endif /* VECTORS_DATA_H */\n")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / VECTORS_HEADER
    path.write_text("\n".join(parts))
    return path


# -- f32 and int8w --------------------------------------------------------------------------------------------

FLOAT_PRECISIONS = ("f32", "int8w")
ACT_MACRO = {"none": "RNNEDGE_ACT_NONE", "softmax": "RNNEDGE_ACT_SOFTMAX", "sigmoid": "RNNEDGE_ACT_SIGMOID",
             "log_softmax": "RNNEDGE_ACT_LOG_SOFTMAX"}
FLOAT_EXT_MACRO = {layout.F_RESET_BEFORE: "RNNEDGE_EXT_RESET_BEFORE", layout.F_INPUT_FORGET: "RNNEDGE_EXT_INPUT_FORGET",
                   layout.F_PEEPHOLES: "RNNEDGE_EXT_PEEPHOLES", layout.F_CLIP: "RNNEDGE_EXT_CLIP",
                   layout.F_ACTIVATIONS: "RNNEDGE_EXT_ACTIVATIONS", layout.F_INIT: "RNNEDGE_EXT_INIT"}


def _float_extension_fields(layer: dict, t: dict, q: str, n: str, add) -> dict[str, str]:
    """The `ext` field (rnnedge_ext_f32) of a float layer with ONNX extensions; none for PyTorch's cell (the zero
    initialiser). flags are runtime/layout.py's layer_flags; clip, the functions (spec.functions: code, alpha, beta)
    and the peephole / initial-state arrays only for the extensions that use them; `add` writes each array."""
    flags = layout.layer_flags(layer)
    if flags == 0:
        return {}
    unknown = flags & ~sum(FLOAT_EXT_MACRO)
    if unknown:
        raise ValueError(f"layer flags {unknown} have no firmware_ref float counterpart")
    ext = {"flags": " | ".join(macro for bit, macro in FLOAT_EXT_MACRO.items() if flags & bit)}
    if layer.get("clip") is not None:
        ext["clip"] = _c_float(layer["clip"])
    if "activations" in layer:
        ext["fn"] = "{" + ", ".join(f"{{RNNEDGE_FN_{name.upper()}, {_c_float(alpha)}, {_c_float(beta)}}}"
                                    for name, alpha, beta in specs.functions(layer, 0)) + "}"
    if layer.get("peepholes"):
        ext["p"] = add(f"{n}_p", t[f"{q}.p"])
    if layer.get("initial_state"):
        ext["h0"] = add(f"{n}_h0", t[f"{q}.h0"])
        if layer["cell"] == "lstm":
            ext["c0"] = add(f"{n}_c0", t[f"{q}.c0"])
    body = "".join(f"            .{k} = {v},\n" for k, v in ext.items())
    return {"ext": "{\n" + body + "        }"}


def write_float_model_sources(artifact_path, out_dir, prefix: str = "model", checkpoint=None) -> list[Path]:
    """Write `<prefix>_data.h` and `<prefix>_data.c` for an f32 or int8w weight file; returns their paths.

    The model as `const rnnedge_model_f32 <prefix>` (or rnnedge_model_int8w) of firmware_ref/include/rnnedge.h:
    every tensor a flat const array in the weight file's layout (PyTorch's row-major W (rows, cols)), every float
    an exact hexadecimal literal; int8w keeps its int8 matrices and their per-row float scales, its b_ih folded
    and a GRU's b_hn (b_hh) as the file holds them. The macros are the int8 header's, counted in floats
    (<P>_STATE_LEN, <P>_SCRATCH_LEN, their _BYTES, <P>_RAM_BYTES, <P>_CONST_BYTES: every const array), plus
    <P>_PRECISION ("f32" or "int8w"), <P>_PRECISION_F32 or <P>_PRECISION_INT8W (1), <P>_ACTIVATION and
    <P>_USES_EXTENSIONS (as write_model_sources': 1 with the #error under -DRNNEDGE_EXTENSIONS=0, or 0).
    A layer with ONNX extensions (FIRMWARE_EXTENSIONS: every one that can stream) gets its `ext` field
    (rnnedge_ext_f32: flags, clip, functions, peepholes p, initial state h0 / c0, the arrays counted in
    <P>_CONST_BYTES); the others keep the zero initialiser, PyTorch's cell. rnnedge_state_reset_f32 / _int8w
    start a layer with initial_state from its h0 (and c0).
    Raises ArtifactError for a bad weight file, ValueError for an int8 one, a bidirectional or reverse model
    (check_firmware_runs).
    """
    prefix = _check_prefix(prefix)
    spec, precision, t = artifact.read(artifact_path)
    if precision not in FLOAT_PRECISIONS:
        raise ValueError(f"{artifact_path}: write_float_model_sources writes f32 and int8w weight files, this one "
                         f"is {precision} (write_model_sources writes int8 ones)")
    check_firmware_runs(spec, precision, artifact_path)
    sha = artifact.sha256(spec, precision, t)
    origin = _origin(artifact_path, sha, checkpoint)
    P, p = prefix.upper(), prefix
    q8 = precision == "int8w"
    kind = "int8w" if q8 else "f32"
    dense = spec["input"]["kind"] == "dense"
    n_in, out = specs.input_size(spec), spec["head"]["out"]
    sizes = model_sizes(spec, precision)

    arrays: list[str] = []
    const_bytes = 0

    def add(name: str, arr: np.ndarray, static: bool = True) -> str:
        nonlocal const_bytes
        arr = np.asarray(arr)
        if arr.dtype == np.int8:
            arrays.append(_flat_array("int8_t", name, arr))
        else:
            arr = arr.astype(np.float32)
            shape = " x ".join(str(n) for n in arr.shape)
            arrays.append(f"/* {name}: ({shape}) row-major */\n" + _array("float", name, arr.ravel(), static,
                                                                           _c_float))
        const_bytes += arr.nbytes
        return name

    model_fields: dict[str, str] = {
        "input_kind": "RNNEDGE_INPUT_DENSE" if dense else "RNNEDGE_INPUT_TOKENS", "n_in": str(n_in),
        "vocab": "0" if dense else str(spec["input"]["vocab"]),
    }
    if dense:
        model_fields["embedding"] = "0"
        if q8:
            model_fields["embedding_scale"] = "0"
        model_fields["input_mean"] = add(f"{p}_input_mean", np.asarray(spec["input"]["mean"], np.float32), False)
        model_fields["input_std"] = add(f"{p}_input_std", np.asarray(spec["input"]["std"], np.float32), False)
    else:
        model_fields["embedding"] = add(f"{p}_embedding", t["embedding.weight"])
        if q8:
            model_fields["embedding_scale"] = add(f"{p}_embedding_scale", t["embedding.weight.scale"])
        model_fields["input_mean"] = model_fields["input_std"] = "0"

    layer_inits = []
    state_lines = []
    offset = 0
    for l, layer in enumerate(spec["layers"]):
        q, H = f"layers.{l}.fwd", layer["hidden"]
        n = f"{p}_l{l}"
        fields = {"cell": CELL_MACRO[layer["cell"]], "bidirectional": "0",
                  "n_in": str(t[f"{q}.w_ih"].shape[1]), "hidden": str(H)}
        if q8:
            fields.update({
                "w_ih": add(f"{n}_w_ih", t[f"{q}.w_ih"]), "s_ih": add(f"{n}_s_ih", t[f"{q}.w_ih.scale"]),
                "w_hh": add(f"{n}_w_hh", t[f"{q}.w_hh"]), "s_hh": add(f"{n}_s_hh", t[f"{q}.w_hh.scale"]),
                "b_ih": add(f"{n}_b_ih", t[f"{q}.b_ih"]),
                # a gru's b_hn: linear_before_reset only (otherwise the file folds it into b_ih and has no b_hh)
                "b_hn": add(f"{n}_b_hn", t[f"{q}.b_hh"]) if f"{q}.b_hh" in t else "0",
            })
        else:
            fields.update({
                "w_ih": add(f"{n}_w_ih", t[f"{q}.w_ih"]), "w_hh": add(f"{n}_w_hh", t[f"{q}.w_hh"]),
                "b_ih": add(f"{n}_b_ih", t[f"{q}.b_ih"]), "b_hh": add(f"{n}_b_hh", t[f"{q}.b_hh"]),
            })
        fields.update(_float_extension_fields(layer, t, q, n, add))
        layer_inits.append("    {\n" + "".join(f"        .{k} = {v},\n" for k, v in fields.items()) + "    }")
        for part in ("h", "c") if layer["cell"] == "lstm" else ("h",):
            state_lines.append(f"#define {P}_LAYER{l}_{part.upper()} {offset} /* state[{offset}, {offset + H}): "
                               f"layer {l} {part} ({layer['cell']}, H = {H}) */")
            offset += H
    model_fields.update({"n_layers": str(len(spec["layers"])), "layers": f"{p}_layers"})
    dense_inits = []
    for k, dense_layer in enumerate(specs.head_hidden(spec)):
        q, n = f"head.hidden.{k}", f"{p}_dense{k}"
        fields = {"n_in": str(t[f"{q}.weight"].shape[1]), "units": str(dense_layer["units"]),
                  "activation": f"RNNEDGE_HIDDEN_{dense_layer['activation'].upper()}", "w": add(f"{n}_w", t[f"{q}.weight"])}
        if q8:
            fields["scale"] = add(f"{n}_scale", t[f"{q}.weight.scale"])
        fields["b"] = add(f"{n}_b", t[f"{q}.bias"])
        dense_inits.append("    {\n" + "".join(f"        .{key} = {v},\n" for key, v in fields.items()) + "    }")
    if dense_inits:
        model_fields.update({"n_dense": str(len(dense_inits)), "dense": f"{p}_dense"})
    model_fields.update({"out": str(out), "head_in": str(specs.head_input_sizes(spec)[-1]),
                         "head_w": add(f"{p}_head_w", t["head.weight"])})
    if q8:
        model_fields["head_scale"] = add(f"{p}_head_scale", t["head.weight.scale"])
    model_fields.update({"head_b": add(f"{p}_head_b", t["head.bias"]),
                         "activation": ACT_MACRO[spec["head"]["activation"]],
                         "state_len": f"{P}_STATE_LEN", "scratch_len": f"{P}_SCRATCH_LEN"})
    front = ("the normalised input" if dense else "the dequantised embedding row") if dense or q8 else ""
    widest = "the widest layer's gate sums" + (" or the hidden head layers' outputs" if dense_inits else "")
    scratch_note = f"{front} ({n_in}) + {widest}" if front else widest
    guard = f"{P}_DATA_H"
    guard_ext = _extensions_guard(P, p, artifact_path, [layout.layer_flags(layer) for layer in spec["layers"]],
                                  len(specs.head_hidden(spec)))
    input_decls = ""
    if dense:
        input_decls = (f"\n/* The dense input's normalisation (spec input.mean, input.std), also model fields. */\n"
                       f"extern const float {p}_input_mean[{n_in}];\nextern const float {p}_input_std[{n_in}];\n")
    step = "dense" if dense else "tokens"
    header = f"""/* {origin} */
/*
 * The {kind} model as const data for firmware_ref/include/rnnedge.h. A stream needs {P}_STATE_LEN floats of
 * state and {P}_SCRATCH_LEN floats of scratch, both owned by the caller:
 *
 *     static float state[{P}_STATE_LEN], scratch[{P}_SCRATCH_LEN];
 *     rnnedge_state_f32 s = {{state, scratch}};
 *     float y[{P}_OUT];
 *     rnnedge_state_reset_{kind}(&{p}, &s);
 *     status = rnnedge_model_step_{step}_{kind}(&{p}, &s, {'x' if dense else 'token'}, y);
 */
#ifndef {guard}
#define {guard}

#include "rnnedge.h"

{guard_ext}
#define {P}_PRECISION "{kind}"
#define {P}_PRECISION_{kind.upper()} 1
#define {P}_ARTIFACT "{os.path.basename(os.fspath(artifact_path))}"
#define {P}_ARTIFACT_SHA256 "{sha}"
#define {P}_INPUT_KIND {model_fields['input_kind']}
#define {P}_N_IN {n_in} /* {'features' if dense else 'embedding width'} */
#define {P}_VOCAB {model_fields['vocab']}
#define {P}_N_LAYERS {len(spec['layers'])}
#define {P}_OUT {out}
#define {P}_ACTIVATION {model_fields['activation']}
#define {P}_STATE_LEN {sizes['state']} /* float */
#define {P}_STATE_BYTES {4 * sizes['state']}
#define {P}_SCRATCH_LEN {sizes['scratch']} /* float: {scratch_note} */
#define {P}_SCRATCH_BYTES {4 * sizes['scratch']}
#define {P}_RAM_BYTES ({P}_STATE_BYTES + {P}_SCRATCH_BYTES) /* per stream */
#define {P}_CONST_BYTES {const_bytes} /* the model's const arrays */

/* state layout (export/vectors.py state_layout): offsets into state */
{chr(10).join(state_lines)}

extern const rnnedge_model_{kind} {p};
{input_decls}
#endif /* {guard} */
"""
    source = (f"/* {origin} */\n#include \"{p}_data.h\"\n\n" + "\n".join(arrays)
              + f"\nstatic const rnnedge_layer_{kind} {p}_layers[{len(layer_inits)}] = {{\n"
              + ",\n".join(layer_inits) + "\n};\n\n"
              + (f"static const rnnedge_dense_{kind} {p}_dense[{len(dense_inits)}] = {{\n"
                 + ",\n".join(dense_inits) + "\n};\n\n" if dense_inits else "")
              + f"const rnnedge_model_{kind} {p} = {{\n"
              + "".join(f"    .{k} = {v},\n" for k, v in model_fields.items()) + "};\n")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{p}_data.h", out_dir / f"{p}_data.c"]
    paths[0].write_text(header)
    paths[1].write_text(source)
    return paths


def write_firmware_sources(artifact_path, vectors_path, out_dir, prefix: str = "model",
                           checkpoint=None) -> list[Path]:
    """Any precision: `<prefix>_data.h`, `<prefix>_data.c` (write_model_sources for int8, else
    write_float_model_sources) and, when vectors_path is not None, `vectors_data.h`; returns their paths."""
    _, precision, _ = artifact.read(artifact_path)
    write = write_model_sources if precision == "int8" else write_float_model_sources
    paths = write(artifact_path, out_dir, prefix=prefix, checkpoint=checkpoint)
    if vectors_path is not None:
        paths.append(write_vector_sources(vectors_path, out_dir))
    return paths
