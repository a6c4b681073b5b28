"""How each artifact is measured against the PyTorch model: the comparison rows of the parity report.

`comparisons` lists every artifact each way it runs (ONNX whole-sequence and stepped, each runtime precision's
run() and stream().step() loop, PyTorch's own step loop); `Streams` holds the parity streams and PyTorch's
answers on them; `measure` runs one comparison over every stream and judges it by its precision's rule
(export/rules.py). An export of an ONNX file adds rows against that original graph (`OriginalGraph`,
`original_rows`). export/pipeline.py writes the artifacts and calls these on the staged files.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from rnnedge import runtime
from rnnedge.export import parity, rules
from rnnedge.runtime import spec as specs
from rnnedge.train.metrics import task_metric

SEQUENCE_FILE = "model.onnx"
STEP_FILE = "model.step.onnx"


def weights_file(precision: str) -> str:
    return f"model.{precision}.safetensors"


WEIGHTS_FILE = weights_file("f32")


@dataclass
class Comparison:
    """One artifact run one way, against the PyTorch forward."""

    name: str
    file: str | None  # artifact file it reads, None for the in-memory PyTorch step loop
    description: str
    stepped: bool  # one time step per call: compared at every t (see parity.torch_every_prefix)
    runner: Callable[[np.ndarray], np.ndarray]
    precision: str = "f32"  # whose pass rule applies (ONNX and PyTorch rows are float32)



def comparisons(model, spec: dict, out_dir: Path, precisions: list[str]) -> list[Comparison]:
    """Every artifact, each way it can run. The artifacts are loaded from disk, as a user would."""
    lazy: dict[str, object] = {}

    def loaded(key, load):
        if key not in lazy:
            lazy[key] = load()
        return lazy[key]

    def sequence_session():
        return loaded(SEQUENCE_FILE, lambda: parity.ort_session((out_dir / SEQUENCE_FILE).read_bytes()))

    def step_session():
        return loaded(STEP_FILE, lambda: parity.ort_session((out_dir / STEP_FILE).read_bytes()))

    def runtime_model(precision):
        name = weights_file(precision)
        return loaded(name, lambda: runtime.load(out_dir / name))

    streamable = specs.can_stream(spec)
    comparisons = [
        Comparison("pytorch_step", None, "PyTorch forward vs PyTorch step() loop", True,
                   lambda x: parity.torch_step_loop(model, x)),
        Comparison("onnx", SEQUENCE_FILE, "PyTorch forward vs ORT model.onnx", False,
                   lambda x: parity.ort_sequence(sequence_session(), x)),
        Comparison("onnx_step", STEP_FILE, "PyTorch forward vs ORT model.step.onnx stepped", True,
                   lambda x: parity.ort_step_loop(step_session(), spec, x)),
    ]
    for p in precisions:
        prefix = "runtime" if p == "f32" else f"runtime_{p}"
        comparisons += [
            Comparison(f"{prefix}_stream", weights_file(p), f"PyTorch forward vs runtime {p} stream().step() loop",
                       True, lambda x, p=p: parity.runtime_step_loop(runtime_model(p), x), p),
            Comparison(f"{prefix}_run", weights_file(p), f"PyTorch forward vs runtime {p} run()", False,
                       lambda x, p=p: parity.runtime_sequence(runtime_model(p), x), p),
        ]
    return [c for c in comparisons if streamable or not c.stepped]


@dataclass
class Streams:
    """The parity streams and PyTorch's answers on them.

    Sequence runners see groups of equal true length (a last_step head and a backward direction depend on
    where a sequence ends). Stepping runners see every stream side by side, padded, and are scored at
    t < length only: a forward-only model's output at t depends on steps 0..t alone.
    """

    X: np.ndarray  # (N, T, F) float32 or (N, T) int64, zero padded
    lengths: np.ndarray  # (N,) true lengths
    valid: np.ndarray  # (N, T) t < lengths[n]
    groups: list[parity.Group]
    references: list[np.ndarray]  # PyTorch forward per group
    every_prefix: np.ndarray | None  # (N, T, out) forward had each stream ended at t; None if not streamable

    @classmethod
    def of(cls, model, X: np.ndarray, lengths: np.ndarray) -> Streams:
        groups = parity.equal_length_groups(X, lengths)
        valid = np.arange(X.shape[1])[None, :] < lengths[:, None]
        every_prefix = parity.torch_every_prefix(model, X) if specs.can_stream(model.spec) else None
        return cls(X, lengths, valid, groups, [parity.torch_sequence(model, g.x) for g in groups], every_prefix)

    def place(self, outputs: list[np.ndarray]) -> np.ndarray:
        """Per-group outputs back into data-set order: (N, T, out) zero padded past each length, or (N, out)."""
        n, steps, out = len(self.lengths), self.X.shape[1], outputs[0].shape[-1]
        every_step = outputs[0].ndim == 3
        placed = np.zeros((n, steps, out) if every_step else (n, out), dtype=np.float32)
        for group, got in zip(self.groups, outputs):
            if every_step:
                placed[group.index, : got.shape[1]] = got
            else:
                placed[group.index] = got
        return placed


TRACE_STEPS = 2000  # the report's stream plot: at most this many steps of the first parity stream


def measure(c: Comparison, spec: dict, streams: Streams, y, files: dict[str, int],
            criterion: rules.Criterion, traces: dict | None = None) -> dict:
    """Run one comparison over every parity stream; a runner that raises fails its row. traces: if given, a
    stepped row puts its outputs on the first parity stream there, (steps, out) by row name (the HTML report's
    plot, export/report_html.py)."""
    diff = criterion.difference() if isinstance(criterion, rules.FloatRule) else parity.Difference()
    row = {"name": c.name, "file": c.file, "bytes": files.get(c.file), "precision": c.precision,
           "comparison": c.description, "stepped": c.stepped, "criterion": criterion.describe(), **rules.ROW_FIELDS}
    started = time.perf_counter()
    logging.getLogger("rnnedge.export").info(f"parity: {c.description}")
    try:
        if c.stepped:
            got = c.runner(streams.X)
            if got.shape != streams.every_prefix.shape:
                raise ValueError(f"output shape {got.shape} differs from PyTorch's {streams.every_prefix.shape}")
            diff.add(got[streams.valid], streams.every_prefix[streams.valid])
            if traces is not None:
                traces[c.name] = got[0, : min(int(streams.lengths[0]), TRACE_STEPS)].copy()
            got[~streams.valid] = 0.0
            if spec["head"]["on"] == "last_step":  # what forward returns: the output at each stream's last step
                got = got[np.arange(len(streams.lengths)), streams.lengths - 1]
        else:
            outputs = []
            for group, reference in zip(streams.groups, streams.references):
                outputs.append(c.runner(group.x))
                diff.add(outputs[-1], reference)
            got = streams.place(outputs)
    except Exception as e:  # noqa: BLE001 - any failure of an artifact is a parity failure, reported by name
        row.update(max_abs_diff=None, mean_abs_diff=None, metric=None, passed=False, abs_diff_histogram=None,
                   error=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - started)
        return row
    metric = metric_of(spec, got, y, streams.lengths) if y is not None else None
    passed, fields = rules.judge(criterion, diff, metric, spec, got, lambda: streams.place(streams.references), y,
                                 streams.lengths)
    row.update(fields)
    row.update(max_abs_diff=diff.max_abs, mean_abs_diff=diff.mean_abs, metric=metric, passed=passed, error=None,
               seconds=time.perf_counter() - started, abs_diff_histogram=diff.histogram())
    return row


def reference_trace(streams: Streams) -> np.ndarray | None:
    """PyTorch's outputs on the first parity stream had it ended at each step (what stepped rows are held to),
    (steps, out); None for a model that cannot stream."""
    if streams.every_prefix is None:
        return None
    return streams.every_prefix[0, : min(int(streams.lengths[0]), TRACE_STEPS)].copy()


def metric_of(spec: dict, outputs: np.ndarray, y: np.ndarray, lengths: np.ndarray) -> dict:
    name, value = task_metric(spec["task"], outputs, y, lengths, spec["head"]["activation"])
    return {"name": name, "value": value}


# -- parity against the original ONNX file (export/from_onnx.py) --------------------------------------------------
ORIGINAL_PREFIXES = 16  # last_step heads: prefix lengths at which stream() is held to the original graph


@dataclass
class OriginalGraph:
    """An ONNX file an export was mapped from, and how its input and output differ from the runtime's layout."""

    model_bytes: bytes
    input_name: str
    input_time_major: bool = False  # it takes (T, B, ...)
    output_time_major: bool = False  # it returns (T, B, out)
    int32_ids: bool = False  # it takes int32 token ids
    fixed_batch: int | None = None  # its batch axis has a fixed size: run that many sequences at a time
    read_step: str | None = None  # it returns the converted every_step model's output at the "last" / "first" step

    def runner(self) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
        """(run on (B, T[, F]) runtime-layout input -> runtime-layout output, label of what runs it)."""
        try:
            session, label = parity.ort_session(self.model_bytes), "ORT"
        except Exception:  # noqa: BLE001 - e.g. ORT runs no layout=1 recurrent node
            from onnx.reference import ReferenceEvaluator

            session, label = ReferenceEvaluator(onnx.load_from_string(self.model_bytes)), "onnx.reference"

        def run_batch(x: np.ndarray) -> np.ndarray:
            feed = np.swapaxes(x, 0, 1) if self.input_time_major else x
            feed = feed.astype(np.int32) if self.int32_ids else feed
            out = np.asarray(session.run(None, {self.input_name: np.ascontiguousarray(feed)})[0], np.float32)
            return np.swapaxes(out, 0, 1) if self.output_time_major else out

        def run(x: np.ndarray) -> np.ndarray:
            if not self.fixed_batch or x.shape[0] == self.fixed_batch:
                return run_batch(x)
            parts = []
            for start in range(0, x.shape[0], self.fixed_batch):
                chunk = x[start:start + self.fixed_batch]
                pad = self.fixed_batch - chunk.shape[0]
                if pad:
                    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
                parts.append(run_batch(chunk)[: self.fixed_batch - pad])
            return np.concatenate(parts)

        return run, label


def original_streams(run, spec: dict, streams: Streams, read_step: str | None) -> Streams:
    """The parity streams with the original graph's answers in place of PyTorch's. Stepping runners are held to
    it at every step (every_step head: one run on the padded streams) or, for a last_step head, at
    ORIGINAL_PREFIXES prefix lengths and each stream's true length (one run of the original per prefix). A graph
    that returns one step of the every_step model (read_step) is compared per group only."""
    references = [run(g.x) for g in streams.groups]
    if not specs.can_stream(spec) or read_step is not None:
        return dataclasses.replace(streams, references=references)
    if spec["head"]["on"] == "every_step":
        return dataclasses.replace(streams, references=references, every_prefix=run(streams.X))
    steps = streams.X.shape[1]
    ends = set(np.linspace(1, steps, ORIGINAL_PREFIXES).astype(int).tolist()) | set(streams.lengths.tolist())
    every = np.zeros(streams.every_prefix.shape, np.float32)
    measured = np.zeros(streams.valid.shape, bool)
    for end in sorted(ends):
        every[:, end - 1] = run(np.ascontiguousarray(streams.X[:, :end]))
        measured[:, end - 1] = True
    return dataclasses.replace(streams, references=references, every_prefix=every, valid=streams.valid & measured)


def original_rows(graph: OriginalGraph, spec: dict, streams: Streams, y, files: dict[str, int],
                   criteria: dict, out_dir: Path, precisions: list[str], load=None) -> list[dict]:
    """Rows "original ONNX (<runner>) vs runtime <p> run() / stream()": each runtime weight file against the
    original ONNX graph on the same parity streams, held to its precision's criterion. A graph that cannot be
    run fails its rows with the error. load: see original_comparisons.

    A graph that returns one step of the converted every_step model (graph.read_step: a bidirectional Y[-1]) is
    held to the runtime's run() at that step, "original ONNX vs runtime p run()[:, -1]", like with like. stream()
    has no row here (it is held to PyTorch's every step above), and these rows are judged by their precision's
    max abs difference: a data set's task metric scores the every-step output, not that step."""
    try:
        run, label = graph.runner()
        original, error = original_streams(run, spec, streams, graph.read_step), None
    except Exception as e:  # noqa: BLE001 - reported on the rows, never swallowed
        label, original, error = "ORT", None, f"the original ONNX graph could not be run: {type(e).__name__}: {e}"
    if graph.read_step is not None:
        f32 = criteria["f32"]
        criteria = {p: rules.criterion(p, f32.atol, None, f32.floor, f32.rtol) for p in criteria}
        y = None
    rows = []
    for c in original_comparisons(spec, out_dir, precisions, label, load, graph.read_step):
        if error is None:
            row = measure(c, spec, original, y, files, criteria[c.precision])
        else:
            row = {"name": c.name, "file": c.file, "bytes": files.get(c.file), "precision": c.precision,
                   "comparison": c.description, "stepped": c.stepped, "criterion": criteria[c.precision].describe(),
                   "max_abs_diff": None, "mean_abs_diff": None, "metric": None, "passed": False, "error": error,
                   "abs_diff_histogram": None, "seconds": 0.0, **rules.ROW_FIELDS}
        row["reference"] = f"original ONNX ({label})"
        rows.append(row)
    return rows


def original_comparisons(spec: dict, out_dir: Path, precisions: list[str], label: str, load=None,
                         read_step: str | None = None) -> list[Comparison]:
    """The runtime rows held to the original ONNX graph. load(precision) -> a runtime model; default: the weight
    file in out_dir (a test passes a wrong model to see the rows fail). read_step: the graph returns run()'s
    output at that step (only run() rows, each cut to that step)."""
    cache: dict[str, object] = {}

    def model(p):
        if p not in cache:
            cache[p] = load(p) if load is not None else runtime.load(out_dir / weights_file(p))
        return cache[p]

    rows = []
    for p in precisions:
        prefix = "original_runtime" if p == "f32" else f"original_runtime_{p}"
        if read_step is not None:
            step = -1 if read_step == "last" else 0
            rows.append(Comparison(f"{prefix}_run", weights_file(p),
                                   f"original ONNX ({label}) vs runtime {p} run()[:, {step}]", False,
                                   lambda x, p=p, step=step: parity.runtime_sequence(model(p), x)[:, step], p))
            continue
        rows.append(Comparison(f"{prefix}_run", weights_file(p), f"original ONNX ({label}) vs runtime {p} run()",
                               False, lambda x, p=p: parity.runtime_sequence(model(p), x), p))
        if specs.can_stream(spec):
            rows.append(Comparison(f"{prefix}_stream", weights_file(p),
                                   f"original ONNX ({label}) vs runtime {p} stream().step() loop", True,
                                   lambda x, p=p: parity.runtime_step_loop(model(p), x), p))
    return rows
