"""firmware_ref/ built without the ONNX layer extensions (-DRNNEDGE_EXTENSIONS=0, the Makefile's EXTENSIONS=0).

Such a build is for models of PyTorch's cells; it must never compute a wrong answer for a model that needs the
extensions:

- a plain model replays its golden vectors as with the default build: int8 bit for bit, f32 / int8w within 1e-5
  (firmware_ref/tests/host_test*.c through `make host-build EXTENSIONS=0` / `host-float-build EXTENSIONS=0`);
- an extension model's generated model_data.h stops the compile with its #error (the model, its layers'
  extensions and the fix), int8, f32 and int8w alike, while the default build compiles it;
- a library built with 0 refuses a layer with hand-set extension flags: a model step returns
  RNNEDGE_ERR_UNSUPPORTED and writes nothing, a state reset likewise for an initial state (a small C driver,
  built once with 0 and once with 1 to show the same layers run with the extensions' code);
- `make lib EXTENSIONS=0` compiles a smaller library than the default.

gcc, make or binutils' size missing fails under CI=true and skips otherwise (tests/firmware/conftest.py).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from rnnedge.export.firmware import uses_firmware_extensions, write_float_model_sources, write_model_sources
from rnnedge.runtime import artifact
from tests.firmware import test_host, test_host_float
from tests.firmware.conftest import require_tool
from tests.firmware.test_host import FIRMWARE, STEPS, STRICT, SUMMARY
from tests.firmware.test_host_extensions import LSTM_ALL, hot_extended_case
from tests.firmware.test_host_float import FLOAT_FLAGS
from tests.firmware.test_host_float_extensions import ext_case, ext_model
from tests.helpers import make_model, write_artifact

NO_EXT = "-DRNNEDGE_EXTENSIONS=0"
FIX = "build firmware_ref without -DRNNEDGE_EXTENSIONS=0"


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)


def _make(target: str, folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return _run(["make", "-s", "-C", str(FIRMWARE), target, f"MODEL_DIR={folder}", f"BUILD_DIR={folder / 'build'}",
                 *extra])


def _uses_macro(folder: Path) -> str:
    m = re.search(r"^#define MODEL_USES_EXTENSIONS (\d)$", (folder / "model_data.h").read_text(), re.MULTILINE)
    assert m, "model_data.h defines no MODEL_USES_EXTENSIONS"
    return m.group(1)


# -- plain models replay their vectors ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("cell", test_host.CELLS)
def test_plain_int8_model_built_without_extensions_matches_vectors_bit_for_bit(tmp_path, host_cc, make_tool, cell,
                                                                                 kind):
    test_host._hot_case(tmp_path, cell, 2, kind, seed=test_host.CELLS.index(cell))
    test_host._generate(tmp_path)
    assert _uses_macro(tmp_path) == "0" and "#error" not in (tmp_path / "model_data.h").read_text()
    built = _make("host-build", tmp_path, "EXTENSIONS=0")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    ran = _run([str(tmp_path / "build" / "host_test")])
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert SUMMARY.search(ran.stdout).groups() == (str(STEPS), "0")


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("cell", ["rnn_relu", "lstm", "gru"])
def test_plain_float_model_built_without_extensions_matches_vectors(tmp_path, host_cc, make_tool, cell, kind,
                                                                     precision):
    test_host_float._case(tmp_path, precision, cell, 2, kind, seed=1)
    assert _uses_macro(tmp_path) == "0"
    built = _make("host-float-build", tmp_path, "EXTENSIONS=0")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    ran = _run([str(tmp_path / "build" / "host_test_float")])
    assert ran.returncode == 0, ran.stdout[-3000:]
    name, steps, count, max_diff = test_host_float.SUMMARY.search(ran.stdout).groups()
    assert (name, int(steps), int(count)) == (precision, STEPS, 0)
    assert float(max_diff) <= 1e-5
    assert int(test_host_float.REFUSALS.search(ran.stdout).group(1)) >= 10  # the REVERSE refusal included


def test_make_lib_without_extensions_compiles_a_smaller_library(tmp_path, host_cc, make_tool):
    size = require_tool("size")
    text = {}
    for extensions in ("0", "1"):
        folder = tmp_path / extensions
        for target in ("lib", "lib-float"):
            built = _make(target, folder, f"EXTENSIONS={extensions}")
            assert built.returncode == 0, built.stdout + built.stderr
        for obj in ("lib/rnnedge_int8.o", "lib-float/rnnedge_f32.o", "lib-float/rnnedge_int8w.o"):
            out = _run([size, str(folder / "build" / obj)]).stdout.splitlines()[1]
            text[extensions, obj] = int(out.split()[0])
    for obj in ("lib/rnnedge_int8.o", "lib-float/rnnedge_f32.o", "lib-float/rnnedge_int8w.o"):
        assert text["0", obj] < text["1", obj], (obj, text)
    bad = _make("lib", tmp_path / "bad", "EXTENSIONS=2")
    assert bad.returncode != 0 and "EXTENSIONS=2: use 0" in bad.stderr


# -- extension models: a compile error ----------------------------------------------------------------------------


def test_extension_int8_sources_fail_to_compile_without_extensions(tmp_path, host_cc, make_tool):
    hot_extended_case(tmp_path, "lstm", LSTM_ALL, 2, "dense")
    spec, _, _ = artifact.read(tmp_path / "model.int8.safetensors")
    assert uses_firmware_extensions(spec)
    test_host._generate(tmp_path)
    assert _uses_macro(tmp_path) == "1"
    built = _make("host-build", tmp_path, "EXTENSIONS=0")
    assert built.returncode != 0
    message = ("model (model.int8.safetensors) uses ONNX layer extensions (layer 0: input_forget, peepholes, clip, "
               "initial_state; layer 1: input_forget, peepholes, clip, initial_state): " + FIX)
    assert "#error" in built.stderr and message in built.stderr, built.stderr[-3000:]
    test_host._assert_passes(tmp_path)  # the default build runs it


@pytest.mark.parametrize(("precision", "cell", "ext", "named"), [
    ("f32", "gru", {"linear_before_reset": False, "clip": 0.5}, "linear_before_reset=0, clip"),
    ("int8w", "rnn_tanh", {"activations": [{"fn": "softsign"}]}, "activations"),
    ("f32", "lstm", {"initial_state": True}, "initial_state"),  # only the reset differs: refused at compile time too
])
def test_extension_float_sources_fail_to_compile_without_extensions(tmp_path, host_cc, precision, cell, ext,
                                                                     named):
    model = ext_model(cell, ext, layers=1, seed=3)
    assert uses_firmware_extensions(model.spec)
    ext_case(tmp_path, precision, model)
    assert _uses_macro(tmp_path) == "1"
    command = [host_cc, *FLOAT_FLAGS, "-I", str(FIRMWARE / "include"), "-I", str(tmp_path), "-c",
               str(tmp_path / "model_data.c"), "-o", str(tmp_path / "model_data.o")]
    assert _run(command).returncode == 0  # with the extensions (the default)
    failed = _run([*command, NO_EXT])
    assert failed.returncode != 0
    message = f"model (model.{precision}.safetensors) uses ONNX layer extensions (layer 0: {named}): {FIX}"
    assert message in failed.stderr, failed.stderr[-3000:]


def test_plain_float_header_says_it_needs_no_extensions(tmp_path):
    spec = test_host_float._spec("gru", 1, "dense")
    assert not uses_firmware_extensions(spec)
    weights = write_artifact(make_model(spec, 0), tmp_path / "m.f32.safetensors", "f32")
    header, _ = write_float_model_sources(weights, tmp_path)
    text = header.read_text()
    assert "#define MODEL_USES_EXTENSIONS 0\n" in text and "#error" not in text
    header, _ = write_float_model_sources(weights, tmp_path, prefix="kws")
    assert "#define KWS_USES_EXTENSIONS 0\n" in header.read_text()


# -- a library built with 0 refuses what it cannot run --------------------------------------------------------------

INT8_DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include "rnnedge.h"
#include "model_data.h"

/* EXPECT_EXT 0: the library was built with RNNEDGE_EXTENSIONS 0 and must refuse; 1: it runs the same layers */
#define REFUSED (EXPECT_EXT ? RNNEDGE_OK : RNNEDGE_ERR_UNSUPPORTED)

static int16_t state[MODEL_STATE_LEN];
static int16_t scratch[MODEL_SCRATCH_LEN];
static const int16_t h0[MODEL_HIDDEN] = {1000, -2000, 3000};
static int failures;

static void expect(const char *what, int actual, int expected)
{
    if (actual != expected) {
        printf("fail: %s: %d, expected %d\n", what, actual, expected);
        ++failures;
    }
}

/** A step (x = 100s) of m returns `expected`; a refused one leaves the state as it was. */
static void expect_step(const char *what, const rnnedge_model_int8 *m, int expected)
{
    rnnedge_state_int8 s;
    int16_t x[MODEL_N_IN];
    int16_t before[MODEL_STATE_LEN];
    int32_t logits[MODEL_OUT];
    int k;
    s.state = state;
    s.scratch = scratch;
    for (k = 0; k < MODEL_N_IN; ++k) {
        x[k] = 100;
    }
    memcpy(before, state, sizeof before);
    expect(what, rnnedge_model_step_dense_int8(m, &s, x, logits), expected);
    if (expected != RNNEDGE_OK && memcmp(before, state, sizeof before) != 0) {
        printf("fail: %s wrote the state\n", what);
        ++failures;
    }
}

int main(void)
{
    static const int32_t bits[4] = {RNNEDGE_EXT_CLIP, RNNEDGE_EXT_INPUT_FORGET, RNNEDGE_EXT_INIT,
                                    RNNEDGE_EXT_CLIP | RNNEDGE_EXT_INPUT_FORGET};
    static const char *const names[4] = {"clip", "input_forget", "initial_state", "clip + input_forget"};
    rnnedge_layer_int8 layers[MODEL_N_LAYERS];
    rnnedge_model_int8 m = model;
    rnnedge_state_int8 s;
    int k;
    int b;
    s.state = state;
    s.scratch = scratch;
    memcpy(layers, model.layers, sizeof layers);
    m.layers = layers;
    expect("reset, the model as generated", rnnedge_state_reset_int8(&model, &s), RNNEDGE_OK);
    expect_step("step, the model as generated", &model, RNNEDGE_OK);
    for (b = 0; b < 4; ++b) { /* hand-set flags on the last layer (an lstm) */
        layers[MODEL_N_LAYERS - 1].flags = bits[b];
        layers[MODEL_N_LAYERS - 1].clip_q = 2048;
        expect_step(names[b], &m, REFUSED);
    }
    layers[MODEL_N_LAYERS - 1].flags = RNNEDGE_EXT_INIT;
    layers[MODEL_N_LAYERS - 1].h0 = h0;
    for (k = 0; k < MODEL_STATE_LEN; ++k) {
        state[k] = 7;
    }
    expect("reset with an initial state", rnnedge_state_reset_int8(&m, &s), REFUSED);
    for (k = 0; k < MODEL_STATE_LEN; ++k) {
        const int h0_at = MODEL_LAYER1_H;
        const int want = !EXPECT_EXT ? 7 /* untouched */
                             : (k >= h0_at && k < h0_at + MODEL_HIDDEN) ? h0[k - h0_at] : 0;
        expect("the state after that reset", state[k], want);
    }
    layers[MODEL_N_LAYERS - 1].flags = 0; /* h0 without the bit is not read, in either build */
    expect("reset, h0 without RNNEDGE_EXT_INIT", rnnedge_state_reset_int8(&m, &s), RNNEDGE_OK);
    expect_step("step, h0 without RNNEDGE_EXT_INIT", &m, RNNEDGE_OK);
    layers[MODEL_N_LAYERS - 1].flags = RNNEDGE_EXT_REVERSE; /* refused by both builds */
    expect_step("reverse", &m, RNNEDGE_ERR_UNSUPPORTED);
    printf("driver: %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
"""


@pytest.mark.parametrize("extensions", [0, 1])
def test_an_int8_library_without_extensions_refuses_extension_layers(tmp_path, host_cc, extensions):
    """A plain lstm(12) -> lstm(3) model whose last layer gets extension flags by hand: the library built with
    RNNEDGE_EXTENSIONS 0 returns RNNEDGE_ERR_UNSUPPORTED from the step (and from the reset, for an initial state),
    writing nothing; built with 1 it runs them."""
    spec = test_host._spec("lstm", 2, "dense")
    spec["layers"][1] = {**spec["layers"][1], "hidden": 3}
    weights = write_artifact(make_model(spec, 0), tmp_path / "model.int8.safetensors", "int8")
    write_model_sources(weights, tmp_path)
    driver = tmp_path / "driver.c"
    driver.write_text(INT8_DRIVER.replace("MODEL_HIDDEN", "3"))
    exe = tmp_path / "driver"
    flags = [] if extensions else [NO_EXT]
    built = _run([host_cc, *STRICT, "-Wconversion", *flags, f"-DEXPECT_EXT={extensions}",
                  "-I", str(FIRMWARE / "include"), "-I", str(tmp_path), str(driver), str(tmp_path / "model_data.c"),
                  str(FIRMWARE / "src" / "rnnedge_int8.c"), str(FIRMWARE / "src" / "rnnedge_tables.c"), "-o", str(exe)])
    assert built.returncode == 0, built.stderr[-3000:]
    ran = _run([str(exe)])
    assert (ran.returncode, ran.stdout.splitlines()[-1]) == (0, "driver: 0 failures"), ran.stdout[-3000:]


FLOAT_DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include "rnnedge.h"
#include "model_data.h"

#if MODEL_PRECISION_INT8W
typedef rnnedge_model_int8w model_t;
typedef rnnedge_layer_int8w layer_t;
#define STEP rnnedge_model_step_dense_int8w
#define RESET rnnedge_state_reset_int8w
#else
typedef rnnedge_model_f32 model_t;
typedef rnnedge_layer_f32 layer_t;
#define STEP rnnedge_model_step_dense_f32
#define RESET rnnedge_state_reset_f32
#endif
#define REFUSED (EXPECT_EXT ? RNNEDGE_OK : RNNEDGE_ERR_UNSUPPORTED)

static float state[MODEL_STATE_LEN];
static float scratch[MODEL_SCRATCH_LEN];
static const float h0[12] = {0.5f, -0.5f, 0.25f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.125f};
static int failures;

static void expect(const char *what, int actual, int expected)
{
    if (actual != expected) {
        printf("fail: %s: %d, expected %d\n", what, actual, expected);
        ++failures;
    }
}

static void expect_step(const char *what, const model_t *m, int expected)
{
    rnnedge_state_f32 s;
    float x[MODEL_N_IN];
    float before[MODEL_STATE_LEN];
    float y[MODEL_OUT];
    int k;
    s.state = state;
    s.scratch = scratch;
    for (k = 0; k < MODEL_N_IN; ++k) {
        x[k] = 0.5f;
    }
    memcpy(before, state, sizeof before);
    expect(what, STEP(m, &s, x, y), expected);
    if (expected != RNNEDGE_OK && memcmp(before, state, sizeof before) != 0) {
        printf("fail: %s wrote the state\n", what);
        ++failures;
    }
}

int main(void)
{
    layer_t layers[MODEL_N_LAYERS];
    model_t m = model;
    rnnedge_state_f32 s;
    layer_t *last = &layers[MODEL_N_LAYERS - 1];
    int k;
    s.state = state;
    s.scratch = scratch;
    memcpy(layers, model.layers, sizeof layers);
    m.layers = layers;
    expect("reset, the model as generated", RESET(&model, &s), RNNEDGE_OK);
    expect_step("step, the model as generated", &model, RNNEDGE_OK);
    last->ext.flags = RNNEDGE_EXT_CLIP;
    last->ext.clip = 0.5f;
    expect_step("clip", &m, REFUSED);
    last->ext.flags = RNNEDGE_EXT_ACTIVATIONS;
    last->ext.fn[0].code = RNNEDGE_FN_SOFTSIGN;
    last->ext.fn[1].code = RNNEDGE_FN_TANH;
    last->ext.fn[2].code = RNNEDGE_FN_TANH;
    expect_step("activations", &m, REFUSED);
    last->ext.flags = RNNEDGE_EXT_INIT;
    last->ext.h0 = h0;
    expect_step("initial_state", &m, REFUSED);
    for (k = 0; k < MODEL_STATE_LEN; ++k) {
        state[k] = 7.0f;
    }
    expect("reset with RNNEDGE_EXT_INIT", RESET(&m, &s), REFUSED);
    expect("state[0] after it", (int)(state[0] * 8.0f), EXPECT_EXT ? 4 : 56);
    last->ext.flags = 0; /* the float reset reads h0 whenever set: refused without the bit too */
    for (k = 0; k < MODEL_STATE_LEN; ++k) {
        state[k] = 7.0f;
    }
    expect("reset with h0 set", RESET(&m, &s), REFUSED);
    expect("state[0] after it", (int)(state[0] * 8.0f), EXPECT_EXT ? 4 : 56);
    last->ext.h0 = 0;
    expect("reset, ext all zero again", RESET(&m, &s), RNNEDGE_OK);
    expect_step("step, ext all zero again", &m, RNNEDGE_OK);
    printf("driver: %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}
"""


@pytest.mark.parametrize("extensions", [0, 1])
@pytest.mark.parametrize("precision", ["f32", "int8w"])
def test_a_float_library_without_extensions_refuses_extension_layers(tmp_path, host_cc, precision, extensions):
    """A plain rnn_tanh(12) model, f32 and int8w: hand-set ext.flags (clip, activations, init) make the step of a
    library built with RNNEDGE_EXTENSIONS 0 return RNNEDGE_ERR_UNSUPPORTED, and its reset too for an initial state
    (RNNEDGE_EXT_INIT, or h0 set), writing nothing; built with 1 the same layers run."""
    test_host_float._case(tmp_path, precision, "rnn_tanh", 1, "dense")
    driver = tmp_path / "driver.c"
    driver.write_text(FLOAT_DRIVER)
    exe = tmp_path / "driver"
    flags = [] if extensions else [NO_EXT]
    built = _run([host_cc, *FLOAT_FLAGS, *flags, f"-DEXPECT_EXT={extensions}", "-I", str(FIRMWARE / "include"),
                  "-I", str(tmp_path), str(driver), str(tmp_path / "model_data.c"),
                  str(FIRMWARE / "src" / "rnnedge_f32.c"), str(FIRMWARE / "src" / "rnnedge_int8w.c"), "-o", str(exe)])
    assert built.returncode == 0, built.stderr[-3000:]
    ran = _run([str(exe)])
    assert (ran.returncode, ran.stdout.splitlines()[-1]) == (0, "driver: 0 failures"), ran.stdout[-3000:]


def test_rnnedge_h_rejects_other_values_of_the_switch(tmp_path, host_cc):
    probe = tmp_path / "probe.c"
    probe.write_text('#include "rnnedge.h"\nint main(void) { return RNNEDGE_EXTENSIONS; }\n')
    built = _run([host_cc, *STRICT, "-DRNNEDGE_EXTENSIONS=2", "-I", str(FIRMWARE / "include"), str(probe),
                  "-o", str(tmp_path / "probe")])
    assert built.returncode != 0 and "RNNEDGE_EXTENSIONS must be 0 or 1" in built.stderr


# -- Cortex-M3 under QEMU ------------------------------------------------------------------------------------------


def test_plain_int8_model_without_extensions_matches_vectors_on_the_cortex_m3(tmp_path):
    """arm/arm.mk's library image with EXTENSIONS=0 (ARM_LIB_FLAGS): a plain model bit for bit under QEMU, no
    soft-float routine; the same make with an extension model stops at the #error."""
    from tests.firmware.test_qemu import _require_tools
    from tests.firmware.test_qemu_vectors import _assert_passes
    from tests.firmware.test_qemu_vectors import _run as run_qemu

    _require_tools()
    plain = tmp_path / "plain"
    plain.mkdir()
    test_host._calibrated_case(plain, "lstm", 2, "tokens")
    test_host._generate(plain)
    make = ["make", "-s", "--no-print-directory", "-C", str(FIRMWARE), "EXTENSIONS=0"]
    built = _run([*make, f"MODEL_DIR={plain}", f"ARM_BUILD={plain / 'arm'}", "arm-int8-an385",
                  "arm-int8-an385-nofloat"])
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    _assert_passes(run_qemu("an385", plain / "arm" / "int8-an385" / "int8-an385.elf"), "cortex-m3")
    extended = tmp_path / "extended"
    extended.mkdir()
    hot_extended_case(extended, "gru", {"linear_before_reset": False}, 1, "tokens")
    test_host._generate(extended)
    failed = _run([*make, f"MODEL_DIR={extended}", f"ARM_BUILD={extended / 'arm'}", "arm-int8-an385"])
    assert failed.returncode != 0
    assert f"(layer 0: linear_before_reset=0): {FIX}" in failed.stderr, failed.stderr[-3000:]
