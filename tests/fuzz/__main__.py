"""`python -m tests.fuzz --weights 100000 --vectors 100000 [--seed S] [--header-flips] [--json out.json]`: the
mutation figures.

Prints, per kind: cases, refusals by reason, accepted unchanged, accepted with changed outputs, other exceptions by
type, the tracemalloc peak memory ratio, and the process's ru_maxrss growth over the run; then one replayable line
per failure class. Exit 1 if any case failed (accepted changed, a foreign exception, over the memory bound, or
ru_maxrss growth above RSS_FACTOR x the largest file + RSS_OVERHEAD). `--case kind/base/mutator/seed` replays one.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings

RSS_FACTOR = 2
# ru_maxrss also grows for what is not the readers' doing: numba loading a cached kernel the bases did not use
# (a mutation that is accepted as another cell or head), tracemalloc's own tables, allocator fragmentation
RSS_OVERHEAD = 64 * 1024**2


def _maxrss() -> int:
    """Peak resident set of this process in bytes (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description="The mutation figures (tests/fuzz).")
    parser.add_argument("--weights", type=int, default=20000, help="mutated weight files (default 20000)")
    parser.add_argument("--vectors", type=int, default=5000, help="mutated vectors files (default 5000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the figures and failure lines here")
    parser.add_argument("--header-flips", action="store_true",
                        help="also every single-bit flip of every base's header (~86,000 weights, ~64,000 vectors)")
    parser.add_argument("--case", help="replay one case, kind/base/mutator/seed, and print what happened")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # numpy's overflow warnings on accepted huge numbers would flood the output

    from tests.fuzz.bases import bases
    from tests.fuzz.engine import Case, header_flip_cases, run, run_case, scratch_dir

    bases()
    if args.case:
        import tempfile
        import tracemalloc

        tracemalloc.start()
        with tempfile.TemporaryDirectory(dir=scratch_dir()) as workdir:
            r = run_case(Case.parse(args.case), workdir)
        print(r.describe())
        print(f"verdict {r.verdict}; file {r.size} B; tracemalloc peak {r.peak} B; over the bound: {r.over_memory}")
        return int(r.verdict in ("changed", "foreign") or r.over_memory)

    # warm-up: every base read, loaded and run once, so the readers' imports and the kernels the bases use are in
    # before ru_maxrss is measured
    for kind in ("weights", "vectors"):
        run(kind, 0, only=[Case(kind, b.name, "repack", 0) for b in bases()])
    largest = max(max(len(b.weights), len(b.vectors)) for b in bases())
    out, failed = {"seed": args.seed}, False
    sections = [("weights", "weights", args.weights, None), ("vectors", "vectors", args.vectors, None)]
    if args.header_flips:
        sections += [(f"{kind} header flips", kind, 0, header_flip_cases(kind)) for kind in ("weights", "vectors")]
    for label, kind, n, only in sections:
        n = n if only is None else len(only)
        if n <= 0:
            continue
        rss0, t0 = _maxrss(), time.perf_counter()
        summary = run(kind, n, args.seed, only=only, progress=(max(n // 10, 1), lambda s, label=label: print(
            f"  {label}: {s.cases} cases, {len(s.failures)} failures", file=sys.stderr, flush=True)))
        seconds = time.perf_counter() - t0
        growth = _maxrss() - rss0
        figures = summary.figures()
        figures.update(seconds=round(seconds, 1), ru_maxrss_growth_bytes=growth,
                       ru_maxrss_bound=f"{RSS_FACTOR} x largest base file ({largest} B) + {RSS_OVERHEAD} B",
                       failure_classes=summary.failure_classes())
        rss_over = growth > RSS_FACTOR * largest + RSS_OVERHEAD
        failed |= bool(summary.failures) or rss_over
        out[label] = figures
        seeded = "every bit once" if only else f"seed {args.seed}"
        print(f"== {label}: {summary.cases} cases in {seconds:.0f} s ({seeded})")
        print(f"refused: {figures['refused']}")
        for reason, count in figures["refused_by_reason"].items():
            print(f"    {count:7d}  {reason}")
        print(f"accepted unchanged: {figures['accepted_unchanged']}")
        print(f"accepted with changed outputs: {figures['accepted_changed']}")
        print(f"resealed and accepted as another model (not a failure): "
              f"{figures['accepted_resealed_as_another_model']}")
        print(f"other exceptions: {sum(figures['other_exceptions_by_type'].values())} "
              f"{figures['other_exceptions_by_type']}")
        over = f" (OVER {figures['ru_maxrss_bound']})" if rss_over else ""
        ratio = next(v for k, v in figures.items() if k.startswith("max_peak_ratio"))
        load = next(v for k, v in figures.items() if k.startswith("max_load_peak_ratio"))
        print(f"memory: reader's max tracemalloc peak / file size {ratio} (files >= 64 KiB; runtime.load of accepted "
              f"files: {load}), max peak - 2 x size "
              f"{figures['max_peak_excess_bytes']} B, cases over the bound ({figures['memory_bound']}): "
              f"{figures['over_memory']}; ru_maxrss growth {growth} B{over}")
        for line in figures["failure_classes"][:80]:
            print("  FAIL " + line[:400])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    print("FAILED" if failed else "PASSED")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
