"""The mutation engine and its oracle.

A case is (kind, base file, mutator, seed): the base's bytes mutated by the mutator with numpy's Generator seeded by
`seed`, so `python -m tests.fuzz --case weights/f32-dense-lstm/flip_header_bit/123` replays it exactly.

The oracle: a mutated weight file is either refused by runtime.artifact.read with ArtifactError, or it loads
(runtime.load, which also builds the Model) and gives outputs on a fixed input bit-identical to the original's. A
mutated vectors file is refused by read_vectors with VectorsError, or reads back to the original's metadata and
bit-identical tensors. Anything else fails: accepted with changed outputs, or another exception type. A resealed
mutation (tests/fuzz/reseal.py) carries a valid seal and may describe another model: it must be refused with the
documented exception or load and run the fixed input (a ValueError for an input the new model does not take is the
documented refusal of bad input); its other outputs are counted, not judged.

Memory: the tracemalloc peak of the reading call (artifact.read, read_vectors: what a file costs before it is refused
or accepted) must stay within MEMORY_FACTOR x the file's size + MEMORY_OVERHEAD. The peak of runtime.load on an
accepted file is measured and reported, not bounded: the Model holds a packed copy of the weights beside the tensors
it was built from, so it needs at least twice the tensors' size by construction.
"""

from __future__ import annotations

import os
import re
import tempfile
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tests.fuzz import mutators as m
from tests.fuzz.bases import Base, base, bases
from tests.fuzz.reseal import resealed
from tests.fuzz.spec_mutators import JSON_EDITS, SPEC_EDITS
from tests.fuzz.tensor_mutators import REPACK_EDITS, TENSOR_ENTRY_EDITS

KINDS = ("weights", "vectors")
MEMORY_FACTOR = 2
# Fixed cost of a read whatever the file's size: the Python objects of the parsed header and spec (a few KB of JSON
# becomes several times that in dicts, strings and floats), numpy array headers, the hashing state. Measured on the
# unmutated bases (reader's peak - 2 x size, seal 6552ca9): at most 19.5 KB (weights), 6.5 KB (vectors); 64 KiB
# leaves 3x room and still catches a header that makes the reader allocate for sizes it claims (test_mutations.py
# checks the bases fit within half of it).
MEMORY_OVERHEAD = 64 * 1024
RATIO_MIN_SIZE = 64 * 1024  # the peak / size ratio is reported for files this large, where the overhead is noise

# name -> (mutator, weight): how many slots of the round-robin schedule it gets
MUTATORS: dict[str, tuple] = {}


def _register(table: dict, weight: int = 1) -> None:
    for name, fn in table.items():
        MUTATORS[name] = (fn, weight)


_register({f.__name__: f for f in (m.truncate_tiny, m.truncate_header, m.truncate_body, m.truncate_end,
                                   m.flip_body_bit, m.flip_body_bits, m.flip_length_bit, m.flip_any_bits,
                                   m.insert_bytes, m.insert_header_bytes, m.delete_bytes, m.delete_header_bytes,
                                   m.append_bytes, m.length_lie, m.header_byte, m.header_bom, m.repack,
                                   m.header_reformat)})
_register({"flip_header_bit": m.flip_header_bit, "flip_header_bits": m.flip_header_bits}, weight=4)
_register({"header_bit_at": m.header_bit_at}, weight=0)  # exhaustive flips only (header_flip_cases)
_register({f.__name__: f for f in (m.meta_add_key, m.meta_remove_key, m.meta_value_type, m.meta_not_object,
                                   m.header_not_object, m.header_duplicate_key, m.meta_duplicate_key)})
_register({"meta_rename_key": m.meta_rename_key, "meta_value": m.meta_value}, weight=2)
_register({"json_" + k if not k.startswith("json_") else k: v for k, v in JSON_EDITS.items()}, weight=2)
_register({"spec_" + k: v for k, v in SPEC_EDITS.items()}, weight=2)
_register({"tensor_" + k: v for k, v in TENSOR_ENTRY_EDITS.items()})
_register(REPACK_EDITS)


def stack(data: bytes, rng) -> tuple[bytes, str]:
    """Two or three mutations one after the other (no resealed ones: they are judged by another rule)."""
    names = [n for n, (_, weight) in MUTATORS.items() if weight and n != "stack" and not n.startswith(RESEALED)]
    notes = []
    for _ in range(int(rng.integers(2, 4))):
        name = m.pick(rng, names)
        data, note = MUTATORS[name][0](data, rng)
        notes.append(f"{name}: {note}")
    return data, " | ".join(notes)


_register({"stack": stack}, weight=3)
RESEALED = "resealed_"
_register({RESEALED + name: resealed(MUTATORS[name][0]) for name in list(MUTATORS)
           if name.startswith(("json_", "spec_", "repack_")) or name in ("meta_value", "meta_add_key", "meta_remove_key",
                                                                         "meta_rename_key")})
SCHEDULE = [name for name, (_, weight) in MUTATORS.items() for _ in range(weight)]


@dataclass(frozen=True)
class Case:
    kind: str  # "weights" or "vectors"
    base: str
    mutator: str
    seed: int

    def __str__(self) -> str:
        return f"{self.kind}/{self.base}/{self.mutator}/{self.seed}"

    @classmethod
    def parse(cls, text: str) -> Case:
        kind, name, mutator, seed = text.strip().split("/")
        if kind not in KINDS or mutator not in MUTATORS:
            raise ValueError(f"{text!r}: want kind/base/mutator/seed, kind in {KINDS}, mutator in {sorted(MUTATORS)}")
        return cls(kind, name, mutator, int(seed))

    def mutate(self) -> tuple[bytes, bytes, str]:
        """(original bytes, mutated bytes, note)."""
        b = base(self.base)
        original = b.weights if self.kind == "weights" else b.vectors
        data, note = MUTATORS[self.mutator][0](original, np.random.default_rng(self.seed))
        return original, data, note


def cases(kind: str, n: int, seed: int = 0) -> list[Case]:
    """n cases: the mutators in round-robin by weight, the bases in turn, seeds derived from `seed` and the index."""
    names = [b.name for b in bases()]
    return [Case(kind, names[(i // len(SCHEDULE)) % len(names)], SCHEDULE[i % len(SCHEDULE)], seed * 10**9 + i)
            for i in range(n)]


@dataclass
class Result:
    case: Case
    verdict: str  # refused | unchanged | changed | foreign | resealed (a resealed file accepted as another model)
    reason: str  # refusal reason, or the foreign exception's type, or what changed
    message: str
    note: str  # what the mutator did
    size: int
    peak: int  # tracemalloc peak of the reading call above what was traced before it
    load_peak: int = 0  # tracemalloc peak of runtime.load, for an accepted weight file

    @property
    def over_memory(self) -> bool:
        return self.peak > MEMORY_FACTOR * self.size + MEMORY_OVERHEAD

    def describe(self) -> str:
        return (f"{self.case} [{self.note}] -> {self.verdict}: {self.reason}: {self.message[:300]} "
                f"(replay: python -m tests.fuzz --case {self.case})")


# coarse refusal reasons: the first pattern found in the message names it (the path prefix is dropped first)
REASONS = (
    ("cannot read", r"cannot read|not a regular file"),
    ("truncated", r"truncat|shorter than|too short|header says"),
    ("header JSON", r"corrupt header|not valid JSON|header is not|__metadata__"),
    ("seal / digest", r"sha-?256 of|does not match rnnedge|modified or damaged|not a SHA-256"),
    ("not rnnedge", r"not an rnnedge"),
    ("format version", r"format version|vectors format"),
    ("runtime cannot run it", r"layout: row|int32 sum|cannot run"),
    ("metadata keys", r"unknown metadata key|metadata lacks|metadata holds"),
    ("spec not canonical", r"canonical"),
    ("tensor set", r"tensors do not match|missing|unexpected"),
    ("spec schema", r"bad spec|spec\b"),
    ("precision", r"precision"),
    ("tensor table", r"an entry holds|is not one rnnedge stores|data_offsets|starts at|spans|after the last|overlap"),
    ("tensor shape / dtype", r"shape|dtype|is (?:float|int|uint|bool)|needs"),
    ("tensor values", r"NaN|infinity|-128|scale|multiplier|shift|cell_power|token id"),
    ("steps / layout", r"steps|state_layout"),
    ("vectors' artifact", r"artifact"),
    ("size", r"size|bytes|offset|large|exceed"),
)


def refusal_reason(message: str) -> str:
    text = message.split(": ", 1)[1] if ": " in message else message
    for reason, pattern in REASONS:
        if re.search(pattern, text, re.IGNORECASE):
            return reason
    return "other: " + re.sub(r"\d+", "N", " ".join(text.split()[:4]))


def _peak_of(call):
    """(return value or the exception raised, tracemalloc peak above the memory traced before the call)."""
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        value = call()
    except Exception as e:  # noqa: BLE001 - the oracle sorts every exception: documented, foreign, or a failure
        value = e
    return value, tracemalloc.get_traced_memory()[1] - before


def _same_arrays(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def run_case(case: Case, workdir: str, mutated: tuple[bytes, str] | None = None) -> Result:
    """Write the mutated file into workdir under the name its kind has and judge what the reader does with it.
    `mutated`: (bytes, note) to judge instead of the case's own mutation (tests of the oracle itself)."""
    from rnnedge.export.vectors import VectorsError, read_vectors
    from rnnedge.runtime import load
    from rnnedge.runtime.artifact import ArtifactError, read

    b = base(case.base)
    data, note = mutated if mutated is not None else case.mutate()[1:]
    if case.kind == "weights":
        path = os.path.join(workdir, f"model.{b.precision}.safetensors")
        reader, documented = read, ArtifactError
    else:
        path = os.path.join(workdir, f"model.{b.precision}.vectors.safetensors")
        reader, documented = read_vectors, VectorsError
    with open(path, "wb") as f:
        f.write(data)

    load_peak = 0

    def result(verdict, reason, message="", peak=0):
        return Result(case, verdict, reason, message, note, len(data), peak, load_peak)

    value, peak = _peak_of(lambda: reader(path))
    if isinstance(value, documented):
        return result("refused", refusal_reason(str(value)), str(value), peak)
    if isinstance(value, Exception):
        return result("foreign", type(value).__name__, str(value), peak)
    relaxed = case.mutator.startswith(RESEALED)
    if case.kind == "vectors":
        return _judge_vectors(b, value, result, peak, relaxed)
    model, load_peak = _peak_of(lambda: load(path))
    if isinstance(model, documented):
        return result("refused", refusal_reason(str(model)), str(model), peak)
    if isinstance(model, Exception):
        return result("foreign", type(model).__name__, f"runtime.load (read accepted): {model}", peak)
    try:
        Y = model.run(b.X)
    except Exception as e:  # noqa: BLE001 - a loaded model that cannot run the original's input has changed
        if relaxed and type(e) is not ValueError:
            return result("foreign", type(e).__name__, f"Model.run of a resealed file: {e}", peak)
        return result("resealed" if relaxed else "changed", "run fails", f"{type(e).__name__}: {e}", peak)
    if relaxed and not _same_arrays(Y, b.Y):
        return result("resealed", "another model", "", peak)
    if not isinstance(Y, np.ndarray) or not _same_arrays(Y, b.Y):
        diff = (float(np.max(np.abs(Y.astype(np.float64) - b.Y))) if isinstance(Y, np.ndarray) and
                Y.shape == b.Y.shape else None)
        return result("changed", "outputs differ", f"max |diff| {diff}" if diff is not None else
                      f"outputs {getattr(Y, 'dtype', '?')} {getattr(Y, 'shape', '?')}, original {b.Y.dtype} {b.Y.shape}",
                      peak)
    return result("unchanged", "same outputs", "", peak)


def _judge_vectors(b: Base, value, result, peak: int, relaxed: bool) -> Result:
    meta, tensors = value
    ometa, otensors = b.vectors_read
    if relaxed and (meta != ometa or set(tensors) != set(otensors)
                    or not all(_same_arrays(tensors[k], otensors[k]) for k in otensors)):
        return result("resealed", "other contents", "", peak)
    if meta != ometa:
        keys = sorted(k for k in set(meta) | set(ometa) if meta.get(k) != ometa.get(k))
        return result("changed", "metadata differs", f"keys {keys}", peak)
    if set(tensors) != set(otensors) or not all(_same_arrays(tensors[k], otensors[k]) for k in otensors):
        return result("changed", "tensors differ", f"{sorted(tensors)}", peak)
    return result("unchanged", "same contents", "", peak)


@dataclass
class Summary:
    kind: str
    cases: int = 0
    refused: Counter = field(default_factory=Counter)
    unchanged: int = 0
    resealed: int = 0  # resealed files accepted as another model (not judged: reseal.py)
    changed: list = field(default_factory=list)  # Results
    foreign: list = field(default_factory=list)  # Results
    over_memory: list = field(default_factory=list)  # Results
    max_peak_ratio: float = 0.0  # tracemalloc peak / file size, over the files of RATIO_MIN_SIZE bytes or more
    max_peak_excess: int = 0  # peak - MEMORY_FACTOR * size, over every case
    max_load_ratio: float = 0.0  # runtime.load's peak / file size, accepted files of RATIO_MIN_SIZE bytes or more
    by_mutator: Counter = field(default_factory=Counter)  # (mutator, verdict) -> count

    def add(self, r: Result) -> None:
        self.cases += 1
        self.by_mutator[(r.case.mutator, r.verdict)] += 1
        if r.verdict == "refused":
            self.refused[r.reason] += 1
        elif r.verdict == "unchanged":
            self.unchanged += 1
        elif r.verdict == "resealed":
            self.resealed += 1
        elif r.verdict == "changed":
            self.changed.append(r)
        else:
            self.foreign.append(r)
        if r.size >= RATIO_MIN_SIZE:
            self.max_peak_ratio = max(self.max_peak_ratio, r.peak / r.size)
            self.max_load_ratio = max(self.max_load_ratio, r.load_peak / r.size)
        self.max_peak_excess = max(self.max_peak_excess, r.peak - MEMORY_FACTOR * r.size)
        if r.over_memory:
            self.over_memory.append(r)

    @property
    def failures(self) -> list:
        return self.changed + self.foreign + self.over_memory

    def failure_classes(self) -> list[str]:
        """One replayable line per (verdict, reason, mutator, over the memory bound) among the failures."""
        seen, lines = set(), []
        for r in self.failures:
            key = (r.verdict, r.reason, r.case.mutator, r.over_memory)
            if key not in seen:
                seen.add(key)
                memory = f" [memory: peak {r.peak} B for a {r.size} B file]" if r.over_memory else ""
                lines.append(r.describe() + memory)
        return lines

    def figures(self) -> dict:
        return {"kind": self.kind, "cases": self.cases, "refused": sum(self.refused.values()),
                "refused_by_reason": dict(self.refused.most_common()), "accepted_unchanged": self.unchanged,
                "accepted_changed": len(self.changed), "accepted_resealed_as_another_model": self.resealed,
                "other_exceptions_by_type": dict(Counter(r.reason for r in self.foreign).most_common()),
                "over_memory": len(self.over_memory),
                f"max_peak_ratio_files_over_{RATIO_MIN_SIZE}_bytes": round(self.max_peak_ratio, 3),
                "max_peak_excess_bytes": self.max_peak_excess,
                f"max_load_peak_ratio_files_over_{RATIO_MIN_SIZE}_bytes": round(self.max_load_ratio, 3),
                "memory_bound": f"reader's tracemalloc peak <= {MEMORY_FACTOR} x file size + {MEMORY_OVERHEAD} bytes"}


def header_flip_cases(kind: str) -> list[Case]:
    """Every single-bit flip of every base's header (the JSON after the length field), one case each."""
    return [Case(kind, b.name, "header_bit_at", i) for b in bases()
            for i in range(8 * int.from_bytes((b.weights if kind == "weights" else b.vectors)[:8], "little"))]


def run(kind: str, n: int, seed: int = 0, progress=None, only: list[Case] | None = None) -> Summary:
    """Run n seeded cases of one kind (or the cases in `only`) under tracemalloc and a cap on the address space
    (memory_cap)."""
    bases()  # built before tracing starts: their cost is not the readers'
    summary = Summary(kind)
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        with tempfile.TemporaryDirectory(prefix="rnnedge-fuzz-", dir=scratch_dir()) as workdir, memory_cap():
            for i, case in enumerate(cases(kind, n, seed) if only is None else only):
                summary.add(run_case(case, workdir))
                if progress and (i + 1) % progress[0] == 0:
                    progress[1](summary)
    finally:
        if started:
            tracemalloc.stop()
    return summary


def scratch_dir() -> str | None:
    """Where the mutated files are written: /dev/shm when it is a writable tmpfs (opening a file there costs 20 us,
    on this machine's /tmp 2.6 ms: most of a case), else the default temporary directory."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class memory_cap:
    """Caps the process's address space at what it maps now + CAP_BYTES while the cases run, so a header that asks
    for gigabytes fails fast (MemoryError: counted as a foreign exception) instead of taking the machine's memory.
    The tracemalloc bound is what the acceptance checks; this is the fuse."""

    CAP_BYTES = 2 * 1024**3

    def __enter__(self):
        self.old = None
        try:
            import resource

            with open("/proc/self/statm") as f:
                mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except (ImportError, OSError):  # not Linux: no fuse
            return self
        self.resource = resource
        self.old = resource.getrlimit(resource.RLIMIT_AS)
        cap = mapped + self.CAP_BYTES
        hard = self.old[1]
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            self.resource.setrlimit(self.resource.RLIMIT_AS, self.old)
