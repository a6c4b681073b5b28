"""`rnnedge`: one command for every stage, `rnnedge {train,export,run,compile,inspect,eval} ...`.

It lives in runtime/ because runtime/ is the one package a device install (no `train` extra) is sure to run, and it
imports nothing beyond the stdlib until it knows the command: `rnnedge --version` and `rnnedge run` never load
torch. `rnnedge train` and `rnnedge export` need the `train` extra; without it they say so in one line and exit 2.

The old commands `rnnedge-train`, `rnnedge-export` and `rnnedge-run` stay for one release as aliases that print one
line on stderr naming the new spelling (old_train, old_export, old_run).

Exit status: the command's own (runtime/command.py: 0, 1, 2, 3, 130); 2 for an unknown command or a missing extra.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

from rnnedge.runtime.command import BAD_INPUT, INTERRUPTED, OK, bad_input, internal_error

PROG = "rnnedge"
# name: (module with main(argv), what it does, modules it needs beyond the base install)
COMMANDS = {
    "train": ("rnnedge.train.cli", "train a recurrent model on a data set; writes model.pt, metrics.json, training.png",
              ("torch",)),
    "export": ("rnnedge.export.cli", "export a checkpoint or an ONNX file to ONNX, weight files and C, proving parity",
               ("torch", "onnx", "onnxruntime")),
    "run": ("rnnedge.runtime.cli", "stream an input file through a weight file one step per call, or generate text", ()),
    "compile": ("rnnedge.runtime.compile_cmd",
                "compile the kernels a weight file runs, once, so a device starts warm", ()),
    "inspect": ("rnnedge.runtime.inspect_file", "describe a weight file, ONNX file or checkpoint before deploying it", ()),
    "eval": ("rnnedge.export.fleet",
             "measure a weight file against its f32 file or model.pt over a folder of recordings (Ray: --ray)", ()),
}
TRAIN_EXTRA = ("torch", "onnx", "onnxruntime", "onnxscript", "tqdm", "matplotlib")  # pyproject.toml's `train` extra
ROOT = Path(__file__).resolve().parents[1]

USAGE = f"usage: {PROG} [--version] COMMAND [ARGS ...]"


def version() -> str:
    """rnnedge's version: the installed distribution's metadata, else (a checkout run from its folder, not
    installed) the version in its pyproject.toml, else "unknown"."""
    from importlib import metadata

    try:
        return metadata.version("rnnedge")
    except metadata.PackageNotFoundError:
        pass
    try:
        text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return f"{m.group(1)} (not installed)" if m else "unknown"


def help_text() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, (_, what, _) in COMMANDS.items())
    return (f"{USAGE}\n\nrnnedge: train, export, run and inspect recurrent models for the edge.\n\n"
            f"commands:\n{rows}\n\n"
            f"`{PROG} COMMAND --help` describes a command's options. train and export need the training extra: "
            f'pip install "rnnedge[train]".\n'
            "Exit status: 0 done, 1 an export's parity failed, 2 bad input (one line naming it), 3 an internal error "
            "(one line and a log holding the traceback), 130 interrupted.\n")


def main(argv: list[str] | None = None) -> int:
    """The command; returns its exit status (module docstring)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(help_text(), end="")
        return OK if argv else BAD_INPUT
    if argv[0] in ("-V", "--version"):
        print(f"{PROG} {version()} from {ROOT} (python {sys.version.split()[0]})")
        return OK
    name = argv[0]
    if name not in COMMANDS:
        return bad_input(PROG, f"unknown command {name!r}; the commands are {', '.join(COMMANDS)} "
                               f"(`{PROG} --help` describes them)")
    return run_command(name, argv[1:], f"{PROG} {name}")


def run_command(name: str, argv: list[str], prog: str) -> int:
    """Import the command's module and run its main(argv); a missing training extra is one line and exit 2."""
    module_name, _, needs = COMMANDS[name]
    missing = [module for module in needs if not importable(module)]
    if missing:
        return _needs_extra(prog, missing[0])
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        root = (e.name or "").split(".")[0]
        if root in TRAIN_EXTRA:
            return _needs_extra(prog, root)
        return internal_error(PROG, e)
    except KeyboardInterrupt:  # importing torch takes seconds
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    return module.main(argv)


def importable(module: str) -> bool:
    """Whether `module` can be found, without importing it. A finder that refuses it (ImportError) counts as
    missing, as it would when the command imported it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _needs_extra(prog: str, module: str) -> int:
    return bad_input(prog, f'needs the training extra ({module} is not installed here): pip install "rnnedge[train]"')


def _old(name: str) -> int:
    print(f"rnnedge-{name} is now `{PROG} {name}`; the old name goes in the next release", file=sys.stderr)
    return run_command(name, sys.argv[1:], f"{PROG} {name}")


def old_train() -> int:
    """The `rnnedge-train` console script: `rnnedge train`, with a note that the name is going."""
    return _old("train")


def old_export() -> int:
    """The `rnnedge-export` console script: `rnnedge export`, with a note that the name is going."""
    return _old("export")


def old_run() -> int:
    """The `rnnedge-run` console script: `rnnedge run`, with a note that the name is going."""
    return _old("run")


if __name__ == "__main__":
    sys.exit(main())
