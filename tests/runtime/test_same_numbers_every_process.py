"""A model gives the same numbers, bit for bit, in step() and run(), whether the process compiled its specialised
step or loaded it from the kernel cache (runtime/fused_float_fma.DOT: the head's sums in one fixed order)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from rnnedge import runtime
from tests.helpers import make_model, make_spec, random_inputs, write_artifact

# stream a batch through step(), then run() it, in a process of its own
SCRIPT = """
import sys
import numpy as np
from rnnedge import runtime
model, X = runtime.load(sys.argv[1]), np.load(sys.argv[2])
stream = model.stream(X.shape[0])
steps = np.stack([stream.step(np.ascontiguousarray(X[:, t])).copy() for t in range(X.shape[1])], 1)
np.savez(sys.argv[3], step=steps, run=model.run(X), run1=model.run(X[:1]), info=model.kernel_info["step"])
"""


pytestmark = pytest.mark.specialised


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("head", [(), ((24, "tanh"),)], ids=["head", "hidden-head"])
def test_step_and_run_agree_bit_for_bit_in_the_process_that_compiled_them_and_in_one_that_loaded_them(
        precision, head, tmp_path):
    # kws' shape: LSTM(40 -> 128) + Linear(12), whose 128-long head rows LLVM summed in different orders in
    # different places when reordering was allowed (1 ulp of a logit between step() and run(), and between processes)
    spec = make_spec("lstm", hidden=128, features=40, out=12, activation="none", head_hidden=head)
    path = write_artifact(make_model(spec), tmp_path / f"m.{precision}.safetensors", precision)
    X = random_inputs(spec, 4, 30)
    np.save(tmp_path / "x.npy", X)
    env = {**os.environ, "RNNEDGE_CACHE_DIR": str(tmp_path / "kernels")}  # empty: the first process compiles
    got = []
    for n in range(2):
        done = subprocess.run([sys.executable, "-c", SCRIPT, path, str(tmp_path / "x.npy"), str(tmp_path / f"{n}.npz")],
                              capture_output=True, text=True, check=False, env=env, timeout=600)
        assert done.returncode == 0, done.stderr
        got.append(np.load(tmp_path / f"{n}.npz"))
    compiled, loaded = got
    assert str(compiled["info"]) == "specialised"
    for out in (compiled, loaded):
        assert np.array_equal(out["run"], out["step"])
        assert np.array_equal(out["run1"], out["step"][:1])
    for key in ("step", "run", "run1"):
        assert np.array_equal(compiled[key], loaded[key]), key
    # and this process (its own cache) agrees with both
    assert np.array_equal(runtime.load(path).run(X), compiled["run"])
