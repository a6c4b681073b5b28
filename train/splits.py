"""Train / validation / test splits that travel with the model.

A split is dealt from the whole data in its loaded order by one of METHODS:

    given     the data's own marks: an .npz `split` key or X_train/X_val/X_test keys, a CSV `split` column
              (train/val/test or 0/1/2 per sequence); with no sequence marked val, 15% of the train sequences
              (a shuffle seeded with the seed) validate
    random    a shuffle seeded with the seed, cut 70/15/15 (at least one sequence in val and test)
    by-group  whole groups (an .npz `group` key, a CSV `group` column: subjects, speakers, sessions) shuffled
              with the seed and dealt until each split holds about 70/15/15 of the sequences: no group is on
              two sides
    time      the sequences in their order, cut 70/15/15 into contiguous blocks: every test sequence comes
              after every training sequence. Windows cut from one series overlap their neighbours; an earlier
              block's sequences whose last steps are the first steps of the next block's first sequence (at least
              OVERLAP_STEPS steps in common) are left out of both, so no step is on two sides

`record` describes a split in plain values a checkpoint can hold: the method, the seed, the SHA-256 of the data as
loaded (every array, in order) and of the test indices; `differences` compares a checkpoint's record with the
split re-derived from the data an export is given.
"""

from __future__ import annotations

import hashlib

import numpy as np

METHODS = ("given", "random", "by-group", "time")
FIXED = "fixed"  # a bundled set whose split is part of the set (watch by subject, shakespeare and co2 by blocks)
FRACTIONS = (0.70, 0.15, 0.15)
SPLIT_NAMES = ("train", "val", "test")
OVERLAP_STEPS = {"dense": 2, "tokens": 8}  # fewer steps in common can be chance (a token id repeats often)


def indices(n: int, method: str, seed: int, marks: np.ndarray | None = None, groups: np.ndarray | None = None,
            where: str = "data", sequences: tuple[np.ndarray, np.ndarray] | None = None,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices into n sequences; marks: 0/1/2 per sequence (given), groups: one id each,
    sequences: (X, lengths), whose overlapping windows the time split leaves out at its boundaries."""
    if method == "given":
        if marks is None:
            raise ValueError(f"{where}: --split given needs the data's own split (an .npz 'split' key or "
                             f"X_train/X_test keys, a CSV 'split' column); this data has none")
        train, val, test = (np.flatnonzero(marks == k) for k in range(3))
        if len(train) == 0 or len(test) == 0:
            raise ValueError(f"{where}: the given split marks {len(train)} sequence(s) train and {len(test)} test; "
                             f"it needs at least one of each")
        if len(val) == 0:  # benchmarks often mark only train and test: validation comes out of train
            if len(train) < 2:
                raise ValueError(f"{where}: the given split marks no val sequence and only one train sequence, "
                                 f"so none can be set aside to validate")
            order = np.random.default_rng(seed).permutation(train)
            n_val = max(1, round(FRACTIONS[1] * len(train)))
            train, val = np.sort(order[n_val:]), np.sort(order[:n_val])
        return train, val, test
    if method == "random":
        n_val, n_test = _counts(n)
        order = np.random.default_rng(seed).permutation(n)
        return tuple(np.split(order, [n - n_val - n_test, n - n_test]))
    if method == "time":
        n_val, n_test = _counts(n)
        parts = np.split(np.arange(n), [n - n_val - n_test, n - n_test])
        return _purge(parts, *sequences, where) if sequences is not None else tuple(parts)
    if method == "by-group":
        return _by_group(n, seed, groups, where)
    raise ValueError(f"split method {method!r} is not one of {', '.join(METHODS)}")


def _purge(parts: list[np.ndarray], X: np.ndarray, lengths: np.ndarray, where: str):
    """The time split's parts without the earlier parts' sequences that overlap a later part's first sequence."""
    need = OVERLAP_STEPS["tokens" if X.ndim == 2 else "dense"]

    def overlaps(a: int, b: int) -> bool:  # a suffix of sequence a is a prefix of sequence b
        first, last = X[a, : lengths[a]], X[b, : lengths[b]]
        for steps in range(min(len(first), len(last)), need - 1, -1):
            if np.array_equal(first[len(first) - steps :], last[:steps]):
                return True
        return False

    parts = [list(p) for p in parts]
    for later in (1, 2):
        for earlier in range(later):
            while parts[earlier] and parts[later] and overlaps(parts[earlier][-1], parts[later][0]):
                parts[earlier].pop()
    for name, part in zip(SPLIT_NAMES, parts):
        if not part:
            raise ValueError(f"{where}: --split time leaves no {name} sequence once the windows that overlap the "
                             f"next part are left out (the sequences overlap too much for a split by time)")
    return tuple(np.array(p, dtype=np.int64) for p in parts)


def _counts(n: int) -> tuple[int, int]:
    return max(1, round(FRACTIONS[1] * n)), max(1, round(FRACTIONS[2] * n))


def _by_group(n: int, seed: int, groups: np.ndarray | None, where: str):
    if groups is None:
        raise ValueError(f"{where}: --split by-group needs a group per sequence (an .npz 'group' key, a CSV "
                         f"'group' column); this data has none")
    names, which = np.unique(groups, return_inverse=True)
    if len(names) < 3:
        raise ValueError(f"{where}: --split by-group needs at least 3 groups (train, val, test each get whole "
                         f"groups); the data has {len(names)}")
    sizes = np.bincount(which, minlength=len(names))
    order = np.random.default_rng(seed).permutation(len(names))
    # test and val are filled first, one whole group at a time, so each gets at least one group
    wanted = {2: FRACTIONS[2] * n, 1: FRACTIONS[1] * n}
    side = np.zeros(len(names), dtype=np.int64)
    position = 0
    for part in (2, 1):
        taken = 0
        while position < len(order) and (taken == 0 or taken + sizes[order[position]] / 2 <= wanted[part]):
            side[order[position]] = part
            taken += sizes[order[position]]
            position += 1
    if position >= len(order):
        raise ValueError(f"{where}: --split by-group left no group to train on ({len(names)} groups, the largest "
                         f"holding {sizes.max()} of {n} sequences)")
    per_sequence = side[which]
    return tuple(np.flatnonzero(per_sequence == k) for k in range(3))


def marks_from(values: np.ndarray, where: str) -> np.ndarray:
    """Per-sequence split marks (strings train/val/test, or integers 0/1/2) as int64 0/1/2; anything else refused."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"{where}: split must hold one entry per sequence, got shape {values.shape}")
    if values.dtype.kind in "US":
        text = np.char.strip(np.char.lower(values.astype(str)))
        aliases = {"train": 0, "val": 1, "validation": 1, "valid": 1, "test": 2}
        bad = [i for i, v in enumerate(text) if v not in aliases]
        if bad:
            raise ValueError(f"{where}[{bad[0]}]: split {str(values[bad[0]])[:40]!r} is not one of train, val, test")
        return np.array([aliases[v] for v in text], dtype=np.int64)
    if values.dtype.kind in "iub":
        bad = np.flatnonzero((values < 0) | (values > 2))
        if len(bad):
            raise ValueError(f"{where}[{bad[0]}]: split {int(values[bad[0]])} is not 0 (train), 1 (val) or 2 (test)")
        return values.astype(np.int64)
    raise ValueError(f"{where}: split must be strings train/val/test or integers 0/1/2, got dtype {values.dtype}")


def digest(*arrays: np.ndarray) -> str:
    """SHA-256 of arrays: each one's dtype, shape and bytes, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def record(method: str, seed: int | None, data_sha256: str, n: int, test: np.ndarray) -> dict:
    """What a checkpoint keeps of its split (plain values: torch.load(weights_only=True) reads them)."""
    test = np.asarray(test, dtype=np.int64)
    return {"method": method, "seed": seed, "data_sha256": data_sha256, "sequences": int(n),
            "test_sequences": len(test), "test_sha256": digest(test)}


def differences(trained: dict, derived: dict) -> list[str]:
    """Why the split re-derived from the export's data is not the checkpoint's (empty: the same)."""
    problems = []
    if trained.get("data_sha256") != derived.get("data_sha256"):
        problems.append(f"the data differ from the data the model was trained on (SHA-256 {derived['data_sha256'][:12]}"
                        f"... of {derived['sequences']} sequences, trained on {str(trained.get('data_sha256'))[:12]}"
                        f"... of {trained.get('sequences')} sequences)")
    elif trained.get("test_sha256") != derived.get("test_sha256"):
        problems.append(f"the test sequences differ from the checkpoint's ({derived['test_sequences']} derived, "
                        f"{trained.get('test_sequences')} held out in training, test-index SHA-256 "
                        f"{derived['test_sha256'][:12]}... vs {str(trained.get('test_sha256'))[:12]}...)")
    return problems


def describe(rec: dict) -> str:
    seed = "" if rec.get("seed") is None or rec.get("method") in ("time", FIXED) else f", seed {rec['seed']}"
    return f"split {rec.get('method')}{seed}"
