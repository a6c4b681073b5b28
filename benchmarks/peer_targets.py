"""Issue 15's targets, checked against one run of benchmarks.peers: which are met on each workload and, for any
that is not, by how much. Each check reads the run's medians (its table), the numba floor's row and the compute
floor (benchmarks/compute_floor.py); one whose figures the run lacks (an engine left out, a column a workload does
not have) is listed as not measured, never as met.

    per step, B = 1        int8 and int8w >= 3x faster than the best peer; f32 >= 1.5x faster than LiteRT fp32;
                           int8 <= int8w <= f32 in time
    whole sequence, B = 1  int8 and int8w >= 3x faster than ORT's quantised call; f32 faster than ORT fp32; a model
                           that cannot stream (seed) also faster than the best peer at B = 1 and B = 32
    batched, B = 8/64/256  rnnedge (its fastest precision) faster than ORT fp32 and ORT int8; each precision faster
                           than ORT's like it (f32: fp32; int8w, int8: quantize_dynamic, as for whole sequences);
                           at B = 64 and 256 each within 1.5x of its precision's compute floor
    cold start             warm cache <= 1.2x the numba floor's; empty cache <= 5 s; peak RSS <= the floor's + 10 MB
"""

from __future__ import annotations

STEP_SPEEDUP = 3.0  # int8 / int8w per step and whole sequence: times faster than the peer named
F32_STEP_SPEEDUP = 1.5  # f32 per step against LiteRT fp32
FLOOR_FACTOR = 1.5  # batched at B >= 64: at most this times the compute floor
COLD_WARM_FACTOR, COLD_EMPTY_S, RSS_ABOVE_MB = 1.2, 5.0, 10.0
PRECISIONS = ("f32", "int8w", "int8")
ORT = ("ort_fp32", "ort_int8")


def _check(name: str, value: float | None, limit: float, higher_is_better: bool, unit: str, against: str) -> dict:
    """One target: value against limit (None: not measured)."""
    met = None if value is None else (value >= limit if higher_is_better else value <= limit)
    return {"target": name, "value": value, "limit": limit, "met": met, "unit": unit, "against": against}


def _speedup(rows: dict, column: str, engine: str, peers: tuple[str, ...]) -> tuple[float | None, str]:
    """How many times faster `engine` is than the fastest of `peers` in `column` (None: a figure is missing)."""
    mine = rows.get(engine, {}).get(column)
    theirs = {p: rows[p][column] for p in peers if rows.get(p, {}).get(column)}
    if not mine or not theirs:
        return None, "/".join(peers)
    best = min(theirs, key=theirs.get)
    return theirs[best] / mine, best


def check(rows: dict, peers: tuple[str, ...], gaps: dict | None = None, floor_row: dict | None = None) -> list[dict]:
    """Every target of the module docstring for one workload's table rows (engine -> column -> median); peers:
    the peer engines of the run; gaps: compute_floor.against_floor's rows for this workload; floor_row: the
    numba floor's row."""
    out = []
    engine = {p: f"rnnedge_{p}" for p in PRECISIONS}
    streams = any(rows.get(engine[p], {}).get("step") for p in PRECISIONS)
    for p in ("int8", "int8w"):
        if streams:
            v, best = _speedup(rows, "step", engine[p], peers)
            out.append(_check(f"step {p}", v, STEP_SPEEDUP, True, "x faster", best))
        v, best = _speedup(rows, "seq", engine[p], ("ort_int8",))
        out.append(_check(f"seq {p}", v, STEP_SPEEDUP, True, "x faster", best))
    if streams:
        v, best = _speedup(rows, "step", engine["f32"], ("litert_fp32",))
        out.append(_check("step f32", v, F32_STEP_SPEEDUP, True, "x faster", best))
        steps = [rows.get(engine[p], {}).get("step") for p in ("int8", "int8w", "f32")]
        ordered = None if None in steps else float(steps[0] <= steps[1] <= steps[2])
        out.append(_check("step int8 <= int8w <= f32", ordered, 1.0, True, "", "rnnedge"))
    v, best = _speedup(rows, "seq", engine["f32"], ("ort_fp32",))
    out.append(_check("seq f32", v, 1.0, True, "x faster", best))
    if not streams:  # a model that cannot stream: its whole sequences ahead of every peer
        for p in PRECISIONS:
            for column in ("seq", "seq32"):
                v, best = _speedup(rows, column, engine[p], peers)
                out.append(_check(f"{column} {p} vs best peer", v, 1.0, True, "x faster", best))
    if streams:
        for column in ("b8", "b64", "b256"):
            fastest = min((e for e in engine.values() if rows.get(e, {}).get(column)),
                          key=lambda e: rows[e][column], default=engine["int8"])
            v, best = _speedup(rows, column, fastest, ORT)
            out.append(_check(f"{column} rnnedge ({fastest.removeprefix('rnnedge_')}) vs ORT", v, 1.0, True,
                              "x faster", best))
        for p in PRECISIONS:
            for column in ("b8", "b64", "b256"):
                v, best = _speedup(rows, column, engine[p], ("ort_fp32",) if p == "f32" else ("ort_int8",))
                out.append(_check(f"{column} {p}", v, 1.0, True, "x faster", best))
            for column in ("b64", "b256"):
                g = (gaps or {}).get(engine[p], {})
                out.append(_check(f"{column} {p} vs compute floor", g.get(column), FLOOR_FACTOR, False,
                                  "x the floor", "compute floor"))
    for p in PRECISIONS:
        row = rows.get(engine[p])
        if row is None:
            continue
        warm = row["cold_warm"] / floor_row["cold_warm"] if floor_row and row.get("cold_warm") else None
        out.append(_check(f"cold warm {p}", warm, COLD_WARM_FACTOR, False, "x the numba floor", "numba floor"))
        out.append(_check(f"cold empty {p}", row.get("cold_empty"), COLD_EMPTY_S, False, "s", "-"))
        above = row["rss"] - floor_row["rss"] if floor_row and row.get("rss") is not None else None
        out.append(_check(f"RSS {p}", above, RSS_ABOVE_MB, False, "MB above the numba floor", "numba floor"))
    return out


def _figure(c: dict) -> str:
    """A missed target's figure and what it needed, e.g. "2.63x faster than litert_int8 (needs 3x)" (one digit more
    where two decimals would show the limit itself)."""
    if c["unit"] == "":
        return "(not so)"
    value, limit, unit = c["value"], c["limit"], c["unit"]
    digits = 3 if round(value, 2) == limit else 2
    if unit == "x faster":
        return f"{value:.{digits}f}x faster than {c['against']} (needs {limit:g}x)"
    if unit == "s":
        return f"{value:.2f} s (needs <= {limit:g} s)"
    if unit.startswith("x "):
        return f"{value:.{digits}f}{unit} (needs <= {limit:g}x)"
    return f"{value:.1f} {unit} (needs <= {limit:g})"


def summary(workload: str, checks: list[dict]) -> str:
    """One paragraph: how many targets are met, then each one that is not (with its figure) or not measured."""
    met = [c for c in checks if c["met"]]
    missed = [c for c in checks if c["met"] is False]
    unmeasured = [c for c in checks if c["met"] is None]
    text = f"{workload}, issue 15's targets: {len(met)} of {len(checks)} met"
    if missed:
        text += "; not met: " + "; ".join(f"{c['target']} {_figure(c)}" for c in missed)
    if unmeasured:
        text += "; not measured in this run: " + ", ".join(c["target"] for c in unmeasured)
    return text
