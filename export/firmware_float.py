"""The f32 and int8w models as C sources (write_float_model_sources, export/firmware.py's docstring): const arrays
with exact hexadecimal floats, the rnnedge_model_f32 / rnnedge_model_int8w struct and the macros of the RAM a
stream needs."""

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
    header, source = float_model_text(artifact_path, prefix, checkpoint)
    return write_pair(out_dir, prefix, header, source)


def float_model_text(artifact_path, prefix: str = "model", checkpoint=None) -> tuple[str, str]:
    """The text of `<prefix>_data.h` and `<prefix>_data.c` for an f32 or int8w weight file (write_float_model_sources)."""
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
    return header, source
