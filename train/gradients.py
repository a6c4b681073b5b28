"""Vanishing and exploding gradients, measured on the adding problem.

The adding problem (Hochreiter & Schmidhuber, 1997) is a long-range regression task: every step carries a
random value in [0, 1) and a marker bit; exactly two steps are marked, one in the first half of the sequence
and one in the second, and the target at the last step is the sum of the two marked values. Always answering 1
scores a mean squared error of Var(U1 + U2) = 2/12 = 0.167 (`ADDING_BASELINE_MSE`); a model beats that only
if gradient from the last step reaches the marked steps, up to T steps back. The sequences are generated here,
seeded; nothing is downloaded.

Three measurements, each a function and all of them together in `diagnose_gradients` (the CLI's
`rnnedge-train --diagnose-gradients`):

(a) `gradient_norms_over_time`: ||dL/dh_t|| for every step t of a batch, for an RNN tanh, LSTM or GRU model
    (freshly initialised, or after `train_adding`). The recurrent layer is run one step at a time so that every
    hidden state h_t is a tensor of its own whose gradient autograd keeps (`retain_grad`): that gradient is the
    total derivative of the loss through all later steps, which is what vanishes or explodes. The loss is
    summed over the batch, so row n of dL/dh_t is d loss_n / d h_t of sequence n alone; the norm is averaged over
    the batch. It runs in float64: the RNN tanh's gradient at t=1 falls by ~20 orders of magnitude over 100 steps
    and would underflow float32 a little further on. `vanishing_ratio` = ||dL/dh_1|| / ||dL/dh_T||.
(b) `train_adding` + `evaluate_adding`: a short Adam run per cell on the task, and the test MSE and the fraction
    of answers within 0.04 of the target that it reaches.
(c) `clipping_runs`: an RNN (relu) whose recurrent matrix is an orthogonal matrix scaled by 1.4, trained with plain
    SGD, once without clipping (the gradient norm explodes and the weights become NaN) and once with
    `torch.nn.utils.clip_grad_norm_` (the norm per update is capped at max_norm and training carries on).

`diagnose_gradients(out_dir, T=...)` writes gradients.json (every number), gradients_over_time.png and
clipping.png, and returns the dict it wrote.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnedge.runtime import spec as specs
from rnnedge.train.model import RecurrentModel

CELLS = ("rnn_tanh", "lstm", "gru")  # the three compared; rnn_relu serves the exploding setup
ADDING_BASELINE_MSE = 1.0 / 6.0  # MSE of always predicting 1: the variance of the sum of two U(0, 1)
TOLERANCE = 0.04  # an answer within this of the target counts as solved (the usual adding-problem criterion)
DEFAULTS = {
    "T": 100, "hidden": 48, "updates": 1500, "batch_size": 32, "lr": 5e-3, "max_norm": 1.0, "seed": 0,
    "clip_updates": 200, "clip_gain": 1.4, "clip_lr": 3e-2, "eval_size": 1000,
}


# -- the task -------------------------------------------------------------------------------------------------
def adding_problem(n: int, T: int, rng: np.random.Generator | int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n adding-problem sequences of T steps: X (n, T, 2) float32 (value, marker), y (n,) float32.

    One marker lies in the first T // 2 steps and one in the rest, so the earlier one is at least T // 2 steps
    from the end.
    """
    _check_steps(T)
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    values = rng.random((n, T))
    markers = np.zeros((n, T))
    rows = np.arange(n)
    markers[rows, rng.integers(0, T // 2, n)] = 1.0
    markers[rows, rng.integers(T // 2, T, n)] = 1.0
    X = np.stack([values, markers], axis=-1).astype(np.float32)
    return X, (values * markers).sum(axis=1).astype(np.float32)


def adding_spec(cell: str, hidden: int) -> dict:
    """One recurrent layer reading (value, marker), a linear head on the last step: a regression of one value."""
    return specs.validate({
        "version": specs.SPEC_VERSION,
        "input": {"kind": "dense", "features": 2, "mean": [0.0, 0.0], "std": [1.0, 1.0]},
        "layers": [{"cell": cell, "hidden": hidden, "bidirectional": False}],
        "head": {"out": 1, "on": "last_step", "activation": "none"},
        "task": "forecast",
    })


def new_model(cell: str, hidden: int = DEFAULTS["hidden"], seed: int = 0) -> RecurrentModel:
    """A freshly initialised model (PyTorch's default initialisation), seeded."""
    if cell not in specs.CELLS:
        raise ValueError(f"unknown cell {cell!r}: give one of {', '.join(specs.CELLS)}")
    if hidden < 1:
        raise ValueError(f"hidden must be at least 1, got {hidden}")
    torch.manual_seed(seed)
    return RecurrentModel(adding_spec(cell, hidden))


# -- (a) the gradient at every step ---------------------------------------------------------------------------
def gradient_norms_over_time(cell: str | RecurrentModel, T: int = DEFAULTS["T"], *, hidden: int = DEFAULTS["hidden"],
                             batch_size: int = 64, seed: int = 0, updates: int = 0, lr: float = DEFAULTS["lr"],
                             max_norm: float | None = DEFAULTS["max_norm"]) -> np.ndarray:
    """||dL/dh_t|| for t = 1..T (index 0..T-1), averaged over a seeded batch of adding-problem sequences.

    `cell` is a cell name (a fresh model of `hidden` units seeded with `seed`, trained for `updates` Adam updates
    first if `updates` > 0) or a model built by `new_model` (used as it is; not modified). float64, length T.
    """
    _check_steps(T)
    if isinstance(cell, RecurrentModel):
        model = cell
    else:
        model = new_model(cell, hidden, seed)
        if updates > 0:
            train_adding(model, T, updates, batch_size=batch_size, lr=lr, max_norm=max_norm, seed=seed)
    X, y = adding_problem(batch_size, T, np.random.default_rng([seed, 1]))
    return _hidden_gradient_norms(model, torch.from_numpy(X), torch.from_numpy(y))


def _hidden_gradient_norms(model: RecurrentModel, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    model = copy.deepcopy(model).double()
    model.eval()
    rnn, lstm = model.layers[0], model.spec["layers"][0]["cell"] == "lstm"
    v = model.embed(X.double())
    state, hs = None, []
    for t in range(v.shape[1]):  # one step at a time: each h_t is its own tensor in the graph
        _, state = rnn(v[:, t : t + 1], state)
        h = state[0] if lstm else state  # (1, B, H), and exactly the tensor the next step reads
        h.retain_grad()
        hs.append(h)
    prediction = model.head(hs[-1][0]).squeeze(-1)
    ((prediction - y.double()) ** 2).sum().backward()  # summed: row n of dL/dh_t is d loss_n / d h_t
    return np.array([h.grad[0].norm(dim=1).mean().item() for h in hs], dtype=np.float64)


def vanishing_ratio(norms: np.ndarray) -> float:
    """||dL/dh_1|| / ||dL/dh_T||: how much of the last step's gradient is left at the first step."""
    return float(norms[0] / norms[-1])


# -- (b) training on the task ---------------------------------------------------------------------------------
def train_adding(model: RecurrentModel, T: int, updates: int, *, batch_size: int = DEFAULTS["batch_size"],
                 lr: float = DEFAULTS["lr"], max_norm: float | None = DEFAULTS["max_norm"], seed: int = 0) -> list[float]:
    """Adam on fresh seeded batches of the adding problem (clipped at max_norm); returns the loss per update."""
    _check_steps(T)
    rng = np.random.default_rng([seed, 2])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(updates):
        X, y = adding_problem(batch_size, T, rng)
        loss = F.mse_loss(model.logits(torch.from_numpy(X)).squeeze(-1), torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def evaluate_adding(model: RecurrentModel, T: int, n: int = DEFAULTS["eval_size"], seed: int = 0) -> dict:
    """Test MSE (vs the 0.167 baseline) and the fraction of answers within TOLERANCE, on n held-out sequences."""
    X, y = adding_problem(n, T, np.random.default_rng([seed, 3]))
    model.eval()
    error = model.logits(torch.from_numpy(X)).squeeze(-1).double().numpy() - y
    return {"mse": float(np.mean(error**2)), "within_tolerance": float(np.mean(np.abs(error) < TOLERANCE))}


# -- (c) exploding gradients and clipping ---------------------------------------------------------------------
def clipping_runs(T: int = DEFAULTS["T"], updates: int = DEFAULTS["clip_updates"], *, hidden: int = DEFAULTS["hidden"],
                  max_norm: float = DEFAULTS["max_norm"], gain: float = DEFAULTS["clip_gain"],
                  lr: float = DEFAULTS["clip_lr"], batch_size: int = DEFAULTS["batch_size"], seed: int = 0) -> dict:
    """The same exploding setup trained twice, without and with clip_grad_norm_(max_norm).

    RNN relu whose recurrent matrix is a random orthogonal matrix times `gain`, plain SGD at `lr`, identical
    seeded batches in both runs. Per update: the global gradient norm (before clipping; in the clipped run also
    after it) and the loss. Non-finite values are recorded as None; `diverged_at_update` is the first update
    (1-based) whose loss or gradient is not finite, or None.
    """
    _check_steps(T)
    if max_norm <= 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    runs = {}
    for name, clip in (("unclipped", None), ("clipped", max_norm)):
        model = new_model("rnn_relu", hidden, seed)
        with torch.no_grad():
            w_hh = model.layers[0].weight_hh_l0
            torch.nn.init.orthogonal_(w_hh)
            w_hh.mul_(gain)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        rng = np.random.default_rng([seed, 4])
        before, after, losses, diverged = [], [], [], None
        for update in range(1, updates + 1):
            X, y = adding_problem(batch_size, T, rng)
            loss = F.mse_loss(model.logits(torch.from_numpy(X)).squeeze(-1), torch.from_numpy(y))
            optimizer.zero_grad()
            loss.backward()
            norm = _grad_norm(model)
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            before.append(norm)
            after.append(_grad_norm(model))
            losses.append(loss.item())
            if diverged is None and not (math.isfinite(norm) and math.isfinite(losses[-1])):
                diverged = update
            optimizer.step()
        run = {"grad_norm": _finite_or_none(before), "loss": _finite_or_none(losses), "diverged_at_update": diverged,
               "max_finite_grad_norm": max((v for v in before if math.isfinite(v)), default=None),
               "final_loss": _finite_or_none(losses[-1:])[0]}
        if clip is not None:
            run["grad_norm_after_clip"] = _finite_or_none(after)
            run["updates_clipped"] = int(sum(v > clip for v in before))
        runs[name] = run
    return {"cell": "rnn_relu", "recurrent_init": f"orthogonal x {gain}", "optimizer": "SGD", "lr": lr,
            "max_norm": max_norm, "updates": updates, "T": T, "hidden": hidden, "batch_size": batch_size, **runs}


def _grad_norm(model: torch.nn.Module) -> float:
    grads = [p.grad.detach().double().norm() for p in model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(grads)))


def _finite_or_none(values) -> list:
    return [float(v) if math.isfinite(v) else None for v in values]


# -- all of it ------------------------------------------------------------------------------------------------
def diagnose_gradients(out_dir: str | os.PathLike, T: int = DEFAULTS["T"], *, hidden: int = DEFAULTS["hidden"],
                       updates: int = DEFAULTS["updates"], batch_size: int = DEFAULTS["batch_size"],
                       lr: float = DEFAULTS["lr"], max_norm: float = DEFAULTS["max_norm"], seed: int = DEFAULTS["seed"],
                       clip_updates: int = DEFAULTS["clip_updates"], eval_size: int = DEFAULTS["eval_size"],
                       cells: tuple[str, ...] = CELLS, log=None) -> dict:
    """Measure (a), (b) and (c) for `cells` on the adding problem of T steps; write gradients.json,
    gradients_over_time.png and clipping.png into out_dir and return the dict written to gradients.json.

    Per cell: ||dL/dh_t|| at initialisation, then `updates` Adam updates (lr, batch_size, clipped at max_norm),
    then ||dL/dh_t|| again and the test metrics. `log` (e.g. print) receives a line per finished stage.
    """
    _check_steps(T)
    for name, value in (("hidden", hidden), ("batch_size", batch_size), ("eval_size", eval_size)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    for name, value in (("updates", updates), ("clip_updates", clip_updates)):
        if value < 0:
            raise ValueError(f"{name} must be at least 0, got {value}")
    if lr <= 0 or max_norm <= 0:
        raise ValueError(f"lr and max_norm must be positive, got {lr} and {max_norm}")
    log = log or (lambda line: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small recurrent step is far slower split over threads (see TrainConfig.threads)
    try:
        results = {}
        for cell in cells:
            started = time.perf_counter()
            model = new_model(cell, hidden, seed)
            at_init = gradient_norms_over_time(model, T, batch_size=64, seed=seed)
            losses = train_adding(model, T, updates, batch_size=batch_size, lr=lr, max_norm=max_norm, seed=seed)
            trained = gradient_norms_over_time(model, T, batch_size=64, seed=seed)
            metrics = evaluate_adding(model, T, eval_size, seed)
            results[cell] = {
                "ratio_init": vanishing_ratio(at_init), "ratio_trained": vanishing_ratio(trained),
                "test_mse": metrics["mse"], "test_within_tolerance": metrics["within_tolerance"],
                "seconds": round(time.perf_counter() - started, 2),
                "grad_norms_init": at_init.tolist(), "grad_norms_trained": trained.tolist(), "train_loss": losses,
            }
            log(f"{cell}: ratio t=1/t=T {results[cell]['ratio_init']:.3g} at init, "
                f"{results[cell]['ratio_trained']:.3g} trained; test MSE {metrics['mse']:.4g} "
                f"({results[cell]['seconds']:.1f} s)")
        started = time.perf_counter()
        clipping = clipping_runs(T, clip_updates, hidden=hidden, max_norm=max_norm, batch_size=batch_size, seed=seed)
        clipping["seconds"] = round(time.perf_counter() - started, 2)
        log(f"clipping: unclipped diverged at update {clipping['unclipped']['diverged_at_update']}, clipped final "
            f"loss {clipping['clipped']['final_loss']} ({clipping['seconds']:.1f} s)")
    finally:
        torch.set_num_threads(threads)
    report = {
        "task": {"name": "adding problem", "T": T, "baseline_mse": ADDING_BASELINE_MSE, "tolerance": TOLERANCE,
                 "eval_size": eval_size},
        "config": {"hidden": hidden, "updates": updates, "batch_size": batch_size, "lr": lr, "optimizer": "Adam",
                   "max_norm": max_norm, "seed": seed, "gradient_batch": 64, "gradient_dtype": "float64",
                   "torch": torch.__version__},
        "ratio": "mean over the batch of ||dL/dh_1|| divided by that of ||dL/dh_T||",
        "cells": results,
        "clipping": clipping,
    }
    (out_dir / "gradients.json").write_text(json.dumps(report, indent=1, allow_nan=False) + "\n")
    plot_gradients_over_time(report, out_dir / "gradients_over_time.png")
    plot_clipping(report["clipping"], out_dir / "clipping.png")
    return report


# -- plots ----------------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    return plt


def plot_gradients_over_time(report: dict, path: str | os.PathLike) -> None:
    """Two panels, at initialisation and after training: log ||dL/dh_t|| against t, the cells overlaid."""
    plt = _pyplot()
    cells, T = report["cells"], report["task"]["T"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    t = np.arange(1, T + 1)
    for ax, key, title in ((axes[0], "init", "at initialisation"),
                           (axes[1], "trained", f"after {report['config']['updates']} updates")):
        for cell, r in cells.items():
            ax.semilogy(t, r["grad_norms_" + key], label=f"{cell}: t=1/t=T {r['ratio_' + key]:.2g}")
        ax.set(xlabel="time step t (the loss is at t = T)", title=f"adding problem, T={T}: {title}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("||dL/dh_t|| (batch mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_clipping(clipping: dict, path: str | os.PathLike) -> None:
    """Gradient norm per update (log) with and without clipping, and the loss per update of both runs."""
    plt = _pyplot()
    un, cl = clipping["unclipped"], clipping["clipped"]
    updates = np.arange(1, clipping["updates"] + 1)

    def arr(values):
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

    fig, (ax_norm, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    ax_norm.semilogy(updates, arr(un["grad_norm"]), label="no clipping", color="tab:red")
    ax_norm.semilogy(updates, arr(cl["grad_norm"]), label="clipped run, before clipping", color="tab:blue", alpha=0.5)
    ax_norm.semilogy(updates, arr(cl["grad_norm_after_clip"]), label="clipped run, applied", color="tab:blue")
    ax_norm.axhline(clipping["max_norm"], color="grey", linestyle="--", label=f"max_norm {clipping['max_norm']}")
    ax_loss.semilogy(updates, arr(un["loss"]), label="no clipping", color="tab:red")
    ax_loss.semilogy(updates, arr(cl["loss"]), label="clipped", color="tab:blue")
    ax_loss.axhline(ADDING_BASELINE_MSE, color="grey", linestyle="--", label="baseline (predict 1) 0.167")
    if un["diverged_at_update"] is not None:
        for ax in (ax_norm, ax_loss):
            ax.axvline(un["diverged_at_update"], color="tab:red", linestyle=":",
                       label=f"NaN from update {un['diverged_at_update']}")
    ax_norm.set(xlabel="update", ylabel="global gradient norm",
                title=f"{clipping['cell']}, W_hh {clipping['recurrent_init']}, SGD lr {clipping['lr']}")
    ax_loss.set(xlabel="update", ylabel="training MSE", title=f"adding problem, T={clipping['T']}")
    for ax in (ax_norm, ax_loss):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _check_steps(T: int) -> None:
    if not isinstance(T, (int, np.integer)) or isinstance(T, bool) or T < 2:
        raise ValueError(f"T (sequence length) must be an integer of at least 2, got {T!r}: the adding problem "
                         "marks one step in each half of the sequence")
