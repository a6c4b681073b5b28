"""train/gradients.py and rnnedge-train --diagnose-gradients: vanishing and exploding gradients, measured.

Tiny sizes; the seeded numbers asserted here were measured first (see the comments) and are asserted with margin.
"""

import json

import numpy as np
import pytest
import torch

from rnnedge.train import gradients as g
from rnnedge.train.cli import main

T, HIDDEN, UPDATES, LR = 30, 16, 1000, 1e-2


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained():
    """RNN tanh and LSTM, 16 units, trained alike for 1000 Adam updates on the adding problem of 30 steps (~12 s)."""
    out = {}
    for cell in ("rnn_tanh", "lstm"):
        model = g.new_model(cell, HIDDEN, seed=0)
        g.train_adding(model, T, UPDATES, lr=LR, seed=0)
        out[cell] = {"norms": g.gradient_norms_over_time(model, T, seed=0), "metrics": g.evaluate_adding(model, T, 500)}
    return out


def test_adding_problem_is_seeded_and_has_two_markers_one_per_half():
    X, y = g.adding_problem(50, 10, 7)
    X2, y2 = g.adding_problem(50, 10, 7)
    assert X.shape == (50, 10, 2) and X.dtype == np.float32 and y.shape == (50,)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    assert np.all(X[:, :5, 1].sum(axis=1) == 1) and np.all(X[:, 5:, 1].sum(axis=1) == 1)
    np.testing.assert_allclose(y, (X[..., 0] * X[..., 1]).sum(axis=1), rtol=1e-6)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_norms_at_initialisation_have_length_T_are_finite_and_end_at_the_heads_gradient(cell):
    model = g.new_model(cell, 8, seed=1)
    norms = g.gradient_norms_over_time(model, 12, batch_size=16, seed=3)
    assert norms.shape == (12,) and norms.dtype == np.float64 and np.all(np.isfinite(norms)) and np.all(norms > 0)
    # the loss of sequence n is (w . h_T + b - y_n)^2, so ||d loss_n / d h_T|| = 2 |error_n| ||w||
    X, y = g.adding_problem(16, 12, np.random.default_rng([3, 1]))
    with torch.no_grad():
        error = model.logits(torch.from_numpy(X)).squeeze(-1).double() - torch.from_numpy(y).double()
    expected = (2 * error.abs()).mean().item() * model.head.weight.double().norm().item()
    assert norms[-1] == pytest.approx(expected, rel=1e-5)


def test_trained_norms_have_length_T_and_are_finite(trained):
    for run in trained.values():
        assert run["norms"].shape == (T,) and np.all(np.isfinite(run["norms"]))


def test_rnn_tanh_gradient_vanishes_orders_of_magnitude_more_than_lstms(trained):
    # measured (seed 0): rnn_tanh ratio 2.6e-6, test MSE 0.18 (the 0.167 baseline); lstm 0.16, MSE 0.0008
    rnn, lstm = (g.vanishing_ratio(trained[c]["norms"]) for c in ("rnn_tanh", "lstm"))
    assert rnn * 1000 < lstm, (rnn, lstm)
    assert trained["lstm"]["metrics"]["mse"] < 0.05 < trained["rnn_tanh"]["metrics"]["mse"]


def test_clipping_caps_the_applied_norm_while_the_unclipped_run_explodes():
    # measured: the unclipped norm reaches 2e31 at update 2 and is NaN from update 3; every clipped update is capped
    runs = g.clipping_runs(T, 20, hidden=HIDDEN, max_norm=1.0)
    unclipped, clipped = runs["unclipped"], runs["clipped"]
    assert len(unclipped["grad_norm"]) == len(clipped["grad_norm_after_clip"]) == 20
    assert max(v for v in unclipped["grad_norm"] if v is not None) > 1e3
    assert unclipped["diverged_at_update"] is not None
    assert all(v is not None and v <= 1.0 + 1e-5 for v in clipped["grad_norm_after_clip"])
    assert max(clipped["grad_norm"]) > 1.0 and clipped["updates_clipped"] > 0 and clipped["diverged_at_update"] is None
    assert clipped["final_loss"] is not None and np.isfinite(clipped["final_loss"])


def test_cli_writes_both_plots_and_the_json_and_prints_the_table(tmp_path, capsys):
    out = tmp_path / "grads"
    assert main(["--diagnose-gradients", "--out", str(out), "--adding-steps", "12", "--updates", "20", "--hidden", "8"]) == 0
    printed = capsys.readouterr().out
    for name in ("gradients.json", "gradients_over_time.png", "clipping.png"):
        assert (out / name).stat().st_size > 1000
        assert str(out / name) in printed
    for cell in ("rnn_tanh", "lstm", "gru"):
        assert cell in printed
    assert "ratio t=1/t=T" in printed and "clip_grad_norm_(1.0)" in printed
    report = json.loads((out / "gradients.json").read_text())  # strict JSON: no NaN
    assert report["task"]["T"] == 12 and report["config"]["updates"] == 20
    for cell, r in report["cells"].items():
        assert len(r["grad_norms_init"]) == len(r["grad_norms_trained"]) == 12 and len(r["train_loss"]) == 20
        assert r["ratio_init"] == pytest.approx(r["grad_norms_init"][0] / r["grad_norms_init"][-1])


def test_python_api_returns_what_it_writes(tmp_path):
    report = g.diagnose_gradients(tmp_path, 6, hidden=4, updates=3, clip_updates=3, eval_size=10, cells=("gru",))
    assert json.loads((tmp_path / "gradients.json").read_text()) == json.loads(json.dumps(report))
    assert list(report["cells"]) == ["gru"]


@pytest.mark.parametrize("steps", [1, 0, -5])
def test_too_short_sequences_are_a_clear_error(tmp_path, capsys, steps):
    with pytest.raises(ValueError, match="at least 2"):
        g.gradient_norms_over_time("rnn_tanh", steps)
    with pytest.raises(ValueError, match="at least 2"):
        g.diagnose_gradients(tmp_path, steps)
    with pytest.raises(SystemExit) as exit_info:
        main(["--diagnose-gradients", "--adding-steps", str(steps), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--adding-steps must be from 2 (the adding problem marks one step in each half)" in capsys.readouterr().err
    assert not (tmp_path / "gradients.json").exists()


def test_cli_help_describes_the_diagnosis(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    printed = capsys.readouterr().out
    assert "--diagnose-gradients" in printed and "--adding-steps" in printed and "adding problem" in printed
