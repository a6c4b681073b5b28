"""A user's own text (.txt) or a token .npz with chars becomes a character model that rnnedge-run generates from."""

import subprocess
import sys

import numpy as np
import pytest

from rnnedge.runtime.spec import validate
from rnnedge.train.checkpoint import load_checkpoint
from rnnedge.train.cli import main
from rnnedge.train.data import load_dataset
from rnnedge.train.splits import FRACTIONS as SPLIT_FRACTIONS
from rnnedge.train.text_data import MAX_CHARS, MIN_SEQUENCE
from tests.helpers import write_artifact

# 58 characters a line, non-ASCII included; 12 distinct lines so that the held-out end is text of its own
LINES = [f"Ligne {i:02d}: l'été à Straße — naïve café, über {chr(ord('a') + i) * 3}.\n" for i in range(12)]
TEXT = "".join(LINES)


def decode(data, ids) -> str:
    return "".join(data.chars[i] for i in np.asarray(ids).reshape(-1))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_a_text_file_becomes_next_character_windows_over_its_sorted_alphabet(text_file):
    data = load_dataset(str(text_file))
    assert (data.task, data.input_kind, data.head_on, data.name) == ("generate", "tokens", "every_step", "book")
    assert data.chars == "".join(sorted(set(TEXT))) and {"é", "ß", "—", "\n"} <= set(data.chars)
    assert data.vocab == data.out == len(data.chars)
    first = decode(data, data.train.X[0])
    assert TEXT.startswith(first + data.chars[data.train.y[0, -1]])
    assert decode(data, data.train.y[0][:-1]) == first[1:]


def test_the_held_out_parts_are_the_end_of_the_text_and_no_window_crosses_a_boundary(text_file):
    data = load_dataset(str(text_file))
    held = int(SPLIT_FRACTIONS[2] * len(TEXT))
    regions = {"train": TEXT[: len(TEXT) - 2 * held], "val": TEXT[len(TEXT) - 2 * held : len(TEXT) - held],
               "test": TEXT[len(TEXT) - held :]}
    T = data.test.X.shape[1]
    assert MIN_SEQUENCE <= T == held - 1 and len(data.test) == len(data.val) == 1
    for name, split in (("train", data.train), ("val", data.val), ("test", data.test)):
        for n in range(len(split)):
            window = decode(data, split.X[n]) + data.chars[split.y[n, -1]]
            assert regions[name][n * T : n * T + T + 1] == window


def test_a_byte_order_mark_is_dropped_and_windows_line_ends_read_as_newlines(tmp_path, text_file):
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"\xef\xbb\xbf" + TEXT.replace("\n", "\r\n").encode("utf-8"))
    data, reference = load_dataset(str(crlf)), load_dataset(str(text_file))
    assert data.chars == reference.chars and np.array_equal(data.train.X, reference.train.X)


def test_a_text_of_more_than_200_characters_per_part_is_cut_into_sequences_of_200(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text(TEXT * 8, encoding="utf-8")
    data = load_dataset(str(path))
    held = int(SPLIT_FRACTIONS[2] * len(TEXT) * 8)
    assert data.train.X.shape[1] == data.test.X.shape[1] == 200 and len(data.test) == (held - 1) // 200 >= 2


@pytest.mark.parametrize(("content", "says"), [
    (TEXT[:40].encode("utf-8") + b"\xe9t\xe9" + TEXT.encode("utf-8"),
     f"not UTF-8 text at byte offset {len(TEXT[:40].encode('utf-8'))} (0xE9"),
    (TEXT.encode("utf-8") + b"\0", f"a NUL byte at byte offset {len(TEXT.encode('utf-8'))}"),
    (TEXT.encode("utf-16"), "not UTF-8 text at byte offset 0 (0xFF"),
    (TEXT[:100].encode("utf-8"), "100 characters is too short"),
    (b"", "0 characters is too short"),
    ("".join(chr(0x4E00 + i) for i in range(MAX_CHARS + 1)).encode("utf-8"), "4,097 distinct characters"),
    (b"aaaa" * 100, "1 distinct character(s)"),
])
def test_rnnedge_train_refuses_a_text_it_cannot_model_with_exit_2_in_one_line(tmp_path, capsys, content, says):
    (tmp_path / "bad.txt").write_bytes(content)
    assert main([str(tmp_path / "bad.txt"), "--epochs", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnedge train: error:") and says in err and "Traceback" not in err
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_a_character_model_trained_on_utf8_text_generates_text_of_its_alphabet_from_a_non_ascii_prompt(
        text_file, tmp_path, capsys):
    out = tmp_path / "model"
    assert main([str(text_file), "--epochs", "1", "--hidden", "8", "--embed-dim", "4", "--out", str(out)]) == 0
    assert "user text" in capsys.readouterr().out
    model, _ = load_checkpoint(out / "model.pt")
    assert validate(model.spec)["input"]["chars"] == "".join(sorted(set(TEXT)))
    for precision in ("f32", "int8"):
        artifact = write_artifact(model, tmp_path / f"model.{precision}.safetensors", precision)
        done = subprocess.run([sys.executable, "-m", "rnnedge.runtime", artifact, "--generate", "été — ß", "--n", "50"],
                              capture_output=True, check=False, timeout=300)
        assert done.returncode == 0, done.stderr.decode()
        printed = done.stdout.decode("utf-8")
        assert printed.startswith("été — ß") and printed.endswith("\n") and len(printed) == 7 + 50 + 1
        assert set(printed[:-1]) <= set(TEXT)


def token_npz(path, chars, vocab=8):
    """Next-token data over ids [0, vocab) with the character table `chars`."""
    sequences = np.random.default_rng(0).integers(0, vocab, (26, 23))
    np.savez(path, X=sequences[:, :-1], y=sequences[:, 1:], task="generate", chars=chars)
    return str(path)


@pytest.mark.parametrize("chars", ["abcdé—ß\n", np.array(list("abcdé—ß\n")), np.array("abcdé—ß\n".encode())])
def test_a_token_npz_with_chars_trains_a_model_whose_spec_carries_them(tmp_path, capsys, chars):
    data = token_npz(tmp_path / "tokens.npz", chars)
    assert load_dataset(data).chars == "abcdé—ß\n"
    assert main([data, "--epochs", "1", "--hidden", "8", "--out", str(tmp_path / "out")]) == 0
    model, _ = load_checkpoint(tmp_path / "out" / "model.pt")
    assert model.spec["input"]["chars"] == "abcdé—ß\n" and model.spec["input"]["vocab"] == 8


def test_chars_longer_than_the_ids_used_widen_the_vocabulary_to_every_character(tmp_path):
    data = load_dataset(token_npz(tmp_path / "tokens.npz", "abcdefgh", vocab=5))
    assert data.vocab == data.out == 8 and data.chars == "abcdefgh"


@pytest.mark.parametrize(("chars", "says"), [
    ("abcdéé", "chars repeats 'é'"),
    (np.array(["a", "bc", "d", "e", "f", "g"]), "chars[1] is 'bc', 2 characters"),
    ("abcd", "token id 5 has no character: chars holds 4"),
    (np.zeros(6), "chars must be a string or an array of single characters"),
    (np.array([list("abc"), list("def")]), "got shape (2, 3)"),
])
def test_a_token_npz_with_bad_chars_is_refused_with_exit_2(tmp_path, capsys, chars, says):
    ids = np.tile(np.arange(6), 20).reshape(10, 12)
    np.savez(tmp_path / "bad.npz", X=ids[:, :-1], y=ids[:, 1:], task="generate", chars=chars)
    assert main([str(tmp_path / "bad.npz"), "--epochs", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and err.count("\n") == 1


def test_chars_on_dense_input_are_refused(tmp_path):
    np.savez(tmp_path / "dense.npz", X=np.zeros((6, 4, 2)), y=np.zeros(6, dtype=np.int64), chars="ab")
    with pytest.raises(ValueError, match="chars names the characters of token ids, but X holds dense input"):
        load_dataset(str(tmp_path / "dense.npz"))
