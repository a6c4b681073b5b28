"""train.data: the bundled watch set, the user's .npz and .csv files, the synthetic sets."""

import numpy as np
import pytest

from train.data import SYNTHETIC, WATCH_SUBJECTS, load_dataset


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
