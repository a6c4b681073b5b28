"""Bad input gets a clear exception and loses nothing."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

import runtime
from runtime import ArtifactError
from tests.helpers import make_model, make_spec, random_inputs, stream_all, write_artifact


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    spec = make_spec("lstm", kind="dense", features=5)
    return runtime.load(write_artifact(make_model(spec), tmp_path_factory.mktemp("d") / "m.safetensors"))


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    spec = make_spec("gru", kind="tokens", vocab=40)
    return runtime.load(write_artifact(make_model(spec), tmp_path_factory.mktemp("t") / "m.safetensors"))


@pytest.fixture()
def artifact_file(tmp_path):
    return write_artifact(make_model(make_spec("gru")), tmp_path / "m.f32.safetensors")


def test_wrong_feature_count_is_refused_with_the_expected_shape(dense):
    with pytest.raises(ValueError, match=r"shape \(2, 4\); expected \(2, 5\)"):
        dense.stream(2).step(np.zeros((2, 4), np.float32))


def test_wrong_batch_is_refused(dense):
    with pytest.raises(ValueError, match="batch=2"):
        dense.stream(2).step(np.zeros((3, 5), np.float32))


def test_wrong_dtype_is_refused_with_a_hint(dense, tokens):
    with pytest.raises(TypeError, match="float64; expected float32"):
        dense.stream(1).step(np.zeros((1, 5)))
    with pytest.raises(TypeError, match="int32; expected int64"):
        tokens.stream(1).step(np.zeros(1, np.int32))
    with pytest.raises(TypeError, match="list"):
        dense.stream(1).step([[0.0] * 5])


def test_token_id_out_of_range_is_refused_and_the_state_is_kept(tokens):
    stream = tokens.stream(2)
    X = random_inputs(tokens.spec, 2, 30)
    stream_all(stream, X[:, :10])
    state = stream.state.copy()
    for bad in (40, -1):
        with pytest.raises(ValueError, match=f"token id {bad} is outside the vocabulary \\[0, 40\\)"):
            stream.step(np.array([3, bad], np.int64))
        assert np.array_equal(stream.state, state)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tokens.run(np.array([[1, 2, 99]]))


def test_nan_input_is_refused_and_the_stream_carries_on_as_if_it_never_came(dense):
    X = random_inputs(dense.spec, 1, 50)
    clean = stream_all(dense.stream(1), X)
    stream = dense.stream(1)
    got = []
    for t in range(50):
        if t == 20:
            for bad in (np.nan, np.inf):
                x = X[:, t].copy()
                x[0, 2] = bad
                with pytest.raises(ValueError, match="NaN or infinity; the state is unchanged"):
                    stream.step(x)
        got.append(stream.step(np.ascontiguousarray(X[:, t])).copy())
    assert np.array_equal(np.stack(got, 1), clean)
    X[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        dense.run(X)


def test_run_refuses_wrong_shapes_and_lengths(dense):
    with pytest.raises(ValueError, match="expected"):
        dense.run(np.zeros((2, 10, 6), np.float32))
    with pytest.raises(ValueError, match="lengths must lie in"):
        dense.run(np.zeros((2, 10, 5), np.float32), lengths=[10, 11])


def test_a_truncated_file_is_refused(artifact_file):
    data = Path(artifact_file).read_bytes()
    for cut in (4, 100, len(data) - 10):
        with open(artifact_file, "wb") as f:
            f.write(data[:cut])
        with pytest.raises(ArtifactError, match="truncated|corrupt"):
            runtime.load(artifact_file)


def test_a_flipped_byte_in_the_tensors_is_refused(artifact_file):
    data = bytearray(Path(artifact_file).read_bytes())
    data[-7] ^= 0x01  # inside the last tensor's bytes
    Path(artifact_file).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="SHA-256"):
        runtime.load(artifact_file)


def _rewrite_metadata(path, **changes):
    data = Path(path).read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    header["__metadata__"].update(changes)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def test_a_file_of_another_format_version_is_refused(artifact_file):
    _rewrite_metadata(artifact_file, **{"rnnedge.format": "99"})
    with pytest.raises(ArtifactError, match="format version 99 is not supported"):
        runtime.load(artifact_file)


def test_a_spec_that_disagrees_with_the_tensors_is_refused(artifact_file):
    spec = make_spec("gru")
    spec["layers"][0]["hidden"] = 13
    _rewrite_metadata(artifact_file, **{"rnnedge.spec": json.dumps(spec)})
    with pytest.raises(ArtifactError, match="shape"):
        runtime.load(artifact_file)


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"hello world, not a model")
    with pytest.raises(ArtifactError):
        runtime.load(path)
    with pytest.raises(ArtifactError, match="cannot read"):
        runtime.load(tmp_path / "missing.safetensors")
