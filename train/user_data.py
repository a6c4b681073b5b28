"""The user's own data: .npz and .csv files, checked before any model is built.

Every value a model is built from or trained on is checked first, and a refusal (ValueError, FileNotFoundError)
names the value and where it is (`y[4, 17]` in an .npz, `file.csv:17 (column label)` in a .csv):
- token ids and class labels lie in [0, MAX_IDS): the embedding and the head get one row per id, so an id of
  10^12 would make torch try to allocate terabytes;
- dense inputs and forecast targets are finite (as float32: 1e300 is inf there); NaN or inf targets train a
  model of NaN parameters;
- the task fits the arrays: forecast needs float targets, classify and tag integer labels, tag and generate a
  label per step, generate token input (its labels are the next tokens, so they share the vocabulary).
Values past a sequence's length are ignored (set to zero), so they are not checked.
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rnnedge.runtime.command import regular_file
from rnnedge.runtime.spec import TASKS
from rnnedge.train import splits
from rnnedge.train.data import Dataset, SequenceData, _pad, _zero_padding, split_data
from rnnedge.train.text_data import npz_chars, with_chars

# One embedding row per token id and one head row per class: 65,536 holds a word-level vocabulary (GPT-2's
# 50,257 tokens) and keeps a 48-unit head at 12.6 MB; an id beyond it is a corrupt file, not a vocabulary.
MAX_IDS = 65_536

Locate = Callable[[str, tuple], str]  # (array name, index) -> where that value is, for a message


def load_npz(path: str | Path, seed: int = 0, split: str | None = None) -> Dataset:
    """A data set from an .npz file (read with allow_pickle=False).

    Keys:
        X        (N, T, F) float: dense input, or (N, T) integer: token ids in [0, MAX_IDS)
        y        (N,) integer: one class per sequence (classify, last_step)
                 (N, T) integer: a class per step (classify for dense input, tag for tokens; every_step)
                 (N, out) float: values per sequence (forecast, last_step)
                 (N, T, out) float: values per step (forecast, every_step)
                 class labels lie in [0, MAX_IDS); float values are finite
        lengths  optional (N,) integer in [1, T]; without it every sequence is T steps long
        task     optional string, one of classify, tag, forecast, generate, overriding the guess above
                 (generate: token X and (N, T) integer y, the next token at every step)
        split    optional (N,): each sequence's part, strings train/val/test or integers 0/1/2
        group    optional (N,): each sequence's group (subject, speaker, session), for split by-group
        chars    optional, token input only: the character of each token id, a string or a 1-D array of
                 single characters, distinct (train/text_data.py npz_chars); the vocabulary becomes len(chars)
                 and the spec's input.chars holds it, so rnnedge-run --generate reads and writes text
    Instead of X, y (and lengths, split): X_train, y_train, X_test, y_test, optionally X_val, y_val and
    lengths_train, lengths_val, lengths_test: the parts as given (their steps may differ; shorter ones are padded).
    Values past each length are ignored and set to zero. `split` (train/splits.py) deals the sequences.
    """
    path = regular_file(path, "data file")
    try:
        _check_npz_sizes(path)
        with np.load(path, allow_pickle=False) as f:
            arrays = {key: f[key] for key in f.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz file without pickled objects ({e})") from None
    if "X_train" in arrays or "X_test" in arrays:
        _join_parts(path, arrays)
    for key in ("X", "y"):
        if key not in arrays:
            raise ValueError(f"{path}: missing key {key!r} (the file has: {', '.join(arrays) or 'nothing'})")
    marks = splits.marks_from(arrays["split"], f"{path}: split") if "split" in arrays else None
    groups = _groups(arrays["group"], f"{path}: group") if "group" in arrays else None
    task = None
    if "task" in arrays:
        task = arrays["task"]
        if task.shape != () or task.dtype.kind not in "US":
            raise ValueError(f"{path}: task must be one string ({', '.join(TASKS)}), got an array of shape "
                             f"{task.shape} and dtype {task.dtype}")
        task = str(task)

    def locate(name: str, index: tuple) -> str:
        return f"{path}: {name}[{', '.join(str(int(i)) for i in index)}]"

    data = _from_arrays(path.stem, str(path), arrays["X"], arrays["y"], arrays.get("lengths"), task, seed,
                        source=f"user file {path} (licence as its owner states)", locate=locate,
                        split=split, marks=marks, groups=groups)
    if "chars" in arrays:  # a character model: the alphabet travels into the spec's input.chars
        data = with_chars(data, npz_chars(str(path), arrays["chars"]), str(path))
    return data


def _join_parts(path: Path, arrays: dict) -> None:
    """X_train/y_train/X_val/y_val/X_test/y_test (+ lengths_*) -> X, y, lengths and split marks, in that order."""
    if "X" in arrays or "split" in arrays:
        raise ValueError(f"{path}: holds both X_train/X_test keys and {'X' if 'X' in arrays else 'split'}; give "
                         f"either the parts or X, y with a split key")
    parts = [name for name in splits.SPLIT_NAMES if f"X_{name}" in arrays]
    for name in ("train", "test"):
        if name not in parts:
            raise ValueError(f"{path}: has X_{'test' if name == 'train' else 'train'} but no X_{name}; the parts "
                             f"need X_train, y_train, X_test, y_test (X_val, y_val optional)")
    xs, ys, lengths, marks = [], [], [], []
    for name in parts:
        if f"y_{name}" not in arrays:
            raise ValueError(f"{path}: has X_{name} but no y_{name}")
        X, y = np.asarray(arrays[f"X_{name}"]), np.asarray(arrays[f"y_{name}"])
        if X.ndim not in (2, 3) or y.shape[:1] != X.shape[:1]:
            raise ValueError(f"{path}: X_{name} has shape {X.shape} and y_{name} {y.shape}; each needs one entry per "
                             f"sequence, X (N, T, F) or (N, T)")
        n, steps = X.shape[:2]
        given = arrays.get(f"lengths_{name}")
        lengths.append(np.full(n, steps, dtype=np.int64) if given is None else np.asarray(given))
        xs.append(X)
        ys.append(y)
        marks.append(np.full(n, splits.SPLIT_NAMES.index(name), dtype=np.int64))
    per_step = [y.ndim == (2 if np.issubdtype(y.dtype, np.integer) else 3) for y in ys]
    longest = max(X.shape[1] for X in xs)
    for X, name in zip(xs, parts):
        if X.shape[2:] != xs[0].shape[2:] or X.ndim != xs[0].ndim:
            raise ValueError(f"{path}: X_{name} has shape {X.shape}, X_{parts[0]} {xs[0].shape}: the parts must hold "
                             f"the same kind of input")
    for y, name in zip(ys, parts):
        if y.ndim != ys[0].ndim or (not per_step[0] and y.shape[1:] != ys[0].shape[1:]):
            raise ValueError(f"{path}: y_{name} has shape {y.shape}, y_{parts[0]} {ys[0].shape}: the parts must hold "
                             f"the same kind of labels")
    arrays["X"] = np.concatenate([_pad_steps(X, longest) for X in xs])
    arrays["y"] = np.concatenate([_pad_steps(y, longest) if per_step[0] else y for y in ys])
    for L, name in zip(lengths, parts):
        if L.ndim != 1 or len(L) != len(xs[parts.index(name)]):
            raise ValueError(f"{path}: lengths_{name} must hold one length per sequence of X_{name}, got shape "
                             f"{L.shape}")
    arrays["lengths"] = np.concatenate(lengths)
    arrays["split"] = np.concatenate(marks)


def _pad_steps(a: np.ndarray, steps: int) -> np.ndarray:
    """a (N, T, ...) zero padded to `steps` steps."""
    if a.shape[1] == steps:
        return a
    padded = np.zeros((a.shape[0], steps, *a.shape[2:]), dtype=a.dtype)
    padded[:, : a.shape[1]] = a
    return padded


def _groups(values: np.ndarray, where: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or values.dtype.kind not in "iuUS":
        raise ValueError(f"{where}: must hold one integer or string per sequence, got shape {values.shape} dtype "
                         f"{values.dtype}")
    return values


def _check_npz_sizes(path: Path) -> None:
    """Each array's header against the bytes its zip member holds, and their sum against this machine's memory,
    before numpy allocates what a header claims (a compressed file of a few MB can claim gigabytes)."""
    if not zipfile.is_zipfile(path):
        raise ValueError("not a zip archive (np.savez writes one)")
    total = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            if not member.filename.endswith(".npy"):
                continue
            with archive.open(member) as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0)):
                    continue  # 3.0 (utf-8 field names): numpy reads it, and checks its size as it reads
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(f)
                claimed, held = math.prod(shape) * dtype.itemsize, member.file_size - f.tell()
            if claimed != held:
                raise ValueError(f"array {member.filename[:-4]!r} declares shape {shape} of {dtype} "
                                 f"({claimed:,} bytes) but holds {held:,} bytes")
            total += claimed
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if 3 * total > memory:  # the arrays, their float32 / int64 copies, the padded splits
        raise ValueError(f"its arrays hold {total / 2**30:.1f} GiB; loading them takes about three times that, more "
                         f"than this machine's {memory / 2**30:.1f} GiB")


def load_csv(path: str | Path, seed: int = 0, split: str | None = None) -> Dataset:
    """A dense data set from a .csv file: a header, then one row per time step.

        sequence_id,ax,ay,az,label
        walk-01,0.12,-0.98,0.05,2
        walk-01,0.15,-0.97,0.02,2
        run-07,...

    `sequence_id` and `label` are required, every other column is an input feature (a finite number). The rows of a
    sequence are its steps in order; sequences appear in the order of their first row. Integer labels in
    [0, MAX_IDS) are a class per step (classify, every_step); any non-integer label makes the task forecasting of
    one value per step (forecast, every_step). A label that is not a finite number (NaN, inf) is refused: it
    would otherwise turn classification into forecasting.

    Optional columns `split` (train/val/test or 0/1/2) and `group` (a subject, speaker, session: any text) are
    not features: they hold one value per sequence, the same on each of its rows (train/splits.py).
    """
    path = regular_file(path, "data file")
    steps: dict[str, list[list[float]]] = {}
    targets: dict[str, list[float]] = {}
    lines: dict[str, list[int]] = {}
    per_sequence: dict[str, dict[str, str]] = {"split": {}, "group": {}}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path}: empty file, expected a header row")
            header = [h.strip() for h in header]
            for required in ("sequence_id", "label"):
                if required not in header:
                    raise ValueError(f"{path}: missing column {required!r} (header: {','.join(header)})")
            id_col, label_col = header.index("sequence_id"), header.index("label")
            extra = {name: header.index(name) for name in ("split", "group") if name in header}
            feature_cols = [i for i in range(len(header)) if i not in (id_col, label_col, *extra.values())]
            if not feature_cols:
                raise ValueError(f"{path}: no feature column besides sequence_id and label")
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != len(header):
                    raise ValueError(f"{path}:{line}: {len(row)} columns, the header has {len(header)}")
                try:
                    values = [float(row[i]) for i in feature_cols]
                    target = float(row[label_col])
                except ValueError as e:
                    raise ValueError(f"{path}:{line}: {e}") from None
                if not np.isfinite(target):
                    raise ValueError(f"{path}:{line}: label {row[label_col].strip()!r} is not a finite number")
                for name, col in extra.items():
                    value = per_sequence[name].setdefault(row[id_col], row[col].strip())
                    if value != row[col].strip():
                        raise ValueError(f"{path}:{line}: {name} {row[col].strip()[:40]!r} differs from "
                                         f"{value[:40]!r} on the earlier rows of sequence {row[id_col][:40]!r}; a "
                                         f"sequence has one {name}")
                steps.setdefault(row[id_col], []).append(values)
                targets.setdefault(row[id_col], []).append(target)
                lines.setdefault(row[id_col], []).append(line)
    except csv.Error as e:  # e.g. a field over csv.field_size_limit() (131,072 characters), a NUL byte
        raise ValueError(f"{path}:{reader.line_num}: not a readable CSV row: {e}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text: {e}") from None
    if not steps:
        raise ValueError(f"{path}: no data rows")
    rows, _ = _pad([np.array(numbers) for numbers in lines.values()])
    columns = [header[i] for i in feature_cols]

    def locate(name: str, index: tuple) -> str:
        column = "label" if name == "y" else columns[index[2]]
        return f"{path}:{rows[index[0], index[1]]} (column {column})"

    X, lengths = _pad([np.array(s, dtype=np.float64) for s in steps.values()])
    y, _ = _pad([np.array(t) for t in targets.values()])
    if np.all(y == np.round(y)):
        _check_ids(y, lengths, "y", "class label", locate)  # before the cast: 1e300 has no int64
        y = y.astype(np.int64)
    else:
        y = y[:, :, None]
    marks = (splits.marks_from(np.array(list(per_sequence["split"].values())), f"{path}: column split, sequence")
             if "split" in extra else None)
    groups = np.array(list(per_sequence["group"].values())) if "group" in extra else None
    return _from_arrays(path.stem, str(path), X, y, lengths, None, seed,
                        source=f"user file {path} (licence as its owner states)", locate=locate,
                        split=split, marks=marks, groups=groups)


def _from_arrays(name: str, where: str, X: np.ndarray, y: np.ndarray, lengths: np.ndarray | None,
                 task: str | None, seed: int, source: str, locate: Locate, split: str | None = None,
                 marks: np.ndarray | None = None, groups: np.ndarray | None = None) -> Dataset:
    """Check the arrays, work out the task and head, and split them (train/splits.py: `split` by the marks or
    groups, or 70/15/15)."""
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 3 and np.issubdtype(X.dtype, np.number) and not np.issubdtype(X.dtype, np.complexfloating):
        input_kind = "dense"
    elif X.ndim == 2 and np.issubdtype(X.dtype, np.integer):
        input_kind = "tokens"
    else:
        raise ValueError(f"{where}: X has shape {X.shape} and dtype {X.dtype}; expected (N, T, F) numbers "
                         "for dense input or (N, T) integers for tokens")
    n, steps = X.shape[:2]
    if n < 3 or steps < 1:
        raise ValueError(f"{where}: X holds {n} sequences of {steps} steps; need at least 3 sequences to split")
    if y.shape[:1] != (n,):
        raise ValueError(f"{where}: y has shape {y.shape} but X has {n} sequences")
    for key, values in (("split", marks), ("group", groups)):
        if values is not None and values.shape != (n,):
            raise ValueError(f"{where}: {key} has shape {values.shape} but X has {n} sequences")

    integer_y = np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)
    if integer_y and y.ndim in (1, 2):
        head_on = "last_step" if y.ndim == 1 else "every_step"
        guessed = "tag" if (input_kind == "tokens" and head_on == "every_step") else "classify"
    elif np.issubdtype(y.dtype, np.floating) and y.ndim in (2, 3):
        head_on, guessed = ("last_step" if y.ndim == 2 else "every_step"), "forecast"
    else:
        raise ValueError(f"{where}: y has shape {y.shape} and dtype {y.dtype}; expected (N,) or (N, T) integer "
                         "labels, or (N, out) or (N, T, out) float targets")
    if head_on == "every_step" and y.shape[1] != steps:
        raise ValueError(f"{where}: y has {y.shape[1]} steps per sequence but X has {steps}")
    lengths = _lengths(where, lengths, n, steps)
    task = _task(where, task or guessed, guessed, input_kind, head_on)

    if input_kind == "dense":
        X = _finite(X, lengths, "X", "input value", locate)
    else:
        _check_ids(X, lengths, "X", "token id", locate)
        X = X.astype(np.int64)
    if task == "forecast":
        y = _finite(y, lengths if head_on == "every_step" else None, "y", "forecast target", locate)
        out = y.shape[-1]
    else:
        _check_ids(y, lengths if head_on == "every_step" else None, "y", "class label", locate)
        y = y.astype(np.int64)
        out = max(int(y[_valid(y, lengths if head_on == "every_step" else None)].max()) + 1, 2)
    vocab = int(X[_valid(X, lengths)].max()) + 1 if input_kind == "tokens" else None
    if task == "generate":  # the head's labels are the next tokens: one vocabulary for both
        vocab = out = max(vocab, out)

    (train, val, test), record = split_data(_zero_padding(SequenceData(X, lengths, y), head_on), seed, split,
                                            marks, groups, where)
    return Dataset(
        name=name, task=task, input_kind=input_kind, features=X.shape[2] if input_kind == "dense" else None,
        vocab=vocab, out=out, head_on=head_on, train=train, val=val, test=test, source=source, split=record,
    )


def _lengths(where: str, lengths: np.ndarray | None, n: int, steps: int) -> np.ndarray:
    if lengths is None:
        return np.full(n, steps, dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"{where}: lengths must be ({n},) integers, got shape {lengths.shape} dtype {lengths.dtype}")
    if lengths.min() < 1 or lengths.max() > steps:
        raise ValueError(f"{where}: lengths must lie in [1, {steps}], got [{lengths.min()}, {lengths.max()}]")
    return lengths.astype(np.int64)


def _task(where: str, task: str, guessed: str, input_kind: str, head_on: str) -> str:
    """The task, refused when it does not fit the arrays (a wrong task would train the wrong model silently)."""
    if task not in TASKS:
        raise ValueError(f"{where}: task {task[:40]!r} is not one of {', '.join(TASKS)}")
    labels = "float targets" if guessed == "forecast" else "integer labels"
    y_is = f"{labels} {'per step' if head_on == 'every_step' else 'per sequence'}"
    if task == "forecast" and guessed != "forecast":
        raise ValueError(f"{where}: task 'forecast' needs float targets in y, this file has {y_is}")
    if task != "forecast" and guessed == "forecast":
        raise ValueError(f"{where}: task {task!r} needs integer class labels in y, this file has {y_is}")
    if task in ("tag", "generate") and head_on != "every_step":
        raise ValueError(f"{where}: task {task!r} needs a label at every step, y of shape (N, T); this file has "
                         f"{y_is}")
    if task == "generate" and input_kind != "tokens":
        raise ValueError(f"{where}: task 'generate' needs token input (X of (N, T) integer ids, y the next token "
                         f"at every step); this file has dense input (X of (N, T, F) numbers)")
    return task


def _valid(array: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Where `array` holds data: every step before each sequence's length (lengths None: everywhere)."""
    if lengths is None:
        return np.ones(array.shape, dtype=bool)
    mask = np.arange(array.shape[1])[None, :] < lengths[:, None]
    return np.broadcast_to(mask.reshape(mask.shape + (1,) * (array.ndim - 2)), array.shape)


def _check_ids(array: np.ndarray, lengths: np.ndarray | None, name: str, what: str, locate: Locate) -> None:
    """Token ids and class labels: integers in [0, MAX_IDS), checked before any cast or allocation."""
    outside = ((array < 0) | (array >= MAX_IDS)) & _valid(array, lengths)
    if outside.any():
        index = tuple(np.argwhere(outside)[0])
        value = array[index]
        value = int(value) if float(value).is_integer() else value
        rows = "embedding" if name == "X" else "output"
        raise ValueError(f"{locate(name, index)}: {what} {value} lies outside [0, {MAX_IDS - 1}] (the model gets "
                         f"one {rows} row per id, at most {MAX_IDS:,})")


def _finite(array: np.ndarray, lengths: np.ndarray | None, name: str, what: str, locate: Locate) -> np.ndarray:
    """`array` as float32, refused when a value is NaN or inf there (float64 values past 3.4e38 become inf)."""
    with np.errstate(over="ignore"):  # an overflow to inf is refused below, by index
        values = array.astype(np.float32)
    bad = ~np.isfinite(values) & _valid(values, lengths)
    if bad.any():
        index = tuple(np.argwhere(bad)[0])
        raise ValueError(f"{locate(name, index)}: {what} {float(array[index])} is not a finite float32 "
                         f"({int(bad.sum())} such value(s) in {name}); NaN or inf would train a model of NaN")
    return values
