"""rnnedge run: stream a recorded input file through an exported model, one time step per call.

Exit status (runtime/command.py): 0 done, 2 bad input (a weight file, input file, prompt or --out refused, one
line naming why), 3 an internal error (one line and the log holding the traceback), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
import tempfile
import time

import numpy as np

from rnnedge.runtime import sniff
from rnnedge.runtime.command import OK, bad_input, guarded, regular_file
from rnnedge.runtime.options import RawHelpFormatter

PROG = "rnnedge run"
NOT_FEATURES = ("sequence_id", "label", "split", "group")  # train/user_data.py load_csv's other columns
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}  # what a backslash in --generate PROMPT may start

DESCRIPTION = """\
Stream an input file through a model.<precision>.safetensors, one time step per call, exactly as a
device would, and write the output of every step.

Input: .npy holding (T, F) float (dense input: T time steps of F raw sensor values), (B, T, F) for B
streams side by side, or (T,) / (B, T) integer token ids; or .csv, either
  - one stream: one time step per row, one column per feature (token models: one column of ids); a first
    row that is not numeric is a header and skipped; or
  - rnnedge train's CSV (dense models): a header naming sequence_id, one row per time step, the rows of a
    sequence in order; every column but sequence_id, label, split and group is a feature, in the order the
    model was trained on. Each sequence is streamed from a fresh state, in the order of its first row:
        sequence_id,ax,ay,az,label
        walk-01,0.12,-0.98,0.05,2
Output (--out): .npy (T, out) or (B, T, out), or .csv: one row per step (per stream for a last_step head)
and one column per model output, no header. With more than one stream each row starts with a column naming
its stream: its index in a (B, T, F) .npy (0 to B - 1), or its sequence_id. Without --out, that CSV on
stdout. Sequences of different lengths fit a .csv only.
MODEL must be an rnnedge weight file: an ONNX file or a PyTorch checkpoint is refused saying how to export it.
--out naming the model or the input file is refused: rnnedge run never writes over a file it reads.
Bidirectional and reverse models cannot stream: they are run over the whole sequence instead (and say so).

Generation (--generate PROMPT, instead of an input file): a character model (token input whose spec carries
input.chars, a head predicting the next character on every step, e.g. `rnnedge train shakespeare` or
`rnnedge train my_text.txt`) streams the prompt, then samples --n characters one at a time, each fed back as
the next input, and prints the prompt followed by them, as UTF-8 whatever the locale. --temperature divides
the log-probabilities, --top-k keeps the k most likely characters, --seed makes the text repeatable (numpy
PCG64). Backslash escapes in PROMPT (\\n, \\t, \\r, \\\\) are interpreted; any other character, UTF-8
included, is taken as it is; a character outside the model's alphabet is refused, naming it.
--prompt-ids 1,2,3 instead of --generate: the prompt as token ids, for a token model without input.chars (or
with); it prints the prompt's ids followed by the --n sampled ids, comma separated, on one line.
Same for f32, int8w and int8 files.

Exit status: 0 done, 2 bad input (one line naming it), 3 an internal error (one line and the path of a log holding
the traceback), 130 interrupted. --out is written to a temporary file beside it and renamed into place when
complete, so a failed run leaves no partial file.
"""


def _read_input(path: str, dense: bool) -> np.ndarray:
    if path.endswith(".npy"):
        X = np.load(path, allow_pickle=False, mmap_mode="r")  # a header claiming more than the file holds: refused
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


def _read_sequences_csv(path: str) -> tuple[list[str], list[np.ndarray]] | None:
    """A CSV in rnnedge train's format (train/user_data.py load_csv: a header naming sequence_id, one row per step)
    as its sequences in the order of their first row, each (1, T, F) float32, and their ids; None for a CSV whose
    header has no sequence_id. label, split and group are not features (they are ignored here)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if "sequence_id" not in header:
            return None
        sid = header.index("sequence_id")
        features = [i for i, name in enumerate(header) if name not in NOT_FEATURES]
        if not features:
            raise ValueError(f"{path}: no feature column beside {', '.join(NOT_FEATURES)}")
        steps: dict[str, list[list[float]]] = {}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}:{line}: {len(row)} columns, the header has {len(header)}")
            values = []
            for i in features:
                try:
                    values.append(float(row[i]))
                except ValueError:
                    raise ValueError(f"{path}:{line} (column {header[i]}): {row[i][:40]!r} is not a number") from None
            steps.setdefault(row[sid].strip(), []).append(values)
    if not steps:
        raise ValueError(f"{path}: no rows after the header")
    return list(steps), [np.asarray(v, dtype=np.float32)[None] for v in steps.values()]


def _write_output(path: str | None, outputs: list[np.ndarray], names: list[str] | None,
                  array: np.ndarray | None) -> None:
    """The outputs to `path` through a temporary file beside it, renamed into place when complete; or CSV on stdout.

    outputs: one (T, out) array per stream (a last_step head: (1, out)); names: None for one stream, else each
    stream's name, which starts each of its CSV rows. array: what a .npy file holds, (T, out) or (B, T, out); None
    when the streams differ in length (a .npy is refused: ValueError)."""
    if path is not None and path.endswith(".npy") and array is None:
        raise ValueError(f"--out {path}: the streams have different lengths, which one .npy array cannot hold; "
                         "write a .csv (each row starts with its stream's sequence_id)")
    if path is None:
        _write_csv(sys.stdout, outputs, names)
        sys.stdout.flush()
        return
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".rnnedge-run-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if path.endswith(".npy"):
                np.save(f, array)
            else:
                _write_csv(f, outputs, names)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _write_csv(f, outputs: list[np.ndarray], names: list[str] | None) -> None:
    """One row per step, one column per output; with names, each row starts with its stream's name (quoted as CSV
    quotes a field holding a comma or a quote)."""
    for i, Y in enumerate(outputs):
        values = ",".join(["%.8g"] * Y.shape[-1])
        if names is None:
            np.savetxt(f, Y, fmt=values)
            continue
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow([names[i]])
        np.savetxt(f, Y, fmt=buffer.getvalue().replace("%", "%%") + "," + values)


def _unescape(prompt: str) -> str:
    """PROMPT with its backslash escapes (_ESCAPES) replaced; ValueError names any other escape."""
    def one(match: re.Match) -> str:
        if match.group(1) not in _ESCAPES:
            raise ValueError(f"--generate PROMPT holds the escape \\{match.group(1)}; the escapes are "
                             f"{', '.join(chr(92) + c for c in _ESCAPES)} (any other character is taken as it is)")
        return _ESCAPES[match.group(1)]
    return re.sub(r"\\(.?)", one, prompt, flags=re.DOTALL)


def main(argv: list[str] | None = None) -> int:
    """The command; returns its exit status (module docstring). Bad options exit 2 through argparse."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION,
                                     formatter_class=RawHelpFormatter)
    parser.add_argument("model", metavar="MODEL", help="a model.<precision>.safetensors written by rnnedge export")
    parser.add_argument("input", metavar="INPUT", nargs="?", help="input stream: .npy or .csv (see above); not with --generate or --prompt-ids")
    parser.add_argument("--out", help="where to write the outputs (.npy or .csv); default: CSV on stdout")
    parser.add_argument("--quiet", action="store_true", help="no summary line on stderr (errors are still printed)")
    gen = parser.add_argument_group("generation (token models predicting the next token)")
    prompt = gen.add_mutually_exclusive_group()
    prompt.add_argument("--generate", metavar="PROMPT", help="stream PROMPT (text: the model's spec needs "
                        "input.chars), then print it and --n sampled characters")
    prompt.add_argument("--prompt-ids", metavar="IDS", help="stream the comma-separated token ids IDS (e.g. 1,2,3), "
                        "then print them and --n sampled ids, comma separated")
    gen.add_argument("--n", type=int, default=200, help="characters (or ids) to generate")
    gen.add_argument("--temperature", type=float, default=1.0, help="sampling temperature, > 0")
    gen.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens only")
    gen.add_argument("--seed", type=int, default=0, help="seed of the sampler (numpy PCG64)")
    args = parser.parse_args(argv)
    generating = args.generate is not None or args.prompt_ids is not None
    if generating:
        if args.input is not None or args.out is not None:
            option = "--generate" if args.generate is not None else "--prompt-ids"
            parser.error(f"{option} takes no input file and no --out: the tokens go to stdout")
    elif args.input is None:
        parser.error("give an input file (.npy or .csv), or --generate PROMPT, or --prompt-ids IDS")
    return guarded(PROG, lambda: _generate(args) if generating else _run(args),
                   "; --out was not written" if args.out else "", pipe=True)


def _run(args: argparse.Namespace) -> int:
    """Stream (or run) the input file through the model and write every step's output."""
    if args.out is not None:
        if "\0" in args.out:
            return bad_input(PROG, f"--out {args.out!r} holds a NUL byte, which no file name can")
        for role, path in (("model", args.model), ("input", args.input)):
            if os.path.realpath(args.out) == os.path.realpath(path):
                return bad_input(PROG, f"--out {args.out} is the {role} file; rnnedge run never writes over a file "
                                       "it reads: choose another --out")
        folder = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(folder):
            return bad_input(PROG, f"--out {args.out}: the folder {folder} does not exist")

    from rnnedge import runtime

    try:
        model = _load(args.model)
        path = str(regular_file(args.input, "input file"))
        sequences = _read_sequences_csv(path) if path.endswith(".csv") else None
        if sequences is None:
            X = _read_input(path, model.dense)
            inputs, names = [X], None if X.shape[0] == 1 else [str(b) for b in range(X.shape[0])]
        elif not model.dense:
            raise ValueError(f"{path}: a CSV with sequence_id holds dense features; this model takes token ids (one "
                             "column of ids, or a .npy)")
        else:
            names, inputs = sequences
        can_stream = runtime.spec.can_stream(model.spec)
        start = time.perf_counter()
        Ys = [_stream(model, X) if can_stream else model.run(X) for X in inputs]
        elapsed = time.perf_counter() - start
    except (OSError, ValueError, TypeError) as e:
        return bad_input(PROG, str(e))
    if sequences is None:  # one array (B, T, out) or (B, out): as a .npy, and one (steps, out) per stream
        array = Ys[0][0] if names is None else Ys[0]
        outputs = list(Ys[0].reshape(len(names or [0]), -1, model.out))
    else:
        outputs = [Y[0] for Y in Ys]
        array = np.stack(outputs) if len({Y.shape for Y in outputs}) == 1 else None
    try:
        _write_output(args.out, outputs, names, array)
    except ValueError as e:
        return bad_input(PROG, f"{e}; nothing was written")
    except OSError as e:
        if args.out is None:
            raise
        return bad_input(PROG, f"cannot write --out {args.out}: {e.strerror or e}; nothing was written")
    how = ("streamed one step per call" if can_stream else
           "run over whole sequences (bidirectional or reverse model: it cannot stream)")
    streams, steps = sum(X.shape[0] for X in inputs), sum(X.shape[0] * X.shape[1] for X in inputs)
    if not args.quiet:
        print(f"{PROG}: {streams} stream(s), {steps} steps in all, {how} in {elapsed:.3f} s"
              + (f"; wrote {args.out}" if args.out else ""), file=sys.stderr)
    return OK


def _load(path: str):
    """runtime.load, after a look at the file's first bytes: an ONNX file, a PyTorch checkpoint or another file that
    is no weight file is refused saying what it is and what to do (runtime/sniff.py), instead of being read as a
    weight file's header. A FIFO or device is left to runtime.load, which refuses it unread."""
    from rnnedge import runtime

    if os.path.isfile(path):
        message = sniff.advice(path, f"{PROG}'s MODEL")
        if message:
            raise ValueError(message)
    return runtime.load(path)


def _stream(model, X: np.ndarray) -> np.ndarray:
    """Every step's output (B, T, out) of X (B, T, ...) streamed one step per call from a fresh state."""
    stream = model.stream(batch=X.shape[0])
    Y = np.empty((X.shape[0], X.shape[1], model.out), dtype=np.float32)
    for t in range(X.shape[1]):
        Y[:, t] = stream.step(np.ascontiguousarray(X[:, t]))
    return Y


def _generate(args: argparse.Namespace) -> int:
    """--generate / --prompt-ids: stream the prompt, sample --n tokens, print both (text, or ids)."""
    try:
        prompt = _text_prompt(args.generate) if args.generate is not None else _id_prompt(args.prompt_ids)
        model = _load(args.model)
        start = time.perf_counter()
        tokens = model.generate(prompt, args.n, temperature=args.temperature, top_k=args.top_k, seed=args.seed)
        elapsed = time.perf_counter() - start
    except (OSError, ValueError, TypeError) as e:
        return bad_input(PROG, str(e))
    if isinstance(prompt, str):
        line, what = prompt + tokens, "characters"
    else:
        line, what = ",".join(str(int(i)) for i in (*prompt, *tokens)), "token ids"
    sys.stdout.flush()
    sys.stdout.buffer.write((line + "\n").encode("utf-8"))  # whatever the locale: an alphabet may hold any character
    sys.stdout.buffer.flush()
    if not args.quiet:
        print(f"{PROG}: {len(prompt)} prompt + {args.n} generated {what} ({model.precision}, temperature "
              f"{args.temperature:g}, top-k {args.top_k or 'all'}, seed {args.seed}) in {elapsed:.3f} s",
              file=sys.stderr)
    return OK


def _text_prompt(prompt: str) -> str:
    """--generate PROMPT read as UTF-8 whatever the locale, with its escapes replaced. Python decodes the command
    line with the locale's encoding and keeps bytes it cannot decode as lone surrogates (a C locale: every
    non-ASCII byte); those bytes are decoded again as UTF-8, and refused, naming the byte, when they are not."""
    if any("\udc80" <= c <= "\udcff" for c in prompt):
        raw = os.fsencode(prompt)
        try:
            prompt = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"--generate PROMPT is not UTF-8: the byte 0x{raw[e.start]:02X} at byte offset "
                             f"{e.start} ({e.reason}); give the prompt in UTF-8") from None
    return _unescape(prompt)


def _id_prompt(ids: str) -> list[int]:
    """--prompt-ids 1,2,3 as a list of ids; each must be a non-negative integer (the model checks its vocabulary)."""
    values = []
    for position, item in enumerate(ids.split(",")):
        item = item.strip()
        if not re.fullmatch(r"[0-9]{1,18}", item):  # 18 digits: any id that fits an int64
            raise ValueError(f"--prompt-ids {ids[:60]!r}: item {position} ({item[:20]!r}) is not a token id (a "
                             "non-negative integer); give ids separated by commas, e.g. 1,2,3")
        values.append(int(item))
    return values


if __name__ == "__main__":
    sys.exit(main())
