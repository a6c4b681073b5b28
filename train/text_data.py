"""Character data from the user's own text: a UTF-8 .txt file, or the `chars` key of a token .npz.

    rnnedge-train my_book.txt            # a character model of my_book.txt -> artifacts/my_book/
    rnnedge-run artifacts/my_book/model.f32.safetensors --generate "Il était"

`load_text` reads a .txt file (recognised by its suffix) as `load_shakespeare` reads the bundled plays: the
alphabet is the text's sorted distinct characters (token id i is chars[i], which becomes the spec's
input.chars), and every sequence predicts, at every step, the character after the one it reads (task
"generate"). `npz_chars` checks the `chars` an .npz may carry for its token ids (train/user_data.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from rnnedge.runtime.command import regular_file
from rnnedge.train.data import SHAKESPEARE_SEQUENCE, Dataset, next_token_windows
from rnnedge.train.splits import FRACTIONS as SPLIT_FRACTIONS

# An alphabet larger than this is not a character set a small recurrent model can learn (the embedding and the
# softmax head get a row per character), and a binary file that happens to decode as UTF-8 has thousands of
# distinct characters. 4,096 holds every alphabet and the everyday characters of Chinese or Japanese text.
MAX_CHARS = 4096
# The shortest sequence worth training on: shorter, and a held-out part scores a few characters of context only.
MIN_SEQUENCE = 16
# Bytes of memory per byte of text while loading: the str (up to 4 per character), its code points (4), the
# ids (8) and the X and y windows (8 each), with room for the training loop's copies.
MEMORY_PER_BYTE = 40


def load_text(path: str | Path) -> Dataset:
    """A character data set from a UTF-8 text file; refused (ValueError) when it is not UTF-8, holds a NUL byte,
    has fewer than 2 or more than MAX_CHARS distinct characters, or is too short for one sequence in each split.

    A leading byte-order mark is dropped and line ends \\r\\n and \\r are read as \\n (as Python's text mode
    does), so a file from Windows has the same alphabet as one from elsewhere. Split by position, never
    shuffled: the last SPLIT_FRACTIONS[2] of the characters are the test part, the same share before them
    validation, the rest training; each part is cut into sequences of its own characters (no sequence and no
    target crosses a boundary, so the held-out parts are text the model never read). The sequence length is
    SHAKESPEARE_SEQUENCE characters, or for a short text the longest that fits once in a held-out part (at least
    MIN_SEQUENCE). The split depends on the text only, so rnnedge-export --data re-derives it; it ignores seeds.
    """
    path = regular_file(path, "text file")
    _check_size(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text at byte offset {e.start} (0x{raw[e.start]:02X}: {e.reason}); "
                         "save the file as UTF-8") from None
    nul = raw.find(b"\0")
    if nul >= 0:
        raise ValueError(f"{path}: a NUL byte at byte offset {nul}: a text file holds none (is it binary, or "
                         "UTF-16?)")
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    alphabet, ids = np.unique(codes, return_inverse=True)
    held = math.floor(SPLIT_FRACTIONS[2] * len(codes))
    T = min(SHAKESPEARE_SEQUENCE, held - 1)
    if T < MIN_SEQUENCE:
        needed = math.ceil((MIN_SEQUENCE + 1) / SPLIT_FRACTIONS[2])
        raise ValueError(f"{path}: {len(codes):,} characters is too short: each of the validation and test parts "
                         f"(the last {SPLIT_FRACTIONS[2]:.0%} each) needs one sequence of at least {MIN_SEQUENCE} "
                         f"characters and the one after it, so the text needs at least {needed} characters")
    if len(alphabet) < 2:
        raise ValueError(f"{path}: {len(alphabet)} distinct character(s): a character model needs at least two to "
                         "tell apart")
    if len(alphabet) > MAX_CHARS:
        raise ValueError(f"{path}: {len(alphabet):,} distinct characters, more than a character model takes "
                         f"({MAX_CHARS:,}); is it text?")
    ids = ids.astype(np.int64).reshape(-1)
    n = len(ids)
    parts = {"train": ids[: n - 2 * held], "val": ids[n - 2 * held : n - held], "test": ids[n - held :]}
    chars = "".join(chr(c) for c in alphabet)
    return Dataset(
        name=path.stem, task="generate", input_kind="tokens", features=None, vocab=len(chars), out=len(chars),
        head_on="every_step", train=next_token_windows([parts["train"]], T),
        val=next_token_windows([parts["val"]], T), test=next_token_windows([parts["test"]], T),
        source=f"user text {path}: {n:,} characters, {len(chars)} distinct, sequences of {T} (licence as its "
               "owner states)",
        chars=chars,
    )


def _check_size(path: Path) -> None:
    """Refuse a file this machine cannot load whole, before reading it."""
    size = path.stat().st_size
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if MEMORY_PER_BYTE * size > memory:
        raise ValueError(f"{path}: {size / 2**20:,.0f} MiB of text; loading it takes about {MEMORY_PER_BYTE} times "
                         f"that, more than this machine's {memory / 2**30:.1f} GiB")


def npz_chars(where: str, value: np.ndarray) -> str:
    """The `chars` key of an .npz as a string: one string, or a 1-D array of single characters; the characters
    must be distinct (token id i is chars[i]). ValueError names what is wrong."""
    if value.dtype.kind not in "US":
        raise ValueError(f"{where}: chars must be a string or an array of single characters (token id i is "
                         f"chars[i]), got dtype {value.dtype}")
    if value.dtype.kind == "S":
        try:
            value = np.char.decode(value, "utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{where}: chars holds bytes that are not UTF-8 ({e.reason})") from None
    if value.ndim == 0:
        chars = str(value)
    elif value.ndim == 1:
        lengths = np.char.str_len(value)
        if (lengths != 1).any():
            i = int(np.argmax(lengths != 1))
            raise ValueError(f"{where}: chars[{i}] is {str(value[i])[:20]!r}, {int(lengths[i])} characters; each "
                             "entry must be one character (token id i is chars[i])")
        chars = "".join(str(c) for c in value)
    else:
        raise ValueError(f"{where}: chars must be a string or a 1-D array of single characters, got shape "
                         f"{value.shape}")
    if not chars:
        raise ValueError(f"{where}: chars is empty")
    if len(set(chars)) != len(chars):
        repeated = sorted({c for c in chars if chars.count(c) > 1})
        raise ValueError(f"{where}: chars repeats {''.join(repeated)[:20]!r}: token ids would share a character")
    return chars


def with_chars(data: Dataset, chars: str, where: str) -> Dataset:
    """`data` (token input) with the alphabet `chars`: its vocabulary (and a generate head's outputs) become
    len(chars), refused when a token id or next-token label has no character."""
    if data.input_kind != "tokens":
        raise ValueError(f"{where}: chars names the characters of token ids, but X holds dense input")
    largest = data.vocab if data.task != "generate" else max(data.vocab, data.out)
    if largest > len(chars):
        raise ValueError(f"{where}: token id {largest - 1} has no character: chars holds {len(chars)} (ids 0 to "
                         f"{len(chars) - 1})")
    out = len(chars) if data.task == "generate" else data.out
    return dataclasses.replace(data, vocab=len(chars), out=out, chars=chars)
