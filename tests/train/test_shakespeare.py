"""The bundled Shakespeare character set, its block split, and the bits-per-character metric."""

from dataclasses import replace

import numpy as np
import pytest

from rnnedge.runtime.spec import validate
from rnnedge.train.data import (
    SHAKESPEARE_BLOCK,
    SHAKESPEARE_NPZ,
    SHAKESPEARE_SEQUENCE,
    SequenceData,
    bundled_file,
    load_dataset,
)
from rnnedge.train.loop import TrainConfig, default_spec, train
from rnnedge.train.metrics import higher_is_better, metric_name, task_metric


@pytest.fixture(scope="module")
def data():
    return load_dataset("shakespeare")


def test_shakespeare_is_a_next_character_task_with_a_consistent_vocabulary(data):
    assert (data.task, data.input_kind, data.head_on) == ("generate", "tokens", "every_step")
    assert data.vocab == data.out == len(data.chars) == len(set(data.chars)) == 65
    assert data.chars == "".join(sorted(data.chars)) and "\n" in data.chars and " " in data.chars
    with np.load(bundled_file(SHAKESPEARE_NPZ), allow_pickle=False) as f:
        text = f["text"].tobytes().decode("ascii")
    assert set(text) == set(data.chars)
    for split in (data.train, data.val, data.test):
        assert split.X.shape[1] == SHAKESPEARE_SEQUENCE and np.all(split.lengths == SHAKESPEARE_SEQUENCE)
        assert split.X.min() >= 0 and split.X.max() < data.vocab
        # every step's target is the next character: y[:, :-1] is X[:, 1:]
        assert np.array_equal(split.y[:, :-1], split.X[:, 1:])
    decoded = "".join(data.chars[i] for i in data.train.X[0])
    assert text.startswith(decoded + data.chars[data.train.y[0, -1]])


def test_splits_are_contiguous_blocks_of_text_in_the_given_proportions(data):
    with np.load(bundled_file(SHAKESPEARE_NPZ), allow_pickle=False) as f:
        text = f["text"].tobytes().decode("ascii")
    counts = np.array([len(data.train), len(data.val), len(data.test)])
    assert np.allclose(counts / counts.sum(), [0.8, 0.1, 0.1], atol=0.02)
    block = SHAKESPEARE_BLOCK
    per_block = (block - 1) // SHAKESPEARE_SEQUENCE
    # the first validation sequences are block 8's start, the first test sequences block 9's, in order
    for split, b in ((data.val, 8), (data.test, 9)):
        first = "".join(data.chars[i] for i in split.X[:per_block].reshape(-1))
        assert first == text[b * block : b * block + per_block * SHAKESPEARE_SEQUENCE]
    # no sequence is in two splits
    rows = {split: {r.tobytes() for r in getattr(data, split).X} for split in ("train", "val", "test")}
    assert not (rows["train"] & rows["val"]) and not (rows["train"] & rows["test"]) and not (rows["val"] & rows["test"])


def test_default_spec_carries_the_alphabet_and_trains_briefly(data, tmp_path):
    spec = default_spec(data, cell="lstm", hidden=8)
    assert validate(spec)["input"]["chars"] == data.chars and spec["task"] == "generate"
    val = SequenceData(data.val.X[:16], data.val.lengths[:16], data.val.y[:16])
    small = replace(data, train=SequenceData(data.train.X[:64], data.train.lengths[:64], data.train.y[:64]),
                    val=val, test=val)
    _, metrics = train(spec, small, TrainConfig(epochs=2, progress=False), tmp_path)
    assert metrics["metric"] == "bpc" and metrics["higher_is_better"] is False
    assert 0 < metrics["test_metric"] < np.log2(data.vocab) + 1


def test_bits_per_character_on_a_toy_example():
    p = np.array([[[0.5, 0.25, 0.25], [0.125, 0.75, 0.125], [1.0, 0.0, 0.0]],
                  [[0.25, 0.25, 0.5], [0.0, 0.0, 1.0], [0.3, 0.3, 0.4]]])
    y = np.array([[0, 0, 1], [2, 2, 0]])
    name, value = task_metric("generate", p, y, np.array([2, 2]))  # steps t < 2 only
    assert name == "bpc" and value == pytest.approx((1 + 3 + 1 + 0) / 4)
    # a zero probability costs 126 bits, not infinity
    assert task_metric("generate", p, y, None)[1] == pytest.approx((1 + 3 + 126 + 1 + 0 + np.log2(1 / 0.3)) / 6)
    # last_step shape, and uniform over 4 classes = 2 bits
    assert task_metric("generate", np.full((3, 4), 0.25), np.array([0, 1, 3]))[1] == pytest.approx(2.0)
    assert metric_name("generate") == "bpc" and not higher_is_better("bpc")
    with pytest.raises(ValueError, match="do not match"):
        task_metric("generate", p, y[:, :2])
    with pytest.raises(ValueError, match="labels must lie"):
        task_metric("generate", p, y + 1)


def test_export_pass_rule_reads_percent_of_the_float_bpc():
    from rnnedge.export.rules import criterion

    rule = criterion("int8", 1e-5, {"name": "bpc", "value": 2.0})
    assert rule.describe() == "bpc at most 1% above the PyTorch model's"
    assert rule.passes(0.0, {"name": "bpc", "value": 2.019}) and not rule.passes(0.0, {"name": "bpc", "value": 2.03})
