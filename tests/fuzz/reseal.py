"""Resealed mutations: an edit of the metadata or the tensors followed by a fresh seal (runtime.sealed.digest under
the file's own domain), as a writer other than rnnedge's, or a bug in it, would produce.

The seal cannot refuse these, so they reach what lies behind it: the strict spec schema, the tensor checks and the
Model built from an accepted file. A resealed file may legitimately describe another model, so the oracle asks less
of it (engine.run_case): refused with the documented exception, or loaded and run without any other exception.
"""

from __future__ import annotations

from safetensors.numpy import load

from tests.fuzz.jsontext import pack, parse_header

# metadata key of the seal -> (module holding DOMAIN, attribute)
SEALS = {"rnnedge.sha256": "rnnedge.runtime.artifact", "rnnedge.vectors.sha256": "rnnedge.export.vectors"}


def reseal(data: bytes) -> tuple[bytes, str]:
    """data with its seal recomputed over its metadata and tensors, re-packed; as it was when it has no seal key
    or its tensors do not load."""
    import importlib

    from rnnedge.runtime import sealed

    parsed = parse_header(data)
    meta = parsed[0].get("__metadata__") if parsed else None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        return data, "not resealed (no string metadata)"
    key = next((k for k in SEALS if k in meta), None)
    if key is None:
        return data, "not resealed (no seal key)"
    try:
        tensors = load(data)
    except Exception:  # noqa: BLE001 - safetensors refuses the damaged table: nothing to seal
        return data, "not resealed (tensors do not load)"
    domain = importlib.import_module(SEALS[key]).DOMAIN
    unsealed = {k: v for k, v in meta.items() if k != key}
    return pack(tensors, {**unsealed, key: sealed.digest(domain, unsealed, tensors)}), "resealed"


def resealed(mutator):
    def mutator_then_seal(data, rng):
        out, note = mutator(data, rng)
        out, how = reseal(out)
        return out, f"{note}; {how}"
    mutator_then_seal.__doc__ = mutator.__doc__
    return mutator_then_seal
