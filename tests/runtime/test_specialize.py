"""The cache name of a generated module (runtime/specialize.py): its text and the runtime code it calls."""

from __future__ import annotations

import pytest

from rnnedge.runtime import specialize

pytestmark = pytest.mark.specialised  # the step a user gets (tests/conftest.py)

TEXT = "from rnnedge.runtime.kernels_f32 import exp_f32\n\nX = 1\n"


def test_a_changed_callee_gives_the_generated_module_another_cache_name(tmp_path, monkeypatch):
    # numba keys a generated module's cached machine code on that file alone: when an intrinsic it calls changes
    # (even in a module it reaches through another), the step must get another name or keep stale machine code
    monkeypatch.setenv("RNNEDGE_CACHE_DIR", str(tmp_path))
    specialize.callees_digest.cache_clear()
    before = specialize.source_path("f32_x", TEXT)
    reached = "rnnedge.runtime.jit"  # imported by kernels_f32, not by the text
    original = specialize.module_source
    monkeypatch.setattr(specialize, "module_source",
                        lambda name: original(name) + (b"# changed\n" if name == reached else b""))
    specialize.callees_digest.cache_clear()
    try:
        after = specialize.source_path("f32_x", TEXT)
    finally:
        monkeypatch.setattr(specialize, "module_source", original)
        specialize.callees_digest.cache_clear()
    assert before.parent == after.parent == tmp_path and before != after
    assert specialize.source_path("f32_x", TEXT) == before  # the real sources again: the same name


def test_text_without_runtime_imports_is_named_by_its_text_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNEDGE_CACHE_DIR", str(tmp_path))
    assert specialize.source_path("a", "X = 1\n") == specialize.source_path("a", "X = 1\n")
    assert specialize.source_path("a", "X = 1\n") != specialize.source_path("a", "X = 2\n")
