"""The int8 step compiled for the loaded model runs batched streams in groups of four (runtime/fused_int8.py): at
every batch size -- 1, a batch smaller than a group, one not a multiple of it, many groups -- each stream's
state, integer logits and output equal a stream of its own and the generic kernel's at the same batch, bit for bit,
on both mat-vec paths, for every cell, dense and token input, with and without hidden head layers."""

import numpy as np
import pytest

from rnnedge.runtime.model import Model
from rnnedge.runtime.spec import CELLS
from tests.helpers import make_spec, with_paths
from tests.runtime.int8_twin import random_int8_tensors, saturating_dense_inputs

pytestmark = pytest.mark.specialised  # the step a user gets (tests/conftest.py)

VOCAB, STEPS, BATCHES = 20, 40, (1, 2, 5, 64)


def _models(spec, tensors, path, monkeypatch):
    """(generic model, specialised model on `path`)."""
    monkeypatch.setenv("RNNEDGE_SPECIALISE", "0")
    generic = Model(spec, "int8", tensors)
    monkeypatch.setenv("RNNEDGE_SPECIALISE", "1")
    monkeypatch.setenv("RNNEDGE_VNNI", "0" if path == "portable" else "1")
    fused = Model(spec, "int8", tensors)
    assert fused.kernel_info["step"] == "specialised" and fused.kernel_info["path"] == path
    return generic, fused


# each cell once, dense input and a linear head or tokens and a hidden head layer alternating
@pytest.mark.parametrize("cell,kind,hidden_head,path",
                         with_paths([(cell, *[("dense", False), ("tokens", True)][i % 2]) for i, cell in enumerate(CELLS)]))
def test_specialised_int8_batched_step_equals_one_stream_per_row_and_the_generic_kernel_at_every_batch(
        cell, kind, hidden_head, path, monkeypatch):
    i = CELLS.index(cell)
    spec = make_spec(cell, layers=2, kind=kind, activation=("softmax", "none")[i % 2], hidden=(19, 12)[i % 2],
                     features=5, vocab=VOCAB, embed_dim=6, out=3, head_hidden=[(7, "relu")] if hidden_head else ())
    rng = np.random.default_rng(800 + i)
    tensors = random_int8_tensors(spec, rng, hot=True)
    if kind == "dense":
        X = saturating_dense_inputs(spec, float(tensors["input.scale"][0]), rng, max(BATCHES), STEPS)
    else:
        X = rng.integers(0, VOCAB, (max(BATCHES), STEPS)).astype(np.int64)
    generic, fused = _models(spec, tensors, path, monkeypatch)
    for batch in BATCHES:
        together, reference = fused.stream(batch), generic.stream(batch)
        alone = [fused.stream(1) for _ in range(batch)]
        for t in range(STEPS):
            x = np.ascontiguousarray(X[:batch, t])
            y_ref, y = reference.step(x).copy(), together.step(x)
            for what, got, expected in [("state", together.state, reference.state),
                                        ("integer logits", together.logits_q, reference.logits_q), ("y", y, y_ref)]:
                np.testing.assert_array_equal(got, expected, err_msg=f"{what}, batch {batch}, step {t}")
            for b, one in enumerate(alone):
                y_one = one.step(np.ascontiguousarray(X[b : b + 1, t]))
                np.testing.assert_array_equal(together.state[b], one.state[0], err_msg=f"stream {b} of {batch}")
                np.testing.assert_array_equal(together.logits_q[b], one.logits_q[0])
                np.testing.assert_array_equal(y[b], y_one[0])
        assert np.unique(together.state).size > 4
