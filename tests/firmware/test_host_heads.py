"""firmware_ref/ on the host with the head contract (log_softmax, hidden dense layers): the float builds replay
the golden vectors within export.vectors.ATOL (1e-5), the int8 build bit for bit (its integer logits; the
activation stays on the host, as for every int8 head)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.firmware import check_firmware_runs, write_firmware_sources
from export.vectors import ATOL, read_vectors, write_vectors
from runtime import artifact
from runtime import spec as specs
from tests.firmware import test_host, test_host_float
from tests.helpers import make_model, random_inputs, write_artifact
from tests.runtime.test_heads import FORMS, form_spec

STEPS = test_host.STEPS


def heads_case(folder: Path, form: str, precision: str, layers: int = 2, seed: int = 0) -> Path:
    """A seeded model of one head form, its weight file and vectors (dense inputs 4x the spec's spread, so gates
    and the head's activations saturate now and then), and the generated C sources; returns the weight file."""
    spec = form_spec(form, layers=layers)
    weights = write_artifact(make_model(spec, seed), folder / f"model.{precision}.safetensors", precision)
    X = random_inputs(spec, 1, STEPS, seed=seed + 1)[0]
    if spec["input"]["kind"] == "dense":
        X = ((X - 0.5) * 4.0 + 0.5).astype(np.float32)
    vectors = folder / f"model.{precision}.vectors.safetensors"
    write_vectors(vectors, weights, X, steps=STEPS)
    write_firmware_sources(weights, vectors, folder)
    return Path(weights)


def firmware_runs(form: str, precision: str) -> bool:
    spec = specs.validate(form_spec(form))
    try:
        check_firmware_runs(spec, precision, "model")
    except ValueError:
        return False
    return not specs.unsupported(spec, precision)


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("form", FORMS)
def test_float_firmware_runs_head_form_within_1e_5(tmp_path, host_cc, make_tool, form, precision):
    if not firmware_runs(form, precision):
        pytest.skip(f"the {precision} firmware refuses {form} by name")
    heads_case(tmp_path, form, precision, seed=list(FORMS).index(form))
    assert test_host_float._assert_passes(tmp_path, precision) <= ATOL


@pytest.mark.parametrize("form", FORMS)
def test_int8_firmware_runs_head_form_bit_exact(tmp_path, host_cc, make_tool, form):
    if not firmware_runs(form, "int8"):
        pytest.skip(f"the int8 firmware refuses {form} by name")
    heads_case(tmp_path, form, "int8", seed=list(FORMS).index(form))
    test_host._assert_passes(tmp_path)


def test_int8_log_softmax_vectors_are_the_log_softmax_of_the_dequantised_integer_logits(tmp_path):
    weights = heads_case(tmp_path, "log_softmax", "int8")
    _, _, tensors = artifact.read(weights)
    _, v = read_vectors(tmp_path / "model.int8.vectors.safetensors")
    z = v["logits_q"].astype(np.float64) * tensors["head.scale"]
    expected = z - z.max(axis=1, keepdims=True)
    expected -= np.log(np.exp(expected).sum(axis=1, keepdims=True))
    assert np.abs(v["output"] - expected).max() < 1e-5
