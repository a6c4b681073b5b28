"""firmware_ref/'s int8 step with the ONNX layer extensions (runtime/spec.py) on the host: clip, input_forget,
peepholes, gru linear_before_reset false and initial_state replay golden vectors bit for bit.

Every case writes an int8 weight file whose layers all carry the extensions, golden vectors from the runtime (which
start from h0 / c0, as rnnedge_state_reset_int8 does), generates the C sources (export/firmware.py) and runs
firmware_ref/tests/host_test.c through test_host.py's helpers. "Hot" cases take random constants that saturate
often (tests/runtime/int8_twin.py: any int16 h0, c0 and peephole, extremes included; shifts that saturate int32);
calibrated cases go through the quantiser from a PyTorch model.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.firmware import FIRMWARE_EXTENSIONS, firmware_unsupported, model_sizes, write_model_sources
from rnnedge.export.vectors import read_vectors, write_vectors
from rnnedge.runtime import artifact, layout
from rnnedge.runtime import spec as specs
from tests.firmware.test_host import (
    FIRMWARE,
    STEPS,
    STRICT,
    _assert_passes,
    _generate,
    _run,
)
from tests.helpers import make_spec, random_inputs, write_artifact
from tests.runtime.int8_twin import random_int8_tensors, saturating_dense_inputs
from tests.train.test_model_extensions import extended_model

LSTM_ALL = {"clip": 0.6, "input_forget": True, "peepholes": True, "initial_state": True}
GRU_BEFORE = {"linear_before_reset": False, "clip": 0.8, "initial_state": True}
CASES = [  # (cell, extensions): each alone, then together
    ("lstm", {"clip": 0.6}),
    ("lstm", {"input_forget": True}),
    ("lstm", {"peepholes": True}),
    ("lstm", {"initial_state": True}),
    ("lstm", {"clip": 0.6, "input_forget": True, "initial_state": True}),
    ("lstm", LSTM_ALL),
    ("gru", {"clip": 0.8}),
    ("gru", {"linear_before_reset": False}),
    ("gru", {"initial_state": True}),
    ("gru", GRU_BEFORE),
    ("rnn_tanh", {"clip": 0.5, "initial_state": True}),
    ("rnn_relu", {"clip": 0.5, "initial_state": True}),
]
EXT_VALUES = re.compile(r"^#define (RNNEDGE_EXT_[A-Z_]+) (\d+)\b", re.MULTILINE)


def case_id(case) -> str:
    cell, ext = case
    return cell + "-" + "-".join(sorted(ext))


def extended_spec(cell: str, ext: dict, layers: int, kind: str) -> dict:
    spec = make_spec(cell=cell, layers=layers, kind=kind, hidden=12, features=5, vocab=40, embed_dim=7, out=4)
    spec["layers"] = [{**layer, **ext} for layer in spec["layers"]]
    spec["version"] = specs.EXTENDED_VERSION
    return specs.validate(spec)


def hot_extended_case(folder: Path, cell: str, ext: dict, layers: int, kind: str, seed: int = 0) -> dict:
    """random_int8_tensors' hot constants for a spec whose layers all carry ext, and vectors over saturating
    dense inputs (or random tokens); returns the weight file's tensors."""
    spec = extended_spec(cell, ext, layers, kind)
    rng = np.random.default_rng(seed)
    tensors = random_int8_tensors(spec, rng, hot=True)
    weights = folder / "model.int8.safetensors"
    artifact.write(weights, tensors, spec, "int8")
    if kind == "dense":
        X = saturating_dense_inputs(spec, float(tensors["input.scale"][0]), rng, 1, STEPS)[0]
    else:
        X = random_inputs(spec, 1, STEPS, seed=seed + 1)[0]
    write_vectors(folder / "model.int8.vectors.safetensors", weights, X, steps=STEPS)
    return tensors


def calibrated_extended_case(folder: Path, cell: str, ext: dict, layers: int = 2, seed: int = 0) -> Path:
    """A PyTorch model whose layers carry ext (random h0, c0 and peepholes), calibrated and quantised by the
    export's quantiser; dense inputs 8x the calibration's spread, so the input clamps and the gates saturate."""
    model = extended_model(cell, ext, layers=layers, seed=seed, hidden=12)
    weights = write_artifact(model, folder / "model.int8.safetensors", "int8")
    X = (random_inputs(model.spec, 1, STEPS, seed=seed + 1)[0] - 0.5) * 8.0 + 0.5
    write_vectors(folder / "model.int8.vectors.safetensors", weights, X, steps=STEPS)
    return Path(weights)


@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_hot_extended_layers_match_vectors_bit_for_bit(tmp_path, host_cc, make_tool, case, kind):
    cell, ext = case
    hot_extended_case(tmp_path, cell, ext, 2, kind, seed=CASES.index(case))
    _generate(tmp_path)
    _assert_passes(tmp_path)


@pytest.mark.parametrize("case", [("lstm", LSTM_ALL), ("gru", GRU_BEFORE), ("lstm", {"clip": 0.7}),
                                  ("rnn_relu", {"clip": 0.4, "initial_state": True})], ids=case_id)
def test_calibrated_extended_models_match_vectors_bit_for_bit(tmp_path, host_cc, make_tool, case):
    cell, ext = case
    calibrated_extended_case(tmp_path, cell, ext)
    _generate(tmp_path)
    _assert_passes(tmp_path)


@pytest.mark.parametrize("case", [("lstm", {"clip": 0.6}), ("lstm", {"input_forget": True}),
                                  ("lstm", {"peepholes": True}), ("lstm", {"initial_state": True}),
                                  ("gru", {"clip": 0.8}), ("gru", {"initial_state": True}),
                                  ("rnn_relu", {"clip": 0.5})], ids=case_id)
def test_each_extension_changes_the_vectors(tmp_path, case):
    """The cases above test something: the same constants without the extension give other states."""
    cell, ext = case
    tensors = hot_extended_case(tmp_path, cell, ext, 2, "dense")
    _, with_ext = read_vectors(tmp_path / "model.int8.vectors.safetensors")
    plain = extended_spec(cell, {}, 2, "dense")
    kept = {k: v for k, v in tensors.items() if k.split(".")[-1] not in ("h0", "c0", "p", "p_requant", "p_shift")}
    weights = tmp_path / "plain" / "model.int8.safetensors"
    weights.parent.mkdir()
    artifact.write(weights, kept, plain, "int8")
    write_vectors(tmp_path / "plain" / "v.safetensors", weights, with_ext["input"], steps=STEPS)
    _, without = read_vectors(tmp_path / "plain" / "v.safetensors")
    assert not np.array_equal(with_ext["state"], without["state"])


def test_sanitizer_build_of_extended_layers_runs_clean(tmp_path, host_cc, make_tool):
    """ASan/UBSan over lstm (every extension), gru (linear_before_reset false, whose r * h reuses the GRU's scratch)
    and rnn_relu layers in one model, tokens: no out-of-bounds scratch or state access, no undefined shift."""
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    built = _run([host_cc, "-fsanitize=address,undefined", str(probe), "-o", str(tmp_path / "probe")])
    if built.returncode != 0:  # test_host.py's rule: skip, or fail under CI=true
        message = f"gcc has no AddressSanitizer/UBSan runtime: {built.stderr[-500:]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    spec = make_spec(cell="lstm", layers=1, kind="tokens", hidden=12, features=5, vocab=40, embed_dim=7, out=4)
    spec["layers"] = [{"cell": "lstm", "hidden": 12, "bidirectional": False, **LSTM_ALL},
                      {"cell": "gru", "hidden": 16, "bidirectional": False, **GRU_BEFORE},
                      {"cell": "rnn_relu", "hidden": 9, "bidirectional": False, "clip": 0.5, "initial_state": True}]
    spec["version"] = specs.EXTENDED_VERSION
    spec = specs.validate(spec)
    rng = np.random.default_rng(11)
    tensors = random_int8_tensors(spec, rng, hot=True)
    weights = tmp_path / "model.int8.safetensors"
    artifact.write(weights, tensors, spec, "int8")
    write_vectors(tmp_path / "model.int8.vectors.safetensors", weights, random_inputs(spec, 1, STEPS, seed=3)[0],
                  steps=STEPS)
    _generate(tmp_path)
    assert model_sizes(spec)["scratch"] == 7 + 4 * 16  # the widest layer: the gru's G + H, no more for r * h
    _assert_passes(tmp_path, "host-sanitize")


def test_ext_macros_equal_the_runtime_layout_flags():
    header = (FIRMWARE / "include" / "rnnedge.h").read_text()
    values = {name: int(v) for name, v in EXT_VALUES.findall(header)}
    assert values == {"RNNEDGE_EXT_REVERSE": layout.F_REVERSE, "RNNEDGE_EXT_RESET_BEFORE": layout.F_RESET_BEFORE,
                      "RNNEDGE_EXT_INPUT_FORGET": layout.F_INPUT_FORGET, "RNNEDGE_EXT_PEEPHOLES": layout.F_PEEPHOLES,
                      "RNNEDGE_EXT_CLIP": layout.F_CLIP, "RNNEDGE_EXT_ACTIVATIONS": layout.F_ACTIVATIONS,
                      "RNNEDGE_EXT_INIT": layout.F_INIT}


def test_generated_layer_fields_carry_the_runtime_flags_and_clip(tmp_path):
    tensors = hot_extended_case(tmp_path, "lstm", LSTM_ALL, 1, "dense")
    header, source = write_model_sources(tmp_path / "model.int8.safetensors", tmp_path / "c")
    text = source.read_text()
    row = layout.build(extended_spec("lstm", LSTM_ALL, 1, "dense"), tensors, "int8").layers[0]
    assert (".flags = RNNEDGE_EXT_INPUT_FORGET | RNNEDGE_EXT_PEEPHOLES | RNNEDGE_EXT_CLIP | RNNEDGE_EXT_INIT,\n"
            in text)
    assert f".clip_q = {int(row[layout.L_CLIP_Q])},\n" in text and row[layout.L_CLIP_Q] == round(0.6 * 4096)
    for field in ("h0", "c0", "peep", "peep_mult", "peep_shift"):
        assert f".{field} = model_l0_{field}," in text
    assert "static const int16_t model_l0_peep[36]" in text and "static const int8_t model_l0_peep_shift[3]" in text
    assert "rnnedge_state_reset_int8 starts a layer with initial_state from its h0" in header.read_text()
    gru = tmp_path / "gru"
    gru.mkdir()
    hot_extended_case(gru, "gru", {"linear_before_reset": False}, 1, "tokens")
    _, gru_source = write_model_sources(gru / "model.int8.safetensors", gru / "c")
    gru_text = gru_source.read_text()
    assert ".b_hn = 0,\n" in gru_text and ".flags = RNNEDGE_EXT_RESET_BEFORE,\n" in gru_text
    assert ".clip_q" not in gru_text and ".h0" not in gru_text
    plain = tmp_path / "plain"
    plain.mkdir()
    hot_extended_case(plain, "gru", {}, 1, "tokens")
    _, plain_source = write_model_sources(plain / "model.int8.safetensors", plain / "c")
    assert ".flags" not in plain_source.read_text()  # PyTorch's cells: the sources as before the extensions


def test_int8_firmware_implements_every_extension_int8_runs_but_reverse():
    assert FIRMWARE_EXTENSIONS["int8"] == {"linear_before_reset", "input_forget", "peepholes", "clip",
                                           "initial_state"}
    spec = extended_spec("lstm", {**LSTM_ALL, "reverse": True}, 2, "dense")
    assert firmware_unsupported(spec, "int8") == ["layers[0] reverse", "layers[1] reverse"]


def test_reverse_layers_are_refused_by_name(tmp_path):
    spec = extended_spec("gru", {"reverse": True, "clip": 1.0}, 1, "dense")
    weights = tmp_path / "model.int8.safetensors"
    artifact.write(weights, random_int8_tensors(spec, np.random.default_rng(0)), spec, "int8")
    with pytest.raises(ValueError, match=r"int8 step does not implement .*layers\[0\] reverse"):
        write_model_sources(weights, tmp_path)


API_PROGRAM = r"""
#include <stdio.h>
#include <string.h>
#include "rnnedge.h"
#include "model_data.h"

static int16_t state[MODEL_STATE_LEN];
static int16_t scratch[MODEL_SCRATCH_LEN];
static int failures;

static void expect(const char *what, int actual, int expected)
{
    if (actual != expected) {
        printf("fail: %s: %d, expected %d\n", what, actual, expected);
        ++failures;
    }
}

/** A step of `m` (x = zeros) returns `expected` and leaves the state alone. */
static void expect_step(const char *what, const rnnedge_model_int8 *m, int expected)
{
    rnnedge_state_int8 s;
    int16_t x[MODEL_N_IN];
    int16_t before[MODEL_STATE_LEN];
    int32_t logits[MODEL_OUT];
    s.state = state;
    s.scratch = scratch;
    memset(x, 0, sizeof x);
    memcpy(before, state, sizeof before);
    expect(what, rnnedge_model_step_dense_int8(m, &s, x, logits), expected);
    if (expected != RNNEDGE_OK && memcmp(before, state, sizeof before) != 0) {
        printf("fail: %s wrote the state\n", what);
        ++failures;
    }
}

int main(void)
{
    rnnedge_layer_int8 layers[MODEL_N_LAYERS];
    rnnedge_model_int8 m = model;
    rnnedge_state_int8 s;
    int k;
    s.state = state;
    s.scratch = scratch;
    for (k = 0; k < MODEL_STATE_LEN; ++k) {
        state[k] = 99;
    }
    expect("reset", rnnedge_state_reset_int8(&model, &s), RNNEDGE_OK);
    for (k = 0; k < MODEL_HIDDEN; ++k) {
        expect("reset h = h0", state[MODEL_LAYER0_H + k], model.layers[0].h0[k]);
        expect("reset c = c0", state[MODEL_LAYER0_C + k], model.layers[0].c0[k]);
    }
    memcpy(layers, model.layers, sizeof layers);
    m.layers = layers;
    layers[0].h0 = 0; /* NULL: zeros */
    expect("reset, h0 NULL", rnnedge_state_reset_int8(&m, &s), RNNEDGE_OK);
    for (k = 0; k < MODEL_HIDDEN; ++k) {
        expect("reset h = 0", state[MODEL_LAYER0_H + k], 0);
        expect("reset c = c0", state[MODEL_LAYER0_C + k], model.layers[0].c0[k]);
    }
    layers[0].flags &= ~RNNEDGE_EXT_INIT; /* without the bit, h0 and c0 are not read */
    layers[0].h0 = model.layers[0].h0;
    expect("reset without INIT", rnnedge_state_reset_int8(&m, &s), RNNEDGE_OK);
    for (k = 0; k < MODEL_STATE_LEN; ++k) {
        expect("reset without INIT: zeros", state[k], 0);
    }
    m.layers = 0;
    expect("reset, NULL layers", rnnedge_state_reset_int8(&m, &s), RNNEDGE_ERR_NULL);
    m.layers = layers;

    rnnedge_state_reset_int8(&model, &s);
    memcpy(layers, model.layers, sizeof layers);
    expect_step("the model as generated", &m, RNNEDGE_OK);
    layers[0].flags = model.layers[0].flags | RNNEDGE_EXT_REVERSE;
    expect_step("a reverse layer", &m, RNNEDGE_ERR_UNSUPPORTED);
    layers[0].flags = model.layers[0].flags | RNNEDGE_EXT_ACTIVATIONS;
    expect_step("other activation functions", &m, RNNEDGE_ERR_UNSUPPORTED);
    layers[0].flags = model.layers[0].flags | 128;
    expect_step("an unknown flag", &m, RNNEDGE_ERR_UNSUPPORTED);
    layers[0].flags = model.layers[0].flags | RNNEDGE_EXT_RESET_BEFORE;
    expect_step("gru's reset-before on an lstm", &m, RNNEDGE_ERR_UNSUPPORTED);
    layers[0].flags = model.layers[0].flags;
    layers[0].clip_q = 32768;
    expect_step("clip_q above int16", &m, RNNEDGE_ERR_UNSUPPORTED);
    layers[0].clip_q = -1;
    expect_step("a negative clip_q", &m, RNNEDGE_ERR_UNSUPPORTED);
    layers[0].clip_q = model.layers[0].clip_q;
    layers[0].peep_mult = 0;
    expect_step("peepholes without their multipliers", &m, RNNEDGE_ERR_NULL);
    layers[0].peep_mult = model.layers[0].peep_mult;
    expect_step("the model again", &m, RNNEDGE_OK);
    printf("api: %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
"""


def test_reset_and_refusals_of_the_extension_api(tmp_path, host_cc):
    """rnnedge_state_reset_int8 writes h0 / c0 (NULL: zeros; only with RNNEDGE_EXT_INIT); a model step refuses
    flags the int8 step does not implement, an extension of another cell, a clip_q outside [0, 32767] and missing
    peephole constants, writing nothing."""
    hot_extended_case(tmp_path, "lstm", LSTM_ALL, 1, "dense")
    write_model_sources(tmp_path / "model.int8.safetensors", tmp_path)
    program = tmp_path / "api.c"
    program.write_text(API_PROGRAM.replace("MODEL_HIDDEN", "12"))
    exe = tmp_path / "api"
    built = _run([host_cc, *STRICT, "-Wconversion", "-I", str(FIRMWARE / "include"), "-I", str(tmp_path),
                  str(program), str(tmp_path / "model_data.c"), str(FIRMWARE / "src" / "rnnedge_int8.c"),
                  str(FIRMWARE / "src" / "rnnedge_tables.c"), "-o", str(exe)])
    assert built.returncode == 0, built.stderr[-3000:]
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout.splitlines()[-1]) == (0, "api: 0 failures"), result.stdout[-3000:]


def test_export_writes_extended_int8_firmware_that_passes_on_the_host(tmp_path, host_cc, make_tool, monkeypatch):
    from rnnedge.export.pipeline import export_checkpoint
    from rnnedge.train.checkpoint import save_checkpoint

    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")  # the Cortex-M footprint has its own tests
    model = extended_model("lstm", LSTM_ALL, layers=2, on="last_step", hidden=8)
    save_checkpoint(tmp_path / "m.pt", model)
    report = export_checkpoint(tmp_path / "m.pt", tmp_path / "out", steps=100, precisions=("int8",))
    assert report["passed"], report["failures"]
    folder = tmp_path / "out" / "firmware" / "int8"
    for name in ("model_data.h", "model_data.c", "vectors_data.h"):
        assert f"firmware/int8/{name}" in report["files"]
    assert "refused" not in report["firmware"]
    result = _run(["make", "-s", "-C", str(FIRMWARE), "host", f"MODEL_DIR={folder}", f"BUILD_DIR={folder / 'build'}"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "int8: " in result.stdout and result.stdout.rstrip().endswith(" 0 mismatches")
