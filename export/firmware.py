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

The text is written by one module per concern, all re-exported here: export/firmware_c.py (C literals and arrays,
the first line, the RNNEDGE_EXTENSIONS guard), export/firmware_support.py (what each precision's C step runs, the
RAM a stream needs), export/firmware_int8.py, export/firmware_float.py (the model sources), export/firmware_vectors.py
(vectors_data.h) and export/firmware_single.py (write_single_header: library and model in one rnnedge_model.h).
"""

from __future__ import annotations

from pathlib import Path

from rnnedge.export.firmware_c import GENERATOR, _c_float
from rnnedge.export.firmware_float import FLOAT_PRECISIONS, write_float_model_sources
from rnnedge.export.firmware_int8 import write_model_sources
from rnnedge.export.firmware_single import SINGLE_HEADER, write_single_header
from rnnedge.export.firmware_support import (
    FIRMWARE_EXTENSIONS,
    FIRMWARE_HIDDEN_ACTIVATIONS,
    check_firmware_runs,
    firmware_unsupported,
    model_sizes,
    uses_firmware_extensions,
)
from rnnedge.export.firmware_vectors import VECTORS_HEADER, write_vector_sources
from rnnedge.runtime import artifact
from rnnedge.runtime.int8_math import SIGMOID_TABLE_Q16

__all__ = ["FIRMWARE_EXTENSIONS", "FIRMWARE_HIDDEN_ACTIVATIONS", "FLOAT_PRECISIONS", "GENERATOR", "SINGLE_HEADER", "VECTORS_HEADER",
           "_c_float", "check_firmware_runs", "firmware_unsupported", "model_sizes", "sigmoid_table_source",
           "uses_firmware_extensions", "write_firmware_sources", "write_float_model_sources", "write_model_sources",
           "write_single_header", "write_vector_sources"]


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
