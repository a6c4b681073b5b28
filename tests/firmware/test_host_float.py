"""firmware_ref/ on the host, f32 and int8w: the C float library replays golden vectors within 1e-5.

Every case builds a small seeded model, writes its f32 or int8w weight file and golden vectors (export/vectors.py),
generates model_data.{h,c} and vectors_data.h (export/firmware.py), builds firmware_ref/tests/host_test_float.c
with `make host-float-build` (strict C99 flags, -Wdouble-promotion, -Werror, -O2; ISO C mode, so gcc contracts no
multiply-add: -ffp-contract=off) and runs it: the float state and the outputs must lie within 1e-5 absolute of the
runtime's at every step. gcc or make missing fails under CI=true and skips otherwise (tests/firmware/conftest.py).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.firmware import model_sizes, write_firmware_sources, write_float_model_sources, write_vector_sources
from rnnedge.export.vectors import ATOL, read_vectors, save_vectors, write_vectors
from rnnedge.runtime import artifact
from rnnedge.runtime.kernels_f32 import exp_f32
from tests.helpers import make_model, make_spec, random_inputs, write_artifact

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_ref"
STEPS = 64
SUMMARY = re.compile(r"^(f32|int8w): (\d+) steps, (\d+) mismatches, max \|diff\| (\S+)$", re.MULTILINE)
REFUSALS = re.compile(r"^refusals: (\d+) checked$", re.MULTILINE)
CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
ACTIVATION = {"rnn_tanh": "softmax", "rnn_relu": "sigmoid", "lstm": "none", "gru": "softmax"}
FLOAT_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wdouble-promotion"]


def _spec(cell: str, layers: int, kind: str) -> dict:
    return make_spec(cell=cell, layers=layers, kind=kind, hidden=12, features=5, vocab=40, embed_dim=7, out=4,
                     activation=ACTIVATION[cell])


def _case(folder: Path, precision: str, cell: str, layers: int, kind: str, seed: int = 0) -> Path:
    """A seeded model's weight file and vectors in folder, and the generated C sources; returns the weight file.
    Dense inputs are 4x the spec's spread, so gates saturate now and then."""
    spec = _spec(cell, layers, kind)
    weights = write_artifact(make_model(spec, seed), folder / f"model.{precision}.safetensors", precision)
    X = random_inputs(spec, 1, STEPS, seed=seed + 1)[0]
    if kind == "dense":
        X = ((X - 0.5) * 4.0 + 0.5).astype(np.float32)
    vectors = folder / f"model.{precision}.vectors.safetensors"
    write_vectors(vectors, weights, X, steps=STEPS)
    write_firmware_sources(weights, vectors, folder)
    return Path(weights)


def _run(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)


def _make(target: str, folder: Path) -> subprocess.CompletedProcess:
    return _run(["make", "-s", "-C", str(FIRMWARE), target, f"MODEL_DIR={folder}", f"BUILD_DIR={folder / 'build'}"])


def _run_host(folder: Path, target: str = "host-float") -> tuple[int, str]:
    """Build host_test_float (or build and run the sanitizer build) and run it: (its exit status, its output)."""
    result = _make("host-float-build" if target == "host-float" else target, folder)
    if target == "host-float" and result.returncode == 0:
        result = _run([str(folder / "build" / "host_test_float")])
    if SUMMARY.search(result.stdout) is None:
        pytest.fail(f"make {target} failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n"
                    f"{result.stderr[-3000:]}")
    return result.returncode, result.stdout


def _assert_passes(folder: Path, precision: str, target: str = "host-float") -> float:
    """host_test_float passes: no mismatch, every refusal checked; returns the largest |C - runtime|."""
    code, out = _run_host(folder, target)
    mismatches = [line for line in out.splitlines() if line.startswith("mismatch")]
    assert (code, mismatches) == (0, []), out[-3000:]
    name, steps, count, max_diff = SUMMARY.search(out).groups()
    assert (name, int(steps), int(count)) == (precision, STEPS, 0)
    assert int(REFUSALS.search(out).group(1)) >= 10
    return float(max_diff)


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_float_model_matches_vectors(tmp_path, host_cc, make_tool, cell, layers, kind, precision):
    _case(tmp_path, precision, cell, layers, kind, seed=CELLS.index(cell))
    max_diff = _assert_passes(tmp_path, precision)
    assert max_diff <= ATOL


def test_a_tampered_expected_value_is_reported(tmp_path, host_cc, make_tool):
    _case(tmp_path, "f32", "lstm", 1, "dense")
    vectors = tmp_path / "model.f32.vectors.safetensors"
    meta, v = read_vectors(vectors)
    state, output = v["state"].copy(), v["output"].copy()
    state[5, 15] += np.float32(1e-3)  # position 15 of an lstm of 12: layer 0 c[3]
    output[40, 2] -= np.float32(0.01)
    save_vectors(vectors, meta, {**v, "state": state, "output": output})
    write_vector_sources(vectors, tmp_path)
    code, out = _run_host(tmp_path)
    lines = [line for line in out.splitlines() if line.startswith("mismatch")]
    assert code == 1
    pattern = re.compile(r"^mismatch: step (\d+), (\w+)\[(\d+)\](?: \((.*)\))?: actual (\S+), expected (\S+)$")
    parsed = [pattern.match(line) for line in lines]
    assert all(parsed), lines
    got = [(int(m[1]), m[2], int(m[3]), m[4]) for m in parsed]
    assert got == [(5, "state", 15, "layer 0 c[3]"), (40, "output", 2, None)]
    for m, tampered, original in zip(parsed, (state[5, 15], output[40, 2]), (v["state"][5, 15], v["output"][40, 2])):
        assert np.float32(float(m[6])) == tampered  # %.9g round-trips a float
        assert abs(float(m[5]) - original) <= ATOL
    assert SUMMARY.search(out).group(3) == "2"


@pytest.mark.parametrize(("precision", "cell", "kind"), [("int8w", "gru", "tokens"), ("f32", "lstm", "dense")])
def test_sanitizer_build_runs_clean(tmp_path, host_cc, make_tool, precision, cell, kind):
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    built = _run([host_cc, "-fsanitize=address,undefined", str(probe), "-o", str(tmp_path / "probe")])
    if built.returncode != 0:
        message = f"gcc has no AddressSanitizer/UBSan runtime: {built.stderr[-500:]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    _case(tmp_path, precision, cell, 3, kind, seed=7)
    _assert_passes(tmp_path, precision, "host-float-sanitize")


NAN_DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include "rnnedge.h"
#include "model_data.h"

int main(void)
{
    static float state[MODEL_STATE_LEN], scratch[MODEL_SCRATCH_LEN], before[MODEL_STATE_LEN];
    rnnedge_state_f32 s;
    float x[MODEL_N_IN], y[MODEL_OUT], y_before[MODEL_OUT];
    union { unsigned u; float f; } nan_bits;
    int t, k, status;
    s.state = state;
    s.scratch = scratch;
    STEP_RESET(&model, &s);
    for (t = 0; t < 3; ++t) {
        for (k = 0; k < MODEL_N_IN; ++k) x[k] = 0.25f * (float)(t + k) - 0.5f;
        if (STEP(&model, &s, x, y) != RNNEDGE_OK) return 3;
    }
    memcpy(before, state, sizeof before);
    memcpy(y_before, y, sizeof y);
    nan_bits.u = 0x7FC00000u;
    x[1] = nan_bits.f;
    status = STEP(&model, &s, x, y);
    printf("status %d, state %s, output %s\n", status, memcmp(before, state, sizeof before) ? "changed" : "untouched",
           memcmp(y_before, y, sizeof y) ? "changed" : "untouched");
    return 0;
}
"""


@pytest.mark.parametrize("precision", ["f32", "int8w"])
def test_nan_input_returns_bad_value_and_leaves_the_state(tmp_path, host_cc, precision):
    _case(tmp_path, precision, "gru", 2, "dense")
    driver = tmp_path / "nan_driver.c"
    driver.write_text(NAN_DRIVER)
    exe = tmp_path / "nan_driver"
    built = _run([host_cc, *FLOAT_FLAGS[:5], "-O2", f"-DSTEP=rnnedge_model_step_dense_{precision}",
                  f"-DSTEP_RESET=rnnedge_state_reset_{precision}", "-I", str(FIRMWARE / "include"),
                  "-I", str(tmp_path), str(driver), str(tmp_path / "model_data.c"),
                  str(FIRMWARE / "src" / "rnnedge_f32.c"), str(FIRMWARE / "src" / "rnnedge_int8w.c"), "-o", str(exe)])
    assert built.returncode == 0, built.stderr
    ran = _run([str(exe)])
    assert ran.returncode == 0
    assert ran.stdout.strip() == "status -5, state untouched, output untouched"  # RNNEDGE_ERR_BAD_VALUE


def test_float_library_builds_strict_and_needs_no_libm(tmp_path, host_cc, make_tool):
    result = _make("lib-float", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    objects = sorted((tmp_path / "build" / "lib-float").iterdir())
    assert [p.name for p in objects] == ["rnnedge_f32.o", "rnnedge_int8w.o"]
    nm = _run(["nm", "-u", *map(str, objects)])
    if nm.returncode == 0:  # binutils present: no libm; from libc only what gcc itself may emit for a loop
        undefined = {line.split()[-1] for line in nm.stdout.splitlines() if line.strip() and ":" not in line}
        own = {name for name in undefined if name.startswith("rnnedge_")}
        assert undefined - own <= {"memset", "memcpy", "memmove"}, undefined - own


EXP_DRIVER = r"""
#include <stdio.h>
#include "rnnedge.h"
int main(void)
{
    float x;
    while (scanf("%a", &x) == 1) {
        printf("%a %a %a\n", (double)rnnedge_exp_f32(x), (double)rnnedge_sigmoid_f32(x), (double)rnnedge_tanh_f32(x));
    }
    return 0;
}
"""


def test_exp_sigmoid_tanh_match_the_runtime(tmp_path, host_cc):
    driver = tmp_path / "exp_driver.c"
    driver.write_text(EXP_DRIVER)
    exe = tmp_path / "exp_driver"
    built = _run([host_cc, "-std=c99", "-O2", "-I", str(FIRMWARE / "include"), str(driver),
                  str(FIRMWARE / "src" / "rnnedge_f32.c"), "-o", str(exe)])
    assert built.returncode == 0, built.stderr
    xs = np.concatenate([np.linspace(-100, 100, 4001), [-87.0, 88.0, 0.0, -0.0, 1e-30, -1e-30]]).astype(np.float32)
    ran = subprocess.run([str(exe)], input="".join(f"{float(x).hex()}\n" for x in xs), capture_output=True,
                         text=True, check=True)
    got = np.array([[float.fromhex(v) for v in line.split()] for line in ran.stdout.splitlines()], dtype=np.float64)
    want_exp = np.array([exp_f32(x) for x in xs], dtype=np.float64)
    np.testing.assert_allclose(got[:, 0], want_exp, rtol=4e-7, atol=0)  # a few ulps apart at most (FMA)
    np.testing.assert_allclose(got[:, 1], 1 / (1 + np.exp(-xs.astype(np.float64))), atol=2.5e-7)
    np.testing.assert_allclose(got[:, 2], np.tanh(xs.astype(np.float64)), atol=2.5e-7)


def test_generated_float_sources_name_their_origin_and_sizes(tmp_path):
    spec = _spec("gru", 3, "tokens")
    weights = write_artifact(make_model(spec), tmp_path / "model.int8w.safetensors", "int8w")
    sha = artifact.sha256(*artifact.read(weights))
    header, source = write_float_model_sources(weights, tmp_path / "c", checkpoint="runs/watch/model.pt")
    for path in (header, source):
        first = path.read_text().splitlines()[0]
        assert first.startswith("/* Generated by rnnedge export/firmware.py from model.int8w.safetensors ")
        assert sha in first and "checkpoint runs/watch/model.pt" in first
    text = header.read_text()
    sizes = model_sizes(spec, "int8w")
    assert sizes == {"state": 3 * 12, "scratch": 7 + 4 * 12}  # the dequantised row, then a GRU's 4H sums
    assert model_sizes(spec, "f32") == {"state": 3 * 12, "scratch": 4 * 12}  # f32 reads the row in place
    assert model_sizes(_spec("lstm", 1, "dense"), "f32") == {"state": 24, "scratch": 5 + 48}
    for macro in ('PRECISION "int8w"', "PRECISION_INT8W 1", f"STATE_BYTES {4 * sizes['state']}",
                  f"SCRATCH_BYTES {4 * sizes['scratch']}", "ACTIVATION RNNEDGE_ACT_SOFTMAX", "LAYER2_H 24"):
        assert f"#define MODEL_{macro}" in text
    t = artifact.read(weights)[2]
    const = sum(arr.nbytes for name, arr in t.items())
    assert f"#define MODEL_CONST_BYTES {const} " in text  # every tensor of the file, nothing else
    # floats are exact: the first row scale of layer 0's w_ih, as written
    literal = re.search(r"model_l0_s_ih\[\d+\] = \{\n\s+(\S+?),", source.read_text()).group(1)
    assert np.float32(float.fromhex(literal.rstrip("f"))) == t["layers.0.fwd.w_ih.scale"][0]


def test_float_generator_refuses_int8_and_bidirectional_models(tmp_path):
    spec = _spec("lstm", 1, "dense")
    int8 = write_artifact(make_model(spec), tmp_path / "model.int8.safetensors", "int8")
    with pytest.raises(ValueError, match="f32 and int8w weight files"):
        write_float_model_sources(int8, tmp_path)
    bi = make_spec(cell="gru", bidirectional=True)
    bi_weights = write_artifact(make_model(bi), tmp_path / "model.f32.safetensors", "f32")
    with pytest.raises(ValueError, match="bidirectional"):
        write_float_model_sources(bi_weights, tmp_path)
