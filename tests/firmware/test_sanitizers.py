"""firmware_ref under clang's and gcc's sanitizers: address, undefined and float-cast-overflow, no recovery.

float-cast-overflow is not part of `undefined` in either compiler; it catches a float converted to an integer
that cannot hold it (NaN included), which rnnedge_exp_f32 did for NaN before it was made safe for any input. Each
compiler's sanitizers are first proved live (a program with such a cast must be stopped), then the host test
programs run under them: int8 (host_test.c, its refusals of finite inputs whose normalised value overflows) and
f32 / int8w (host_test_float.c: exp, sigmoid and tanh of NaN, infinities and FLT_MAX, steps on huge finite inputs,
every refusal). clang or gcc missing, or a compiler without its sanitizer runtime, fails under CI=true (.ci/run
installs clang) and skips otherwise.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rnnedge.runtime.kernels_f32 import exp_f32
from tests.firmware import test_host, test_host_float
from tests.firmware.conftest import require_tool

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware_ref"
SANITIZERS = "address,undefined,float-cast-overflow"
FLAGS = [f"-fsanitize={SANITIZERS}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"]
CAST = "int main(int argc, char **argv) { volatile float f = argc > 5 ? 1.0f : 3e38f; (void)argv; return (int)f; }\n"


def _run(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=180, input=stdin)


@pytest.fixture(scope="module", params=["clang", "gcc"])
def cc(request, tmp_path_factory) -> str:
    """A compiler whose sanitizers are live: a float-to-int overflow must stop a program built with FLAGS."""
    path = require_tool(request.param)
    folder = tmp_path_factory.mktemp(f"probe-{request.param}")
    (folder / "cast.c").write_text(CAST)
    built = _run([path, *FLAGS, str(folder / "cast.c"), "-o", str(folder / "cast")])
    if built.returncode != 0:
        message = f"{request.param} cannot build with -fsanitize={SANITIZERS}: {built.stderr[-500:]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: a missing sanitizer runtime fails)")
        pytest.skip(message)
    ran = _run([str(folder / "cast")])
    assert ran.returncode != 0 and "outside the range of representable values" in ran.stderr, ran.stderr
    return request.param


def test_exp_sigmoid_tanh_take_any_float_without_undefined_behaviour(tmp_path, cc):
    driver = tmp_path / "exp_driver.c"
    driver.write_text(test_host_float.EXP_DRIVER)
    exe = tmp_path / "exp_driver"
    built = _run([cc, "-std=c99", *FLAGS, "-I", str(FIRMWARE / "include"), str(driver),
                  str(FIRMWARE / "src" / "rnnedge_f32.c"), "-o", str(exe)])
    assert built.returncode == 0, built.stderr
    finfo = np.finfo(np.float32)
    special = [np.nan, -np.nan, np.inf, -np.inf, finfo.max, -finfo.max, 3e38, -3e38, 1e20, -1e20, 88.5, -87.5]
    xs = np.concatenate([special, np.linspace(-120, 120, 2001)]).astype(np.float32)
    ran = _run([str(exe)], stdin="".join(f"{float(x).hex()}\n" for x in xs))
    assert ran.returncode == 0 and "runtime error" not in ran.stderr, ran.stderr
    got = np.array([[float.fromhex(v) for v in line.split()] for line in ran.stdout.splitlines()])
    want = np.array([exp_f32(x) for x in xs], dtype=np.float64)
    nan = np.isnan(xs)
    assert np.isnan(got[nan]).all() and np.isnan(want[nan]).all()  # NaN in, NaN out: exp, sigmoid, tanh
    np.testing.assert_allclose(got[~nan, 0], want[~nan], rtol=4e-7, atol=0)  # the runtime's exp_f32 (FMA aside)
    assert got[2, 0] == got[4, 0] == got[6, 0] == exp_f32(np.float32(88))  # +inf, FLT_MAX, 3e38 clamp to 88
    assert got[3, 0] == got[5, 0] == got[7, 0] == exp_f32(np.float32(-87))


def test_int8_host_test_runs_clean(tmp_path, cc, make_tool):
    test_host._hot_case(tmp_path, "gru", 2, "dense", seed=3)
    test_host._generate(tmp_path)
    result = test_host._make("host-sanitize", tmp_path, f"CC={cc}", f"SANITIZERS={SANITIZERS}")
    assert result.returncode == 0 and "runtime error" not in result.stderr, result.stdout[-2000:] + result.stderr
    assert test_host.SUMMARY.search(result.stdout).groups() == (str(test_host.STEPS), "0")


@pytest.mark.parametrize(("precision", "cell", "kind"), [("f32", "lstm", "dense"), ("int8w", "rnn_relu", "dense"),
                                                        ("f32", "gru", "tokens")])
def test_float_host_test_runs_clean(tmp_path, cc, make_tool, precision, cell, kind):
    test_host_float._case(tmp_path, precision, cell, 2, kind, seed=5)
    result = _run(["make", "-s", "-C", str(FIRMWARE), "host-float-sanitize", f"MODEL_DIR={tmp_path}",
                   f"BUILD_DIR={tmp_path / 'build'}", f"CC={cc}", f"SANITIZERS={SANITIZERS}"])
    out = result.stdout
    assert result.returncode == 0 and "runtime error" not in result.stderr, out[-2000:] + result.stderr
    assert [line for line in out.splitlines() if line.startswith("mismatch")] == []
    assert test_host_float.SUMMARY.search(out).group(3) == "0"
    assert "exp: 34 inputs checked" in out
    assert ("huge inputs: 8 steps checked" in out) == (kind == "dense")
