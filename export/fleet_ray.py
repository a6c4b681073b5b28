"""rnnedge eval --ray: the recordings mapped over Ray Data workers (the `scale` extra: pip install "rnnedge[scale]").

Imported only when --ray is given. A pool of actors, one per CPU of the cluster (at most one per recording), each
loads the artifact and its reference once (export/fleet.py Pair) and evaluates the recordings Ray Data hands it,
a block of them per batch. Each returns its row as JSON (a float survives JSON exactly, and a row's None fields need
no Arrow type), or the refusal of a bad recording, which the driver raises for the first such recording by name,
as the serial path would. A Ray instance this process did not find running is shut down at the end. ARTIFACT, its reference and RECORDINGS must be at the same paths on every node (a
shared file system); `local` starts Ray on this machine, or joins the instance this process already started.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import ray

from rnnedge.export import fleet

# Recordings are dealt out in this many blocks per worker, a block per call: few enough that Ray Data's cost per
# batch (tens of ms) is small beside a block's work, enough that a worker left with slow recordings is not waited on
# long. Measured (200 recordings of 2000 steps, 2 workers): one recording per batch took 12.1 s, against 6.2 s serial.
BLOCKS_PER_WORKER = 4


class Evaluator:
    """One Ray actor: the two models, loaded once, and the rows of the recordings it is given."""

    def __init__(self, artifact: str, reference: str, tolerance: float):
        self.pair = fleet.Pair.load(artifact, reference, tolerance)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows, errors = [], []
        for path in batch["path"]:
            try:
                rows.append(json.dumps(fleet.evaluate_recording(self.pair, str(path))))
                errors.append("")
            except fleet.FleetInputError as e:
                rows.append("")
                errors.append(str(e))
        return {"path": batch["path"], "row": np.asarray(rows), "error": np.asarray(errors)}


def evaluate_rows(paths: list[str], artifact: str, reference: str, tolerance: float,
                  address: str) -> tuple[list[dict], int]:
    """(one row per recording, in any order; the number of workers) from Ray Data workers."""
    started = not ray.is_initialized()
    if started:
        ray.init(address=None if address == "local" else address, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
    try:
        return _map(paths, artifact, reference, tolerance)
    finally:
        if started:
            ray.shutdown()


def _map(paths: list[str], artifact: str, reference: str, tolerance: float) -> tuple[list[dict], int]:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # rnnedge eval prints its own lines
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    workers = max(1, min(len(paths), int(ray.cluster_resources().get("CPU", 1))))
    blocks = min(len(paths), workers * BLOCKS_PER_WORKER)
    dataset = ray.data.from_items([{"path": path} for path in paths], override_num_blocks=blocks)
    results = dataset.map_batches(Evaluator, fn_constructor_args=(artifact, reference, tolerance), batch_size=None,
                                  compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1).take_all()
    failed = sorted((r["path"], r["error"]) for r in results if r["error"])
    if failed:
        raise fleet.FleetInputError(failed[0][1])
    return [json.loads(r["row"]) for r in results], workers
