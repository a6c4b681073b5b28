"""The training loop: Adam with a cosine learning-rate decay, gradient clipping by norm; keeps the last epoch (or,
with keep="best", the best epoch on the validation metric, with early stopping).

    spec = default_spec(data, cell="gru", hidden=48)
    model, metrics = train(spec, data, TrainConfig(), "artifacts/watch")

writes into the output folder:
    model.pt        the kept epoch's checkpoint (train.checkpoint), its metrics included
    metrics.json    per-epoch rate, train loss and validation metric, kept and best epoch, test metric of the kept model
    training.png    the two curves

Under torchrun (train/distributed.py) every rank trains its slice of the same global batches, on its GPU where CUDA
is available, and only rank 0 writes; out_dir=None writes nothing. The model returned is on the CPU.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from rnnedge.runtime import spec as specs
from rnnedge.train import distributed
from rnnedge.train.checkpoint import save_checkpoint
from rnnedge.train.data import Dataset, SequenceData
from rnnedge.train.metrics import higher_is_better, metric_name, task_metric
from rnnedge.train.model import RecurrentModel


@dataclass
class TrainConfig:
    seed: int = 0  # seeds torch and numpy: the same config on the same data gives the same model
    epochs: int = 40  # epochs run (keep="best": at most), and the length of the cosine decay, ending at its floor
    batch_size: int = 32  # small batches of short windows keep a CPU busy without long waits per step
    lr: float = 5e-3  # Adam's starting rate; small recurrent nets tolerate more than the usual 1e-3 and train faster
    schedule: str = "cosine"  # "cosine": the rate falls from lr to lr * MIN_LR_FRACTION over `epochs` (per epoch).
    #                           At a constant 5e-3 the watch demo's validation accuracy jumped by up to 12 points
    #                           between epochs, so the kept epoch, and the test accuracy, was luck of the seed
    #                           (75.75..88.41 over seeds 0-4); a decaying rate lets the last epochs settle.
    #                           "constant": lr throughout
    keep: str = "last"  # "last": the last epoch's weights, all `epochs` run (settled at the decayed rate). "best": the
    #                     epoch with the best validation metric, stopping after `patience` epochs without a better one.
    #                     On the watch demo (2 validation subjects) the best-validation pick was itself noise: test
    #                     85.5..93.0 over seeds 0-4 with the cosine decay, against 87.3..90.2 for the last epoch
    clip_grad_norm: float | None = 1.0  # max global gradient norm, as in torch.nn.utils.clip_grad_norm_;
    #                                     recurrent nets have exploding gradients. None: no clipping
    patience: int = 15  # keep="best" only: epochs without a better validation metric before stopping; long enough
    #                     that a noisy plateau at the high early rate does not stop the run before the rate decayed
    window: int | None = 192  # every_step heads train on random crops of this many steps (about 4 s of
    #                            50 Hz data): long recordings cost as much as many short ones and random starts
    #                            teach the model to begin from a zero state anywhere. None: whole sequences.
    #                            last_step heads always see whole sequences: a crop would change their label
    threads: int = 1  # torch intra-op threads. A small recurrent step is too small to split: on the 2-core build
    #                   machine 2 threads ran a GRU-48 batch ~100x slower than 1 (OpenMP threads waiting on each
    #                   other every time step). Never more than the cores this process may run on
    progress: bool | None = None  # True: a tqdm bar on stderr; False: silent; None: the bar on a terminal, else
    #                               one plain line per epoch (a log file or CI shows progress without bar redraws)


def default_spec(data: Dataset, cell: str = "gru", hidden: int = 48, layers: int = 1,
                 bidirectional: bool = False, embed_dim: int = 16) -> dict:
    """A version-1 spec (runtime/spec.py) for this data set: `layers` equal recurrent layers and a linear head."""
    if data.input_kind == "dense":
        inp = {"kind": "dense", "features": data.features}
    else:
        inp = {"kind": "tokens", "vocab": data.vocab, "embed_dim": embed_dim, "padding_idx": None}
        if data.chars is not None:  # a character model carries its alphabet: text <-> ids on the device
            inp["chars"] = data.chars
    return specs.validate({
        "version": specs.SPEC_VERSION,
        "input": inp,
        "layers": [{"cell": cell, "hidden": hidden, "bidirectional": bidirectional} for _ in range(layers)],
        "head": {"out": data.out, "on": data.head_on, "activation": "none" if data.task == "forecast" else "softmax"},
        "task": data.task,
    })


def train(spec: dict, data: Dataset, config: TrainConfig,
          out_dir: str | os.PathLike | None) -> tuple[RecurrentModel, dict]:
    """Train a model of `spec` on `data`; returns the kept epoch's model (eval mode) and its metrics. Writes into
    out_dir on rank 0 only (the one process without torchrun), nowhere when it is None."""
    _check_fits(specs.validate(spec), data)
    if config.schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {config.schedule!r}: expected one of {', '.join(SCHEDULES)}")
    if config.keep not in KEEPS:
        raise ValueError(f"unknown keep {config.keep!r}: expected one of {', '.join(KEEPS)}")
    world = distributed.world()
    out_dir = Path(out_dir) if out_dir is not None and world.rank == 0 else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    torch.set_num_threads(max(1, min(config.threads, _available_cores())))

    model = RecurrentModel(spec)
    if data.input_kind == "dense":
        model.set_normalisation(*normalisation(data.train))
    model.to(world.device)
    step = model.logits if world.size == 1 else distributed.parallel_logits(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = _scheduler(optimizer, config)
    metric = metric_name(data.task)
    better = (lambda a, b: a > b) if higher_is_better(metric) else (lambda a, b: a < b)

    history: list[dict] = []
    best = {"epoch": 0, "val": None, "state": None}
    started = time.perf_counter()
    show_bar = sys.stderr.isatty() if config.progress is None else config.progress
    lines = config.progress is None and not show_bar
    bar = tqdm(range(1, config.epochs + 1), desc=f"train {data.name}", unit="epoch", disable=not show_bar)
    for epoch in bar:
        lr = optimizer.param_groups[0]["lr"]
        train_loss = _train_epoch(model, step, optimizer, data, config, rng, world)
        scheduler.step()
        val = evaluate(model, data.task, data.val, config.batch_size)[1]
        history.append({"epoch": epoch, "lr": lr, "train_loss": train_loss, "val_" + metric: val})
        if best["val"] is None or better(val, best["val"]):
            state = copy.deepcopy(model.state_dict()) if config.keep == "best" else None
            best = {"epoch": epoch, "val": val, "state": state}
        bar.set_postfix(loss=f"{train_loss:.4f}", **{metric: f"{val:.2f}", "best": f"{best['val']:.2f}"})
        if lines:
            print(f"train {data.name}: epoch {epoch}/{config.epochs} loss {train_loss:.4f} validation {metric} "
                  f"{val:.4g} (best {best['val']:.4g}, epoch {best['epoch']}) {time.perf_counter() - started:.1f} s",
                  file=sys.stderr, flush=True)
        if config.keep == "best" and epoch - best["epoch"] >= config.patience:
            break
    bar.close()
    seconds = time.perf_counter() - started

    kept = best if config.keep == "best" else {"epoch": history[-1]["epoch"], "val": history[-1]["val_" + metric]}
    if config.keep == "best":
        model.load_state_dict(best["state"])
    model.cpu().eval()
    _refuse_diverged(model, history)
    metrics = {
        "dataset": data.name,
        "source": data.source,
        "task": data.task,
        "metric": metric,
        "higher_is_better": higher_is_better(metric),
        "epochs": history,
        "kept_epoch": kept["epoch"],
        "best_epoch": best["epoch"],
        "val_metric": kept["val"],
        "test_metric": evaluate(model, data.task, data.test, config.batch_size)[1],
        "train_seconds": round(seconds, 2),
        "config": asdict(config),
        "split": data.split,
    }
    if world.size > 1:
        metrics["processes"] = world.size
    if out_dir is not None:
        save_checkpoint(out_dir / "model.pt", model, metrics, split=data.split)
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        plot_training(metrics, out_dir / "training.png")
    return model, metrics


class TrainingDiverged(ValueError):
    """Training reached NaN or inf parameters: a model.pt of NaN would export and run as garbage."""


def _refuse_diverged(model: RecurrentModel, history: list[dict]) -> None:
    for name, value in model.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            losses = ", ".join(f"{h['train_loss']:.4g}" for h in history[:5])
            raise TrainingDiverged(f"training diverged: parameter {name!r} of the kept epoch holds NaN or inf "
                                   f"(train losses per epoch: {losses}); nothing was written. Try a smaller --lr "
                                   f"or a --clip-grad-norm")


SCHEDULES = ("cosine", "constant")
KEEPS = ("last", "best")
MIN_LR_FRACTION = 0.01  # the cosine decay's floor, as a fraction of lr


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs - 1),
                                                          eta_min=config.lr * MIN_LR_FRACTION)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


# -- one epoch ------------------------------------------------------------------------------------------------
def _train_epoch(model: RecurrentModel, step, optimizer: torch.optim.Optimizer, data: Dataset,
                 config: TrainConfig, rng: np.random.Generator, world: distributed.World) -> float:
    """One pass over the training data; returns the mean loss per scored value. step: model.logits, or its
    DistributedDataParallel wrapper when world has several ranks (each then trains its slice of every batch)."""
    model.train()
    every_step = data.head_on == "every_step"
    batches = (_window_batches(data.train, config.window, config.batch_size, rng) if every_step and config.window
               else _shuffled_batches(data.train, config.batch_size, rng, every_step))
    total, count = 0.0, 0
    for batch in batches:
        if world.size > 1:
            loss, summed, n = _slice_loss(step, batch, data, world)
        else:
            loss, n = _batch_loss(step, batch, data.task, world.device)
            summed = loss.item() * n
        optimizer.zero_grad()
        loss.backward()
        if config.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        total += summed
        count += n
    total, count = world.sum(total, count)
    return total / count


def _batch_loss(step, batch: SequenceData, task: str, device: torch.device) -> tuple[torch.Tensor, int]:
    x, lengths, y = _to_torch(batch, task, device)
    # a batch of full-length windows needs no packing, and the unpacked path is about twice as fast
    full = bool((lengths == x.shape[1]).all())
    return masked_loss(step(x, None if full else lengths), y, lengths, task)


def _slice_loss(step, batch: SequenceData, data: Dataset, world: distributed.World) -> tuple[torch.Tensor, float, int]:
    """This rank's share of a global batch: (the loss to back-propagate, its summed loss, its scored values).

    The loss is the slice's summed loss / the global batch's scored values * ranks: DDP divides the gradient sum by
    the ranks, leaving the gradient of the global batch's mean loss (train/distributed.py). A rank whose slice is
    empty (a last batch smaller than the ranks) still runs forward and backward, on one row weighted 0, because every
    rank must join every gradient reduction."""
    every_step = data.head_on == "every_step"
    per_value = int(np.prod(batch.y.shape[2 if every_step else 1:])) if data.task == "forecast" else 1
    scored = int(batch.lengths.sum() if every_step else len(batch)) * per_value
    rows = np.array_split(np.arange(len(batch)), world.size)[world.rank]
    weight = world.size / scored
    if len(rows) == 0:
        rows, weight = np.arange(1), 0.0
    mean, n = _batch_loss(step, _take(batch, rows, every_step), data.task, world.device)
    if weight == 0.0:
        return mean * 0.0, 0.0, 0
    return mean * (n * weight), mean.item() * n, n


def masked_loss(logits: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor, task: str) -> tuple[torch.Tensor, int]:
    """Mean loss over the valid steps (t < length) and how many values it averages.

    Cross-entropy on logits for class tasks, mean squared error for forecasting.
    """
    if logits.dim() == 3:  # every_step: keep the valid steps only -> (valid, out) and (valid,) or (valid, out)
        valid = torch.arange(logits.shape[1], device=logits.device)[None, :] < lengths[:, None]
        logits, y = logits[valid], y[valid]
    if task == "forecast":
        return F.mse_loss(logits, y), y.numel()
    return F.cross_entropy(logits, y), y.shape[0]


def _shuffled_batches(data: SequenceData, batch_size: int, rng: np.random.Generator, every_step: bool):
    order = rng.permutation(len(data))
    for start in range(0, len(order), batch_size):
        yield _take(data, order[start : start + batch_size], every_step)


def _window_batches(data: SequenceData, window: int, batch_size: int, rng: np.random.Generator):
    """Random crops of `window` steps, as many as cover the training steps once; longer recordings more often."""
    n_windows = math.ceil(data.lengths.sum() / window)
    which = rng.choice(len(data), size=n_windows, p=data.lengths / data.lengths.sum())
    starts = (rng.random(n_windows) * np.maximum(data.lengths[which] - window + 1, 1)).astype(np.int64)
    steps = min(window, data.X.shape[1])
    for i in range(0, n_windows, batch_size):
        rows, first = which[i : i + batch_size], starts[i : i + batch_size]
        cols = first[:, None] + np.arange(steps)[None, :]
        lengths = np.minimum(data.lengths[rows] - first, steps)
        yield SequenceData(data.X[rows[:, None], cols], lengths, data.y[rows[:, None], cols])


def _take(data: SequenceData, rows: np.ndarray, every_step: bool) -> SequenceData:
    """The chosen sequences, cut to the longest of them: padding past it costs time and changes nothing."""
    steps = int(data.lengths[rows].max())
    y = data.y[rows, :steps] if every_step else data.y[rows]
    return SequenceData(data.X[rows, :steps], data.lengths[rows], y)


def _to_torch(batch: SequenceData, task: str,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    y = torch.from_numpy(batch.y).to(device)
    return (torch.from_numpy(batch.X).to(device), torch.from_numpy(batch.lengths).to(device),
            y.float() if task == "forecast" else y.long())


# -- evaluation -----------------------------------------------------------------------------------------------
@torch.no_grad()
def predict(model: RecurrentModel, data: SequenceData, batch_size: int = 32) -> np.ndarray:
    """The model's activated outputs for every sequence, padded like data.X: (N, out) or (N, T, out)."""
    model.eval()
    device = next(model.parameters()).device  # a rank's GPU during training under torchrun, else the CPU
    outputs = []
    for start in range(0, len(data), batch_size):
        rows = np.arange(start, min(start + batch_size, len(data)))
        x = torch.from_numpy(data.X[rows]).to(device)
        outputs.append(model(x, torch.from_numpy(data.lengths[rows]).to(device)).cpu().numpy())
    return np.concatenate(outputs, axis=0)


def evaluate(model: RecurrentModel, task: str, data: SequenceData, batch_size: int = 32) -> tuple[str, float]:
    """The task metric of the model on a split."""
    return task_metric(task, predict(model, data, batch_size), data.y, data.lengths, model.spec["head"]["activation"])


def normalisation(data: SequenceData) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over the valid steps; a constant feature gets std 1 so it passes unchanged."""
    valid = data.X[np.arange(data.X.shape[1])[None, :] < data.lengths[:, None]].astype(np.float64)
    mean, std = valid.mean(axis=0), valid.std(axis=0)
    std[std < 1e-6] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


# -- plumbing -------------------------------------------------------------------------------------------------
def plot_training(metrics: dict, path: str | os.PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on build machines
    import matplotlib.pyplot as plt

    epochs = [e["epoch"] for e in metrics["epochs"]]
    val_key = "val_" + metrics["metric"]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [e["train_loss"] for e in metrics["epochs"]], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="train loss", title="training loss")
    ax_val.plot(epochs, [e[val_key] for e in metrics["epochs"]], marker="o", color="tab:green")
    ax_val.axvline(metrics["kept_epoch"], color="grey", linestyle="--", label=f"kept epoch {metrics['kept_epoch']}")
    ax_val.set(xlabel="epoch", ylabel=f"validation {metrics['metric']}", title=f"{metrics['dataset']}: validation")
    ax_val.legend()
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _check_fits(spec: dict, data: Dataset) -> None:
    """A spec whose input, head or task disagree with the data would train on nonsense: refuse it."""
    inp = spec["input"]
    problems = []
    if inp["kind"] != data.input_kind:
        problems.append(f"input kind {inp['kind']} vs data {data.input_kind}")
    elif inp["kind"] == "dense" and inp["features"] != data.features:
        problems.append(f"{inp['features']} input features vs data {data.features}")
    elif inp["kind"] == "tokens" and inp["vocab"] < data.vocab:
        problems.append(f"vocab {inp['vocab']} smaller than the data's {data.vocab}")
    if spec["head"]["out"] != data.out:
        problems.append(f"head.out {spec['head']['out']} vs data {data.out}")
    if spec["head"]["on"] != data.head_on:
        problems.append(f"head on {spec['head']['on']} vs data {data.head_on}")
    if spec["task"] != data.task:
        problems.append(f"task {spec['task']} vs data {data.task}")
    if problems:
        raise ValueError(f"spec does not fit data set {data.name!r}: " + "; ".join(problems))
