"""Mutated weight and vectors files (tests/fuzz/engine.py): every one is refused with the reader's own exception or
reads back unchanged, within 2x its size in memory (+ a fixed overhead).

RNNEDGE_FUZZ_SEED picks another seeded run; the default is fixed so a failure replays:
`python -m tests.fuzz --case <case>` (printed with each failure).
"""

import os
import tempfile
import tracemalloc

import pytest

from tests.fuzz.bases import bases
from tests.fuzz.engine import (
    MEMORY_FACTOR,
    MEMORY_OVERHEAD,
    MUTATORS,
    SCHEDULE,
    Case,
    cases,
    header_flip_cases,
    refusal_reason,
    run,
    run_case,
    scratch_dir,
)

SEED = int(os.environ.get("RNNEDGE_FUZZ_SEED", "0"))
WEIGHT_CASES = 5000
VECTOR_CASES = 1000


def _report(summary) -> str:
    """The failures, one replayable line per class, then the figures."""
    lines = summary.failure_classes()
    return "\n".join(lines[:60] + [f"... {len(lines) - 60} more classes" if len(lines) > 60 else "",
                                   str(summary.figures())])


def _check(summary, n: int) -> None:
    assert summary.cases == n
    ran = {mutator for mutator, _ in summary.by_mutator}
    assert ran == set(SCHEDULE), f"mutators that never ran: {sorted(set(SCHEDULE) - ran)}"
    assert not summary.failures, (f"{len(summary.changed)} accepted with changed outputs, {len(summary.foreign)} "
                                  f"foreign exceptions, {len(summary.over_memory)} over the memory bound:\n"
                                  + _report(summary))


def test_mutated_weight_files_are_refused_with_artifact_error_or_load_unchanged():
    _check(run("weights", WEIGHT_CASES, SEED), WEIGHT_CASES)


def test_mutated_vector_files_are_refused_with_vectors_error_or_read_unchanged():
    _check(run("vectors", VECTOR_CASES, SEED), VECTOR_CASES)


@pytest.mark.parametrize("kind", ["weights", "vectors"])
def test_unmutated_bases_read_back_unchanged_within_the_memory_bound(kind):
    # repack writes the same tensors and metadata again: the oracle must call that unchanged, and reading the real
    # files must sit well inside the bound the mutations are held to
    tracemalloc.start()
    try:
        with tempfile.TemporaryDirectory(dir=scratch_dir()) as workdir:
            results = [run_case(Case(kind, b.name, "repack", 0), workdir) for b in bases()]
    finally:
        tracemalloc.stop()
    for r in results:
        assert r.verdict == "unchanged", r.describe()
        assert r.peak <= MEMORY_FACTOR * r.size + MEMORY_OVERHEAD // 2, r.describe() + f" peak {r.peak} B"


@pytest.mark.parametrize("kind", ["weights", "vectors"])
def test_the_oracle_fails_a_validly_sealed_file_of_another_model(kind):
    # what a reader without a seal let through (issue 13: head.activation softmax -> none): resealed, so every reader
    # check passes, then judged by the strict rule of an unsealed mutation: it must come out as changed, not pass
    case = Case(kind, "f32-dense-lstm", "spec_enum", 60)
    _, data, note = Case(kind, case.base, "resealed_spec_enum", case.seed).mutate()
    assert "head.activation 'softmax' -> 'none'" in note and note.endswith("resealed")
    tracemalloc.start()
    try:
        with tempfile.TemporaryDirectory(dir=scratch_dir()) as workdir:
            strict = run_case(case, workdir, mutated=(data, note))
            relaxed = run_case(Case(kind, case.base, "resealed_spec_enum", case.seed), workdir)
    finally:
        tracemalloc.stop()
    assert (strict.verdict, relaxed.verdict) == ("changed", "resealed"), (strict.describe(), relaxed.describe())


def test_a_case_replays_the_same_bytes_from_its_description():
    for case in cases("weights", 3 * len(MUTATORS), seed=7)[:: len(MUTATORS) // 5]:
        again = Case.parse(str(case))
        assert again == case
        _, first, note = case.mutate()
        _, second, note2 = again.mutate()
        assert (first, note) == (second, note2)


def test_the_mutators_change_the_files():
    # every mutator but the semantic no-ops alters some seeded copies of the bases (not necessarily every base: a
    # token model has no mean/std to edit)
    no_ops = {"repack", "header_reformat", "json_reformat", "resealed_json_reformat"}
    for kind in ("weights", "vectors"):
        for name in sorted(set(MUTATORS) - no_ops):
            changed = [orig != data for b in bases() for seed in range(3)
                       for orig, data, _ in [Case(kind, b.name, name, seed).mutate()]]
            assert sum(changed) >= len(changed) // 2, f"{name} left {changed.count(False)} of {len(changed)} {kind} " \
                                                      "files as they were"


def test_header_flip_cases_flip_every_header_bit_once():
    b = bases()[0]
    n = int.from_bytes(b.weights[:8], "little")
    flips = [c for c in header_flip_cases("weights") if c.base == b.name]
    assert len(flips) == 8 * n
    flipped = {bytes(x ^ y for x, y in zip(b.weights, c.mutate()[1])) for c in flips[:: max(1, n // 50)]}
    assert all(sum(v.bit_count() for v in diff) == 1 for diff in flipped)
    assert len(flipped) == len(flips[:: max(1, n // 50)])


def test_refusals_are_classified_by_their_message():
    assert refusal_reason("/x/model.f32.safetensors: truncated: 3 bytes is shorter than a header") == "truncated"
    assert refusal_reason("/x/m: SHA-256 of the header and tensors does not match rnnedge.sha256") == "seal / digest"
    assert refusal_reason("/x/m: something new 12 happened") == "other: something new N happened"
