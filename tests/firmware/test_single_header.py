"""The single header (export.firmware.write_single_header): rnnedge_model.h alone, with
firmware_ref/examples/single_header/main.c next to it and nothing else (no -I, no other source), compiles with the
library's strict flags and streams outputs equal to the runtime's: int8 logits bit for bit, f32 / int8w within the
float rule (export/vectors.py ATOL, RTOL); the same program cross-compiled runs under QEMU (Cortex-M3 int8,
Cortex-M4F float)."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.firmware import SINGLE_HEADER, write_single_header
from rnnedge.export.vectors import ATOL, RTOL, read_vectors, write_vectors
from tests.firmware.conftest import require_tool
from tests.firmware.test_host_float_extensions import ext_model
from tests.firmware.test_qemu import _nm, _require_tools
from tests.firmware.test_riscv import RUN as RISCV_RUN
from tests.firmware.test_riscv import _require_tools as _require_riscv_tools
from tests.firmware.test_riscv import _soft_float as _riscv_soft_float
from tests.helpers import make_model, make_spec, write_artifact

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "firmware_ref" / "examples" / "single_header" / "main.c"
ARM = ROOT / "firmware_ref" / "arm"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wsign-conversion", "-Wshadow",
          "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wcast-qual", "-Wdouble-promotion"]
STEPS = 32  # main.c EXAMPLE_STEPS
LINE = re.compile(r"^step (\d+):((?: \S+)+)$", re.MULTILINE)
CASES = [  # (precision, cell, input kind, ONNX layer extensions, the head's hidden dense layers)
    ("int8", "lstm", "dense", None, ()),
    ("int8", "gru", "tokens", None, ()),
    ("int8", "lstm", "dense", {"clip": 0.6, "peepholes": True, "initial_state": True}, ()),
    ("int8", "rnn_tanh", "dense", None, ((8, "relu"), (6, "tanh"))),
    ("f32", "lstm", "dense", {"clip": 0.6, "input_forget": True, "peepholes": True, "initial_state": True}, ()),
    ("f32", "rnn_tanh", "tokens", None, ()),
    ("int8w", "gru", "dense", None, ((8, "relu"),)),
    ("int8w", "lstm", "tokens", None, ()),
]


def _samples(spec: dict) -> np.ndarray:
    """main.c's sample(): dense x[t, k] = ((7t + 3k) mod 17 - 8) / 4, tokens (7t + 3) mod vocab."""
    t = np.arange(STEPS)[:, None]
    if spec["input"]["kind"] == "dense":
        k = np.arange(spec["input"]["features"])[None, :]
        return (((t * 7 + k * 3) % 17 - 8) * 0.25).astype(np.float32)
    return ((t[:, 0] * 7 + 3) % spec["input"]["vocab"]).astype(np.int64)


def _case(folder: Path, precision: str, cell: str, kind: str, ext, head_hidden=()) -> tuple[Path, dict]:
    """A tiny model's weight file, its single header, and the runtime's outputs on main.c's samples."""
    if ext is None:
        model = make_model(make_spec(cell=cell, layers=2, kind=kind, hidden=10, features=5, vocab=30, embed_dim=6,
                                     out=4, activation="softmax", head_hidden=head_hidden))
    else:
        model = ext_model(cell, ext, layers=2, kind=kind)
    weights = write_artifact(model, folder / f"model.{precision}.safetensors", precision)
    write_vectors(folder / "vectors.safetensors", weights, _samples(model.spec), steps=STEPS)
    _, expected = read_vectors(folder / "vectors.safetensors")
    program = folder / "program"
    program.mkdir()
    write_single_header(weights, program)
    shutil.copy(EXAMPLE, program / "main.c")
    return program, expected


def _outputs(stdout: str, precision: str) -> np.ndarray:
    rows = [[int(v, 16) if v.startswith("0x") else int(v) for v in m.group(2).split()] for m in LINE.finditer(stdout)]
    assert [int(m.group(1)) for m in LINE.finditer(stdout)] == list(range(STEPS)), stdout[-2000:]
    if precision == "int8":
        return np.asarray(rows, np.int64)
    return np.asarray(rows, np.uint32).view(np.float32)


def _assert_matches_runtime(stdout: str, precision: str, expected: dict) -> None:
    actual = _outputs(stdout, precision)
    if precision == "int8":
        np.testing.assert_array_equal(actual, expected["logits_q"])  # bit for bit
        return
    want = expected["output"]
    bound = ATOL + RTOL * np.abs(want).max(axis=1, keepdims=True)
    bad = np.argwhere(np.abs(actual - want) > bound)
    assert bad.size == 0, [f"step {t} output {o}: {actual[t, o]} vs runtime {want[t, o]}" for t, o in bad[:20]]


def _run(command: list[str], cwd=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a command, capturing its output; the caller judges its exit status."""
    return subprocess.run(command, check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _compile(cc: str, folder: Path, *flags: str) -> subprocess.CompletedProcess:
    return _run([cc, *STRICT, "-O2", *flags, "main.c", "-o", "example"], cwd=folder)


@pytest.mark.parametrize("precision,cell,kind,ext,head_hidden", CASES)
def test_single_header_example_alone_matches_runtime_on_host(tmp_path, precision, cell, kind, ext, head_hidden):
    cc = require_tool("gcc")
    program, expected = _case(tmp_path, precision, cell, kind, ext, head_hidden)
    assert sorted(p.name for p in program.iterdir()) == ["main.c", SINGLE_HEADER]
    built = _compile(cc, program)
    assert built.returncode == 0, built.stderr
    run = _run([str(program / "example")], timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    _assert_matches_runtime(run.stdout, precision, expected)


@pytest.mark.parametrize("precision,cell,kind", [("int8", "lstm", "dense"), ("f32", "gru", "tokens")])
def test_single_header_example_built_by_clang_matches_runtime(tmp_path, precision, cell, kind):
    cc = require_tool("clang")
    program, expected = _case(tmp_path, precision, cell, kind, None)
    built = _compile(cc, program)
    assert built.returncode == 0, built.stderr
    run = _run([str(program / "example")], timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    _assert_matches_runtime(run.stdout, precision, expected)


def test_single_header_links_into_two_translation_units(tmp_path):
    """Declarations everywhere, definitions once: a second .c file that includes the header without
    RNNEDGE_MODEL_IMPLEMENTATION calls the API, and the program links."""
    cc = require_tool("gcc")
    program, _ = _case(tmp_path, "int8", "gru", "tokens", None)
    (program / "other.c").write_text('#include "rnnedge_model.h"\n#include "rnnedge_model.h"\n\n'
                                     "int first_logit(int32_t token);\n\n"
                                     "int first_logit(int32_t token)\n{\n    int32_t logits[RNNEDGE_MODEL_OUT];\n"
                                     "    return rnnedge_model_step(token, logits) == RNNEDGE_OK ? (int)logits[0] : 0;"
                                     "\n}\n")
    built = _run([cc, *STRICT, "main.c", "other.c", "-o", "example"], cwd=program)
    assert built.returncode == 0, built.stderr


def test_single_header_without_extensions_builds_the_small_library_and_an_extended_model_refuses_it(tmp_path):
    """A model of PyTorch's cells defaults RNNEDGE_EXTENSIONS to 0 (and still builds with 1); a model with ONNX layer
    extensions stops the compile under -DRNNEDGE_EXTENSIONS=0 with model_data.h's #error naming them."""
    cc = require_tool("gcc")
    (tmp_path / "plain").mkdir()
    (tmp_path / "ext").mkdir()
    plain, _ = _case(tmp_path / "plain", "f32", "rnn_tanh", "tokens", None)
    extended, _ = _case(tmp_path / "ext", "int8", "lstm", "dense", {"clip": 0.6, "initial_state": True})
    header = (plain / SINGLE_HEADER).read_text()
    assert "#ifndef RNNEDGE_EXTENSIONS\n#define RNNEDGE_EXTENSIONS 0\n#endif" in header
    assert "#define RNNEDGE_MODEL_USES_EXTENSIONS 0" in header
    for flags in ((), ("-DRNNEDGE_EXTENSIONS=1",)):
        built = _compile(cc, plain, *flags)
        assert built.returncode == 0, built.stderr
    refused = _compile(cc, extended, "-DRNNEDGE_EXTENSIONS=0")
    assert refused.returncode != 0
    assert "uses ONNX layer extensions (layer 0: clip, initial_state" in refused.stderr


def test_single_header_refuses_a_bidirectional_model_and_its_own_weight_file(tmp_path):
    spec = make_spec(cell="gru", bidirectional=True, hidden=6, features=3, out=2)
    weights = write_artifact(make_model(spec), tmp_path / "model.f32.safetensors", "f32")
    with pytest.raises(ValueError, match="bidirectional or reverse"):
        write_single_header(weights, tmp_path / SINGLE_HEADER)
    assert not (tmp_path / SINGLE_HEADER).exists()
    with pytest.raises(ValueError, match="overwrite the weight file"):
        write_single_header(weights, weights)


@pytest.mark.parametrize("precision,cell,kind,board", [("int8", "lstm", "dense", "an385"),
                                                        ("int8", "gru", "tokens", "an385"),
                                                        ("f32", "lstm", "dense", "an386"),
                                                        ("int8w", "gru", "dense", "an386")])
def test_single_header_example_runs_on_cortex_m_under_qemu(tmp_path, precision, cell, kind, board):
    """The example built by firmware_ref/arm/arm.mk from main.c alone (plus the board's startup and semihosting) on
    the Cortex-M3 (int8) or Cortex-M4F (f32, int8w) prints the runtime's outputs; the int8 tokens image (no float
    input step) links no soft-float helper."""
    _require_tools()
    program, expected = _case(tmp_path, precision, cell, kind, None)
    build = tmp_path / "arm"
    made = _run(["make", "-s", "-f", str(ARM / "arm.mk"), f"ARM_BUILD={build}", f"ARM_BOARD={board}",
                 "ARM_NAME=single", f"ARM_SRCS={program / 'main.c'}",
                 f"ARM_EXTRA_CFLAGS={' '.join(STRICT)} -DEXAMPLE_SEMIHOST", "arm-run"], timeout=300)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    _assert_matches_runtime(made.stdout, precision, expected)
    if precision == "int8" and kind == "tokens":
        assert _nm(build / "single" / "single.elf") == []


@pytest.mark.parametrize("precision,cell,kind", [("int8", "gru", "tokens"), ("int8w", "lstm", "dense")])
def test_single_header_example_runs_on_rv32imac_under_qemu(tmp_path, precision, cell, kind):
    """The example built by firmware_ref/riscv/riscv.mk from main.c alone (plus the board's startup and
    semihosting) for rv32imac prints the runtime's outputs (int8w in soft float); the int8 tokens image links no
    soft-float routine."""
    _require_riscv_tools()
    program, expected = _case(tmp_path, precision, cell, kind, None)
    made = _run(["make", "-s", "--no-print-directory", "-C", str(ROOT / "firmware_ref"), f"RISCV_BUILD={tmp_path / 'rv'}",
                 "RISCV_NAME=single", f"RISCV_SRCS={program / 'main.c'}",
                 f"RISCV_EXTRA_CFLAGS={' '.join(STRICT)} -DEXAMPLE_SEMIHOST", "riscv-single"], timeout=300)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    elf = tmp_path / "rv" / "single" / "single.elf"
    run = _run(["sh", str(RISCV_RUN), str(elf), "120"], timeout=180)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    _assert_matches_runtime(run.stdout, precision, expected)
    if precision == "int8":
        assert _riscv_soft_float(elf) == []
