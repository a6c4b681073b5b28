"""The int8 model as C sources (write_model_sources, export/firmware.py's docstring): const arrays, the
rnnedge_model_int8 struct and the macros of the RAM a stream needs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rnnedge.export.firmware_c import (
    CELL_MACRO,
    _array,
    _c_float,
    _check_prefix,
    _extensions_guard,
    _flat_array,
    _origin,
    write_pair,
)
from rnnedge.export.firmware_support import check_firmware_runs, model_sizes
from rnnedge.runtime import artifact, layout
from rnnedge.runtime import spec as specs
from rnnedge.runtime.layout import F_CLIP, F_INIT, F_INPUT_FORGET, F_PEEPHOLES, F_RESET_BEFORE, L_CLIP_Q, L_FLAGS


def write_model_sources(artifact_path, out_dir, prefix: str = "model", checkpoint=None) -> list[Path]:
    """Write `<prefix>_data.h` and `<prefix>_data.c` for an int8 weight file; returns their paths.

    checkpoint: the checkpoint the weight file was exported from, named in the first line when given.
    The header defines <P>_USES_EXTENSIONS (1 for a layer with extension flags, with an #error under
    -DRNNEDGE_EXTENSIONS=0; else 0).
    Raises ArtifactError for a bad weight file, ValueError for another precision, a bidirectional or reverse model
    or one with ONNX layer extensions outside FIRMWARE_EXTENSIONS["int8"] (check_firmware_runs).
    """
    header, source = int8_model_text(artifact_path, prefix, checkpoint)
    return write_pair(out_dir, prefix, header, source)


def int8_model_text(artifact_path, prefix: str = "model", checkpoint=None) -> tuple[str, str]:
    """The text of `<prefix>_data.h` and `<prefix>_data.c` for an int8 weight file (write_model_sources)."""
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
    return header, source

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
