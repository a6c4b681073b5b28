"""rnnedge-run: stream a recorded input file through an exported model, one time step per call."""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

DESCRIPTION = """\
Stream an input file through a model.<precision>.safetensors, one time step per call, exactly as a
device would, and write the output of every step.

Input: .npy holding (T, F) float (dense input: T time steps of F raw sensor values), (B, T, F) for B
streams side by side, or (T,) / (B, T) integer token ids; or .csv with one time step per row and one
column per feature (a header row is skipped if it is not numeric).
Output (--out): .npy (T, out) or (B, T, out), or .csv (one row per step); without --out, CSV on stdout.
--out naming the model or the input file is refused: rnnedge-run never writes over a file it reads.
Bidirectional and reverse models cannot stream: they are run over the whole sequence instead (and say so).

Generation (--generate PROMPT, instead of an input file): a character model (token input whose spec carries
input.chars, a head predicting the next character on every step, e.g. `rnnedge-train shakespeare`) streams
the prompt, then samples --n characters one at a time, each fed back as the next input, and prints the
prompt followed by them. --temperature divides the log-probabilities, --top-k keeps the k most likely
characters, --seed makes the text repeatable (numpy PCG64). Backslash escapes in PROMPT (\\n, \\t) are
interpreted. Same for f32, int8w and int8 files.
"""


def _read_input(path: str, dense: bool) -> np.ndarray:
    if path.endswith(".npy"):
        X = np.load(path, allow_pickle=False)
    elif path.endswith(".csv"):
        try:
            X = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
        except ValueError:
            X = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64, skiprows=1)
        if not dense:
            if X.shape[1] != 1:
                raise ValueError(f"{path}: a token model takes one column of ids, got {X.shape[1]}")
            X = X[:, 0]
    else:
        raise ValueError(f"{path}: input must be a .npy or .csv file")
    if dense:
        if X.ndim == 2:
            X = X[None]
        if X.ndim != 3 or not np.issubdtype(X.dtype, np.number):
            raise ValueError(f"{path}: dense input must be numeric (T, F) or (B, T, F), got {X.dtype} {X.shape}")
        return X.astype(np.float32)
    if X.ndim == 1:
        X = X[None]
    if X.ndim != 2 or not np.all(np.equal(np.mod(X, 1), 0)):
        raise ValueError(f"{path}: token input must be integer ids (T,) or (B, T), got {X.dtype} {X.shape}")
    return X.astype(np.int64)


def _write_output(path: str | None, Y: np.ndarray) -> None:
    if path is not None and path.endswith(".npy"):
        np.save(path, Y)
        return
    rows = Y.reshape(-1, Y.shape[-1]) if Y.ndim > 1 else Y[None]
    if path is None:
        np.savetxt(sys.stdout, rows, delimiter=",", fmt="%.8g")
    else:
        np.savetxt(path, rows, delimiter=",", fmt="%.8g")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnnedge-run", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model.<precision>.safetensors written by rnnedge-export")
    parser.add_argument("input", nargs="?", help="input stream: .npy or .csv (see above); not with --generate")
    parser.add_argument("--out", help="where to write the outputs (.npy or .csv); default: CSV on stdout")
    gen = parser.add_argument_group("generation (character models)")
    gen.add_argument("--generate", metavar="PROMPT", help="stream PROMPT, then print it and --n sampled characters")
    gen.add_argument("--n", type=int, default=200, help="characters to generate")
    gen.add_argument("--temperature", type=float, default=1.0, help="sampling temperature, > 0")
    gen.add_argument("--top-k", type=int, default=None, help="sample among the k most likely characters only")
    gen.add_argument("--seed", type=int, default=0, help="seed of the sampler (numpy PCG64)")
    args = parser.parse_args(argv)
    if args.generate is not None:
        if args.input is not None or args.out is not None:
            parser.error("--generate takes no input file and no --out: the text goes to stdout")
        return _generate(args)
    if args.input is None:
        parser.error("give an input file (.npy or .csv), or --generate PROMPT")
    if args.out is not None:
        for role, path in (("model", args.model), ("input", args.input)):
            if os.path.realpath(args.out) == os.path.realpath(path):
                print(f"rnnedge-run: error: --out {args.out} is the {role} file; rnnedge-run never writes over a file "
                      f"it reads: choose another --out", file=sys.stderr)
                return 2

    import runtime

    try:
        model = runtime.load(args.model)
        X = _read_input(args.input, model.dense)
        start = time.perf_counter()
        if runtime.spec.can_stream(model.spec):
            stream = model.stream(batch=X.shape[0])
            Y = np.empty((X.shape[0], X.shape[1], model.out), dtype=np.float32)
            for t in range(X.shape[1]):
                Y[:, t] = stream.step(np.ascontiguousarray(X[:, t]))
            how = "streamed one step per call"
        else:
            Y = model.run(X)
            how = "run over whole sequences (bidirectional or reverse model: it cannot stream)"
        elapsed = time.perf_counter() - start
    except (OSError, ValueError, TypeError) as e:
        print(f"rnnedge-run: error: {e}", file=sys.stderr)
        return 2
    _write_output(args.out, Y[0] if Y.shape[0] == 1 else Y)
    print(f"rnnedge-run: {X.shape[0]} stream(s) x {X.shape[1]} steps {how} in {elapsed:.3f} s"
          + (f"; wrote {args.out}" if args.out else ""), file=sys.stderr)
    return 0


def _generate(args) -> int:
    import runtime

    prompt = args.generate.encode("utf-8").decode("unicode_escape") if "\\" in args.generate else args.generate
    try:
        model = runtime.load(args.model)
        start = time.perf_counter()
        text = model.generate(prompt, args.n, temperature=args.temperature, top_k=args.top_k, seed=args.seed)
        elapsed = time.perf_counter() - start
    except (OSError, ValueError, TypeError) as e:
        print(f"rnnedge-run: error: {e}", file=sys.stderr)
        return 2
    print(prompt + text)
    print(f"rnnedge-run: {len(prompt)} prompt + {args.n} generated characters ({model.precision}, temperature "
          f"{args.temperature:g}, top-k {args.top_k or 'all'}, seed {args.seed}) in {elapsed:.3f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
