"""rnnedge-train: train a recurrent model on a data set and write its checkpoint, metrics and curves.

    rnnedge-train                              # the smartwatch demo -> artifacts/watch/
    rnnedge-train my_data.npz --cell lstm --hidden 64 --out artifacts/mine
    python -m train synthetic-sum --epochs 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runtime.spec import CELLS
from train.data import SYNTHETIC, load_dataset
from train.loop import TrainConfig, default_spec, train

PROG = "rnnedge-train"
DEFAULTS = TrainConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train a recurrent model (RNN, LSTM, GRU) and write model.pt, metrics.json and training.png.",
        epilog="The best epoch on the validation split is kept (early stopping); its test metric is reported. "
               "Data formats are described in train/data.py (load_npz, load_csv).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("dataset", nargs="?", default="watch",
                        help="'watch' (bundled smartwatch IMU demo), 'digits' (bundled spoken-digit MFCCs), "
                             f"one of {', '.join(SYNTHETIC)}, or a path to a .npz or .csv file")
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=CELLS, default="gru", help="recurrent cell of every layer")
    model.add_argument("--hidden", type=int, default=48, help="hidden units per layer and direction")
    model.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    model.add_argument("--bidirectional", action="store_true",
                       help="read each sequence both ways (such a model cannot stream one step at a time)")
    model.add_argument("--embed-dim", type=int, default=16, help="embedding width for token input")
    fit = parser.add_argument_group("training")
    fit.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="most epochs to run")
    fit.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    fit.add_argument("--lr", type=float, default=DEFAULTS.lr, help="Adam learning rate")
    fit.add_argument("--clip-grad-norm", type=float, default=DEFAULTS.clip_grad_norm,
                     help="largest global gradient norm; 0 turns clipping off")
    fit.add_argument("--patience", type=int, default=DEFAULTS.patience,
                     help="stop after this many epochs without a better validation metric")
    fit.add_argument("--window", type=int, default=DEFAULTS.window,
                     help="train per-step tasks on random crops of this many steps; 0 uses whole sequences")
    fit.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed for the data split, init and batches")
    parser.add_argument("--out", type=Path, help="output folder (default: artifacts/<dataset name>)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("hidden", "layers", "embed_dim", "epochs", "batch_size", "patience"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.lr <= 0:
        parser.error("--lr must be positive")
    try:
        data = load_dataset(args.dataset, seed=args.seed)
        spec = default_spec(data, cell=args.cell, hidden=args.hidden, layers=args.layers,
                            bidirectional=args.bidirectional, embed_dim=args.embed_dim)
        config = TrainConfig(seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             clip_grad_norm=args.clip_grad_norm if args.clip_grad_norm > 0 else None,
                             patience=args.patience, window=args.window if args.window > 0 else None)
        out = args.out or Path("artifacts") / data.name
        _, metrics = train(spec, data, config, out)
    except (ValueError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    metric = metrics["metric"]
    print(f"data: {data.name} ({data.task}, {len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test "
          f"sequences); {data.source}")
    print(f"best epoch {metrics['best_epoch']} of {len(metrics['epochs'])} in {metrics['train_seconds']:.1f} s: "
          f"validation {metric} {metrics['val_metric']:.4g}, test {metric} {metrics['test_metric']:.4g}")
    for name in ("model.pt", "metrics.json", "training.png"):
        print(f"wrote {out / name}")
    return 0
