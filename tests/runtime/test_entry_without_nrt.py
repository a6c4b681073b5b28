"""The specialised steps and whole-sequence passes that Python calls are compiled without numba's reference-counting
runtime (runtime/jit.py ENTRY_OPTIONS): a step passes its arrays without a reference-counted wrapper each, so it
makes no NRT allocation at all, at any precision, batch or input kind."""

import os
import subprocess
import sys

import numpy as np
import pytest

from rnnedge.runtime import jit
from tests.helpers import make_model, make_spec, random_inputs, write_artifact

pytestmark = pytest.mark.specialised

# NRT's allocation counters exist only when NUMBA_NRT_STATS is set before numba loads: a process of its own
SCRIPT = """
import sys
import numpy as np
from numba.core.runtime import rtsys
from rnnedge import runtime
model, X = runtime.load(sys.argv[1]), np.load(sys.argv[2])
assert model.kernel_info["step"] == "specialised", model.kernel_info
for batch in (1, 8):
    stream = model.stream(batch)
    xs = [np.ascontiguousarray(X[:batch, t]) for t in range(X.shape[1])]
    stream.step(xs[0])
    before = rtsys.get_allocation_stats()
    for x in xs:
        stream.step(x)
    after = rtsys.get_allocation_stats()
    print(batch, after.alloc - before.alloc, after.mi_alloc - before.mi_alloc)
"""


def test_this_numba_compiles_the_entries_without_nrt():
    assert jit.ENTRY_OPTIONS == {"_nrt": False}


@pytest.mark.parametrize("precision", ["f32", "int8w", "int8"])
@pytest.mark.parametrize("kind", ["dense", "tokens"])
def test_a_specialised_step_makes_no_nrt_allocation(precision, kind, tmp_path):
    spec = make_spec("gru", hidden=24, features=5, out=3, kind=kind, vocab=11, embed_dim=4)
    path = write_artifact(make_model(spec), tmp_path / f"m.{precision}.safetensors", precision)
    X = random_inputs(spec, 8, 20)
    np.save(tmp_path / "x.npy", X)
    done = subprocess.run([sys.executable, "-c", SCRIPT, path, str(tmp_path / "x.npy")], capture_output=True,
                          text=True, check=False, env={**os.environ, "NUMBA_NRT_STATS": "1"}, timeout=600)
    assert done.returncode == 0, done.stderr
    for line in done.stdout.split("\n")[:2]:
        batch, allocations, meminfos = map(int, line.split())
        assert (allocations, meminfos) == (0, 0), f"batch {batch}: {allocations} NRT allocations in 20 steps"
