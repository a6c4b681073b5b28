"""firmware_ref/ on the host: the C library replays golden vectors bit for bit (export/firmware.py sources).

Every case builds a small seeded int8 model, writes its weight file and golden vectors (export/vectors.py),
generates model_data.{h,c} and vectors_data.h, builds firmware_ref/tests/host_test.c with `make host` (strict
C99 flags, -Werror) and runs it: state (int16) and logits (int32) must match at every step.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.firmware import (
    model_sizes,
    sigmoid_table_source,
    write_model_sources,
    write_vector_sources,
)
from rnnedge.export.vectors import read_vectors, save_vectors, write_vectors
from rnnedge.runtime import artifact
from rnnedge.runtime.int8_math import SIGMOID_TABLE_Q16
from tests.helpers import make_model, make_spec, random_inputs, write_artifact
from tests.runtime.int8_twin import random_int8_tensors, saturating_dense_inputs

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_ref"
STEPS = 64
SUMMARY = re.compile(r"^int8: (\d+) steps, (\d+) mismatches$", re.MULTILINE)
CELLS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def _spec(cell: str, layers: int, kind: str) -> dict:
    return make_spec(cell=cell, layers=layers, kind=kind, hidden=12, features=5, vocab=40, embed_dim=7, out=4)


def _calibrated_case(folder: Path, cell: str, layers: int, kind: str, seed: int = 0) -> Path:
    """A calibrated int8 model (tests.helpers) and vectors; dense inputs are 8x the calibration's spread, so
    the input quantisation clamps at +-32767 and the gates saturate."""
    spec = _spec(cell, layers, kind)
    weights = write_artifact(make_model(spec, seed), folder / "model.int8.safetensors", "int8")
    X = random_inputs(spec, 1, STEPS, seed=seed + 1)[0]
    if kind == "dense":
        X = (X - 0.5) * 8.0 + 0.5
    write_vectors(folder / "model.int8.vectors.safetensors", weights, X, steps=STEPS)
    return Path(weights)


def _hot_case(folder: Path, cell: str, layers: int, kind: str, seed: int = 0) -> Path:
    """Random "hot" constants (tests/runtime/int8_twin.py): sat16 clips often, one bias at the int32 limit,
    a left shift that saturates int32 and a multiplier of ~0 per matrix, LSTM cell powers -15 and -12;
    dense inputs that clamp and hit rint's ties."""
    spec = _spec(cell, layers, kind)
    rng = np.random.default_rng(seed)
    tensors = random_int8_tensors(spec, rng, hot=True)
    weights = folder / "model.int8.safetensors"
    artifact.write(weights, tensors, spec, "int8")
    if kind == "dense":
        X = saturating_dense_inputs(spec, float(tensors["input.scale"][0]), rng, 1, STEPS)[0]
    else:
        X = random_inputs(spec, 1, STEPS, seed=seed + 1)[0]
    write_vectors(folder / "model.int8.vectors.safetensors", weights, X, steps=STEPS)
    return weights


def _generate(folder: Path) -> None:
    write_model_sources(folder / "model.int8.safetensors", folder)
    write_vector_sources(folder / "model.int8.vectors.safetensors", folder)


def _run(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a command, capturing its output; the caller judges its exit status."""
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)


def _make(target: str, folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return _run(["make", "-s", "-C", str(FIRMWARE), target, f"MODEL_DIR={folder}", f"BUILD_DIR={folder / 'build'}",
                 *extra])


def _run_host(folder: Path, target: str = "host") -> tuple[int, str]:
    """Build host_test (make host-build, or host-sanitize, which also runs it) and run it: (exit status of the
    program itself, its output). A build failure fails the test with the compiler's output."""
    result = _make("host-build" if target == "host" else target, folder)
    if target == "host" and result.returncode == 0:
        result = _run([str(folder / "build" / "host_test")])
    summary = SUMMARY.search(result.stdout)
    if summary is None:
        pytest.fail(f"make {target} failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n"
                    f"{result.stderr[-3000:]}")
    return result.returncode, result.stdout


def _assert_passes(folder: Path, target: str = "host") -> None:
    code, out = _run_host(folder, target)
    mismatches = [line for line in out.splitlines() if line.startswith("mismatch")]
    assert (code, mismatches) == (0, []), out[-3000:]
    assert SUMMARY.search(out).groups() == (str(STEPS), "0")


@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_calibrated_model_matches_vectors_bit_for_bit(tmp_path, host_cc, make_tool, cell, layers, kind):
    _calibrated_case(tmp_path, cell, layers, kind)
    _, v = read_vectors(tmp_path / "model.int8.vectors.safetensors")
    if kind == "dense":  # the inputs reach the clamp, so the C quantisation's saturation is compared too
        assert np.abs(v["input_q"]).max() == 32767
    _generate(tmp_path)
    _assert_passes(tmp_path)


@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("cell", CELLS)
def test_hot_constants_match_vectors_bit_for_bit(tmp_path, host_cc, make_tool, cell, kind):
    _hot_case(tmp_path, cell, 2, kind, seed=CELLS.index(cell))
    _, v = read_vectors(tmp_path / "model.int8.vectors.safetensors")
    saturated = np.isin(v["state"], [-32768, 32767]).mean()
    assert saturated > 0 or cell == "rnn_relu", "hot constants should drive some state to int16's limits"
    _generate(tmp_path)
    _assert_passes(tmp_path)


def test_a_tampered_expected_value_is_reported_exactly(tmp_path, host_cc, make_tool):
    _calibrated_case(tmp_path, "lstm", 1, "dense")
    vectors = tmp_path / "model.int8.vectors.safetensors"
    meta, v = read_vectors(vectors)
    state, logits = v["state"].copy(), v["logits_q"].copy()
    state[5, 15] += 1 if state[5, 15] < 32767 else -1  # position 15 of an lstm of 12: layer 0 c[3]
    logits[40, 2] -= 7
    save_vectors(vectors, meta, {**v, "state": state, "logits_q": logits})
    _generate(tmp_path)
    code, out = _run_host(tmp_path)
    lines = [line for line in out.splitlines() if line.startswith("mismatch")]
    assert code == 1
    assert lines == [
        f"mismatch: step 5, state[15] (layer 0 c[3]): actual {v['state'][5, 15]}, expected {state[5, 15]}",
        f"mismatch: step 40, logits_q[2]: actual {v['logits_q'][40, 2]}, expected {logits[40, 2]}",
    ]
    assert SUMMARY.search(out).groups() == (str(STEPS), "2")


def test_sanitizer_build_runs_clean(tmp_path, host_cc, make_tool):
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    built = _run([host_cc, "-fsanitize=address,undefined", str(probe), "-o", str(tmp_path / "probe")])
    if built.returncode != 0:
        message = f"gcc has no AddressSanitizer/UBSan runtime: {built.stderr[-500:]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    _hot_case(tmp_path, "lstm", 3, "tokens", seed=7)
    _generate(tmp_path)
    _assert_passes(tmp_path, "host-sanitize")


def test_library_builds_with_strict_flags(tmp_path, host_cc, make_tool):
    result = _make("lib", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    objects = sorted(p.name for p in (tmp_path / "build" / "lib").iterdir())
    assert objects == ["rnnedge_input_f32.o", "rnnedge_int8.o", "rnnedge_tables.o"]
    if platform.machine() in ("x86_64", "AMD64"):
        # no float in the integer files: x86 gcc refuses any float/SSE use under -mgeneral-regs-only
        for src in ("rnnedge_int8.c", "rnnedge_tables.c"):
            built = _run([host_cc, *STRICT, "-O2", "-mgeneral-regs-only", "-I", str(FIRMWARE / "include"), "-c",
                          str(FIRMWARE / "src" / src), "-o", str(tmp_path / "intonly.o")])
            assert built.returncode == 0, built.stderr


def test_sigmoid_table_equals_the_runtime_table(tmp_path, host_cc):
    assert (FIRMWARE / "src" / "rnnedge_tables.c").read_text() == sigmoid_table_source()
    program = tmp_path / "table.c"
    program.write_text('#include <stdio.h>\n#include "rnnedge.h"\nint main(void) {\n    int k;\n'
                       '    for (k = 0; k < 256; ++k) printf("%u\\n", (unsigned)rnnedge_sigmoid_table_q16[k]);\n'
                       "    return 0;\n}\n")
    exe = tmp_path / "table"
    subprocess.run([host_cc, *STRICT, "-I", str(FIRMWARE / "include"), str(program),
                    str(FIRMWARE / "src" / "rnnedge_tables.c"), "-o", str(exe)], check=True)
    values = [int(x) for x in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]
    assert values == SIGMOID_TABLE_Q16.tolist()


def test_generated_sources_name_their_origin_and_sizes(tmp_path):
    weights = _calibrated_case(tmp_path, "gru", 3, "tokens")
    sha = artifact.sha256(*artifact.read(weights))
    header, source = write_model_sources(weights, tmp_path / "c", checkpoint="runs/watch/model.pt")
    for path in (header, source):
        first = path.read_text().splitlines()[0]
        assert first.startswith("/* Generated by rnnedge export/firmware.py from model.int8.safetensors ")
        assert sha in first and "checkpoint runs/watch/model.pt" in first
    spec = _spec("gru", 3, "tokens")
    text = header.read_text()
    sizes = model_sizes(spec)
    assert sizes == {"state": 3 * 12, "scratch": 7 + 4 * 12}
    assert f"#define MODEL_STATE_BYTES {2 * sizes['state']}\n" in text
    assert f"#define MODEL_SCRATCH_BYTES {2 * sizes['scratch']}\n" in text
    vector_header = write_vector_sources(tmp_path / "model.int8.vectors.safetensors", tmp_path / "c")
    assert sha in vector_header.read_text().splitlines()[0]


def test_generator_refuses_other_precisions_and_bidirectional_models(tmp_path):
    spec = _spec("lstm", 1, "dense")
    f32 = write_artifact(make_model(spec), tmp_path / "model.f32.safetensors", "f32")
    with pytest.raises(ValueError, match="int8 weight files"):
        write_model_sources(f32, tmp_path)
    bi = make_spec(cell="gru", bidirectional=True)
    bi_weights = write_artifact(make_model(bi), tmp_path / "model.int8.safetensors", "int8")
    with pytest.raises(ValueError, match="bidirectional"):
        write_model_sources(bi_weights, tmp_path)
    with pytest.raises(ValueError, match="C identifier"):
        write_model_sources(f32, tmp_path, prefix="my-model")


def test_export_writes_firmware_sources_that_pass_on_the_host(tmp_path, host_cc, make_tool):
    from rnnedge.export.pipeline import export_checkpoint
    from tests.export.test_export_cli import checkpoint

    ckpt = checkpoint(tmp_path / "m.pt", cell="lstm")  # lstm 12 -> gru 8, untrained
    report = export_checkpoint(ckpt, tmp_path / "out", steps=100, precisions=("int8",))
    folder = tmp_path / "out" / "firmware" / "int8"
    for name in ("model_data.h", "model_data.c", "vectors_data.h"):
        assert f"firmware/int8/{name}" in report["files"]
    assert f"checkpoint {ckpt}" in (folder / "model_data.h").read_text().splitlines()[0]
    result = _make("host", folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert SUMMARY.search(result.stdout).group(2) == "0"
