"""Splits that travel: the data's own split (npz keys, CSV columns), by-group, time, and the checkpoint's record."""

from __future__ import annotations

import numpy as np
import pytest

from rnnedge.train import splits
from rnnedge.train.checkpoint import load_split
from rnnedge.train.cli import main as train_main
from rnnedge.train.data import load_dataset

N, T, F = 40, 5, 2


def numbered(n: int = N) -> np.ndarray:
    """Dense X whose sequence n holds the value n at every step: a split's X names the sequences it holds."""
    X = np.zeros((n, T, F), dtype=np.float32)
    X[:] = np.arange(n, dtype=np.float32)[:, None, None]
    return X


def ids(part) -> list[int]:
    return sorted(int(v) for v in part.X[:, 0, 0])


def labels(n: int = N) -> np.ndarray:
    return (np.arange(n) % 3).astype(np.int64)


def test_npz_split_key_is_honoured_the_test_sequences_are_exactly_those_marked(tmp_path):
    marks = np.array(["train"] * N, dtype="<U5")
    marks[[3, 17, 29, 31]] = "test"
    marks[[5, 6, 7]] = "val"
    path = tmp_path / "d.npz"
    np.savez(path, X=numbered(), y=labels(), split=marks)
    data = load_dataset(str(path), seed=11)
    assert data.split["method"] == "given"
    assert ids(data.test) == [3, 17, 29, 31]
    assert ids(data.val) == [5, 6, 7]
    assert len(data.train) == N - 7


def test_npz_integer_split_without_val_takes_validation_from_train_only(tmp_path):
    marks = np.zeros(N, dtype=np.int64)
    marks[-6:] = 2
    path = tmp_path / "d.npz"
    np.savez(path, X=numbered(), y=labels(), split=marks)
    data = load_dataset(str(path), seed=0)
    assert ids(data.test) == list(range(N - 6, N))
    assert set(ids(data.val)) < set(range(N - 6)) and len(data.val) >= 1
    assert not set(ids(data.val)) & set(ids(data.train))


def test_npz_parts_keys_of_different_lengths_are_joined_and_their_test_part_is_held_out(tmp_path):
    X = numbered()
    path = tmp_path / "d.npz"
    np.savez(path, X_train=X[:30], y_train=labels()[:30], X_val=X[30:34], y_val=labels()[30:34],
             X_test=X[34:, :3], y_test=labels()[34:])
    data = load_dataset(str(path))
    assert data.split["method"] == "given"
    assert ids(data.test) == list(range(34, N)) and ids(data.val) == list(range(30, 34))
    assert list(data.test.lengths) == [3] * 6


def test_npz_with_a_split_mark_that_is_not_train_val_or_test_is_refused(tmp_path):
    marks = np.array(["train"] * N, dtype="<U8")
    marks[4] = "holdout"
    path = tmp_path / "d.npz"
    np.savez(path, X=numbered(), y=labels(), split=marks)
    with pytest.raises(ValueError, match=r"split\[4\]: split 'holdout' is not one of train, val, test"):
        load_dataset(str(path))


def write_csv(path, split_of, group_of=None):
    rows = ["sequence_id,a,b,label,split" + (",group" if group_of else "")]
    for n in range(N):
        for _ in range(T):
            row = f"s{n},{n},0.5,{n % 3},{split_of(n)}"
            rows.append(row + (f",{group_of(n)}" if group_of else ""))
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_csv_split_column_is_honoured_and_is_not_a_feature(tmp_path):
    path = write_csv(tmp_path / "d.csv", lambda n: "test" if n in (2, 9, 33) else "val" if n in (4, 5) else "train")
    data = load_dataset(path, seed=5)
    assert data.features == 2
    assert ids(data.test) == [2, 9, 33] and ids(data.val) == [4, 5]


def test_csv_sequence_with_two_split_values_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "d.csv"
    write_csv(path, lambda n: "train")
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",train", ",test")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"d.csv:4: split 'test' differs from 'train'"):
        load_dataset(str(path))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_by_group_split_keeps_every_group_on_one_side(tmp_path, seed):
    groups = np.array([f"subject-{n % 8}" for n in range(N)])
    path = tmp_path / "d.npz"
    np.savez(path, X=numbered(), y=labels(), group=groups)
    data = load_dataset(str(path), seed=seed, split="by-group")
    sides = [{groups[i] for i in ids(part)} for part in (data.train, data.val, data.test)]
    assert all(sides) and not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sum(len(p) for p in (data.train, data.val, data.test)) == N


def test_csv_group_column_splits_by_group(tmp_path):
    path = write_csv(tmp_path / "d.csv", lambda n: "train", lambda n: f"g{n // 5}")
    data = load_dataset(path, seed=4, split="by-group")
    sides = [{i // 5 for i in ids(part)} for part in (data.train, data.val, data.test)]
    assert all(sides) and not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])


def test_by_group_without_groups_is_refused(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=numbered(), y=labels())
    with pytest.raises(ValueError, match="by-group needs a group per sequence"):
        load_dataset(str(path), split="by-group")


def test_time_split_is_contiguous_blocks_in_order_with_no_overlap(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=numbered(), y=labels())
    data = load_dataset(str(path), seed=9, split="time")
    train, val, test = ids(data.train), ids(data.val), ids(data.test)
    assert max(train) < min(val) and max(val) < min(test)
    assert train + val + test == list(range(N))


def test_time_split_of_overlapping_windows_puts_no_step_on_two_sides(tmp_path):
    series = np.arange(200, dtype=np.float32)  # every step's value is its time: shared values are shared steps
    starts = np.arange(0, 200 - 8, 3)
    X = np.stack([series[s : s + 8] for s in starts])[:, :, None]
    y = np.stack([series[s + 1 : s + 9] for s in starts])[:, :, None]
    path = tmp_path / "windows.npz"
    np.savez(path, X=X, y=y)
    data = load_dataset(str(path), split="time")
    steps = [set(part.X[:, :, 0].ravel().tolist()) for part in (data.train, data.val, data.test)]
    assert not (steps[0] & steps[1] or steps[0] & steps[2] or steps[1] & steps[2])
    assert min(steps[2]) > max(steps[1]) > max(steps[0])
    assert len(data.train) + len(data.val) + len(data.test) < len(starts)  # the boundary windows were left out


def test_default_split_is_given_when_the_data_carries_one_else_random(tmp_path):
    marked, plain = tmp_path / "m.npz", tmp_path / "p.npz"
    np.savez(marked, X=numbered(), y=labels(), split=np.r_[np.zeros(N - 4), np.full(4, 2)].astype(np.int64))
    np.savez(plain, X=numbered(), y=labels())
    assert load_dataset(str(marked)).split["method"] == "given"
    assert load_dataset(str(plain)).split["method"] == "random"
    with pytest.raises(ValueError, match="--split given needs the data's own split"):
        load_dataset(str(plain), split="given")


def test_the_record_digests_the_data_and_the_test_indices():
    a, b = load_dataset("synthetic-sum", seed=3), load_dataset("synthetic-sum", seed=3)
    assert a.split == b.split and a.split["method"] == "random" and a.split["seed"] == 3
    assert len(a.split["data_sha256"]) == 64 and a.split["test_sequences"] == len(a.test)
    other = load_dataset("synthetic-sum", seed=3, split="time")
    assert other.split["data_sha256"] == a.split["data_sha256"]
    assert splits.differences(a.split, other.split) and "test sequences differ" in splits.differences(
        a.split, other.split)[0]


def test_bundled_watch_split_is_fixed_whatever_the_seed():
    assert load_dataset("watch", seed=0).split == load_dataset("watch", seed=7, split="given").split
    with pytest.raises(ValueError, match="fixed split"):
        load_dataset("watch", split="random")


def test_train_cli_records_the_split_in_the_checkpoint(tmp_path, capsys):
    marks = np.zeros(N, dtype=np.int64)
    marks[[1, 2]] = 1
    marks[[10, 20, 30]] = 2
    path = tmp_path / "d.npz"
    np.savez(path, X=numbered(), y=labels(), split=marks)
    assert train_main([str(path), "--epochs", "1", "--hidden", "4", "--seed", "3", "--out", str(tmp_path / "m")]) == 0
    assert "split given" in capsys.readouterr().out
    record = load_split(tmp_path / "m" / "model.pt")
    assert record == load_dataset(str(path), seed=3).split
    assert record["method"] == "given" and record["test_sequences"] == 3


def test_train_cli_split_time_on_a_synthetic_set_records_time(tmp_path, capsys):
    assert train_main(["synthetic-sum", "--split", "time", "--epochs", "1", "--hidden", "4",
                       "--out", str(tmp_path / "m")]) == 0
    assert "split time" in capsys.readouterr().out
    assert load_split(tmp_path / "m" / "model.pt")["method"] == "time"


@pytest.mark.parametrize(("argv", "says"), [
    (["digits", "--split", "by-group"], "by-group needs a group per sequence"),
    (["watch", "--split", "random"], "has a fixed split"),
    (["synthetic-sum", "--split", "given"], "--split given needs the data's own split"),
])
def test_train_cli_refuses_a_split_the_data_cannot_give_with_exit_2(tmp_path, capsys, argv, says):
    assert train_main([*argv, "--epochs", "1", "--out", str(tmp_path / "m")]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
