"""firmware_ref/examples/generate.c: generation on a device. A tiny seeded int8 token LSTM whose head predicts the
next token; the program streams a prompt of ids and generates tokens, each fed back in. Greedy (the default) must
be the runtime's Model.generate(prompt_ids, n, top_k=1) on the same int8 weight file, token for token, on the
Cortex-M3 under QEMU (linking no soft-float helper) and on the host; the integer top-k sampler must only pick
among the k largest dequantised logits of the step. Tools missing: skip, or fail under CI=true (test_qemu.py).
"""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.export.firmware import write_model_sources
from tests.firmware.test_host import STRICT
from tests.firmware.test_qemu import RUN, _nm, _require_tools
from tests.helpers import make_model, make_spec, write_artifact

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_ref"
VOCAB = 24
N = 24
TOP_K = 4
PROMPT = [3, 17, 0, 9, 9, 21]
GEN = re.compile(r"^gen (\d+): (\d+)$")


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(weight file, folder with model_data.{h,c}, prompt header)."""
    _require_tools()
    folder = tmp_path_factory.mktemp("generate")
    spec = make_spec(cell="lstm", kind="tokens", vocab=VOCAB, out=VOCAB, hidden=16, embed_dim=8,
                     activation="softmax")
    weights = Path(write_artifact(make_model(spec, seed=0), folder / "model.int8.safetensors", "int8"))
    write_model_sources(weights, folder)
    prompt = folder / "prompt.h"
    prompt.write_text(f"#define N_PROMPT {len(PROMPT)}\n"
                      f"static const int32_t prompt_tokens[N_PROMPT] = {{{', '.join(map(str, PROMPT))}}};\n")
    return weights, folder, prompt


def _tokens(out: str) -> list[int]:
    lines = out.splitlines()
    assert lines and lines[0] == "prompt: " + " ".join(map(str, PROMPT)), out[-2000:]
    matches = [GEN.match(line) for line in lines[1:]]
    assert all(matches), out[-2000:]
    assert [int(m.group(1)) for m in matches] == list(range(len(matches)))
    return [int(m.group(2)) for m in matches]


def _arm_generate(folder: Path, prompt: Path, build: Path, flags: str) -> list[int]:
    """Build arm-generate-an385 with the prompt header and -D flags, check its symbols, run it under QEMU."""
    made = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(FIRMWARE), f"MODEL_DIR={folder}",
                           f"BUILD_DIR={build / 'host'}", f"ARM_BUILD={build}", f"ARM_GENERATE_PROMPT={prompt}",
                           f"ARM_GENERATE_FLAGS={flags}", "arm-generate-an385"],
                          check=False, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert made.returncode == 0, f"{made.stdout[-3000:]}\n{made.stderr[-3000:]}"
    elf = build / "generate-an385" / "generate-an385.elf"
    assert _nm(elf) == [], "the Cortex-M3 generate example links soft-float helpers"
    proc = subprocess.run(["sh", str(RUN), "an385", str(elf), "60"], check=False, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return _tokens(proc.stdout)


def _ranks(weights: Path, tokens: list[int]) -> list[int]:
    """For each generated token: how many outputs of that step have a strictly larger logits_q[o] * head.scale[o]
    (exact), with the runtime's stream fed the prompt and then the tokens themselves."""
    scale = [Fraction(float(s)) for s in runtime.artifact.read(weights)[2]["head.scale"]]
    stream = runtime.load(weights).stream()
    for t in PROMPT:
        stream.step(np.asarray([t], dtype=np.int64))
    ranks = []
    for t in tokens:
        values = [int(q) * s for q, s in zip(stream.logits_q[0], scale)]
        ranks.append(sum(v > values[t] for v in values))
        stream.step(np.asarray([t], dtype=np.int64))
    return ranks


def test_greedy_generation_is_the_runtimes(case, tmp_path, host_cc):
    weights, folder, prompt = case
    expected = [int(t) for t in runtime.load(weights).generate(np.asarray(PROMPT), N, top_k=1)]
    assert len(set(expected)) > 1  # the check is not a constant stream
    assert _arm_generate(folder, prompt, tmp_path / "arm", f"-DGENERATE_N={N}") == expected
    assert _ranks(weights, expected) == [0] * N

    exe = tmp_path / "generate-host"
    sources = [FIRMWARE / "src" / "rnnedge_int8.c", FIRMWARE / "src" / "rnnedge_tables.c", folder / "model_data.c",
               FIRMWARE / "examples" / "generate.c"]
    built = subprocess.run([host_cc, *STRICT, "-Wconversion", "-Wsign-conversion", "-O2", f"-I{FIRMWARE / 'include'}",
                            f"-I{folder}", f"-DGENERATE_N={N}", f"-DGENERATE_PROMPT_FILE=\"{prompt}\"",
                            *map(str, sources), "-o", str(exe)],
                           check=False, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-3000:]
    proc = subprocess.run([str(exe)], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert _tokens(proc.stdout) == expected


def test_top_k_generation_picks_among_the_k_largest(case, tmp_path):
    weights, folder, prompt = case
    tokens = _arm_generate(folder, prompt, tmp_path / "arm", f"-DGENERATE_N={N} -DGENERATE_TOP_K={TOP_K} "
                           "-DGENERATE_SEED=7")
    assert len(tokens) == N
    ranks = _ranks(weights, tokens)
    assert max(ranks) < TOP_K, ranks
    assert max(ranks) > 0  # it samples: not every token is the greedy one (a fixed seed, so deterministic)
