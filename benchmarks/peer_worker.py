"""One engine on one workload in a fresh process (started by benchmarks.peers; not meant to be run by hand).

argv[1] is a JSON object: engine, folder, workload, t0 (the parent's time.time() just before it started this
process), core, mode ("cold": first output only; "full": every column), inner (timed passes per column), quick.
Prints one JSON object on its last stdout line. Only the standard library loads before the engine does, so the
time to first output counts the engine's own imports and nothing of the harness's.
"""

import json
import os
import sys
import time


def vm_hwm_kb() -> int:
    """This process's peak resident set (VmHWM), kB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def main() -> None:
    cfg = json.loads(sys.argv[1])
    if cfg.get("core") is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cfg["core"]})
    from pathlib import Path

    import numpy as np

    from benchmarks import peer_engines

    folder, workload = Path(cfg["folder"]), cfg["workload"]
    engine = peer_engines.load(cfg["engine"], folder, workload)
    features = engine.spec["input"]["features"]
    with engine.context():
        streamer = engine.streamer(1)
        if streamer is not None:
            y = engine.output(streamer[1](engine.prepare(np.zeros((1, features), np.float32))))
        else:
            y = engine.output(engine.run(engine.prepare(np.zeros((1, cfg["seq_steps"], features), np.float32))))
    first = time.time() - cfg["t0"]
    result = {"first_output_s": first, "first_output_rss_kb": vm_hwm_kb(), "first_y_finite": bool(np.isfinite(y).all()),
              "model_bytes": engine.model_bytes}
    if cfg["mode"] == "full":
        data = np.load(folder / f"{workload}.inputs.npz")
        with engine.context():
            result["columns"] = measure(engine, data, cfg["inner"], cfg["batches"])
        result["peak_rss_kb"] = vm_hwm_kb()
    print(json.dumps(result))


def timed(fn, inner: int) -> float:
    """Median seconds of `inner` calls of fn."""
    times = []
    for _ in range(inner):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def stream_column(engine, X, ref, inner: int) -> dict | None:
    """X (B, T, F): one step per call over T steps; us per stream-step and max abs error vs ref (B, T, out)."""
    import numpy as np

    B, T = X.shape[0], X.shape[1]
    s = engine.streamer(B)
    if s is None:
        return None
    reset, step = s
    xs = [engine.prepare(X[:, t]) for t in range(T)]
    reset()
    ys = np.stack([engine.output(step(x)).copy() for x in xs], axis=1)  # also the warm-up pass
    err = float(np.max(np.abs(ys - ref)))

    def one_pass():
        reset()
        for x in xs:
            step(x)

    import gc

    gc.disable()
    try:
        seconds = timed(one_pass, inner)
    finally:
        gc.enable()
    return {"us": seconds / (B * T) * 1e6, "max_err": err}


def sequence_column(engine, X, ref, inner: int) -> dict:
    import gc

    import numpy as np

    x = engine.prepare(X)
    y = engine.output(engine.run(x))
    err = float(np.max(np.abs(y - ref)))
    gc.disable()
    try:
        seconds = timed(lambda: engine.run(x), inner)
    finally:
        gc.enable()
    return {"us": seconds / (X.shape[0] * X.shape[1]) * 1e6, "max_err": err}


def measure(engine, data, inner: int, batches: list[int]) -> dict:
    cols = {}
    if "step" in data:
        cols["step"] = stream_column(engine, data["step"], data["ref_step"], inner)
        for b in batches:
            cols[f"b{b}"] = stream_column(engine, data["batch"][:b], data["ref_batch"][:b], inner)
    cols["seq"] = sequence_column(engine, data["seq"], data["ref_seq"], inner)
    cols["seq32"] = sequence_column(engine, data["seq32"], data["ref_seq32"], inner)
    return cols


if __name__ == "__main__":
    main()
