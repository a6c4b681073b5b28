"""rnnedge-run --generate PROMPT (text, UTF-8 throughout) and --prompt-ids 1,2,3 (token models without chars)."""

import os
import subprocess
import sys

import pytest

from rnnedge import runtime
from rnnedge.runtime.cli import main
from tests.helpers import make_model, make_spec, write_artifact

CHARS = " \nabcdeéß—"  # an alphabet beyond ASCII: 2- and 3-byte UTF-8 characters
VOCAB = 12


@pytest.fixture(scope="module")
def char_model(tmp_path_factory):
    spec = {"version": 1,
            "input": {"kind": "tokens", "vocab": len(CHARS), "embed_dim": 4, "padding_idx": None, "chars": CHARS},
            "layers": [{"cell": "gru", "hidden": 8, "bidirectional": False}],
            "head": {"out": len(CHARS), "on": "every_step", "activation": "softmax"}, "task": "generate"}
    return write_artifact(make_model(spec, seed=1), tmp_path_factory.mktemp("gen_cli") / "chars.f32.safetensors")


@pytest.fixture(scope="module")
def id_model(tmp_path_factory):
    spec = make_spec("lstm", kind="tokens", vocab=VOCAB, out=VOCAB, hidden=8)
    return write_artifact(make_model(spec, seed=2), tmp_path_factory.mktemp("gen_cli") / "ids.f32.safetensors")


def run_cli(*args, env=None):
    return subprocess.run([os.fsencode(sys.executable), b"-m", b"runtime", *args], capture_output=True, check=False,
                          timeout=300, env=env)


def test_prompt_ids_prints_the_prompt_and_the_sampled_ids_of_a_model_without_chars(id_model, capsys):
    assert main([id_model, "--prompt-ids", "3, 1,4", "--n", "25", "--seed", "7"]) == 0
    out, err = capsys.readouterr()
    ids = [int(i) for i in out.strip().split(",")]
    expected = runtime.load(id_model).generate([3, 1, 4], 25, seed=7)
    assert ids[:3] == [3, 1, 4] and ids[3:] == expected.tolist() and all(0 <= i < VOCAB for i in ids)
    assert "3 prompt + 25 generated token ids" in err


def test_generate_prints_text_of_the_alphabet_from_a_non_ascii_prompt(char_model, capsys):
    assert main([char_model, "--generate", "é—ß\\n", "--n", "40", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out == "é—ß\n" + runtime.load(char_model).generate("é—ß\n", 40, seed=3) + "\n"
    assert set(out[:-1]) <= set(CHARS) and len(out) == 4 + 40 + 1


def test_prompt_ids_on_a_character_model_prints_ids(char_model, capsys):
    assert main([char_model, "--prompt-ids", "7,8", "--n", "5"]) == 0
    assert len(capsys.readouterr().out.strip().split(",")) == 7


@pytest.mark.parametrize(("model", "argv", "says"), [
    ("char", ["--generate", "éx"], "prompt character 'x' (U+0078) at position 1 is not in the model's vocabulary"),
    ("char", ["--generate", "a\u00e8"], "prompt character 'è' (U+00E8) at position 1"),
    ("char", ["--generate", "a\udce9"], "--generate PROMPT is not UTF-8: the byte 0xE9 at byte offset 1"),
    ("id", ["--generate", "abc"], "pass the prompt as token ids (rnnedge run: --prompt-ids 1,2,3)"),
    ("id", ["--prompt-ids", "1,,2"], "item 1 ('') is not a token id"),
    ("id", ["--prompt-ids", "-1"], "item 0 ('-1') is not a token id"),
    ("id", ["--prompt-ids", "1,two"], "item 1 ('two') is not a token id"),
    ("id", ["--prompt-ids", ""], "item 0 ('') is not a token id"),
    ("id", ["--prompt-ids", "99999999999999999999"], "is not a token id"),
    ("id", ["--prompt-ids", "1,12"], f"prompt token id 12 at position 1 is outside the vocabulary [0, {VOCAB})"),
])
def test_a_prompt_the_model_cannot_read_is_refused_with_exit_2_in_one_line(char_model, id_model, capsys, model,
                                                                           argv, says):
    assert main([char_model if model == "char" else id_model, *argv]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("argv", [["--prompt-ids", "1", "--generate", "a"], ["x.npy", "--prompt-ids", "1"],
                                  ["--prompt-ids", "1", "--out", "y.csv"]])
def test_prompt_ids_takes_no_text_prompt_input_file_or_out(id_model, capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main([id_model, *argv])
    assert exit_info.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_prompt_and_text_are_utf8_whatever_the_locale_and_a_non_utf8_prompt_byte_is_named(char_model):
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii", "PYTHONUTF8": "0"}
    done = run_cli(os.fsencode(char_model), b"--generate", "ß—".encode(), b"--n", b"10", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode("utf-8").startswith("ß—") and len(done.stdout.decode("utf-8")) == 2 + 10 + 1
    done = run_cli(os.fsencode(char_model), b"--generate", b"a\xe9")
    assert done.returncode == 2 and b"not UTF-8: the byte 0xE9" in done.stderr and b"Traceback" not in done.stderr
