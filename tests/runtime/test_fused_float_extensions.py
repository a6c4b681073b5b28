"""Layers with ONNX extensions -- clip, activation functions other than the cell's own, peepholes, input_forget
(runtime/fused_float_ext.py) -- on the float steps compiled for the model: Keras' LSTM(activation="relu"), old
Keras' hard_sigmoid gates, TensorFlow's peephole LSTM. The generic kernels' numbers (kernels_f32_ext) within float32
rounding, at every batch, step() and run() bit for bit, streamed and whole sequences of bidirectional layers.
(int8 keeps its generic kernels for them and names them: tests/runtime/test_fused_int8.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.quantize import quantize_int8w
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import spec as specs
from rnnedge.runtime.model import Model
from tests.helpers import make_model, make_spec, random_inputs, stream_all
from tests.runtime.test_extensions import CASES as ONNX_CASES
from tests.runtime.test_extensions import F32_TOLERANCE, _act, _case

pytestmark = pytest.mark.specialised
# relative to the outputs' largest magnitude (relu layers reach ~10): the products and the functions' multiply-adds
# summed or fused in another order than the generic kernels'
TOLERANCE = 2e-6

RELU_LSTM = {"activations": [_act("sigmoid"), _act("relu"), _act("relu")]}  # Keras LSTM(activation="relu")
HARD_LSTM = {"activations": [_act("hardsigmoid", 0.2, 0.5), _act("tanh"), _act("tanh")]}  # Keras < 2.3's default
PEEP_LSTM = {"peepholes": True, "clip": 1.2, "input_forget": True}
HARD_GRU = {"activations": [_act("hardsigmoid", 0.2, 0.5), _act("tanh")], "clip": 2.5}
RELU_GRU_BEFORE = {"linear_before_reset": False, "activations": [_act("sigmoid"), _act("relu")]}
LEAKY_RNN = {"activations": [_act("leakyrelu", 0.1)], "clip": 3.0}
SOFT_RNN = {"activations": [_act("softsign")]}

# (cell, layer keys, hidden, layers, input, precision): below 16 units (no gate passes), a multiple of 32 (a
# reset-before GRU's n rows apart), int8w at 20 streams (step_wide)
CASES = [("lstm", RELU_LSTM, 5, 1, "dense", "f32"), ("lstm", RELU_LSTM, 40, 2, "tokens", "int8w"),
         ("lstm", HARD_LSTM, 24, 1, "dense", "f32"), ("lstm", HARD_LSTM, 12, 2, "dense", "int8w"),
         ("lstm", PEEP_LSTM, 20, 2, "dense", "f32"), ("lstm", PEEP_LSTM, 33, 1, "tokens", "int8w"),
         ("gru", HARD_GRU, 32, 2, "dense", "f32"), ("gru", HARD_GRU, 7, 1, "dense", "int8w"),
         ("gru", RELU_GRU_BEFORE, 64, 1, "dense", "f32"), ("gru", RELU_GRU_BEFORE, 20, 2, "tokens", "int8w"),
         ("rnn_tanh", LEAKY_RNN, 9, 2, "tokens", "f32"), ("rnn_tanh", SOFT_RNN, 48, 1, "dense", "int8w")]


def _spec_tensors(cell: str, keys: dict, hidden: int, layers: int, kind: str, precision: str):
    """A model's spec with `keys` in every layer, and its tensors (peepholes drawn at random)."""
    spec = make_spec(cell, layers=layers, hidden=hidden, kind=kind, activation="none", out=4)
    tensors = canonical_tensors(make_model(spec, seed=hidden))
    spec["version"] = specs.EXTENDED_VERSION
    spec["layers"] = [{**layer, **keys} for layer in spec["layers"]]
    spec = specs.validate(spec)
    rng = np.random.default_rng(hidden)
    for l in range(layers) if keys.get("peepholes") else ():
        tensors[f"layers.{l}.fwd.p"] = rng.normal(0, 0.5, 3 * hidden).astype(np.float32)
    if precision == "int8w":
        tensors, _ = quantize_int8w(spec, tensors)
    return spec, tensors


def _pair(spec, tensors, precision, monkeypatch):
    fast = Model(spec, precision, tensors)
    assert fast.kernel_info["step"] == "specialised", fast.kernel_info
    monkeypatch.setenv("RNNEDGE_SPECIALISE", "0")
    slow = Model(spec, precision, tensors)
    assert slow.kernel_info["step"] == "generic"
    monkeypatch.delenv("RNNEDGE_SPECIALISE")
    return fast, slow


def _close(got: np.ndarray, want: np.ndarray) -> bool:
    return np.abs(got - want).max() <= TOLERANCE * max(1.0, np.abs(want).max())


@pytest.mark.parametrize("cell,keys,hidden,layers,kind,precision", CASES,
                         ids=[f"{c[0]}-{'-'.join(c[1])}-{c[2]}x{c[3]}-{c[4]}-{c[5]}" for c in CASES])
def test_a_layer_with_extensions_steps_compiled_as_the_generic_kernels_do(cell, keys, hidden, layers, kind,
                                                                          precision, monkeypatch):
    spec, tensors = _spec_tensors(cell, keys, hidden, layers, kind, precision)
    fast, slow = _pair(spec, tensors, precision, monkeypatch)
    text = Path(fast.kernel_info["source"]).read_text()
    if "clip" in keys:
        assert "min(max(" in text and repr(float(np.float32(keys["clip"]))) in text
    if keys.get("peepholes"):
        assert "* st[" in text and "f_ = ONE - i_" in text  # p c read from w; input_forget's f
    for B in (1, 5, 20):
        X = random_inputs(spec, B, 30, seed=hidden + B)
        want = stream_all(slow.stream(B), X)
        got = stream_all(fast.stream(B), X)
        assert _close(got, want), np.abs(got - want).max()
        assert np.array_equal(fast.run(X), got)  # run() steps by the step's own code


@pytest.mark.parametrize("name", ["lstm-bidirectional-mixed", "lstm-reverse-peepholes-init", "gru-clip-elu",
                                  "rnn-scaledtanh"])
@pytest.mark.parametrize("precision", ["f32", "int8w"])
def test_whole_sequences_of_layers_with_extensions_run_compiled_as_the_generic_kernels_do(name, precision,
                                                                                          monkeypatch):
    """Bidirectional and reverse layers (run() only) and forward ones, H = 20, with lengths; the recurrent weights
    at gain 0.3 (at N(0, 0.6) and 20 units a scaled tanh RNN is chaotic: rounding grows to 1e-4 in 30 steps)."""
    _, op, attrs, keys, kw = next(c for c in ONNX_CASES if c[0] == name)
    spec, tensors, X, expected = _case(op, attrs, keys, **{**kw, "H": 20, "B": 6, "gain": 0.3})
    if precision == "int8w":
        tensors, _ = quantize_int8w(spec, tensors)
    fast, slow = _pair(spec, tensors, precision, monkeypatch)
    lengths = np.array([30, 1, 17, 30, 8, 29])
    got, want = fast.run(X, lengths), slow.run(X, lengths)
    assert _close(got, want), np.abs(got - want).max()
    if precision == "f32":
        assert np.abs(fast.run(X) - expected).max() <= F32_TOLERANCE  # ONNX Runtime's own operator


def test_int8w_vnni_limbs_take_the_extensions_but_linear_before_reset_false(monkeypatch):
    from rnnedge.runtime import fused_float

    monkeypatch.setattr(fused_float, "limb_sums", lambda half=None: True)
    spec, tensors = _spec_tensors("lstm", {**PEEP_LSTM, **HARD_LSTM}, 20, 2, "dense", "int8w")
    fast, slow = _pair(spec, tensors, "int8w", monkeypatch)
    assert fast.kernel_info["matvec"].startswith("avx512_vnni")
    X = random_inputs(spec, 5, 30, seed=1)
    assert _close(stream_all(fast.stream(5), X), stream_all(slow.stream(5), X))
    spec, tensors = _spec_tensors("gru", RELU_GRU_BEFORE, 16, 1, "dense", "int8w")
    info = Model(spec, "int8w", tensors).kernel_info
    assert info["step"] == "generic" and "linear_before_reset false" in info["why"]

