"""firmware_ref/ on the host with the head contract (log_softmax, hidden dense layers): the float builds replay
the golden vectors within export.vectors.ATOL (1e-5), the int8 build bit for bit (its integer logits; the
activation stays on the host, as for every int8 head)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnnedge.export.firmware import firmware_unsupported, uses_firmware_extensions, write_firmware_sources
from rnnedge.export.vectors import ATOL, read_vectors, write_vectors
from rnnedge.runtime import artifact
from rnnedge.runtime import spec as specs
from tests.firmware import test_host, test_host_float
from tests.helpers import make_model, make_spec, random_inputs, write_artifact
from tests.runtime.test_heads import FORMS, form_spec
from tests.runtime.test_int8_heads import hot_case

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


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("form", FORMS)
def test_float_firmware_runs_head_form_within_1e_5(tmp_path, host_cc, make_tool, form, precision):
    heads_case(tmp_path, form, precision, seed=list(FORMS).index(form))
    assert test_host_float._assert_passes(tmp_path, precision) <= ATOL


@pytest.mark.parametrize("form", FORMS)  # gelu and gelu_tanh: the integer gelu_q12 (runtime/int8_math.py)
def test_int8_firmware_runs_head_form_bit_exact(tmp_path, host_cc, make_tool, form):
    heads_case(tmp_path, form, "int8", seed=list(FORMS).index(form))
    test_host._assert_passes(tmp_path)


def hot_heads_case(folder: Path, cell: str, kind: str, seed: int) -> Path:
    """Random "hot" int8 constants with a head stack of every int8 hidden activation (tests/runtime/
    test_int8_heads.py), saturating inputs, their vectors and the generated sources; returns the weight file."""
    spec, tensors, X = hot_case(cell, kind, seed)
    weights = folder / "model.int8.safetensors"
    artifact.write(weights, tensors, spec, "int8")
    vectors = folder / "model.int8.vectors.safetensors"
    write_vectors(vectors, weights, X[0], steps=STEPS)
    write_firmware_sources(weights, vectors, folder)
    return weights


@pytest.mark.parametrize("cell,kind", [("lstm", "dense"), ("gru", "tokens"), ("rnn_tanh", "dense")])
def test_int8_firmware_runs_hot_head_stack_bit_exact(tmp_path, host_cc, make_tool, cell, kind):
    hot_heads_case(tmp_path, cell, kind, seed=11)
    test_host._assert_passes(tmp_path)


def test_int8_log_softmax_vectors_are_the_log_softmax_of_the_dequantised_integer_logits(tmp_path):
    weights = heads_case(tmp_path, "log_softmax", "int8")
    _, _, tensors = artifact.read(weights)
    _, v = read_vectors(tmp_path / "model.int8.vectors.safetensors")
    z = v["logits_q"].astype(np.float64) * tensors["head.scale"]
    expected = z - z.max(axis=1, keepdims=True)
    expected -= np.log(np.exp(expected).sum(axis=1, keepdims=True))
    assert np.abs(v["output"] - expected).max() < 1e-5


@pytest.mark.parametrize("precision", ["int8", "f32"])
def test_head_stack_sources_need_the_library_with_extensions(tmp_path, host_cc, make_tool, precision):
    """Hidden head layers are extension code in firmware_ref: the generated header stops a build with
    -DRNNEDGE_EXTENSIONS=0 by name, the default build runs the model."""
    heads_case(tmp_path, "relu", precision)
    assert uses_firmware_extensions(specs.validate(form_spec("relu")))
    assert not uses_firmware_extensions(specs.validate(form_spec("log_softmax")))
    assert "#define MODEL_USES_EXTENSIONS 1\n" in (tmp_path / "model_data.h").read_text()
    target = "host-build" if precision == "int8" else "host-float-build"
    built = test_host._make(target, tmp_path, "EXTENSIONS=0")
    message = (f"model (model.{precision}.safetensors) uses extension code (head: 1 hidden dense layer): build "
               "firmware_ref without -DRNNEDGE_EXTENSIONS=0")
    assert built.returncode != 0 and message in built.stderr, built.stderr[-3000:]


@pytest.mark.parametrize("precision", specs.PRECISIONS)
def test_firmware_of_every_precision_runs_gelu_head_layers(precision):
    spec = specs.validate(make_spec("gru", head_hidden=((4, "gelu"), (3, "gelu_tanh"))))
    assert firmware_unsupported(spec, precision) == []
