"""The `int8` precision with the ONNX layer extensions it runs (runtime/spec.py: reverse, linear_before_reset
false, input_forget, peepholes, clip, initial_state): bit for bit equal to the NumPy twin
(tests/runtime/int8_twin.py) over long saturating streams and whole sequences, each extension alone and combined;
close to the float model after calibration and quantisation; and what int8 cannot run (activation functions other
than the cell's own) refused by name."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.export.calibrate import calibrate, float_layers
from rnnedge.export.quantize_int8 import quantize_int8
from rnnedge.runtime import artifact, file_tensors
from rnnedge.runtime import spec as specs
from rnnedge.runtime.kernels_int8_model import input_projections_int8, sequence_layer_int8
from rnnedge.runtime.layout import L_CLIP_Q, L_OFF_BIH, L_OFF_WIH, build
from rnnedge.runtime.model import Model
from tests.helpers import make_spec, stream_all
from tests.runtime.int8_twin import Int8Twin, random_int8_tensors, saturating_dense_inputs

BATCH, STEPS = 2, 1500
VOCAB = 20
CLIP_Q = 12000  # rnn_relu's clip in its s_h integers, where a test sets one (the Q3.12 clips: clip / 2^-12)


def ext_spec(cell, ext, layers=1, kind="dense", on="every_step", hidden=6):
    """A spec of `layers` layers of `cell`, each with the extensions `ext` (a dict, or one per layer)."""
    spec = make_spec(cell, kind=kind, on=on, activation="none", hidden=hidden, features=4, vocab=VOCAB,
                     embed_dim=5, out=3)
    exts = ext if isinstance(ext, list) else [ext] * layers
    spec["layers"] = [{"cell": cell, "hidden": hidden, "bidirectional": False, **e} for e in exts]
    return specs.validate(spec)


def hot_tensors(spec, seed):
    """random_int8_tensors (hot), with each clipped rnn_relu layer's s_h chosen so its clip is CLIP_Q integers."""
    tensors = random_int8_tensors(spec, np.random.default_rng(seed), hot=True)
    for l, layer in enumerate(spec["layers"]):
        if layer["cell"] == "rnn_relu" and layer.get("clip") is not None:
            tensors[f"layers.{l}.scale"] = np.array([layer["clip"] / CLIP_Q], dtype=np.float32)
    return tensors


def inputs(spec, tensors, rng, batch, steps):
    if spec["input"]["kind"] == "dense":
        return saturating_dense_inputs(spec, float(tensors["input.scale"][0]), rng, batch, steps)
    X = rng.integers(0, VOCAB, (batch, steps)).astype(np.int64)
    X[:, :VOCAB] = np.arange(VOCAB)
    return X


def twin_input(twin, X):
    return twin.quantize_input(X) if twin.spec["input"]["kind"] == "dense" else twin.embed(X)


# -- cases ------------------------------------------------------------------------------------------------------
CLIP = {"clip": 1.5}
STREAM_CASES = {  # forward-only: they stream
    **{f"clip-{cell}": (cell, CLIP, 1, "dense") for cell in specs.CELLS},
    "input_forget-lstm": ("lstm", {"input_forget": True}, 1, "tokens"),
    "with-peepholes-lstm": ("lstm", {"peepholes": True}, 1, "dense"),
    "with-peepholes-lstm-tokens": ("lstm", {"peepholes": True}, 2, "tokens"),
    "reset_before-gru": ("gru", {"linear_before_reset": False}, 1, "dense"),
    "reset_before-gru-tokens": ("gru", {"linear_before_reset": False}, 1, "tokens"),
    **{f"initial_state-{cell}": (cell, {"initial_state": True}, 1, "tokens" if i % 2 else "dense")
       for i, cell in enumerate(specs.CELLS)},
    "all-lstm": ("lstm", {"clip": 2.0, "input_forget": True, "initial_state": True}, 2, "dense"),
    "with-peepholes-all-lstm": ("lstm", [{"peepholes": True, "clip": 2.0, "input_forget": True,
                                          "initial_state": True},
                                         {"peepholes": True, "clip": 1.0, "initial_state": True}], 2, "dense"),
    "all-gru": ("gru", {"clip": 2.0, "linear_before_reset": False, "initial_state": True}, 2, "tokens"),
    "all-rnn_relu": ("rnn_relu", {"clip": 0.5, "initial_state": True}, 2, "dense"),
    "all-rnn_tanh": ("rnn_tanh", [{"clip": 0.8, "initial_state": True}, {"initial_state": True}, {"clip": 2.5}], 3,
                     "tokens"),
}


@functools.cache
def stream_case(name):
    cell, ext, layers, kind = STREAM_CASES[name]
    spec = ext_spec(cell, ext, layers, kind)
    seed = sorted(STREAM_CASES).index(name)
    tensors = hot_tensors(spec, 100 + seed)
    return spec, tensors, inputs(spec, tensors, np.random.default_rng(200 + seed), BATCH, STEPS)


@pytest.mark.parametrize("name", sorted(STREAM_CASES))
def test_int8_stream_with_extensions_equals_the_twin_bit_exact_over_saturating_steps(name, tmp_path):
    spec, tensors, X = stream_case(name)
    path = tmp_path / "m.int8.safetensors"
    artifact.write(path, tensors, spec, "int8")  # the tensors pass the artifact's checks (h0/c0 int16, no b_hh)
    stream = runtime.load(path).stream(BATCH)
    twin = Int8Twin(spec, tensors, batch=BATCH)
    np.testing.assert_array_equal(stream.state, twin.state_vector(), err_msg="the initial state")
    for t in range(STEPS):
        x = np.ascontiguousarray(X[:, t])
        y = stream.step(x)
        acc = twin.step_quantised(twin_input(twin, x))
        if not (np.array_equal(stream.state, twin.state_vector()) and np.array_equal(stream.logits_q, acc)):
            np.testing.assert_array_equal(stream.state, twin.state_vector(), err_msg=f"state at step {t}")
            np.testing.assert_array_equal(stream.logits_q, acc, err_msg=f"integer logits at step {t}")
        np.testing.assert_array_equal(y, twin.dequantize(acc))
    counts = dict(twin.counts)
    assert counts.get("pre_activation", 0) > 0 and counts.get("yh_wide", 0) > 0, counts
    if any(layer.get("clip") is not None for layer in spec["layers"]):
        assert counts.get("clip", 0) > 0, counts
    if any(layer.get("peepholes") for layer in spec["layers"]):
        assert counts.get("peephole_wide", 0) > 0, counts  # some peephole term lay beyond int16
    assert np.unique(np.concatenate([stream.state.ravel(), twin.state_vector().ravel()])).size > 2

    stream.reset()  # back to h0 / c0, not to zeros
    twin.reset()
    np.testing.assert_array_equal(stream.state, twin.state_vector())
    if any(layer.get("initial_state") for layer in spec["layers"]):
        assert np.any(stream.state != 0)


@pytest.mark.parametrize("name", sorted(STREAM_CASES))
def test_int8_run_with_extensions_equals_its_stream_and_the_twin(name):
    spec, tensors, X = stream_case(name)
    X = X[:, :400]
    model = Model(spec, "int8", tensors)
    ys = stream_all(model.stream(BATCH), X)
    np.testing.assert_array_equal(model.run(X), ys)
    twin = Int8Twin(spec, tensors, batch=BATCH)
    np.testing.assert_array_equal(ys, twin.dequantize(twin.run(twin_input(twin, X))))
    last = {**spec, "head": {**spec["head"], "on": "last_step"}}
    np.testing.assert_array_equal(Model(last, "int8", tensors).run(X), ys[:, -1])


# -- whole sequences: reverse layers, bidirectional layers with extensions --------------------------------------
def _layers(*layers):
    return [{"hidden": 6, "bidirectional": False, **layer} for layer in layers]


RUN_CASES = {
    **{f"reverse-{cell}": _layers({"cell": cell, "reverse": True}) for cell in specs.CELLS},
    "reverse-all-lstm": _layers({"cell": "lstm", "reverse": True, "clip": 2.0, "input_forget": True,
                                 "initial_state": True}),
    "with-peepholes-reverse-lstm": _layers({"cell": "lstm", "reverse": True, "peepholes": True, "clip": 2.0,
                                            "input_forget": True, "initial_state": True}),
    "with-peepholes-bidirectional": _layers({"cell": "lstm", "bidirectional": True, "peepholes": True, "clip": 1.5,
                                             "initial_state": True},
                                            {"cell": "lstm", "bidirectional": True, "peepholes": True}),
    "reverse-all-gru": _layers({"cell": "gru", "reverse": True, "clip": 1.0, "linear_before_reset": False,
                                "initial_state": True}),
    "mixed": _layers({"cell": "lstm", "reverse": True, "clip": 2.0, "initial_state": True},
                     {"cell": "gru", "linear_before_reset": False, "initial_state": True, "bidirectional": True},
                     {"cell": "rnn_relu", "clip": 0.5, "reverse": True, "initial_state": True}),
    "bidirectional": _layers({"cell": "gru", "bidirectional": True, "clip": 1.5, "initial_state": True},
                             {"cell": "lstm", "bidirectional": True, "input_forget": True, "initial_state": True}),
}


def run_spec(name, on):
    spec = make_spec("gru", kind="dense" if len(name) % 2 else "tokens", on=on, activation="none", features=4,
                     vocab=VOCAB, embed_dim=5, out=3)
    spec["layers"] = RUN_CASES[name]
    return specs.validate(spec)


@pytest.mark.parametrize("on", specs.HEAD_ON)
@pytest.mark.parametrize("name", sorted(RUN_CASES))
def test_int8_run_of_reverse_and_bidirectional_layers_with_extensions_equals_the_twin(name, on):
    spec = run_spec(name, on)
    seed = sorted(RUN_CASES).index(name)
    tensors = hot_tensors(spec, 300 + seed)
    X = inputs(spec, tensors, np.random.default_rng(400 + seed), BATCH, 1200)
    twin = Int8Twin(spec, tensors, batch=BATCH)
    np.testing.assert_array_equal(Model(spec, "int8", tensors).run(X), twin.dequantize(twin.run(twin_input(twin, X))))
    assert twin.counts["pre_activation"] > 0, dict(twin.counts)
    if any(layer.get("clip") for layer in spec["layers"]):
        assert twin.counts["clip"] > 0, dict(twin.counts)
    if any(layer.get("peepholes") for layer in spec["layers"]):
        assert twin.counts["peephole_wide"] > 0, dict(twin.counts)
    if not specs.can_stream(spec):
        with pytest.raises(ValueError, match="reverse|bidirectional"):
            Model(spec, "int8", tensors).stream(1)


@pytest.mark.parametrize("name,on", [("mixed", "every_step"), ("reverse-all-gru", "last_step"),
                                     ("with-peepholes-bidirectional", "every_step"),
                                     ("bidirectional", "last_step"), ("reverse-lstm", "every_step")])
def test_int8_run_of_different_lengths_starts_each_sequence_from_the_initial_state(name, on):
    spec = run_spec(name, on)
    tensors = hot_tensors(spec, 7)
    model = Model(spec, "int8", tensors)
    twin = Int8Twin(spec, tensors, batch=1)
    lengths = np.array([40, 23, 1, 39])
    X = inputs(spec, tensors, np.random.default_rng(8), lengths.size, 40)
    for b, n in enumerate(lengths):  # what lies past a length must not matter
        X[b, n:] = np.nan if spec["input"]["kind"] == "dense" else -1
    y = model.run(X, lengths)
    for b, n in enumerate(lengths):
        alone = model.run(X[b : b + 1, :n])[0]
        np.testing.assert_array_equal(y[b, :n] if on == "every_step" else y[b], alone, err_msg=f"sequence {b}")
        twin_y = twin.dequantize(twin.run(twin_input(twin, X[b : b + 1, :n])))[0]
        np.testing.assert_array_equal(alone, twin_y, err_msg=f"sequence {b} (length {n}) against the twin")


# -- the kernels alone, without runtime/model.py ------------------------------------------------------------------
@pytest.mark.parametrize("cell,ext", [("lstm", {"clip": 2.0, "input_forget": True, "initial_state": True}),
                                      ("lstm", {"peepholes": True, "clip": 2.0, "input_forget": True,
                                                "initial_state": True, "reverse": True}),
                                      ("gru", {"linear_before_reset": False, "clip": 2.0, "initial_state": True}),
                                      ("rnn_tanh", {"clip": 1.0, "reverse": True, "initial_state": True}),
                                      ("rnn_relu", {"clip": 1.0, "initial_state": True, "reverse": True})])
def test_sequence_layer_int8_alone_equals_the_twins_steps(cell, ext):
    spec = ext_spec(cell, ext)
    tensors = hot_tensors(spec, 11)
    lay = build(spec, tensors, "int8")
    row = lay.layers[0]
    if cell == "rnn_relu":
        assert row[L_CLIP_Q] == CLIP_Q
    else:
        assert row[L_CLIP_Q] == round(ext["clip"] * 4096)
    rng = np.random.default_rng(12)
    T, G = 1000, specs.GATES[cell] * 6
    xq = rng.integers(-32767, 32768, (BATCH, T, 4)).astype(np.int32)
    lengths = np.full(BATCH, T)
    gx = np.zeros((BATCH, T, G), np.int32)
    input_projections_int8(gx, xq, lengths, lay.matrix(int(row[L_OFF_WIH]), 4, G), lay.ivector(int(row[L_OFF_BIH]), G))
    out = np.zeros((BATCH, T, 6), np.int32)
    sequence_layer_int8(out, gx, lengths, lay.qblob, lay.iblob, row, bool(ext.get("reverse")), 0)
    twin = Int8Twin(spec, tensors, batch=BATCH)
    d = twin.layers[0][0]
    h, c = np.tile(d["h0"], (BATCH, 1)), np.tile(d["c0"], (BATCH, 1))
    expected = np.zeros((BATCH, T, 6), np.int64)
    for t in reversed(range(T)) if ext.get("reverse") else range(T):
        h, c = twin.cell_step(d, xq[:, t].astype(np.int64), h, c)
        expected[:, t] = h
    np.testing.assert_array_equal(out, expected)
    assert twin.counts["clip"] > 0


# -- against the float model --------------------------------------------------------------------------------------
def trained_looking_tensors(spec, rng):
    """Canonical float32 tensors like a trained model's: weights ~ U(-1.5/sqrt(H), 1.5/sqrt(H)), moderate biases,
    an initial state of a plausible size."""
    tensors = {}
    for name, shape in specs.tensor_shapes(spec).items():
        k = 1.5 / np.sqrt(shape[-1] if len(shape) == 2 else 8)
        if name.endswith(".h0"):
            k = 0.8
        elif name.endswith(".c0"):
            k = 1.5
        tensors[name] = rng.uniform(-k, k, shape).astype(np.float32)
    return tensors


FLOAT_CASES = {
    "lstm": _layers({"cell": "lstm", "hidden": 16, "clip": 3.0, "input_forget": True, "initial_state": True},
                    {"cell": "lstm", "hidden": 12, "reverse": True, "initial_state": True}),
    "gru": _layers({"cell": "gru", "hidden": 16, "linear_before_reset": False, "clip": 2.0, "initial_state": True},
                   {"cell": "gru", "hidden": 12, "bidirectional": True, "linear_before_reset": False}),
    "rnn_tanh": _layers({"cell": "rnn_tanh", "hidden": 16, "clip": 1.0, "initial_state": True, "reverse": True}),
    "rnn_relu": _layers({"cell": "rnn_relu", "hidden": 16, "clip": 2.0, "initial_state": True}),
    "with-peepholes": _layers({"cell": "lstm", "hidden": 16, "peepholes": True},
                              {"cell": "lstm", "hidden": 12, "peepholes": True, "clip": 2.0, "input_forget": True,
                               "initial_state": True}),
    "with-peepholes-reverse": _layers({"cell": "lstm", "hidden": 16, "peepholes": True, "reverse": True,
                                       "clip": 2.0, "input_forget": True, "initial_state": True}),
    "with-peepholes-bidirectional": _layers({"cell": "lstm", "hidden": 16, "bidirectional": True,
                                             "peepholes": True, "clip": 3.0, "initial_state": True}),
    "forward": _layers({"cell": "lstm", "hidden": 16, "clip": 2.0, "input_forget": True, "initial_state": True},
                       {"cell": "gru", "hidden": 12, "linear_before_reset": False, "initial_state": True}),
}
FLOAT_TOLERANCE = 0.02  # max abs logit error of int8 against float64, logits of size ~1


def float_case(name):
    spec = make_spec("gru", features=6, on="every_step", activation="none", out=4)
    spec["layers"] = FLOAT_CASES[name]
    spec = specs.validate(spec)
    rng = np.random.default_rng(sorted(FLOAT_CASES).index(name))
    tensors = trained_looking_tensors(spec, rng)
    calib = rng.standard_normal((8, 200, 6)).astype(np.float32) * 2.0 + 0.5
    quantized, info = quantize_int8(spec, tensors, calibrate((spec, tensors), calib))
    X = rng.standard_normal((3, 300, 6)).astype(np.float32) * 2.0 + 0.5
    return spec, tensors, quantized, info, X


@pytest.mark.parametrize("name", sorted(FLOAT_CASES))
def test_int8_with_extensions_is_close_to_the_float_model(name):
    spec, tensors, quantized, _, X = float_case(name)
    _, outputs, _ = float_layers(spec, tensors, X, np.full(len(X), X.shape[1]))
    reference = outputs[-1] @ tensors["head.weight"].T.astype(np.float64) + tensors["head.bias"]
    int8 = Model(spec, "int8", quantized).run(X)
    f32 = Model(spec, "f32", tensors).run(X)
    error = float(np.abs(int8 - reference).max())
    print(f"\n{name}: int8 vs float64 max abs {error:.2e} (logits up to {np.abs(reference).max():.2f}), "
          f"f32 vs float64 {np.abs(f32 - reference).max():.1e}, int8 vs f32 {np.abs(int8 - f32).max():.2e}")
    assert np.abs(f32 - reference).max() < 1e-4
    assert error < FLOAT_TOLERANCE
    assert np.abs(reference).max() > 0.5  # the comparison saw real values
    if specs.can_stream(spec):
        np.testing.assert_array_equal(stream_all(Model(spec, "int8", quantized).stream(len(X)), X), int8)


def test_quantized_initial_state_and_folded_gru_bias():
    spec, tensors, quantized, info, _ = float_case("gru")
    assert "layers.0.fwd.b_hh" not in quantized and "layers.1.bwd.b_hh" not in quantized  # folded into b_ih
    assert {k: (v.shape, v.dtype.name) for k, v in quantized.items()} == {
        k: (s, d) for k, (s, d) in file_tensors.int8_tensors(spec).items()}
    h0 = quantized["layers.0.fwd.h0"]
    assert h0.dtype == np.int16
    np.testing.assert_array_equal(h0, np.rint(tensors["layers.0.fwd.h0"].astype(np.float64) * 32768))
    assert info["initial_state_error"]["layers.0.fwd.h0"] <= 2.0**-16

    spec, tensors, quantized, info, _ = float_case("lstm")
    power = int(quantized["layers.0.cell_power"][0])
    c0 = tensors["layers.0.fwd.c0"].astype(np.float64)
    np.testing.assert_array_equal(quantized["layers.0.fwd.c0"], np.rint(c0 / 2.0**power))
    assert np.abs(c0).max() * 2 <= 2.0 ** (power + 15)  # c0's range counted in the cell's scale


def test_quantized_peepholes_have_a_scale_per_gate_and_a_multiplier_to_q312(tmp_path):
    spec, tensors, quantized, info, _ = float_case("with-peepholes")
    power = int(quantized["layers.0.cell_power"][0])
    p = tensors["layers.0.fwd.p"].astype(np.float64).reshape(3, 16)
    q = quantized["layers.0.fwd.p"]
    assert q.dtype == np.int16 and q.shape == (48,)
    q = q.reshape(3, 16)
    scale = np.abs(p).max(axis=1) / 32767  # p_i, p_f, p_o each on its own scale, full range
    np.testing.assert_array_equal(q, np.rint(p / scale[:, None]))
    assert np.abs(q).max(axis=1).tolist() == [32767] * 3
    M, S = quantized["layers.0.fwd.p_requant"], quantized["layers.0.fwd.p_shift"]
    assert M.dtype == np.int32 and S.dtype == np.int8 and M.shape == S.shape == (3,)
    real = M.astype(np.float64) * 2.0 ** (S.astype(np.float64) - 31)
    np.testing.assert_allclose(real, scale * 2.0**power / 2.0**-12, rtol=2.0**-30)  # p * c -> Q3.12
    assert 0 < info["per_matrix"]["layers.0.fwd.p"] <= scale.max() / 2

    zero = dict(tensors)
    zero["layers.0.fwd.p"] = tensors["layers.0.fwd.p"].copy()
    zero["layers.0.fwd.p"][16:32] = 0  # p_f all zero: it stays zero, the others keep their scales
    again, _ = quantize_int8(spec, zero, calibrate((spec, zero), np.zeros((1, 5, 6), np.float32)))
    assert not again["layers.0.fwd.p"][16:32].any()
    np.testing.assert_array_equal(again["layers.0.fwd.p"][:16], quantized["layers.0.fwd.p"][:16])

    bad = dict(quantized)
    bad["layers.1.fwd.p_shift"] = np.array([0, 31, 0], dtype=np.int8)
    with pytest.raises(artifact.ArtifactError, match=r"layers\.1\.fwd\.p_shift holds a shift outside"):
        artifact.write(tmp_path / "m.int8.safetensors", bad, spec, "int8")
    bad["layers.1.fwd.p_shift"] = quantized["layers.1.fwd.p_shift"]
    bad["layers.1.fwd.p_requant"] = np.array([1, 2**30, 2**30], dtype=np.int32)
    with pytest.raises(artifact.ArtifactError, match=r"layers\.1\.fwd\.p_requant holds a multiplier outside"):
        artifact.write(tmp_path / "m.int8.safetensors", bad, spec, "int8")


def test_a_bounded_cells_h0_beyond_one_saturates_and_says_by_how_much():
    spec, tensors, _, _, X = float_case("rnn_tanh")
    tensors = dict(tensors)
    tensors["layers.0.fwd.h0"] = tensors["layers.0.fwd.h0"].copy()
    tensors["layers.0.fwd.h0"][3] = 1.25
    quantized, info = quantize_int8(spec, tensors, calibrate((spec, tensors), X))
    assert quantized["layers.0.fwd.h0"][3] == 32767
    assert info["initial_state_error"]["layers.0.fwd.h0"] == pytest.approx(0.25, abs=1e-4)


# -- refusals ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layers,says", [
    (_layers({"cell": "gru"}, {"cell": "gru", "activations": [{"fn": "hardsigmoid"}, {"fn": "tanh"}]}),
     r"layers\[1\]: activations \['hardsigmoid', 'tanh'\]"),
    (_layers({"cell": "rnn_tanh", "activations": [{"fn": "relu"}]}), r"layers\[0\]: activations \['relu'\]"),
    (_layers({"cell": "lstm", "peepholes": True, "clip": 1.0},  # int8 runs the peepholes: only layer 1 is named
             {"cell": "lstm", "activations": [{"fn": "sigmoid"}, {"fn": "tanh"}, {"fn": "softsign"}]}),
     r"layers\[1\]: activations \['sigmoid', 'tanh', 'softsign'\]"),
])
def test_int8_refuses_other_activation_functions_naming_layer_and_feature(layers, says):
    spec = make_spec("gru", features=4, out=2)
    spec["layers"] = layers
    spec = specs.validate(spec)
    rng = np.random.default_rng(0)
    tensors = trained_looking_tensors(spec, rng)
    ranges = calibrate((spec, tensors), rng.standard_normal((2, 20, 4)).astype(np.float32))
    with pytest.raises(ValueError, match="int8 cannot run this model: " + says):
        quantize_int8(spec, tensors, ranges)
