"""Kernels compiled for one loaded model: generated numba source, kept in a cache folder so a process starts warm.

A specialised step knows its model when it is compiled: cells, sizes, offsets and flags are literals in the
source, so LLVM sees fixed loop bounds and no table reads, and a step passes one or two arrays. The generators
(one per precision) write Python source text; `load_source` puts it in the cache folder under a name that is
the SHA-256 of the text and of the runtime modules it calls (so a changed intrinsic renames every step using it)
and imports it, so numba's own cache (`cache=True`) sits beside it in `__pycache__`
and a second process (or a device after `rnnedge compile`) loads machine code instead of compiling.

    module = load_source("lstm_int8w", source)   # the module; its @njit functions compile on first call

The cache folder: $RNNEDGE_CACHE_DIR, else $XDG_CACHE_HOME/rnnedge/kernels, else ~/.cache/rnnedge/kernels.
A file is written once (to a temporary name, then renamed), with its bytecode beside it, never rewritten: numba keys its cache on the
source file's modification time, so rewriting an unchanged file would throw the compiled code away. Where the
folder cannot be written, the source goes to a private temporary folder for this process (it still runs,
compiled each time).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import py_compile
import re
import sys
import tempfile
from pathlib import Path

SOURCE_VERSION = 1  # part of every file's hash: bump when a generator's output changes meaning

# a generated module's own imports of the runtime (the intrinsics and helpers its functions call, inlined by numba)
_RUNTIME_IMPORT = re.compile(r"^\s*from (rnnedge\.runtime\.\w+) import", re.MULTILINE)


def cache_dir() -> Path:
    """Where generated kernels and their compiled code live (see the module docstring)."""
    explicit = os.environ.get("RNNEDGE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnedge" / "kernels"


_fallback: Path | None = None


def _writable_dir() -> Path:
    global _fallback
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK | os.X_OK):
            return folder
    except OSError:
        pass
    if _fallback is None:
        _fallback = Path(tempfile.mkdtemp(prefix="rnnedge-kernels-"))
    return _fallback


def source_path(stem: str, source: str) -> Path:
    """The file `source` is (or would be) kept in: <cache>/<stem>_<sha256 prefix>.py. The hash covers the text and
    the runtime modules it calls (callees_digest): numba's cache of a generated module is keyed on that file alone,
    so a changed intrinsic must give the step another name, or a cached step would keep the old machine code."""
    callees = callees_digest(tuple(sorted(set(_RUNTIME_IMPORT.findall(source)))))
    digest = hashlib.sha256(f"{SOURCE_VERSION}\n{callees}\n{source}".encode()).hexdigest()[:24]
    return _writable_dir() / f"{stem}_{digest}.py"


@functools.cache
def callees_digest(modules: tuple[str, ...]) -> str:
    """SHA-256 of the source of these rnnedge.runtime modules and of every runtime module they import in turn."""
    seen, todo, h = set(), list(modules), hashlib.sha256()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        text = module_source(name)
        h.update(f"{name}\n{len(text)}\n".encode() + text)
        todo += _RUNTIME_IMPORT.findall(text.decode("utf-8", "replace"))
    return h.hexdigest()


def module_source(name: str) -> bytes:
    """The source bytes of an rnnedge.runtime module (b"" if it has no source file)."""
    spec = importlib.util.find_spec(name)
    try:
        return Path(spec.origin).read_bytes() if spec is not None and spec.origin else b""
    except OSError:
        return b""


def load_source(stem: str, source: str):
    """Import the generated module holding `source` (written to the cache folder first if it is not there)."""
    path = source_path(stem, source)
    name = f"rnnedge_generated.{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    if not path.is_file() or path.read_text() != source:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".py")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(source)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    _byte_compile(path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _byte_compile(path: Path) -> None:
    """Keep the generated module's bytecode beside it (__pycache__, written once, atomically), as pip does for an
    installed package: a later process then imports it without compiling the Python source, even where
    PYTHONDONTWRITEBYTECODE keeps the import system from writing it. A folder that refuses it only costs that."""
    pyc = importlib.util.cache_from_source(str(path))
    if not os.path.exists(pyc):
        try:
            py_compile.compile(str(path), cfile=pyc, doraise=True)
        except (OSError, py_compile.PyCompileError):
            pass
