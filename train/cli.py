"""rnnedge train: train a recurrent model on a data set and write its checkpoint, metrics and curves.

    rnnedge train                              # the smartwatch demo -> artifacts/watch/
    rnnedge train my_data.npz --cell lstm --hidden 64 --out artifacts/mine
    rnnedge train my_book.txt                  # a character model of your own UTF-8 text (train/text_data.py)
    python -m rnnedge.train synthetic-sum --epochs 5
    torchrun --nproc-per-node 2 -m rnnedge.train watch  # data parallel over 2 processes (train/distributed.py)
    rnnedge train --diagnose-gradients --out /tmp/grads   # vanishing/exploding gradients, RNN vs LSTM vs GRU

The output folder (train/outputs.py) must be new, empty, or one rnnedge wrote: its rnnedge-manifest.json lists every
file rnnedge wrote there with its SHA-256. A folder holding other files is refused unless --force, which writes
beside them but never over them (a file of yours named model.pt, metrics.json or training.png is refused even then).
Training is written into a staging folder beside the output folder and moved in only when it is complete, so an
interrupted or failed run leaves the folder as it was. A new model makes the folder's earlier rnnedge files stale:
an export of the previous model in the same folder is removed (re-run rnnedge export).

Exit status (runtime/command.py): 0 trained and written, 2 bad input (an unknown data set, a file that is not a
regular file, a data file whose values the model cannot be built or trained from -- a token id or label outside
[0, 65535], a NaN or inf input or target, a task that does not fit the arrays; see train/user_data.py -- a text
file that is not UTF-8, holds a NUL byte, is too short or has too many distinct characters (train/text_data.py), a bad
option or a refused output folder), 3 an internal error (a short message; the traceback goes to a log file it names).
Nothing is written to the output folder unless the status is 0.
Under torchrun every rank runs this command with the same options; rank 0 checks and writes the output folder and
prints, and a folder it refuses stops every rank with status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from rnnedge.runtime.command import BAD_INPUT, OK, bad_input, guarded
from rnnedge.runtime.options import HelpFormatter, add_renamed, renamed_epilog
from rnnedge.runtime.spec import CELLS
from rnnedge.train import distributed, outputs
from rnnedge.train.data import SYNTHETIC, load_dataset
from rnnedge.train.gradients import DEFAULTS as GRADIENT_DEFAULTS
from rnnedge.train.gradients import diagnose_gradients
from rnnedge.train.loop import KEEPS, SCHEDULES, TrainConfig, default_spec, train
from rnnedge.train.splits import METHODS, describe

PROG = "rnnedge train"
DEFAULTS = TrainConfig()
TRAIN_FILES = ("model.pt", "metrics.json", "training.png")
GRADIENT_FILES = ("gradients.json", "gradients_over_time.png", "clipping.png")
# Upper bounds for sizes torch would otherwise try to allocate whole: an edge model's layer of 4,096 units
# already holds 50M parameters (GRU), and a batch beyond the data is one batch of all of it anyway.
LIMITS = {"hidden": 4096, "layers": 64, "embed_dim": 4096, "epochs": 100_000, "batch_size": 1_000_000,
          "patience": 100_000}
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds agree on this range
RENAMED = {"--steps": "--adding-steps"}  # --steps meant the parity streams' length in rnnedge export


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train a recurrent model (RNN, LSTM, GRU) and write model.pt, metrics.json and training.png.",
        epilog="The learning rate decays (--schedule cosine) and the last epoch is kept, or with --keep best the best "
               "epoch on the validation split (early stopping); the kept model's test metric is reported. "
               "Data formats and what is refused are described in train/user_data.py (load_npz, load_csv). "
               "With --diagnose-gradients it trains nothing to keep: it measures gradients instead (see that option). "
               "Output folder: new, empty, or written by rnnedge (its rnnedge-manifest.json lists every file with its "
               "SHA-256); one holding other files is refused unless --force, and a file of yours is never overwritten "
               "or removed. The run is written beside the folder and moved in only when complete (a failed run "
               "leaves the folder as it was); an earlier export of the previous model in the folder is removed. "
               "Data parallel over processes: torchrun --nproc-per-node N -m rnnedge.train ... (train/distributed.py). "
               + renamed_epilog(RENAMED),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("dataset", nargs="?", default="watch",
                        help="'watch' (bundled smartwatch IMU demo), 'digits' (bundled spoken-digit MFCCs), "
                             "'shakespeare' (bundled plays, next character), 'co2' (bundled weekly Mauna Loa CO2, "
                             "next-week forecast), "
                             f"one of {', '.join(SYNTHETIC)}, or a path to a .npz or .csv file, or to a .txt file: "
                             "UTF-8 text (recognised by the suffix .txt) for a character model that predicts the next "
                             "character (task generate; its end is held out; see train/text_data.py), then "
                             "rnnedge run --generate")
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=CELLS, default="gru", help="recurrent cell of every layer")
    model.add_argument("--hidden", type=int, default=48, help="hidden units per layer and direction")
    model.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    model.add_argument("--bidirectional", action="store_true",
                       help="read each sequence both ways (such a model cannot stream one step at a time)")
    model.add_argument("--embed-dim", type=int, default=16, help="embedding width for token input")
    fit = parser.add_argument_group("training")
    fit.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="most epochs to run")
    fit.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="sequences per Adam update")
    fit.add_argument("--lr", type=float, default=DEFAULTS.lr, help="Adam learning rate (the starting rate)")
    fit.add_argument("--schedule", choices=SCHEDULES, default=DEFAULTS.schedule,
                     help="learning rate over the epochs: cosine (falls from --lr to 1%% of it at --epochs), "
                          "constant")
    fit.add_argument("--clip-grad-norm", type=float, default=DEFAULTS.clip_grad_norm,
                     help="largest global gradient norm; 0 turns clipping off")
    fit.add_argument("--keep", choices=KEEPS, default=DEFAULTS.keep,
                     help="the model written: last (the last epoch's, after all --epochs) or best (the epoch with the "
                          "best validation metric, stopping early after --patience epochs without a better one)")
    fit.add_argument("--patience", type=int, default=DEFAULTS.patience,
                     help="with --keep best: stop after this many epochs without a better validation metric")
    fit.add_argument("--window", type=int, default=DEFAULTS.window,
                     help="train per-step tasks on random crops of this many steps; 0 uses whole sequences")
    fit.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed for the data split, init and batches")
    fit.add_argument("--split", choices=METHODS, default=None,
                     help="how train/val/test are dealt (train/splits.py): given (the data's own: an .npz 'split' key "
                          "or X_train/X_test keys, a CSV 'split' column), random (70/15/15, seeded), by-group (whole "
                          "groups of an .npz 'group' key or CSV 'group' column on one side), time (contiguous blocks "
                          "in order); default: given when the data carries a split, else random. The checkpoint "
                          "records it, and rnnedge export --data re-derives it")
    parser.add_argument("--out", type=Path, help="output folder: new, empty, or written by rnnedge (default: "
                                                 "artifacts/<dataset name>)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress on stderr (without it: a bar per epoch on a terminal, one plain line per "
                             "epoch otherwise, and a line per stage); results and errors are still printed")
    parser.add_argument("--force", action="store_true",
                        help="write into an --out folder that holds files rnnedge did not write, beside them; they are "
                             "never overwritten or removed")
    diagnose = parser.add_argument_group("gradient diagnosis")
    diagnose.add_argument("--diagnose-gradients", action="store_true",
                          help="instead of training on DATASET, measure vanishing and exploding gradients on the "
                               "adding problem for rnn_tanh, lstm and gru: ||dL/dh_t|| at every step before and after "
                               "--updates Adam updates, the test MSE reached, and an exploding rnn_relu trained with "
                               "and without clipping; uses --hidden, --batch-size, --lr, --clip-grad-norm (> 0) and "
                               "--seed, ignores the other options; writes gradients.json, gradients_over_time.png and "
                               "clipping.png to --out (default: artifacts/gradients). See train/gradients.py")
    steps = diagnose.add_argument("--adding-steps", dest="steps", type=int, default=GRADIENT_DEFAULTS["T"], metavar="T",
                                  help="sequence length T of the adding problem (at least 2)")
    add_renamed(diagnose, "--steps", steps, PROG)
    diagnose.add_argument("--updates", type=int, default=GRADIENT_DEFAULTS["updates"],
                          help="Adam updates per cell on the adding problem")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command; returns its exit status (module docstring). Bad options exit 2 through argparse."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return guarded(PROG, lambda: _main(parser, args), "; the output folder is as it was")


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    for name, most in LIMITS.items():
        if not 1 <= getattr(args, name) <= most:
            parser.error(f"--{name.replace('_', '-')} must be an integer from 1 to {most:,}, got {getattr(args, name)}")
    if not 0 < args.lr < math.inf:
        parser.error(f"--lr must be a positive finite number, got {args.lr}")
    if not 0 <= args.clip_grad_norm < math.inf:
        parser.error(f"--clip-grad-norm must be a finite number >= 0 (0 turns clipping off), got {args.clip_grad_norm}")
    if args.window < 0:
        parser.error(f"--window must be at least 0 (0 uses whole sequences), got {args.window}")
    if args.out is not None and "\0" in str(args.out):
        parser.error(f"--out {str(args.out)!r} holds a NUL byte, which no file name can")
    if not 0 <= args.seed <= MAX_SEED:
        parser.error(f"--seed must be an integer from 0 to {MAX_SEED}, got {args.seed}")
    if args.diagnose_gradients:
        if distributed.launched():
            parser.error("--diagnose-gradients runs in one process: run it without torchrun")
        return _diagnose(parser, args)
    if distributed.launched():
        try:
            distributed.backend_and_device()  # a LOCAL_RANK without its GPU: the launch's mistake, said in one line
        except ValueError as e:
            return bad_input(PROG, str(e))
    with distributed.session() as world:
        return _train(args, world)


def _train(args: argparse.Namespace, world: distributed.World) -> int:
    """Train and write; under torchrun on every rank, with rank 0 alone checking, writing and printing."""
    if world.rank != 0:
        args.quiet = True
    try:
        data = load_dataset(args.dataset, seed=args.seed, split=args.split)
        spec = default_spec(data, cell=args.cell, hidden=args.hidden, layers=args.layers,
                            bidirectional=args.bidirectional, embed_dim=args.embed_dim)
        config = TrainConfig(seed=args.seed, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             schedule=args.schedule, keep=args.keep,
                             clip_grad_norm=args.clip_grad_norm if args.clip_grad_norm > 0 else None,
                             patience=args.patience, window=args.window if args.window > 0 else None,
                             progress=False if args.quiet else None)
        out = args.out or Path("artifacts") / data.name
        inputs = [args.dataset] if Path(args.dataset).is_file() else []
        if world.rank == 0:
            refusal = None
            try:
                outputs.check_folder(out, outputs.TRAIN, writes=TRAIN_FILES, inputs=inputs, force=args.force)
            except (ValueError, OSError) as e:
                refusal = e
            if not world.agree(refusal is None):
                raise refusal
        elif not world.agree(True):
            print(f"{PROG}: rank {world.rank}: stopped, rank 0 refused the output folder", file=sys.stderr)
            return BAD_INPUT
        _status(args, f"training {_layers(spec)} on {data.name} ({len(data.train)} training sequences) for up to "
                      f"{config.epochs} epochs" + (f" on {world.size} processes" if world.size > 1 else ""))
        if world.rank != 0:
            train(spec, data, config, None)
            return OK
        with outputs.Staging(out, outputs.TRAIN, inputs=inputs, writes=TRAIN_FILES,
                             source=f"dataset {data.name}") as stage:
            _, metrics = train(spec, data, config, stage.dir)
            removed = stage.stale()
    except (ValueError, OSError) as e:
        return bad_input(PROG, str(e))
    metric = metrics["metric"]
    print(f"data: {data.name} ({data.task}, {len(data.train)}/{len(data.val)}/{len(data.test)} train/val/test "
          f"sequences, {describe(data.split)}); {data.source}")
    print(f"kept epoch {metrics['kept_epoch']} of {len(metrics['epochs'])} ({config.keep}; best validation epoch "
          f"{metrics['best_epoch']}) in {metrics['train_seconds']:.1f} s: "
          f"validation {metric} {metrics['val_metric']:.4g}, test {metric} {metrics['test_metric']:.4g}")
    for name in TRAIN_FILES:
        print(f"wrote {out / name}")
    if removed:
        print(f"removed {len(removed)} files of the previous model, stale beside the new model.pt: {outputs.some(removed)}")
    return OK


def _diagnose(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """--diagnose-gradients: run train.gradients.diagnose_gradients and print its table."""
    if not 2 <= args.steps <= 100_000:  # dL/dh_t is kept for every step t
        parser.error(f"--adding-steps must be from 2 (the adding problem marks one step in each half) to 100,000, got "
                     f"{args.steps}")
    if not 0 <= args.updates <= 1_000_000:
        parser.error(f"--updates must be from 0 to 1,000,000, got {args.updates}")
    if args.clip_grad_norm <= 0:
        parser.error("--diagnose-gradients needs a positive --clip-grad-norm: it is the clipping threshold measured")
    out = args.out or Path("artifacts") / "gradients"
    try:
        outputs.check_folder(out, outputs.DIAGNOSE, writes=GRADIENT_FILES, force=args.force)
        with outputs.Staging(out, outputs.DIAGNOSE, writes=GRADIENT_FILES) as stage:
            report = diagnose_gradients(stage.dir, args.steps, hidden=args.hidden, updates=args.updates,
                                        batch_size=args.batch_size, lr=args.lr, max_norm=args.clip_grad_norm,
                                        seed=args.seed, log=lambda line: _status(args, line))
    except (ValueError, OSError) as e:
        return bad_input(PROG, str(e))
    task, config = report["task"], report["config"]
    print(f"adding problem, T={task['T']}: hidden {config['hidden']}, {config['updates']} Adam updates per cell "
          f"(lr {config['lr']}, batch {config['batch_size']}, clipped at {config['max_norm']}); test MSE baseline "
          f"{task['baseline_mse']:.3f} (always predicting 1)")
    print(f"{'cell':<9} {'ratio t=1/t=T, init':>20} {'ratio t=1/t=T, trained':>23} {'test MSE':>9} "
          f"{'within ' + str(task['tolerance']):>12}")
    for cell, r in report["cells"].items():
        print(f"{cell:<9} {r['ratio_init']:>20.3g} {r['ratio_trained']:>23.3g} {r['test_mse']:>9.4f} "
              f"{100 * r['test_within_tolerance']:>11.1f}%")
    clip, un, cl = report["clipping"], report["clipping"]["unclipped"], report["clipping"]["clipped"]
    applied = max((v for v in cl["grad_norm_after_clip"] if v is not None), default=float("nan"))
    ended = (f"NaN from update {un['diverged_at_update']}" if un["diverged_at_update"] is not None
             else f"final loss {_g(un['final_loss'])}")
    print(f"exploding ({clip['cell']}, W_hh {clip['recurrent_init']}, SGD lr {clip['lr']}, {clip['updates']} updates): "
          f"without clipping the gradient norm reached {_g(un['max_finite_grad_norm'])}, {ended}; with "
          f"clip_grad_norm_({clip['max_norm']}) {cl['updates_clipped']} updates were clipped, applied norm <= "
          f"{_g(applied)}, final loss {_g(cl['final_loss'])}")
    for name in GRADIENT_FILES:
        print(f"wrote {out / name}")
    return OK


def _status(args: argparse.Namespace, line: str) -> None:
    """A progress line on stderr, unless --quiet."""
    if not args.quiet:
        print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def _layers(spec: dict) -> str:
    return " + ".join(f"{layer['cell']} {layer['hidden']}" + (" bidirectional" if layer["bidirectional"] else "")
                      for layer in spec["layers"])


def _g(value: float | None) -> str:
    """A number for the table; None (a non-finite value in gradients.json) prints as nan."""
    return "nan" if value is None else f"{value:.4g}"
