"""rnnedge compile (runtime/compile_cmd.py): after it, a fresh process loads the models and steps them compiling
nothing."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.runtime import model as model_module
from rnnedge.runtime.umbrella import main as rnnedge
from tests.helpers import make_model, make_spec, write_artifact

pytestmark = pytest.mark.specialised  # the step a user gets (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]
# A fresh process: import, load each model, its first step (and generate() for the token generator), then numba's
# own count of what its dispatchers loaded from the cache and what they compiled.
FIRST_STEP = textwrap.dedent("""
    import json, sys
    import numpy as np
    from numba.core.dispatcher import Dispatcher
    from rnnedge import runtime
    outputs = []
    for path in sys.argv[1:]:
        model = runtime.load(path)
        x = np.full((1, model.features), 0.25, np.float32) if model.dense else np.array([3], np.int64)
        outputs.append(model.stream(1).step(x).ravel().tolist())
        if not model.dense:
            outputs.append(model.generate([1, 2], 5, seed=0).tolist())
    kernels = {id(v): v for name, m in list(sys.modules.items()) if m is not None and name.startswith("rnnedge")
               for v in vars(m).values() if isinstance(v, Dispatcher)}
    hits = sum(sum(k.stats.cache_hits.values()) for k in kernels.values())
    misses = {k.py_func.__qualname__: len(k.stats.cache_misses) for k in kernels.values() if k.stats.cache_misses}
    print(json.dumps({"outputs": outputs, "hits": hits, "misses": misses}))
""")


def _env(cache: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "RNNEDGE_CACHE_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = env["RNNEDGE_CACHE_DIR"] = str(cache)
    return env


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[str]:
    """A dense GRU classifier and a token LSTM that generates (every step predicts the next of 40 tokens)."""
    folder = tmp_path_factory.mktemp("compile")
    generator = make_spec("lstm", kind="tokens", out=40)
    generator["task"] = "generate"
    return [write_artifact(make_model(make_spec("gru")), folder / "watch.f32.safetensors"),
            write_artifact(make_model(generator), folder / "text.f32.safetensors")]


def test_after_rnnedge_compile_a_fresh_process_steps_each_model_compiling_nothing_with_the_same_outputs(models,
                                                                                                       tmp_path):
    from tests.runtime.test_no_torch import BLOCKER

    cache = tmp_path / "device-cache"
    compile_on_a_device = BLOCKER + (  # torch and onnx unimportable, as on a device install
        "from rnnedge.runtime.umbrella import main\n"
        f"status = main(['compile', *{models!r}, '--cache-dir', {str(cache)!r}])\n"
        "assert not {'torch', 'onnx'} & set(sys.modules)\n"
        "raise SystemExit(status)\n")
    done = subprocess.run([sys.executable, "-c", compile_on_a_device], capture_output=True, text=True, check=False,
                          env=_env(None), timeout=600)
    assert done.returncode == 0, done.stderr
    for path in models:
        assert f"{path}: f32, " in done.stdout and " step" in done.stdout
    assert "generate()" in done.stdout  # the token generator's sampler was called
    assert str(cache) in done.stdout  # both caches named: numba's folder inside it, and the generated kernels
    assert done.stderr.count("compiling the kernels of") == 2

    first = subprocess.run([sys.executable, "-c", FIRST_STEP, *models], capture_output=True, text=True, check=False,
                           env=_env(cache), timeout=600)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["misses"] == {}, f"compiled after rnnedge compile: {result['misses']}"
    assert result["hits"] >= 2  # at least the two models' steps came from the cache
    # the Python side starts warm too: the generated kernels and the runtime's own modules have their bytecode
    generated = sorted(cache.glob("*.py"))
    assert generated and all(Path(importlib.util.cache_from_source(str(p))).is_file() for p in generated)
    assert Path(importlib.util.cache_from_source(model_module.__file__)).is_file()

    dense, tokens = (runtime.load(path) for path in models)
    want = [dense.stream(1).step(np.full((1, 5), 0.25, np.float32)).ravel().tolist(),
            tokens.stream(1).step(np.array([3], np.int64)).ravel().tolist(),
            tokens.generate([1, 2], 5, seed=0).tolist()]
    assert result["outputs"] == want


def test_quiet_compile_of_a_model_already_compiled_in_this_process_prints_nothing(models, capsys):
    runtime.load(models[0]).stream(1).step(np.zeros((1, 5), np.float32))
    assert rnnedge(["compile", models[0], "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("case", ["missing", "npy", "onnx", "truncated", "cache-dir is a file"])
def test_compile_refuses_bad_input_in_one_line_with_exit_2_compiling_nothing(models, tmp_path, capsys, case):
    if case == "missing":
        named = bad = tmp_path / "absent.safetensors"
    elif case == "npy":
        named = bad = tmp_path / "model.npy"
        np.save(bad, np.zeros(3))
    elif case == "onnx":
        named = bad = tmp_path / "model.onnx"
        bad.write_bytes(b"\x08\x07\x12\x07pytorch\x1a\x032.0")  # an ONNX ModelProto's first fields
    elif case == "truncated":
        named = bad = tmp_path / "model.f32.safetensors"
        bad.write_bytes(Path(models[0]).read_bytes()[:200])
    else:
        named = tmp_path / "a-file"
        named.write_text("not a folder\n")
    argv = ["compile", models[0], str(bad)] if case != "cache-dir is a file" else \
        ["compile", models[0], "--cache-dir", str(named)]
    assert rnnedge(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("rnnedge compile: error: ")
    assert str(named) in err


# the modules of each precision's steps and kernels: a process that serves models of one precision imports none of
# the others' (a faster start: issue 15's warm start, measured ~30 ms less on Zen 3)
OWN = {"f32": {"rnnedge.runtime.fused_float"}, "int8w": {"rnnedge.runtime.fused_float"},
       "int8": {"rnnedge.runtime.fused_int8", "rnnedge.runtime.fused_int8_seq"}}
GENERIC = {"rnnedge.runtime.kernels_f32_model", "rnnedge.runtime.kernels_int8w", "rnnedge.runtime.kernels_int8_model"}


@pytest.mark.parametrize("precision", ["f32", "int8w", "int8"])
def test_a_process_imports_only_the_kernels_its_models_precision_runs(tmp_path, precision):
    path = write_artifact(make_model(make_spec("gru", layers=2)), tmp_path / f"m.{precision}.safetensors", precision)
    program = textwrap.dedent(f"""
        import sys
        import numpy as np
        from rnnedge import runtime
        m = runtime.load({str(path)!r})
        m.stream(1).step(np.full((1, 5), 0.25, np.float32))
        m.run(np.full((2, 6, 5), 0.25, np.float32))
        print(" ".join(sorted(n for n in sys.modules if n.startswith("rnnedge.runtime."))))
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=False,
                          env=_env(None), timeout=600)
    assert done.returncode == 0, done.stderr
    imported = set(done.stdout.split())
    assert OWN[precision] <= imported
    others = set().union(*OWN.values()) - OWN[precision]
    assert not imported & (others | GENERIC), sorted(imported & (others | GENERIC))
