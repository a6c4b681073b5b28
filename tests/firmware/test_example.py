"""firmware_ref/examples/main.c, the minimal program to copy: built for mps2-an385 (Cortex-M3) with arm.mk's
`arm-example-an385` target and run under QEMU, it prints one class per sample; the classes must be the argmax
of the Python runtime's int8 outputs on the same samples (runtime.load(...).stream().step()). The same source
built for the host (stdio instead of semihosting) prints the same lines. Tools missing: skip, or fail under
CI=true (test_qemu.py's check).
"""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.export.vectors import read_vectors
from tests.firmware.test_host import STRICT, _calibrated_case, _generate
from tests.firmware.test_qemu import RUN, _nm, _require_tools

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_ref"
EXAMPLE = FIRMWARE / "examples"
LINE = re.compile(r"^step (\d+): class (\d+)$")


@pytest.fixture(scope="module")
def arm_tools() -> None:
    _require_tools()


def _make(folder: Path, build: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "--no-print-directory", "-C", str(FIRMWARE), f"MODEL_DIR={folder}",
                           f"ARM_BUILD={build}", *args],
                          check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def _run_example(folder: Path, build: Path, *args: str) -> tuple[list[int], str]:
    """Build the an385 example image, check it links no soft float, run it; the printed classes."""
    made = _make(folder, build, "arm-example-an385", *args)
    assert made.returncode == 0, f"{made.stdout[-3000:]}\n{made.stderr[-3000:]}"
    elf = build / "example-an385" / "example-an385.elf"
    assert _nm(elf) == [], "the Cortex-M3 example links soft-float helpers"
    proc = subprocess.run(["sh", str(RUN), "an385", str(elf), "60"], check=False, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return _classes(proc.stdout), proc.stdout


def _classes(out: str) -> list[int]:
    lines = out.splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), out[-2000:]
    assert [int(m.group(1)) for m in matches] == list(range(len(lines)))
    return [int(m.group(2)) for m in matches]


def _runtime_classes(weights: Path, inputs: np.ndarray) -> tuple[list[int], list[int]]:
    """The runtime's int8 stream on the samples: (argmax of its float outputs, exact argmax of
    logits_q[o] * head.scale[o] from its integer logits)."""
    model = runtime.load(weights)
    scale = [Fraction(float(s)) for s in runtime.artifact.read(weights)[2]["head.scale"]]
    stream = model.stream()
    by_output, by_logits = [], []
    for x in inputs:
        sample = np.asarray([x], dtype=np.float32 if model.dense else np.int64)
        y = stream.step(sample)
        by_output.append(int(np.argmax(y[0])))
        values = [int(q) * s for q, s in zip(stream.logits_q[0], scale)]
        by_logits.append(values.index(max(values)))
    return by_output, by_logits


def _host_example(folder: Path, build: Path, host_cc: str) -> list[int]:
    exe = build / "example-host"
    build.mkdir(parents=True, exist_ok=True)
    sources = [FIRMWARE / "src" / "rnnedge_int8.c", FIRMWARE / "src" / "rnnedge_tables.c", folder / "model_data.c",
               EXAMPLE / "main.c"]
    built = subprocess.run([host_cc, *STRICT, "-Wconversion", "-Wsign-conversion", "-O2",
                            f"-I{FIRMWARE / 'include'}", f"-I{folder}", *map(str, sources), "-o", str(exe)],
                           check=False, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-3000:]
    proc = subprocess.run([str(exe)], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:]
    return _classes(proc.stdout)


def test_example_prints_the_runtime_classes_of_an_exported_model(arm_tools, tmp_path, host_cc):
    from rnnedge.export.pipeline import export_checkpoint
    from tests.export.test_export_cli import checkpoint

    ckpt = checkpoint(tmp_path / "m.pt", cell="lstm")  # dense, lstm 12 -> gru 8, untrained
    export_checkpoint(ckpt, tmp_path / "out", steps=48, precisions=("int8",))
    folder = tmp_path / "out" / "firmware" / "int8"
    classes, _ = _run_example(folder, tmp_path / "arm")  # examples/samples.h: the vectors' inputs
    _, v = read_vectors(tmp_path / "out" / "model.int8.vectors.safetensors")
    by_output, by_logits = _runtime_classes(tmp_path / "out" / "model.int8.safetensors", v["input"])
    assert len(classes) == len(v["input"]) == 48
    assert classes == by_logits == by_output
    assert _host_example(folder, tmp_path / "host", host_cc) == classes


def test_example_with_its_own_samples_header(arm_tools, tmp_path):
    # a token model streamed from a samples header of the user's own; its head scales differ per row enough that
    # the plain argmax of the integer logits is the wrong class at some steps, which the example must not print
    _calibrated_case(tmp_path, "lstm", 1, "tokens", seed=3)
    _generate(tmp_path)
    weights = tmp_path / "model.int8.safetensors"
    tokens = np.random.default_rng(5).integers(0, 40, size=64)
    header = tmp_path / "my_samples.h"
    header.write_text("#define N_SAMPLES 64\nstatic const int32_t sample_tokens[N_SAMPLES] = {"
                      + ", ".join(map(str, tokens)) + "};\n")
    classes, _ = _run_example(tmp_path, tmp_path / "arm", f"ARM_EXAMPLE_SAMPLES={header}")
    by_output, by_logits = _runtime_classes(weights, tokens)
    assert classes == by_logits == by_output
    stream = runtime.load(weights).stream()
    plain = []
    for t in tokens:
        stream.step(np.asarray([t], dtype=np.int64))
        plain.append(int(np.argmax(stream.logits_q[0])))
    assert plain != classes
