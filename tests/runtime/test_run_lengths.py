"""model.run() without lengths (every sequence T steps long: run() builds no mask and its outputs are written in
place, not zeroed first) gives exactly the outputs of run() with lengths, on the specialised run() of every
precision and on the generic kernels, even when every buffer numpy hands out starts full of garbage."""

import os

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.runtime import fused_float_vnni as vnni
from tests.helpers import make_model, make_spec, random_inputs, write_artifact

pytestmark = pytest.mark.specialised  # the run() a user gets (tests/conftest.py)

B, T = 5, 23  # a group of four sequences and one more (int8's grouped run())
# (precision, cell, input kind, head, bidirectional, the head's hidden layers): each run() path -- the float step's,
# the float sequence's (a model that cannot stream), int8's -- with dense and token input, both heads, and a head
# with a hidden layer
HIDDEN = ((7, "relu"),)
CASES = [("f32", "lstm", "dense", "every_step", False, ()), ("int8w", "gru", "tokens", "last_step", False, ()),
         ("f32", "gru", "dense", "last_step", True, ()), ("int8w", "rnn_tanh", "tokens", "every_step", True, ()),
         ("f32", "rnn_tanh", "dense", "every_step", False, HIDDEN),
         ("int8", "lstm", "dense", "every_step", False, ()), ("int8", "gru", "tokens", "last_step", False, ()),
         ("int8", "rnn_relu", "dense", "every_step", True, ()), ("int8", "gru", "dense", "every_step", False, HIDDEN)]


def _poisoned_empty(monkeypatch):
    """np.empty returning arrays filled with NaN (floats) or -7 (integers): an element run() leaves unwritten
    shows."""
    empty = np.empty

    def poisoned(shape, dtype=float, order="C", **kwargs):
        a = empty(shape, dtype, order, **kwargs)
        a.fill(np.nan if np.dtype(dtype).kind == "f" else -7)
        return a

    monkeypatch.setattr(np, "empty", poisoned)


@pytest.mark.parametrize("precision,cell,kind,on,bidirectional,head_hidden", CASES)
def test_run_without_lengths_equals_run_with_them_on_the_specialised_and_generic_kernels(
        tmp_path, monkeypatch, precision, cell, kind, on, bidirectional, head_hidden):
    spec = make_spec(cell, kind=kind, on=on, bidirectional=bidirectional, hidden=19, head_hidden=head_hidden)
    path = write_artifact(make_model(spec), tmp_path / f"m.{precision}.safetensors", precision)
    model = runtime.load(path)
    assert model.kernel_info["step"] == "specialised", model.kernel_info
    X = random_inputs(spec, B, T, seed=3)
    # one sequence a step shorter: the masked path (outputs zeroed first, past the length left zero)
    shorter = model.run(X, lengths=[T, T, T, T, T - 1])
    _poisoned_empty(monkeypatch)
    Y = model.run(X)
    assert np.isfinite(Y).all()
    np.testing.assert_array_equal(Y, model.run(X, lengths=np.full(B, T)))
    np.testing.assert_array_equal(Y[:4], shorter[:4])
    if on == "every_step" and not bidirectional:
        np.testing.assert_array_equal(Y[4, : T - 1], shorter[4, : T - 1])
        assert not shorter[4, T - 1].any()
    monkeypatch.setenv("RNNEDGE_SPECIALISE", "0")
    generic = runtime.load(path)
    assert generic.kernel_info["step"] == "generic"
    expected = generic.run(X)
    np.testing.assert_array_equal(expected, generic.run(X, lengths=np.full(B, T)))
    if precision == "int8":  # bit-exact twins; the float steps sum in other orders (test_fused_float's tolerance)
        np.testing.assert_array_equal(Y, expected)
    else:
        np.testing.assert_allclose(Y, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("precision,cell,bidirectional", [
    ("f32", "lstm", False), ("int8w", "gru", False), ("int8", "lstm", False), ("int8", "gru", False),
    ("f32", "gru", True), ("int8w", "lstm", True), ("int8", "rnn_tanh", True),
    pytest.param("int8w-limbs", "lstm", False, marks=pytest.mark.skipif(
        vnni.KERNEL != "avx512_vnni", reason="int8w's VNNI limbs need AVX512-VNNI"))])
def test_the_specialised_run_refuses_exactly_the_inputs_the_generic_run_refuses(tmp_path, monkeypatch, precision,
                                                                                cell, bidirectional):
    """The specialised run()s find a normalised value that is not finite inside their compiled pass over the inputs
    (model.run() makes no pass of its own for them: fused.Specialised.run_checks): below four sequences, from four
    (the float step over a batch; int8's groups of four) and the rest, with and without lengths, and the compiled
    run() of a model that cannot stream, they refuse what the generic run() refuses, with its message, and take
    what it takes."""
    spec = make_spec(cell, hidden=19, bidirectional=bidirectional)
    if precision == "int8w-limbs":  # int8w's run() stepping its VNNI limb sums (where the float16 copy is refused;
        precision = "int8w"  # a shape whose sums stay inside the weights, as test_fused_float_vnni's)
        spec = make_spec(cell, layers=2, hidden=20)
        monkeypatch.setenv("RNNEDGE_INT8W_FLOAT16", "0")
    path = write_artifact(make_model(spec), tmp_path / f"m.{precision}.safetensors", precision)
    model = runtime.load(path)
    assert model.kernel_info["step"] == "specialised", model.kernel_info
    if os.environ.get("RNNEDGE_INT8W_FLOAT16") == "0":
        assert model.kernel_info["matvec"].startswith("avx512_vnni"), model.kernel_info
    monkeypatch.setenv("RNNEDGE_SPECIALISE", "0")
    generic = runtime.load(path)
    assert generic.kernel_info["step"] == "generic"
    rng = np.random.default_rng(11)
    steps, refused = 6, 0
    for trial in range(48):
        batch = (1, 3, 4, 5)[trial % 4]
        X = random_inputs(spec, batch, steps, seed=trial)
        lengths = None if trial % 3 == 0 else rng.integers(1, steps + 1, batch)
        if trial % 8:  # a NaN, an infinity or a finite value whose normalised value overflows, anywhere
            X[rng.integers(batch), rng.integers(steps), rng.integers(X.shape[2])] = rng.choice(
                [np.nan, np.inf, -np.inf, 3.4e38, -3.4e38])
        try:
            expected = generic.run(X, lengths)
        except ValueError as e:
            refused += 1
            with pytest.raises(ValueError) as got:
                model.run(X, lengths)
            assert str(got.value) == str(e)
            continue
        Y = model.run(X, lengths)
        assert np.isfinite(Y).all()
        if precision == "int8":
            np.testing.assert_array_equal(Y, expected)
        else:
            np.testing.assert_allclose(Y, expected, rtol=0, atol=1e-5)
    assert 10 <= refused <= 42, refused  # both kinds of answer were exercised
