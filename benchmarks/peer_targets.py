"""Issue 15's targets, checked against one run of benchmarks.peers: which are met on each workload and, for any
that is not, by how much. Each check reads the run's medians (its table), the numba floor's row and the compute
floor (benchmarks/compute_floor.py); one whose figures the run lacks (an engine left out, a column a workload does
not have) is listed as not measured, never as met. A speed target that is missed says the time it needed, and,
where that time is below the precision's compute floor (its multiply-adds at its instruction's measured peak),
says so: no implementation of that precision's arithmetic reaches it on this CPU, whatever else it spends.

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


def _check(name: str, value: float | None, limit: float, higher_is_better: bool, unit: str, against: str,
           needs_us: float | None = None, floor_us: float | None = None) -> dict:
    """One target: value against limit (None: not measured); a speed target's needs_us (the time that meets it, us)
    and floor_us (its precision's compute floor, us; None where the run has none)."""
    met = None if value is None else (value >= limit if higher_is_better else value <= limit)
    return {"target": name, "value": value, "limit": limit, "met": met, "unit": unit, "against": against,
            "needs_us": needs_us, "floor_us": floor_us}


def _speedup(rows: dict, column: str, engine: str, peers: tuple[str, ...]) -> tuple[float | None, str, float | None]:
    """How many times faster `engine` is than the fastest of `peers` in `column` (None: a figure is missing), that
    peer, and its time (us)."""
    mine = rows.get(engine, {}).get(column)
    theirs = {p: rows[p][column] for p in peers if rows.get(p, {}).get(column)}
    if not mine or not theirs:
        return None, "/".join(peers), None
    best = min(theirs, key=theirs.get)
    return theirs[best] / mine, best, theirs[best]


def _faster(name: str, rows: dict, column: str, engine: str, peers: tuple[str, ...], limit: float,
            gaps: dict | None) -> dict:
    """The target "`engine` at least `limit` times faster than the fastest of `peers` in `column`", with the time
    it needs and the engine's compute floor (gaps: compute_floor.against_floor's rows)."""
    value, best, theirs = _speedup(rows, column, engine, peers)
    floor = (gaps or {}).get(engine, {}).get("floor_us")
    return _check(name, value, limit, True, "x faster", best, None if theirs is None else theirs / limit, floor)


def check(rows: dict, peers: tuple[str, ...], gaps: dict | None = None, floor_row: dict | None = None) -> list[dict]:
    """Every target of the module docstring for one workload's table rows (engine -> column -> median); peers:
    the peer engines of the run; gaps: compute_floor.against_floor's rows for this workload; floor_row: the
    numba floor's row."""
    out = []
    engine = {p: f"rnnedge_{p}" for p in PRECISIONS}
    streams = any(rows.get(engine[p], {}).get("step") for p in PRECISIONS)
    for p in ("int8", "int8w"):
        if streams:
            out.append(_faster(f"step {p}", rows, "step", engine[p], peers, STEP_SPEEDUP, gaps))
        out.append(_faster(f"seq {p}", rows, "seq", engine[p], ("ort_int8",), STEP_SPEEDUP, gaps))
    if streams:
        out.append(_faster("step f32", rows, "step", engine["f32"], ("litert_fp32",), F32_STEP_SPEEDUP, gaps))
        steps = [rows.get(engine[p], {}).get("step") for p in ("int8", "int8w", "f32")]
        ordered = None if None in steps else float(steps[0] <= steps[1] <= steps[2])
        out.append(_check("step int8 <= int8w <= f32", ordered, 1.0, True, "", "rnnedge"))
    out.append(_faster("seq f32", rows, "seq", engine["f32"], ("ort_fp32",), 1.0, gaps))
    if not streams:  # a model that cannot stream: its whole sequences ahead of every peer
        for p in PRECISIONS:
            for column in ("seq", "seq32"):
                out.append(_faster(f"{column} {p} vs best peer", rows, column, engine[p], peers, 1.0, gaps))
    if streams:
        for column in ("b8", "b64", "b256"):
            fastest = min((e for e in engine.values() if rows.get(e, {}).get(column)),
                          key=lambda e: rows[e][column], default=engine["int8"])
            out.append(_faster(f"{column} rnnedge ({fastest.removeprefix('rnnedge_')}) vs ORT", rows, column,
                               fastest, ORT, 1.0, gaps))
        for p in PRECISIONS:
            for column in ("b8", "b64", "b256"):
                out.append(_faster(f"{column} {p}", rows, column, engine[p],
                                   ("ort_fp32",) if p == "f32" else ("ort_int8",), 1.0, gaps))
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
        needs, floor = c.get("needs_us"), c.get("floor_us")
        if needs is None:
            return f"{value:.{digits}f}x faster than {c['against']} (needs {limit:g}x)"
        bound = (f", under this precision's compute floor of {floor:.3g} us: out of reach at its instruction's peak"
                 if floor and needs < floor else "")
        return f"{value:.{digits}f}x faster than {c['against']} (needs {limit:g}x: {needs:.3g} us{bound})"
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
