"""`rnnedge compile MODEL [MODEL ...]`: compile, once, the kernels each model runs, so a deployed device starts warm.

numba compiles a kernel the first time it is called and keeps the machine code in a cache folder; a process that
finds it there loads it in a fraction of a second instead of compiling for many. This command calls, on harmless inputs
(zeros, token 0), exactly what a device calls: a stream's step at batch 1, 2 and 16 (the model's specialised
step where runtime/fused.py builds one, else the generic kernels), run() on a short sequence at batch 1 and 16, and generate()'s
sampler for a token generator. Whatever the model runs is compiled; nothing else is. It also writes the bytecode
of the runtime's Python modules where the install has none (as pip does), so they are not compiled at every start.

    rnnedge compile model.int8.safetensors                          # the usual caches (below)
    rnnedge compile a.f32.safetensors b.int8.safetensors --cache-dir /opt/app/kernels   # a cache to ship

Where the compiled code goes: numba's cache ($NUMBA_CACHE_DIR, else __pycache__ beside each kernel module when it
is writable, else numba's per-user cache) and, for kernels generated for one model, runtime/specialize.py's
folder ($RNNEDGE_CACHE_DIR, else ~/.cache/rnnedge/kernels). --cache-dir DIR sets both to DIR; a device then runs
with RNNEDGE_CACHE_DIR=DIR and NUMBA_CACHE_DIR=DIR. numba keys its cache on the kernel's source file (its path and
modification time) and on the CPU it compiled for, so compile on the device, or on an image of it (the same install
path, files copied with their times, the same CPU model).

Exit status (runtime/command.py): 0 compiled, 2 bad input (a file that is no rnnedge weight file, or a --cache-dir
that cannot be used: one line naming it; nothing is compiled), 3 an internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rnnedge.runtime import sniff
from rnnedge.runtime.command import OK, bad_input, guarded, regular_file
from rnnedge.runtime.options import RawHelpFormatter

PROG = "rnnedge compile"
BATCH = 2  # a stream of several sequences: the batch > 1 path of a step that has one
WIDE = 16  # and of many: int8w's step for many streams where it has its own (from 8 or 16 streams:
# fused_float_source.CONVERT_FROM / CONVERT_FROM_HALF), int8's run() of four sequences and more (fused_int8_seq.py)
STEPS = 3  # time steps of run()'s sequence and of generate()'s text: enough to reach every kernel


def build_parser() -> argparse.ArgumentParser:
    description, epilog = __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)
    parser = argparse.ArgumentParser(prog=PROG, description=description, epilog=epilog,
                                     formatter_class=RawHelpFormatter)
    parser.add_argument("models", metavar="MODEL", nargs="+", help="model.<precision>.safetensors written by "
                        "rnnedge export")
    parser.add_argument("--cache-dir", metavar="DIR", help="keep all compiled code in DIR (sets RNNEDGE_CACHE_DIR "
                        "and NUMBA_CACHE_DIR; a device runs with both set to DIR)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command; returns its exit status (module docstring). Bad options exit 2 through argparse."""
    args = build_parser().parse_args(argv)
    return guarded(PROG, lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    if args.cache_dir is not None:
        refusal = use_cache_dir(args.cache_dir)
        if refusal:
            return bad_input(PROG, refusal)
    from rnnedge import runtime

    models = []
    for path in args.models:  # every file is read before anything is compiled
        try:
            path = str(regular_file(path, "MODEL"))
            advice = sniff.advice(path, f"{PROG}'s MODEL")
            if advice:
                return bad_input(PROG, advice)
            models.append((path, runtime.load(path)))
        except (OSError, ValueError) as e:
            return bad_input(PROG, str(e))
    byte_compile_runtime()
    for path, model in models:
        if not args.quiet:
            print(f"{PROG}: compiling the kernels of {path} ...", file=sys.stderr, flush=True)
        print_facts(path, model, compile_model(model), args.quiet)
    return OK


def byte_compile_runtime() -> None:
    """The runtime's own modules as bytecode (__pycache__ beside them), as pip writes them at install: an editable
    or copied install, or one made with PYTHONDONTWRITEBYTECODE, otherwise compiles their Python source in every
    process (~70 ms of a ~0.4 s start). Up-to-date files are left alone; a read-only install is left as it is."""
    import compileall

    import rnnedge
    from rnnedge import runtime

    for folder in {Path(runtime.__file__).parent, Path(rnnedge.__file__).parent}:
        if folder.is_dir() and os.access(folder, os.W_OK):
            compileall.compile_dir(str(folder), maxlevels=0, quiet=2)


def use_cache_dir(folder: str) -> str | None:
    """Point both caches at `folder` (created if need be); the reason it cannot be used, or None. numba reads
    NUMBA_CACHE_DIR when it is imported, so this must run first: the umbrella command imports nothing else first."""
    path = Path(folder).resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"--cache-dir {folder}: cannot create it: {e.strerror or e}"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"--cache-dir {folder}: not writable by this user"
    if "numba" in sys.modules:
        from numba.core import config

        if Path(config.CACHE_DIR or "").resolve() != path:
            return (f"--cache-dir {folder}: numba is already loaded in this process with another cache; run "
                    f"rnnedge compile as its own command")
    os.environ["RNNEDGE_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"] = str(path)
    return None


def compile_model(model) -> dict:
    """Call everything `model` runs on a device, once; what numba compiled or loaded meanwhile, and how long."""
    from rnnedge.runtime.spec import can_stream

    before = dispatcher_counts()
    started = time.perf_counter()
    calls = []
    if can_stream(model.spec):
        for batch in (1, BATCH, WIDE):
            model.stream(batch).step(_zeros(model, batch))
        calls.append(f"step (batch 1, {BATCH} and {WIDE})")
    for batch in (1, WIDE):  # one sequence, and several: int8's run() has a function for each (fused_int8_seq.py)
        model.run(_zeros(model, batch, STEPS))
    calls.append(f"run() (batch 1 and {WIDE})")
    if model.spec["task"] == "generate" and can_stream(model.spec):
        model.generate([0], STEPS)
        calls.append("generate()")
    seconds = time.perf_counter() - started
    after = dispatcher_counts()
    compiled = sum(after[k][1] - before.get(k, (0, 0, ""))[1] for k in after)
    loaded = sum(after[k][0] - before.get(k, (0, 0, ""))[0] for k in after)
    folders = sorted({after[k][2] for k in after if after[k][:2] != before.get(k, (0, 0, ""))[:2] and after[k][2]})
    return {"calls": calls, "seconds": seconds, "compiled": compiled, "loaded": loaded, "folders": folders}


def dispatcher_counts() -> dict[int, tuple[int, int, str]]:
    """For every numba kernel of rnnedge loaded in this process (its modules and the generated ones): (signatures
    loaded from the cache, signatures compiled, its cache folder), by the kernel's id."""
    from numba.core.dispatcher import Dispatcher

    counts = {}
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("rnnedge.", "rnnedge_generated.")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, Dispatcher) and id(value) not in counts:
                stats = value.stats
                counts[id(value)] = (sum(stats.cache_hits.values()), sum(stats.cache_misses.values()),
                                     stats.cache_path or "")
    return counts


def print_facts(path: str, model, done: dict, quiet: bool) -> None:
    if quiet:
        return
    from rnnedge.runtime.specialize import cache_dir

    info = model.kernel_info
    step = info["step"] + (f" ({info['why']})" if "why" in info else "")
    print(f"{path}: {model.precision}, {step} step")
    print(f"  compiled   {done['compiled']} numba kernel(s), loaded {done['loaded']} from the cache, in "
          f"{done['seconds']:.2f} s, calling {', '.join(done['calls'])}")
    folders = ", ".join(done["folders"]) or "none touched (every kernel was already in this process)"
    print(f"  numba      {folders}")
    print(f"  generated  {cache_dir()} (kernels generated for this model: runtime/specialize.py)")


def _zeros(model, batch: int, steps: int | None = None):
    """A valid input of zeros: features (batch[, steps], F) float32, or token 0 (batch[, steps]) int64."""
    import numpy as np

    shape = (batch,) if steps is None else (batch, steps)
    return np.zeros((*shape, model.features), np.float32) if model.dense else np.zeros(shape, np.int64)


if __name__ == "__main__":
    sys.exit(main())
