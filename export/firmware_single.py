"""One self-contained C header for a model: firmware_ref's library, the model's const data and a one-call API.

`write_single_header(artifact_path, out_path)` writes `rnnedge_model.h` for a weight file of any precision, in the
usual single-header style: every file that includes it gets the declarations (firmware_ref/include/rnnedge.h, the
model's macros RNNEDGE_MODEL_*, and the one-call API); the one .c file that defines RNNEDGE_MODEL_IMPLEMENTATION
before including it also gets the definitions (the library sources that precision needs, the model's arrays and the
API's stream). The API, one stream held by the header:

    int rnnedge_model_reset(void);                                  start a sequence (the first step does it too)
    int8 dense:    int rnnedge_model_step(const int16_t *x_q, int32_t *logits);
                   int rnnedge_model_quantize_input(const float *x, int16_t *x_q);   raw features -> x_q
    int8 tokens:   int rnnedge_model_step(int32_t token, int32_t *logits);
    f32 / int8w:   int rnnedge_model_step(const float *x, float *y);   (tokens: int32_t token)

Every function returns firmware_ref's status (RNNEDGE_OK or an RNNEDGE_ERR_*). The model is the const
`rnnedge_model` of the library's types (the generated model_data.h and .c with prefix "rnnedge_model"), so a
caller wanting several streams uses the library's own calls on it.

RNNEDGE_EXTENSIONS as the generated model_data.h has it: a model with ONNX layer extensions (or hidden head layers)
stops the compile with an #error under -DRNNEDGE_EXTENSIONS=0; a model without them defaults RNNEDGE_EXTENSIONS to
0 (the smaller library) unless the includer defined it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from rnnedge.export.firmware_c import GENERATOR
from rnnedge.export.firmware_float import float_model_text
from rnnedge.export.firmware_int8 import int8_model_text
from rnnedge.export.firmware_support import uses_firmware_extensions
from rnnedge.runtime import artifact

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware_ref"
SINGLE_HEADER = "rnnedge_model.h"
PREFIX = "rnnedge_model"
# The library sources each precision's step needs (firmware_ref/Makefile: LIB_INT8_SRCS, LIB_FLOAT_SRCS); a dense
# int8 model also gets the float input helper (LIB_F32_SRCS) behind rnnedge_model_quantize_input
LIBRARY = {"int8": ("src/rnnedge_int8.c", "src/rnnedge_tables.c"), "f32": ("src/rnnedge_f32.c",),
           "int8w": ("src/rnnedge_f32.c", "src/rnnedge_int8w.c")}
INPUT_HELPER = "src/rnnedge_input_f32.c"
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"[^\n]*\n', re.MULTILINE)
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)
# a file-scope static function or object: its name is the first identifier followed by "(", "[" or "="
_STATIC = re.compile(r"^static\b[^;{=(]*?\b([A-Za-z_]\w*)[ \t]*[\[(=]", re.MULTILINE)


def _banner(what: str) -> str:
    return f"\n/* {'=' * 40} {what} {'=' * max(4, 70 - len(what))} */\n"


def _inline(path: Path, firmware: Path, seen: set[str], defined: dict[Path, list[str]]) -> str:
    """path's text with each #include "x" replaced by firmware_ref's include/x or src/x, once (later ones dropped);
    defined[file] lists the macros each inlined src/ file defines (include guards aside)."""
    def include(match: re.Match) -> str:
        name = match.group(1)
        if name in seen:
            return ""
        for folder in ("include", "src"):
            candidate = firmware / folder / name
            if candidate.is_file():
                seen.add(name)
                return _banner(f"firmware_ref/{folder}/{name}") + _inline(candidate, firmware, seen, defined)
        raise FileNotFoundError(f"{path} includes \"{name}\", which is in neither {firmware / 'include'} nor "
                                f"{firmware / 'src'}")

    text = path.read_text()
    if path.parent.name == "src":
        defined[path] = [name for name in dict.fromkeys(_DEFINE.findall(text)) if not name.endswith("_H")]
    return _INCLUDE.sub(include, text)


def _library(firmware: Path, sources: list[str], seen: set[str]) -> str:
    """The library sources as one text: each file's own macros #undef'd after it (the next file or the includer's
    code may use the names), its static names (its own and those of the src/ headers it inlines, such as
    rnnedge_f32.c's parts) that an earlier file also defines renamed with a #define (one translation unit now holds
    files written as several), the internal headers' macros #undef'd at the end."""
    parts, statics = [], set()
    headers: dict[Path, list[str]] = {}
    for src in sources:
        defined: dict[Path, list[str]] = {}
        text = _inline(firmware / src, firmware, seen, defined)
        own = [name for path in defined for name in _STATIC.findall(path.read_text())]
        renamed = [name for name in dict.fromkeys(own) if name in statics]
        statics.update(own)
        stem = Path(src).stem
        parts.append(_banner(f"firmware_ref/{src}")
                     + "".join(f"#define {name} {stem}_{name} /* also a static name of a file above */\n"
                               for name in renamed)
                     + text
                     + "".join(f"#undef {name}\n" for name in renamed + defined.pop(firmware / src, [])))
        for header, names in defined.items():
            headers[header] = names
    return "".join(parts) + "".join(f"#undef {name}\n" for names in headers.values() for name in names)


def _api_args(precision: str, dense: bool) -> dict[str, str]:
    """rnnedge_model_step's two parameters for a model of `precision` and input kind: C declaration, name and
    meaning of each."""
    x_arg, x_name = (("const int16_t *x_q", "x_q") if precision == "int8" else ("const float *x", "x")) if dense \
        else ("int32_t token", "token")
    what_x = ("RNNEDGE_MODEL_N_IN quantised features (rnnedge_model_quantize_input)" if precision == "int8"
              else "RNNEDGE_MODEL_N_IN raw features (the model normalises them)") if dense \
        else "a token id in [0, RNNEDGE_MODEL_VOCAB)"
    y_arg, y_name = ("int32_t *logits", "logits") if precision == "int8" else ("float *y", "y")
    what_y = ("RNNEDGE_MODEL_OUT int32 logits: logit o is logits[o] * rnnedge_model_head_scale[o], then the head's "
              "activation" if precision == "int8" else "RNNEDGE_MODEL_OUT outputs, the head's activation applied")
    return {"x_arg": x_arg, "x_name": x_name, "what_x": what_x, "y_arg": y_arg, "y_name": y_name, "what_y": what_y}


def _api(precision: str, dense: bool) -> tuple[str, str]:
    """The one-call API's declarations and definitions for a model of `precision` and input kind."""
    value, state = ("int16_t", "rnnedge_state_int8") if precision == "int8" else ("float", "rnnedge_state_f32")
    step = f"rnnedge_model_step_{'dense' if dense else 'tokens'}_{precision}"
    args = _api_args(precision, dense)
    x_arg, x_name, what_x = args["x_arg"], args["x_name"], args["what_x"]
    y_arg, y_name, what_y = args["y_arg"], args["y_name"], args["what_y"]
    declarations = f"""/*
 * The one-call API: one stream, its state and scratch held by the header (RNNEDGE_MODEL_RAM_BYTES of RAM).
 *
 * rnnedge_model_reset: start a new sequence (zeros, or a layer's initial_state); the first step calls it.
 * rnnedge_model_step: one time step.
 *   @param[in]  {x_name:<6} {what_x}
 *   @param[out] {y_name:<6} {what_y}
 * Both return RNNEDGE_OK or firmware_ref's RNNEDGE_ERR_* status (rnnedge.h).
 */
int rnnedge_model_reset(void);
int rnnedge_model_step({x_arg}, {y_arg});
"""
    helper = ""
    if precision == "int8" and dense:
        declarations += """
/*
 * rnnedge_model_quantize_input: raw float features -> the int16 x_q rnnedge_model_step takes (normalised by the
 * model's mean and std, scaled by RNNEDGE_MODEL_INPUT_SCALE, rounded half to even, clamped). The one float step
 * of an int8 model: on a core without FPU leave it uncalled (and build with -ffunction-sections, link with
 * --gc-sections) to keep soft-float out.
 */
int rnnedge_model_quantize_input(const float *x, int16_t *x_q);
"""
        helper = """
int rnnedge_model_quantize_input(const float *x, int16_t *x_q)
{
    return rnnedge_quantize_input_f32(x, rnnedge_model_input_mean, rnnedge_model_input_std,
                                      RNNEDGE_MODEL_INPUT_SCALE, RNNEDGE_MODEL_N_IN, x_q);
}
"""
    definitions = f"""static {value} rnnedge_model_state_mem[RNNEDGE_MODEL_STATE_LEN];
static {value} rnnedge_model_scratch_mem[RNNEDGE_MODEL_SCRATCH_LEN];
static {state} rnnedge_model_stream = {{rnnedge_model_state_mem, rnnedge_model_scratch_mem}};
static int rnnedge_model_started = 0; /* the state holds a sequence (reset done) */

int rnnedge_model_reset(void)
{{
    const int status = rnnedge_state_reset_{precision}(&rnnedge_model, &rnnedge_model_stream);
    rnnedge_model_started = status == RNNEDGE_OK;
    return status;
}}

int rnnedge_model_step({x_arg}, {y_arg})
{{
    if (!rnnedge_model_started) {{
        const int status = rnnedge_model_reset();
        if (status != RNNEDGE_OK) {{
            return status;
        }}
    }}
    return {step}(&rnnedge_model, &rnnedge_model_stream, {x_name}, {y_name});
}}
{helper}"""
    return declarations, definitions


def single_header_text(artifact_path, checkpoint=None, firmware_dir=None) -> str:
    """The text of rnnedge_model.h (write_single_header)."""
    firmware = Path(firmware_dir) if firmware_dir is not None else FIRMWARE
    if not (firmware / "include" / "rnnedge.h").is_file():
        raise FileNotFoundError(f"{firmware}: no include/rnnedge.h; the single header inlines firmware_ref/'s "
                                "sources (pass firmware_dir, the firmware_ref folder of an rnnedge checkout)")
    spec, precision, _ = artifact.read(artifact_path)
    text_of = int8_model_text if precision == "int8" else float_model_text
    data_h, data_c = text_of(artifact_path, PREFIX, checkpoint)  # refuses a model the firmware cannot run
    data_h = data_h.replace('#include "rnnedge.h"\n', "", 1)
    data_c = data_c.replace(f'#include "{PREFIX}_data.h"\n', "", 1)
    dense = spec["input"]["kind"] == "dense"
    origin = data_h.split("\n", 1)[0]

    seen = {"rnnedge.h"}
    library_h = _inline(firmware / "include" / "rnnedge.h", firmware, seen, {})
    library_c = _library(firmware, list(LIBRARY[precision]) + ([INPUT_HELPER] if precision == "int8" and dense
                                                               else []), seen)
    declarations, definitions = _api(precision, dense)
    extensions_default = "" if uses_firmware_extensions(spec) else (
        "/* The model uses none of the ONNX layer extensions: the library without their code, unless the includer\n"
        " * chose (-DRNNEDGE_EXTENSIONS=1 compiles them in too). */\n"
        "#ifndef RNNEDGE_EXTENSIONS\n#define RNNEDGE_EXTENSIONS 0\n#endif\n")
    precision_macros = '#define RNNEDGE_MODEL_PRECISION "int8"\n#define RNNEDGE_MODEL_PRECISION_INT8 1\n' \
        if precision == "int8" else ""
    name = os.path.basename(os.fspath(artifact_path))
    args = _api_args(precision, dense)
    quantize_note = (" *     int rnnedge_model_quantize_input(const float *x, int16_t *x_q);   raw features -> x_q (the one "
                     "float step)\n" if precision == "int8" and dense else "")
    return f"""{origin.replace(f"{GENERATOR} from", f"{GENERATOR} (single header) from", 1)}
/*
 * {SINGLE_HEADER}: the {precision} model {name} and the firmware_ref library it runs on, in one file.
 *
 * In exactly one .c file:
 *     #define RNNEDGE_MODEL_IMPLEMENTATION
 *     #include "{SINGLE_HEADER}"
 * and #include "{SINGLE_HEADER}" alone wherever else the API is called. Then:
 *     int rnnedge_model_reset(void);     start a sequence (the first step does it)
 *     int rnnedge_model_step({args["x_arg"]}, {args["y_arg"]});
 *       {args["x_name"]}: {args["what_x"]}
 *       {args["y_name"]}: {args["what_y"]}
{quantize_note} * Both return RNNEDGE_OK (0) or an RNNEDGE_ERR_* status. The header holds one stream (RNNEDGE_MODEL_RAM_BYTES of
 * RAM); rnnedge_model, the const model, serves more streams through the library's own calls (rnnedge.h).
 *
 * C99 with no allocation and no stdio; it compiles with -std=c99 -Wall -Wextra -Werror -pedantic (gcc, clang,
 * arm-none-eabi-gcc). Float code expects ISO C's -ffp-contract=off (implied by -std=c99), as firmware_ref/'s
 * Makefile builds it. RNNEDGE_EXTENSIONS: as the library's (rnnedge.h); RNNEDGE_MODEL_USES_EXTENSIONS below.
 */
#ifndef RNNEDGE_MODEL_H
#define RNNEDGE_MODEL_H

{extensions_default}{_banner("firmware_ref/include/rnnedge.h")}{library_h}
{_banner("the model's declarations")}{data_h}
{_banner("the one-call API")}{precision_macros}{declarations}
#endif /* RNNEDGE_MODEL_H */

#if defined(RNNEDGE_MODEL_IMPLEMENTATION) && !defined(RNNEDGE_MODEL_IMPLEMENTED)
#define RNNEDGE_MODEL_IMPLEMENTED
{library_c}{_banner("the model's const data")}{data_c}
{_banner("the one-call API")}{definitions}
#endif /* RNNEDGE_MODEL_IMPLEMENTATION */
"""


def write_single_header(artifact_path, out_path, checkpoint=None, firmware_dir=None) -> Path:
    """Write rnnedge_model.h for a weight file of any precision (f32, int8w, int8); returns its path.

    out_path: the header's path, or an existing folder to write rnnedge_model.h into. checkpoint: named in the
    first line when given. firmware_dir: the firmware_ref folder whose sources are inlined (default: this
    checkout's). Raises ArtifactError for a bad weight file, ValueError for a model firmware_ref cannot run
    (check_firmware_runs), FileNotFoundError without firmware_ref's sources, and refuses to write over the weight
    file itself.
    """
    out_path = Path(out_path)
    if out_path.is_dir():
        out_path = out_path / SINGLE_HEADER
    if out_path.exists() and out_path.resolve() == Path(artifact_path).resolve():
        raise ValueError(f"{out_path}: the single header would overwrite the weight file it is made from")
    text = single_header_text(artifact_path, checkpoint, firmware_dir)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text)
    return out_path
