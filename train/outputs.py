"""Output folders: every file rnnedge writes is recorded, and nothing else in a folder is ever touched.

Each command that writes a folder (rnnedge-train, rnnedge-export) lists every file it wrote, with its size and
SHA-256, in the folder's MANIFEST:

    rnnedge-manifest.json  {"format": "rnnedge-manifest", "version": 1,
                            "files": {"model.pt": {"bytes": 81234, "sha256": "9f2c...", "by": "rnnedge-train"},
                                      "firmware/int8/model_data.c": {..., "by": "rnnedge-export"}, ...},
                            "sources": {"rnnedge-export": what the last export exported (default_folder)}}

A file is rnnedge's when a manifest lists it and its bytes still hash to the SHA-256 recorded there; every other
file in the folder is the user's (foreign), including one rnnedge wrote and the user changed since. The rules:

- A command never overwrites or removes a foreign file, nor a file it was given as input, nor the files of a
  command it does not replace (REPLACES: an export never replaces what rnnedge-train wrote, its trained model.pt).
- A folder holding foreign files is refused (check_folder) unless force: rnnedge's files are then written beside
  them, still never over them; a foreign file with a name the command writes is refused even with force.
- Atomic (Staging): a command writes into a temporary folder beside the target (same file system, so the final
  moves are renames), verifies what it wrote there, and only then moves each file into place, removes the stale
  files of the previous run (rnnedge's, written by a command it replaces, not written again) and writes the new
  manifest. A failure before that leaves the target exactly as it was. The new manifest is put in place as
  MANIFEST_PENDING before the first move and renamed to MANIFEST after the last, so a run cut short in between
  still leaves every file recognisable as rnnedge's.

Standard library only: train/ and export/ both use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "rnnedge-manifest.json"
MANIFEST_PENDING = "rnnedge-manifest.pending.json"
MANIFEST_FORMAT = "rnnedge-manifest"
MANIFEST_VERSION = 1
MANIFEST_MAX_BYTES = 1 << 24  # a manifest lists file names and hashes; anything larger is not one rnnedge wrote
DEFAULT_ROOT = Path("rnnedge-out")  # where a command with no --out and no folder of its own writes: <root>/<name>/
STAGING = ".rnnedge-staging-"  # name part of the temporary folders beside a target
SHOWN = 5  # foreign files a refusal names

TRAIN = "rnnedge-train"
DIAGNOSE = "rnnedge-train --diagnose-gradients"
EXPORT = "rnnedge-export"
EVAL = "rnnedge-eval"
# Whose earlier files a command may overwrite, or remove when it does not write them again. Training makes a new
# model, so an earlier export beside it is stale; an export derives from a checkpoint and replaces only an earlier
# export (never the training that produced the checkpoint it may be reading).
REPLACES = {TRAIN: (TRAIN, EXPORT), EXPORT: (EXPORT,), DIAGNOSE: (DIAGNOSE,), EVAL: (EVAL,)}


class OutputFolderError(ValueError):
    """A folder a command will not write into as asked, or a write that would touch a file that is not rnnedge's."""


class CommitError(OSError):
    """The file system failed while a finished run was being moved into place: the folder may hold a mix."""


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_files(folder) -> dict[str, dict]:
    """{relative name: {"bytes", "sha256"}} of every regular file under folder, sorted by name."""
    folder = Path(folder)
    return {name: {"bytes": (folder / name).stat().st_size, "sha256": sha256_file(folder / name)}
            for name in _files(folder)}


def _files(folder: Path) -> list[str]:
    """Relative POSIX names of the regular files under folder (symbolic links are neither followed nor listed)."""
    return [name for name in _everything(folder) if not (folder / name).is_symlink() and (folder / name).is_file()]


def _everything(folder: Path) -> list[str]:
    """Relative POSIX names of every non-directory entry under folder, links included (never followed)."""
    names = []
    for root, dirs, files in os.walk(folder):
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        names += [Path(os.path.relpath(os.path.join(root, n), folder)).as_posix() for n in files + links]
    return sorted(names)


_SAFE_NAME = re.compile(r"[^/\\]+(/[^/\\]+)*")


def _safe_name(name) -> bool:
    """A manifest name that stays inside its folder (a crafted manifest must not make rnnedge remove a file
    anywhere else)."""
    return (isinstance(name, str) and _SAFE_NAME.fullmatch(name) is not None
            and not any(part in ("", ".", "..") for part in name.split("/")) and name not in (MANIFEST,
                                                                                               MANIFEST_PENDING))


def _read_record(path: Path) -> dict | None:
    """A manifest's {"files", "sources"}, or None when path is missing or not a manifest rnnedge wrote."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MANIFEST_MAX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or data.get("version") != MANIFEST_VERSION:
        return None
    files, sources = data.get("files"), data.get("sources", {})
    if not isinstance(files, dict) or not isinstance(sources, dict):
        return None
    files = {name: entry for name, entry in files.items() if _safe_name(name) and isinstance(entry, dict)
             and isinstance(entry.get("sha256"), str) and isinstance(entry.get("bytes"), int)
             and isinstance(entry.get("by"), str)}
    return {"files": files, "sources": {k: v for k, v in sources.items() if isinstance(v, str)}}


def read_sources(folder) -> dict[str, str]:
    """The manifest's record of what each command last wrote the folder from ({} without a manifest)."""
    record = _read_record(Path(folder) / MANIFEST)
    return record["sources"] if record else {}


@dataclass
class Folder:
    """What a folder holds now: rnnedge's files (listed in a manifest, bytes unchanged) and everything else."""

    path: Path
    owned: dict[str, dict] = field(default_factory=dict)  # name -> {"bytes", "sha256", "by"}
    foreign: list[str] = field(default_factory=list)  # names of files (and links) that are not rnnedge's
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def scan(cls, path) -> Folder:
        path = Path(path)
        state = cls(path)
        if not path.is_dir():
            return state
        records = {name: _read_record(path / name) for name in (MANIFEST, MANIFEST_PENDING)}
        listed: dict[str, list[dict]] = {}
        for record in filter(None, records.values()):
            for name, entry in record["files"].items():
                listed.setdefault(name, []).append(entry)
            state.sources.update(record["sources"])
        for name in _everything(path):
            if name in records and records[name] is not None:
                continue
            entry = _matching(path / name, listed.get(name, []))
            if entry is None:
                state.foreign.append(name)
            else:
                state.owned[name] = entry
        return state


def _matching(path: Path, entries: list[dict]) -> dict | None:
    """The entry whose size and SHA-256 the file at path still has, or None."""
    if not entries or path.is_symlink() or not path.is_file():
        return None
    size = path.stat().st_size
    candidates = [e for e in entries if e["bytes"] == size]
    if not candidates:
        return None
    digest = sha256_file(path)
    return next((e for e in candidates if e["sha256"] == digest), None)


def owner(path) -> str | None:
    """The command that wrote the file at path, per its folder's manifest (None: not rnnedge's)."""
    path = Path(path)
    entry = Folder.scan(path.parent).owned.get(path.name)
    return entry["by"] if entry else None


def some(names: list[str]) -> str:
    """The first SHOWN names, and how many more."""
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _resolved(paths: Iterable) -> set[Path]:
    return {Path(p).resolve() for p in paths if p is not None}


def _check_writes(state: Folder, command: str, names: Iterable[str], inputs: set[Path]) -> None:
    """Refuse a write over an input, a foreign file, a folder, or a file of a command this one does not replace."""
    folder = state.path
    for name in names:
        target = folder / name
        parents = [folder / Path(*Path(name).parts[:i]) for i in range(1, len(Path(name).parts))]
        blocked = next((p for p in parents if os.path.lexists(p) and not p.is_dir()), None)
        if blocked is not None:
            raise OutputFolderError(f"{blocked} is a file where {command} writes the folder of {target}: move it, "
                                    f"or choose another --out")
        if not os.path.lexists(target):
            continue
        if target.resolve() in inputs:
            raise OutputFolderError(f"{target} is an input of {command}; writing rnnedge's own {name} there would "
                                    f"overwrite it: choose another --out")
        if target.is_dir() and not target.is_symlink():
            raise OutputFolderError(f"{target} is a folder where {command} writes a file: move it, or choose "
                                    f"another --out")
        entry = state.owned.get(name)
        if entry is None:
            raise OutputFolderError(
                f"{target} is not rnnedge's ({folder / MANIFEST} does not list it with these bytes) and {command} "
                f"writes its own {name}: rnnedge never overwrites your files, not even with --force. Move or rename "
                f"it, or choose another --out")
        if entry["by"] not in REPLACES[command]:
            raise OutputFolderError(f"{target} was written by {entry['by']}, and {command} does not replace it: "
                                    f"choose another --out (or remove {target} yourself)")


def check_folder(folder, command: str, *, writes: Iterable[str] = (), inputs: Iterable = (),
                 force: bool = False) -> Folder:
    """Refuse (OutputFolderError) to let `command` write into folder: a file; a folder where one of `writes` (the
    names it may write) is an input, a foreign file or another command's; a folder with foreign files unless
    force. Returns what the folder holds."""
    folder = Path(folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputFolderError(f"{folder} is a file, not a folder")
    state = Folder.scan(folder)
    _check_writes(state, command, writes, _resolved(inputs))
    if state.foreign and not force:
        raise OutputFolderError(
            f"{folder} holds files rnnedge did not write: {some(state.foreign)}. {command} writes only into a new "
            f"or empty folder, or one rnnedge wrote ({MANIFEST} lists every file it wrote). Choose another --out, "
            f"or add --force to write rnnedge's files beside yours (--force never overwrites or removes them)")
    return state


def default_folder(name: str, command: str, source: str, root=DEFAULT_ROOT) -> Path:
    """The folder for a command run without --out: root/<name>, reused when the same source wrote it before (so a
    re-run updates it), else the first of <name>, <name>-2, <name>-3, ... that is new or empty."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-") or "model"
    for n in range(1, 10_000):
        candidate = Path(root) / (base if n == 1 else f"{base}-{n}")
        if not os.path.lexists(candidate):
            return candidate
        if (candidate.is_dir() and not candidate.is_symlink()
                and (not any(candidate.iterdir()) or read_sources(candidate).get(command) == source)):
            return candidate
    raise OutputFolderError(f"{root}: no free folder name for {base!r}; give --out")


class Staging:
    """A temporary folder beside `folder` to write into (`dir`); on leaving the `with` block without an exception its
    files are moved into `folder` (commit), otherwise it is removed and `folder` is left as it was.

    command: one of REPLACES. inputs: files the command reads (never overwritten or removed). writes: names it
    may write, refused before any work when one of them cannot be written (check_folder's rules, force or not).
    source: what the command wrote the folder from, recorded for default_folder.
    """

    def __init__(self, folder, command: str, *, inputs: Iterable = (), writes: Iterable[str] = (),
                 source: str | None = None):
        self.folder = Path(folder)
        self.command = command
        self.inputs = _resolved(inputs)
        self.writes = list(writes)
        self.source = source
        self.dir: Path | None = None
        self._made: list[Path] = []  # folders made for the target, removed again if nothing is committed

    def __enter__(self):
        if os.path.lexists(self.folder) and not self.folder.is_dir():
            raise OutputFolderError(f"{self.folder} is a file, not a folder")
        _check_writes(Folder.scan(self.folder), self.command, self.writes, self.inputs)
        parent = self.folder.resolve().parent
        missing = []
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for path in reversed(missing):
            path.mkdir()
            self._made.append(path)
        target = self.folder.resolve()
        self.dir = Path(tempfile.mkdtemp(prefix=f".{target.name}{STAGING}", dir=target.parent))
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self.commit()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            if exc_type is not None or not self.folder.is_dir():
                for path in reversed(self._made):
                    _rmdir_if_empty(path)
        return False

    def final(self, path) -> Path:
        """Where a path inside the staging folder ends up in `folder` (other paths unchanged)."""
        path = Path(path)
        try:
            return self.folder / path.relative_to(self.dir)
        except ValueError:
            return path

    def stale(self, also: Iterable[str] = ()) -> list[str]:
        """The previous run's files that commit will remove: rnnedge's, written by a command this one replaces, not
        an input, and not written again (what is staged now, plus `also`: names still to be written)."""
        return self._stale(Folder.scan(self.folder), set(_files(self.dir)) | set(also))

    def _stale(self, state: Folder, written: set[str]) -> list[str]:
        return sorted(name for name, entry in state.owned.items()
                      if entry["by"] in REPLACES[self.command] and name not in written
                      and (self.folder / name).resolve() not in self.inputs)

    def commit(self) -> list[str]:
        """Move the staged files into `folder`, remove the stale ones, write the manifest; returns the removed."""
        state = Folder.scan(self.folder)
        written = _files(self.dir)
        if MANIFEST in written or MANIFEST_PENDING in written:
            raise OutputFolderError(f"{self.command} staged a file named {MANIFEST}: that name is rnnedge's record")
        _check_writes(state, self.command, written, self.inputs)
        stale = self._stale(state, set(written))
        entries = {name: entry for name, entry in state.owned.items() if name not in stale}
        entries.update({name: {**meta, "by": self.command} for name, meta in describe_files(self.dir).items()})
        sources = dict(state.sources)
        if self.source is not None:
            sources[self.command] = self.source
        record = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                  "files": dict(sorted(entries.items())), "sources": sources}
        pending = self.dir / MANIFEST_PENDING
        pending.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        self.folder.mkdir(exist_ok=True)
        os.replace(pending, self.folder / MANIFEST_PENDING)
        try:
            for name in written:
                (self.folder / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(self.dir / name, self.folder / name)
            for name in stale:
                (self.folder / name).unlink()
                for parent in list(Path(name).parents)[:-1]:
                    _rmdir_if_empty(self.folder / parent)
            os.replace(self.folder / MANIFEST_PENDING, self.folder / MANIFEST)
        except OSError as e:
            raise CommitError(f"moving the finished {self.command} run into {self.folder} failed midway ({e}): the "
                              f"folder may hold a mix of the previous and the new files ({MANIFEST_PENDING} lists the "
                              f"new ones); run the command again") from None
        return stale


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
