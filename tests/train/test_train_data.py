"""train.data: the bundled watch and digits sets, the user's .npz and .csv files, the synthetic sets."""

import dataclasses

import numpy as np
import pytest

from rnnedge.train.data import SYNTHETIC, WATCH_SUBJECTS, SequenceData, load_dataset
from rnnedge.train.loop import TrainConfig, default_spec, train


def _valid(data):
    return np.arange(data.X.shape[1])[None, :] < data.lengths[:, None]


def test_watch_loads_offline_as_whole_recordings_with_per_step_labels_of_seven_exercises():
    data = load_dataset("watch")
    assert (data.task, data.input_kind, data.features, data.out, data.head_on) == ("classify", "dense", 6, 7, "every_step")
    assert (len(data.train), len(data.val), len(data.test)) == (84, 28, 28)
    for split in (data.train, data.val, data.test):
        assert split.X.dtype == np.float32 and split.X.shape[2] == 6
        assert split.y.shape == split.X.shape[:2] and split.y.dtype == np.int64
        assert 947 <= split.lengths.min() and split.lengths.max() <= 2618
        assert set(np.unique(split.y[_valid(split)])) == set(range(7))
        assert not split.X[~_valid(split)].any()
    assert "BSD-3-Clause" in data.source


def test_watch_split_by_subject_has_no_subject_in_two_splits():
    subjects = [set(s) for s in WATCH_SUBJECTS.values()]
    assert not (subjects[0] & subjects[1] or subjects[0] & subjects[2] or subjects[1] & subjects[2])
    assert set().union(*subjects) == set(range(1, 11))
    data = load_dataset("watch")
    train_rows = {row.tobytes() for row in data.train.X[:, :50].reshape(len(data.train), -1)}
    held_out = np.concatenate([data.val.X[:, :50], data.test.X[:, :50]]).reshape(56, -1)
    assert not any(row.tobytes() in train_rows for row in held_out)


def test_digits_load_offline_as_padded_mfcc_sequences_of_ten_classes_split_seventy_fifteen_fifteen():
    data = load_dataset("digits")
    assert (data.name, data.task, data.input_kind, data.features, data.out, data.head_on) == (
        "digits", "classify", "dense", 13, 10, "last_step")
    assert (len(data.train), len(data.val), len(data.test)) == (2100, 450, 450)
    for split in (data.train, data.val, data.test):
        assert split.X.dtype == np.float32 and split.X.shape == (len(split), 92, 13)
        assert split.y.shape == (len(split),) and split.y.dtype == np.int64
        assert 6 <= split.lengths.min() and split.lengths.max() <= 92
        assert set(np.unique(split.y)) == set(range(10))
        assert not split.X[~_valid(split)].any()
        assert split.X[np.arange(len(split)), split.lengths - 1].any(axis=1).all()  # the true last frame is kept
    all_lengths = np.concatenate([data.train.lengths, data.val.lengths, data.test.lengths])
    assert (all_lengths.min(), all_lengths.max(), all_lengths.sum()) == (6, 92, 53999)
    assert "CC BY-SA 4.0" in data.source and "MIT" in data.source


def test_digits_split_is_seeded_and_no_recording_is_in_two_splits():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    np.testing.assert_array_equal(a.test.X, b.test.X)
    assert not np.array_equal(a.test.lengths, c.test.lengths)
    rows = [{row.tobytes() for row in split.X.reshape(len(split), -1)} for split in (a.train, a.val, a.test)]
    assert sum(len(r) for r in rows) == 3000  # every recording is distinct, so overlap would show
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])


def test_one_epoch_on_a_subset_of_digits_trains_and_scores_the_test_split(tmp_path):
    data = load_dataset("digits")

    def head(split: SequenceData, n: int) -> SequenceData:
        return SequenceData(split.X[:n], split.lengths[:n], split.y[:n])

    small = dataclasses.replace(data, train=head(data.train, 300), val=head(data.val, 100), test=head(data.test, 100))
    config = TrainConfig(epochs=1, batch_size=32, progress=False)
    _, metrics = train(default_spec(small, cell="gru", hidden=16), small, config, tmp_path)
    assert metrics["metric"] == "accuracy" and len(metrics["epochs"]) == 1
    assert 0.0 <= metrics["test_metric"] <= 100.0


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_synthetic_sets_are_small_deterministic_by_seed_and_zero_padded(name):
    a, b, c = load_dataset(name, seed=1), load_dataset(name, seed=1), load_dataset(name, seed=2)
    assert len(a.train) + len(a.val) + len(a.test) <= 500
    np.testing.assert_array_equal(a.train.X, b.train.X)
    np.testing.assert_array_equal(a.test.y, b.test.y)
    assert not np.array_equal(a.train.lengths, c.train.lengths)
    assert not a.train.X[~_valid(a.train)].any()


def test_npz_with_lengths_loads_and_splits_seventy_fifteen_fifteen(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 12, 3)).astype(np.float64)
    lengths = rng.integers(1, 13, 40)
    y = rng.integers(0, 4, 40)
    np.savez(tmp_path / "mine.npz", X=X, y=y, lengths=lengths)
    data = load_dataset(str(tmp_path / "mine.npz"))
    assert (data.name, data.task, data.input_kind, data.features, data.out, data.head_on) == (
        "mine", "classify", "dense", 3, 4, "last_step")
    assert (len(data.train), len(data.val), len(data.test)) == (28, 6, 6)
    assert data.train.X.dtype == np.float32
    assert not data.train.X[~_valid(data.train)].any()


def test_npz_of_tokens_with_per_step_labels_is_a_tagging_task(tmp_path):
    X = np.random.default_rng(0).integers(0, 9, (20, 7))
    np.savez(tmp_path / "tok.npz", X=X, y=X % 2)
    data = load_dataset(str(tmp_path / "tok.npz"))
    assert (data.task, data.input_kind, data.vocab, data.out, data.head_on) == ("tag", "tokens", 9, 2, "every_step")


@pytest.mark.parametrize(("arrays", "message"), [
    ({"X": np.zeros((5, 4, 2))}, "missing key 'y'"),
    ({"y": np.zeros(5, dtype=int)}, "missing key 'X'"),
    ({"X": np.zeros((5, 4, 2, 1)), "y": np.zeros(5, dtype=int)}, "X has shape"),
    ({"X": np.zeros((5, 4)), "y": np.zeros(5, dtype=int)}, "X has shape"),  # 2-D floats are not tokens
    ({"X": np.zeros((5, 4, 2)), "y": np.zeros(6, dtype=int)}, "X has 5 sequences"),
    ({"X": np.zeros((5, 4, 2)), "y": np.zeros((5, 3), dtype=int)}, "3 steps"),
    ({"X": np.zeros((5, 4, 2)), "y": np.zeros(5, dtype=int), "lengths": np.full(5, 9)}, "lengths must lie"),
])
def test_npz_with_a_missing_key_or_wrong_dims_raises_a_clear_value_error(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load_dataset(str(tmp_path / "bad.npz"))


def test_npz_that_is_not_a_zip_or_holds_pickled_objects_raises_value_error(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable"):
        load_dataset(str(tmp_path / "junk.npz"))
    np.savez(tmp_path / "pickled.npz", X=np.array([np.zeros(3), None], dtype=object), y=np.zeros(2))
    with pytest.raises(ValueError, match="pickled"):
        load_dataset(str(tmp_path / "pickled.npz"))


def test_csv_with_one_row_per_step_loads_as_per_step_classification(tmp_path):
    rows = ["sequence_id,ax,ay,label"]
    for seq in range(10):
        rows += [f"s{seq},{seq}.5,{t},{seq % 3}" for t in range(3 + seq % 4)]
    (tmp_path / "steps.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset(str(tmp_path / "steps.csv"))
    assert (data.task, data.features, data.out, data.head_on) == ("classify", 2, 3, "every_step")
    assert sorted(np.concatenate([data.train.lengths, data.val.lengths, data.test.lengths])) == sorted(
        3 + s % 4 for s in range(10))


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty file"),
    ("id,ax,label\na,1,0\n", "missing column 'sequence_id'"),
    ("sequence_id,label\na,0\n", "no feature column"),
    ("sequence_id,ax,label\na,1,0\na,oops,0\n", ":3:"),
    ("sequence_id,ax,label\na,1\n", "2 columns"),
])
def test_bad_csv_raises_a_clear_value_error(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_dataset(str(tmp_path / "bad.csv"))


def test_unknown_dataset_names_and_missing_files_raise():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(FileNotFoundError):
        load_dataset("/nonexistent/file.npz")
