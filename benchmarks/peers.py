"""rnnedge (f32 / int8w / int8) against its peers: PyTorch eager, ONNX Runtime fp32 and quantize_dynamic, and the
LiteRT interpreter fp32 and full-int8, on the same weights.

    python -m benchmarks.peers                  # full run: markdown table, JSON in artifacts/bench/
    python -m benchmarks.peers --quick          # a smoke test (few steps, one repetition)
    python -m benchmarks.peers --save           # also benchmarks/results/peers.{json,md} (the README's run)
    python -m benchmarks.peers --engines rnnedge_f32,ort_fp32 --workloads kws

Workloads (benchmarks.peer_build, one seeded PyTorch model each, exported to every engine from that model):
kws LSTM(40->128)+Linear(12) and har GRU(6->64)x2+Linear(6) on every step; seed, a bidirectional 2-layer tanh
RNN(16->64) classifying T=200 steps (whole sequences only: it cannot stream). --workloads also takes a shape
(lstm256-in13-out10: LSTM(13->256)+Linear(10); gru100x2; rnn_tanh64x2bi; peer_build.SHAPE_HELP) or a model file (an
rnnedge artifact or spec: its shape), each built the same way from seeded weights.

Columns: per step at batch 1 (one step per call, state carried; us/step); whole sequence at batch 1 and 32 (us
per stream-step); batched streams B = 8/64/256 (one step per call for all B streams; us per stream-step); cold
start to first output of a fresh process (interpreter start, imports, model load, one step) with an empty numba
cache (a new NUMBA_CACHE_DIR) and with a warm one; that process's peak RSS (VmHWM) at first output; bytes of the
files the engine loads; and the largest error of the engine's outputs against PyTorch float on the same inputs,
over every column.

Method: every measurement runs in a process of its own (benchmarks.peer_worker), pinned to one core, with every
thread pool at one thread (OMP/MKL/OpenBLAS/numba environment, torch.set_num_threads(1), ORT intra/inter-op 1,
LiteRT num_threads=1). One repetition starts one process per (workload, engine), engines in a rotated order
each repetition; a figure is the median over repetitions of the median of --inner timed passes in that process.
The ratio row gives rnnedge / best peer per column (below 1: rnnedge is faster / smaller). numba_floor is not an
engine: the cold start and RSS of the smallest numba program (import numba, one cached tiny kernel), the floor
rnnedge's own cold start is compared with. The compute floor of a stream-step per precision (multiply-adds / the
measured peak of the instruction its batched products use: benchmarks/compute_floor.py) is measured once per run
on the same core, and rnnedge's B = 64 and 256 figures are given over it. Last, issue 15's targets on each
workload (benchmarks/peer_targets.py): how many are met, and each one that is not with its figure (a speed target
also with the time it needed, and whether that is under the precision's compute floor). rnnedge's Python modules
are byte-compiled first, as pip does at install (an editable install under PYTHONDONTWRITEBYTECODE would otherwise
compile their source in every process).

LiteRT needs TensorFlow to convert the weights to .tflite: the harness creates a separate virtual environment
for that (--bench-venv, default artifacts/bench-venv: pip install tensorflow-cpu ai-edge-litert, about 1.6 GB)
and runs the LiteRT engines in it; nothing is installed into the project's environment. --no-litert skips them.
No timing is asserted; the process exits 1 if an engine fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RNNEDGE = ("rnnedge_f32", "rnnedge_int8w", "rnnedge_int8")
PEERS = ("torch", "ort_fp32", "ort_int8", "litert_fp32", "litert_int8")
LITERT = ("litert_fp32", "litert_int8")
FLOOR = "numba_floor"  # cold start and RSS only: import numba + one cached tiny kernel (benchmarks/numba_floor.py)
BENCH_VENV_PACKAGES = ("tensorflow-cpu", "ai-edge-litert")
COLUMNS = [  # key, heading
    ("step", "step B=1 us"), ("seq", "seq B=1 us/step"), ("seq32", "seq B=32 us/s-step"),
    ("b8", "B=8 us/s-step"), ("b64", "B=64 us/s-step"), ("b256", "B=256 us/s-step"),
    ("cold_empty", "cold empty s"), ("cold_warm", "cold warm s"), ("rss", "RSS MB"),
    ("bytes", "model KB"), ("err", "max err"),
]
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
              "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


def pick_core(core: int | None) -> int | None:
    if not hasattr(os, "sched_getaffinity"):
        return None
    return max(os.sched_getaffinity(0)) if core is None else core


def ensure_bench_venv(venv: Path) -> Path:
    """The benchmark's own environment for TensorFlow and LiteRT; created on first use."""
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"creating {venv} for the LiteRT peer ({', '.join(BENCH_VENV_PACKAGES)}; once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", *BENCH_VENV_PACKAGES], check=True)
    return py


def worker_env(cache_dir: str | None) -> dict:
    """Single-threaded pools; cache_dir: a NUMBA_CACHE_DIR and RNNEDGE_CACHE_DIR of its own, or None for this
    install's usual caches."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if cache_dir is not None:  # nothing compiled before: numba's machine code and rnnedge's generated kernels
        env["NUMBA_CACHE_DIR"] = env["RNNEDGE_CACHE_DIR"] = cache_dir
    env.update({v: "1" for v in THREAD_ENV})
    return env


def run_worker(python: str, cfg: dict, cache_dir: str | None) -> dict:
    cfg = dict(cfg, t0=time.time())
    proc = subprocess.run([python, "-m", "benchmarks.peer_worker", json.dumps(cfg)], cwd=ROOT, check=False,
                          env=worker_env(cache_dir), capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{cfg['engine']} on {cfg['workload']} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def convert_litert(python: Path, folder: Path, workloads: dict) -> dict[str, str]:
    """Converts each workload to .tflite in the bench venv (one process per workload, so one that TensorFlow cannot
    convert leaves LiteRT out of that workload only); returns {workload: why LiteRT is left out of it}."""
    failed = {}
    for name, w in workloads.items():
        cmd = [str(python), "-m", "benchmarks.tflite_convert", str(folder), json.dumps({name: w["shapes"]})]
        proc = subprocess.run(cmd, cwd=ROOT, env=worker_env(None), capture_output=True, text=True,
                              check=False, timeout=3600)
        if proc.returncode != 0:
            failed[name] = ("tflite conversion failed: "
                            f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else '?'}")
    return failed


def median_or_none(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(runs: dict, cold: dict) -> dict:
    """Medians per workload, engine and column."""
    table = {}
    for (workload, engine), rs in runs.items():
        row = {}
        for key, _ in COLUMNS[:6]:
            row[key] = median_or_none([r["columns"][key]["us"] if r.get("columns", {}).get(key) else None
                                       for r in rs])
        row["cold_empty"] = median_or_none([c["first_output_s"] for c in cold.get((workload, engine), [])])
        row["cold_warm"] = median_or_none([r["first_output_s"] for r in rs])
        row["rss"] = median_or_none([r["first_output_rss_kb"] / 1024 for r in rs])
        row["bytes"] = rs[0]["model_bytes"] / 1024 if engine != FLOOR else None
        row["err"] = max((c["max_err"] for r in rs for c in r.get("columns", {}).values() if c), default=None)
        table.setdefault(workload, {})[engine] = row
    return table


def ratios(rows: dict) -> dict:
    """Per rnnedge engine and column: its figure / the best (lowest) peer's, and which peer that is."""
    out = {}
    for engine in (e for e in RNNEDGE if e in rows):
        out[engine] = {}
        for key, _ in COLUMNS[:-1]:
            peers = {p: rows[p][key] for p in PEERS if p in rows and rows[p][key] is not None}
            if rows[engine][key] is None or not peers:
                continue
            best = min(peers, key=peers.get)
            out[engine][key] = {"ratio": rows[engine][key] / peers[best], "best_peer": best}
    return out


def floor_gap(rows: dict) -> dict:
    """Per rnnedge engine: warm cold start / the numba floor's, and RSS at first output above the floor's (MB)."""
    f = rows.get(FLOOR)
    if not f:
        return {}
    return {e: {"cold_warm_over_floor": rows[e]["cold_warm"] / f["cold_warm"],
                "cold_empty_over_floor": (rows[e]["cold_empty"] / f["cold_empty"]
                                          if rows[e]["cold_empty"] and f["cold_empty"] else None),
                "rss_above_floor_mb": rows[e]["rss"] - f["rss"]} for e in RNNEDGE if e in rows}


def measure_compute_floor(core: int | None) -> dict | str:
    """The instructions' peak rates (benchmarks.compute_floor), in a process of its own pinned to `core` like the
    engines; or why they could not be measured (the table is still written)."""
    cmd = [sys.executable, "-m", "benchmarks.compute_floor"] + ([] if core is None else ["--core", str(core)])
    proc = subprocess.run(cmd, cwd=ROOT, env=worker_env(None), capture_output=True, text=True, check=False,
                          timeout=600)
    if proc.returncode != 0:
        return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(v: float | None, key: str) -> str:
    if v is None:
        return "-"
    if key == "err":
        return f"{v:.1e}"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def markdown(table: dict, ratio: dict) -> str:
    lines = ["| workload | engine | " + " | ".join(h for _, h in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for workload, rows in table.items():
        for engine, row in rows.items():
            lines.append(f"| {workload} | {engine} | " + " | ".join(fmt(row[k], k) for k, _ in COLUMNS) + " |")
        r = ratio[workload]
        cells = [" / ".join(f"{r[e][k]['ratio']:.2f}" if k in r.get(e, {}) else "-" for e in r) for k, _ in COLUMNS]
        lines.append(f"| {workload} | **{' / '.join(e.split('_')[1] for e in r)} / best peer** | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke test: few steps, 1 repetition, 1 timed pass")
    p.add_argument("--reps", type=int, default=5, help="repetitions (one process per engine each; default 5)")
    p.add_argument("--inner", type=int, default=3, help="timed passes per column in each process (default 3)")
    p.add_argument("--cold-reps", type=int, default=1,
                   help="empty-cache cold starts per engine (default 1; 0 leaves that column out)")
    p.add_argument("--steps", type=int, default=1000, help="per-step and whole-sequence steps (kws, har)")
    p.add_argument("--batch-steps", type=int, default=50, help="steps of the batched streams")
    p.add_argument("--engines", default=",".join(RNNEDGE + PEERS + (FLOOR,)), help="comma-separated engines")
    p.add_argument("--workloads", default="kws,har,seed",
                   help="comma-separated workloads: kws, har, seed (module docstring), "
                        "a shape such as lstm256-in13-out10 or gru100x2 (CELL HIDDEN[xLAYERS][bi][-inF][-outK]), "
                        "or a model file (.safetensors artifact or .json spec: its shape, seeded weights)")
    p.add_argument("--no-litert", action="store_true", help="leave the LiteRT engines out")
    p.add_argument("--bench-venv", type=Path, default=ROOT / "artifacts" / "bench-venv")
    p.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench", help="JSON and built models go here")
    p.add_argument("--core", type=int, default=None, help="the core to pin to (default: the last allowed)")
    p.add_argument("--keep-models", action="store_true", help="keep the built model files (default: deleted)")
    p.add_argument("--save", action="store_true",
                   help="also write benchmarks/results/peers.{json,md} (tracked: the README quotes that run)")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.inner, args.steps, args.batch_steps = 1, 1, 50, 5
        args.cold_reps = min(args.cold_reps, 1)
    from benchmarks import peer_build

    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(RNNEDGE + PEERS + (FLOOR,))
    if unknown:
        p.error(f"unknown engine(s) {sorted(unknown)}; choose from {', '.join(RNNEDGE + PEERS + (FLOOR,))}")
    if args.no_litert:
        engines = [e for e in engines if e not in LITERT]
    specs = {}
    for entry in (w for w in args.workloads.split(",") if w):
        try:
            name, spec = peer_build.workload_spec(entry)
        except ValueError as exc:
            p.error(str(exc))
        if name in specs:
            p.error(f"two workloads named {name!r} (--workloads {args.workloads})")
        specs[name] = spec
    names = list(specs)
    if not names:
        p.error("no workload given")
    args.out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="models-", dir=args.out))
    warm_cache = None  # the install's own numba cache: what a deployed model starts with after its first run
    core = pick_core(args.core)
    print(f"building {', '.join(names)} in {folder}", flush=True)
    workloads = {}
    for name in names:
        seq_steps = 200 if name == "seed" else args.steps
        info = peer_build.build(folder, name, specs[name], args.steps, seq_steps, args.batch_steps)
        info["shapes"] = {"streams": info["streams"], "batches": [1, *peer_build.BATCHES],
                          "seq": [[1, seq_steps], [peer_build.SEQ_BATCH, seq_steps]]}
        info["seq_steps"] = seq_steps
        workloads[name] = info
    from rnnedge.runtime.compile_cmd import byte_compile_runtime

    byte_compile_runtime()  # bytecode as a pip install has it (an editable install may not), so no start compiles it
    skipped = {}  # (workload, engine) -> why that engine is left out of that workload
    for name, info in workloads.items():
        skipped.update({(name, e): why for e, why in info.pop("left_out").items() if e in engines})
    pythons = {e: sys.executable for e in engines}
    if any(e in LITERT for e in engines):
        py = ensure_bench_venv(args.bench_venv)
        for name, why in convert_litert(py, folder, workloads).items():
            skipped.update({(name, e): why for e in engines if e in LITERT})
        pythons.update({e: str(py) for e in engines if e in LITERT})
    if skipped:
        print(f"left out: {skipped}", flush=True)

    def cfg(engine, name, mode):
        return {"engine": engine, "folder": str(folder), "workload": name, "core": core, "mode": mode,
                "inner": args.inner, "batches": list(peer_build.BATCHES), "seq_steps": workloads[name]["seq_steps"]}

    failures = []
    cold, runs = {}, {}
    for name in names:  # the empty-cache cold starts, then one untimed process that fills the warm cache
        for engine in (e for e in engines if (name, e) not in skipped):
            for _ in range(args.cold_reps):
                with tempfile.TemporaryDirectory(prefix="numba-empty-") as empty:
                    cold.setdefault((name, engine), []).append(run_worker(pythons[engine], cfg(engine, name, "cold"),
                                                                          empty))
            warm = run_worker(pythons[engine], cfg(engine, name, "cold"), warm_cache)
            empty = cold[(name, engine)][-1]["first_output_s"] if args.cold_reps else None
            # the untimed process's own start (it compiles into the install's cache what that cache lacks): not the
            # warm start the table quotes, which the repetitions measure
            print(f"  cold start {name} {engine}: empty cache {fmt(empty, 's')} s; filling the warm cache "
                  f"{warm['first_output_s']:.2f} s", flush=True)
    compute = measure_compute_floor(core) if any(e in RNNEDGE for e in engines) else None
    for rep in range(args.reps):
        order = engines[rep % len(engines):] + engines[: rep % len(engines)]
        for name in names:
            for engine in (e for e in order if (name, e) not in skipped):
                try:
                    mode = "cold" if engine == FLOOR else "full"
                    runs.setdefault((name, engine), []).append(run_worker(pythons[engine], cfg(engine, name, mode),
                                                                          warm_cache))
                except RuntimeError as exc:
                    failures.append(str(exc))
                    print(exc, file=sys.stderr)
        print(f"  repetition {rep + 1}/{args.reps} done", flush=True)
    table = summarise(runs, cold)
    table = {w: {e: table[w][e] for e in engines if e in table.get(w, {})} for w in names}
    ratio = {w: ratios(rows) for w, rows in table.items()}
    floor = {w: floor_gap(rows) for w, rows in table.items()}
    text = markdown(table, ratio)
    for w, gaps in floor.items():
        if gaps:
            text += f"\n\n{w}, against the numba floor (cold warm x, RSS + MB): " + "; ".join(
                f"{e} {g['cold_warm_over_floor']:.2f}x, +{g['rss_above_floor_mb']:.0f} MB" for e, g in gaps.items())
    against = {}
    if isinstance(compute, dict):
        from benchmarks import compute_floor

        for w, rows in table.items():
            against[w] = compute_floor.against_floor(rows, specs[w], compute)
            if any(g["b64"] or g["b256"] for g in against[w].values()):
                text += "\n\n" + compute_floor.summary_line(w, compute_floor.stream_step_macs(specs[w]), against[w])
    elif compute is not None:
        text += f"\n\ncompute floor not measured: {compute}"
    from benchmarks import peer_targets

    targets = {w: peer_targets.check(rows, tuple(e for e in PEERS if e in rows), against.get(w), rows.get(FLOOR))
               for w, rows in table.items()}
    for w, checks in targets.items():
        text += "\n\n" + peer_targets.summary(w, checks)
    if skipped:
        text += "\n\nleft out: " + "; ".join(f"{e} on {w} ({why})" for (w, e), why in skipped.items())
    print(text)
    from benchmarks.machine import cpu_model

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.peers", *(argv or sys.argv[1:])]),
        "when_utc": stamp, "machine": {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "pinned_core": core,
                                       "load_average": os.getloadavg()},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "engines": engines, "left_out": {f"{w}/{e}": why for (w, e), why in skipped.items()},
        "workloads": {n: {"spec": w["spec"], "parameters": w["parameters"]} for n, w in workloads.items()},
        "columns": dict(COLUMNS), "table": table, "ratios": ratio, "numba_floor": floor,
        "compute_floor": {"measured": compute, "against": against}, "targets": targets, "markdown": text,
        "failures": failures,
        "runs": {f"{w}/{e}": rs for (w, e), rs in runs.items()},
        "cold_empty_runs": {f"{w}/{e}": rs for (w, e), rs in cold.items()},
    }
    out = args.out / f"peers-{stamp}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")
    if args.save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        m = report["machine"]
        head = (f"`{report['command']}` at {stamp} on {m['cpu_model']} ({m['cpu_count']} cores, one pinned: "
                f"{m['pinned_core']}; load average {', '.join(f'{x:.1f}' for x in m['load_average'])})\n\n")
        for name, body in (("peers.json", json.dumps(report, indent=1)), ("peers.md", head + text + "\n")):
            tmp = RESULTS / f".{name}.tmp"
            tmp.write_text(body)
            os.replace(tmp, RESULTS / name)
            print(f"wrote {RESULTS / name}")
    if not args.keep_models:
        shutil.rmtree(folder)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
