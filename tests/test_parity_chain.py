"""The parity chain in float32: PyTorch forward <-> its step() <-> runtime step() and run().

Every cell x {1, 3 layers} x {uni, bidirectional} x {dense, tokens} x {every_step, last_step}, on
streams of 1000 steps, batch 1 and batch 3. ONNX Runtime's links are in tests/export/.
"""

import itertools

import numpy as np
import pytest
import torch

from rnnedge import runtime
from tests.helpers import TOLERANCE, make_model, make_spec, random_inputs, stream_all, torch_forward, write_artifact

STEPS = 1000
CASES = list(itertools.product(("rnn_tanh", "rnn_relu", "lstm", "gru"), (1, 3), (False, True),
                               ("dense", "tokens"), ("every_step", "last_step")))


def _id(case):
    cell, layers, bi, kind, on = case
    return f"{cell}-{layers}L-{'bi' if bi else 'uni'}-{kind}-{on}"


def torch_step_all(model, X: np.ndarray) -> np.ndarray:
    state = model.initial_state(X.shape[0])
    ys = []
    for t in range(X.shape[1]):
        y, state = model.step(torch.as_tensor(X[:, t]), state)
        ys.append(y.numpy())
    return np.stack(ys, axis=1)


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_runtime_matches_pytorch_over_long_streams(case, tmp_path):
    cell, layers, bi, kind, on = case
    spec = make_spec(cell, layers, bi, kind, on, activation="softmax" if on == "last_step" else "none")
    model = make_model(spec)
    rt = runtime.load(write_artifact(model, tmp_path / "m.f32.safetensors"))
    tol = TOLERANCE["f32"]
    for batch in (1, 3):
        X = random_inputs(spec, batch, STEPS, seed=batch)
        ref = torch_forward(model, X)
        assert np.abs(rt.run(X) - ref).max() <= tol
        if bi:
            continue
        # streaming: the head at every step; for a last_step head the final step is the answer
        ref_steps = torch_forward(model, X) if on == "every_step" else None
        golden = torch_step_all(model, X)
        streamed = stream_all(rt.stream(batch), X)
        if ref_steps is not None:
            assert np.abs(golden - ref_steps).max() <= tol, "PyTorch step() drifts from its forward()"
            assert np.abs(streamed - ref_steps).max() <= tol
        else:
            assert np.abs(golden[:, -1] - ref).max() <= tol
        assert np.abs(streamed - golden).max() <= tol


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("bi", [False, True])
def test_run_with_lengths_matches_pytorch_packed_sequences(cell, bi, tmp_path):
    for on in ("every_step", "last_step"):
        spec = make_spec(cell, 2, bi, "dense", on)
        model = make_model(spec)
        rt = runtime.load(write_artifact(model, tmp_path / f"{on}.safetensors"))
        X = random_inputs(spec, 4, 50)
        lengths = np.array([50, 7, 31, 1])
        ref = torch_forward(model, X, lengths)
        got = rt.run(X, lengths)
        if on == "every_step":
            mask = np.arange(50)[None, :] < lengths[:, None]
            ref = np.where(mask[..., None], ref, 0.0)
        assert np.abs(got - ref).max() <= TOLERANCE["f32"]
