"""Bad input gets a clear exception and loses nothing."""

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from rnnedge import runtime
from rnnedge.runtime import ArtifactError
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


@pytest.mark.parametrize("specialise", [True, False])
@pytest.mark.parametrize("precision", ["f32", "int8w", "int8"])
@pytest.mark.parametrize("kind", ["dense", "tokens"])
def test_every_wrong_shape_is_refused_by_every_step_and_the_stream_carries_on(kind, precision, specialise,
                                                                               tmp_path, monkeypatch):
    """A specialised step checks x's shape in its machine code (the stream's Python only checks the ndim): every
    shape but the stream's is refused there as by the generic kernels' Python check, nothing written, at batch 1, 3
    and 16 (int8w's step_wide)."""
    monkeypatch.setenv("RNNEDGE_SPECIALISE", "1" if specialise else "0")
    spec = make_spec("gru", kind=kind, features=5, vocab=40)
    model = runtime.load(write_artifact(make_model(spec), tmp_path / f"m.{precision}.safetensors", precision))
    assert model.kernel_info["step"] == ("specialised" if specialise else "generic")
    for batch in (1, 3, 16):
        X = random_inputs(spec, batch, 6, seed=batch)
        stream, twin = model.stream(batch), model.stream(batch)
        stream_all(stream, X[:, :3])
        stream_all(twin, X[:, :3])
        state, y = stream.state.copy(), stream.y.copy()
        good = X[:, 3]
        wrong = ([np.zeros((b, f), np.float32) for b, f in ((batch + 1, 5), (batch - 1, 5), (batch, 4), (batch, 6),
                                                              (5, batch))]
                 + [np.zeros(batch * 5, np.float32), np.zeros((1, batch, 5), np.float32)]) if kind == "dense" else (
                 [np.ones(b, np.int64) for b in (batch + 1, batch - 1)] + [np.ones((batch, 1), np.int64)])
        for x in wrong:
            if x.shape == good.shape:
                continue  # (5, batch) at batch 5 only
            with pytest.raises(ValueError, match=rf"shape {re.escape(str(x.shape))}; expected "
                                                 rf"{re.escape(str(good.shape))}.*batch={batch}"):
                stream.step(x)
            assert np.array_equal(stream.state, state) and np.array_equal(stream.y, y)
        assert np.array_equal(stream.step(good), twin.step(good))  # as if the refused steps never came
        assert np.array_equal(stream.state, twin.state)


def test_a_batch_beyond_the_largest_is_refused_before_anything_is_allocated(dense):
    from rnnedge.runtime.stream import MAX_BATCH

    with pytest.raises(ValueError, match=f"batch must be a positive integer up to {MAX_BATCH}, got {MAX_BATCH + 1}"):
        dense.stream(MAX_BATCH + 1)


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


FLT_MAX = float(np.finfo(np.float32).max)


@pytest.fixture(scope="module")
def small_std(tmp_path_factory):
    """A dense gru in every precision whose feature 1 has std 0.25: x = 3e38 (finite) normalises to 1.2e39,
    infinity in float32."""
    spec = make_spec("gru", kind="dense", features=3)
    spec["input"]["std"] = [2.0, 0.25, 2.0]
    folder = tmp_path_factory.mktemp("small_std")
    torch_model = make_model(spec)
    return {p: runtime.load(write_artifact(torch_model, folder / f"m.{p}.safetensors", p))
            for p in ("f32", "int8w", "int8")}


@pytest.mark.parametrize("precision", ["f32", "int8w", "int8"])
def test_a_finite_input_whose_normalised_value_overflows_is_refused_and_the_state_is_kept(small_std, precision):
    model = small_std[precision]
    X = random_inputs(model.spec, 2, 40)
    clean = stream_all(model.stream(2), X)
    stream = model.stream(2)
    got = [stream.step(np.ascontiguousarray(X[:, t])).copy() for t in range(20)]
    state, y = stream.state.copy(), stream.y.copy()
    for bad in (3e38, -3e38, FLT_MAX, -FLT_MAX):
        x = X[:, 20].copy()
        x[1, 1] = bad
        with pytest.raises(ValueError, match=r"step\(\) input\[1, 1\] = .* is finite, but its normalised value "
                                             r"\(x - mean\) / std = .* / 0.25 overflows float32.*the state is "
                                             r"unchanged"):
            stream.step(x)
        assert np.array_equal(stream.state, state) and np.array_equal(stream.y, y)
    got += [stream.step(np.ascontiguousarray(X[:, t])).copy() for t in range(20, 40)]
    assert np.array_equal(np.stack(got, 1), clean)  # as if the refused steps never came
    bad_X = X.copy()
    bad_X[1, 7, 1] = FLT_MAX
    with pytest.raises(ValueError, match=r"X\[1, 7, 1\] = .* is finite, but its normalised value"):
        model.run(bad_X)
    lengths = np.array([40, 7])  # past its sequence's length the value is never read: accepted
    assert np.array_equal(model.run(bad_X, lengths), model.run(X, lengths))


def test_a_mean_and_std_that_overflow_together_are_refused(tmp_path):
    spec = make_spec("lstm", kind="dense", features=2)
    spec["input"]["mean"], spec["input"]["std"] = [-2e38, 0.0], [1.0, 1.0]
    model = runtime.load(write_artifact(make_model(spec), tmp_path / "m.f32.safetensors"))
    stream = model.stream(1)
    with pytest.raises(ValueError, match=r"\(2e\+38 - -2e\+38\) / 1 overflows float32"):
        stream.step(np.array([[2e38, 0.0]], np.float32))
    assert not stream.state.any()
    assert np.isfinite(stream.step(np.array([[-2e38, 0.0]], np.float32))).all()


def test_stream_batch_must_be_an_int_and_numpy_integers_are_ints(dense):
    for bad in (True, False, 2.0, "2", None):
        with pytest.raises(TypeError, match="batch must be an int"):
            dense.stream(bad)
    for bad in (0, -1, np.int64(0)):
        with pytest.raises(ValueError, match="batch must be a positive integer"):
            dense.stream(bad)
    stream = dense.stream(np.int64(2))
    assert stream.batch == 2 and type(stream.batch) is int
    assert stream.step(np.zeros((2, 5), np.float32)).shape == (2, 4)


def test_run_of_an_empty_batch_returns_an_empty_result_of_the_right_shape(dense, tokens, tmp_path):
    for X in (np.zeros((0, 7, 5), np.float32), np.zeros((0, 7, 5))):
        y = dense.run(X)
        assert y.shape == (0, 7, 4) and y.dtype == np.float32
    assert dense.run(np.zeros((0, 7, 5), np.float32), lengths=[]).shape == (0, 7, 4)
    assert tokens.run(np.zeros((0, 3), np.int64)).shape == (0, 3, 4)
    spec = make_spec("rnn_tanh", kind="dense", on="last_step")
    last = runtime.load(write_artifact(make_model(spec), tmp_path / "last.safetensors"))
    assert last.run(np.zeros((0, 9, 5), np.float32)).shape == (0, 4)
    with pytest.raises(ValueError, match="no time steps"):
        dense.run(np.zeros((0, 0, 5), np.float32))
    with pytest.raises(ValueError, match="expected"):
        dense.run(np.zeros((0, 7, 6), np.float32))


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


def test_runs_compiled_finiteness_check_agrees_with_numpys_on_every_position_and_length():
    from rnnedge.runtime.kernels_f32 import sequences_finite_f32

    rng = np.random.default_rng(5)
    mean, std = np.array([0.5, -2.0, 1e38], np.float32), np.array([0.25, 3.0, 1.0], np.float32)
    for trial in range(300):
        X = rng.standard_normal((3, 6, 3)).astype(np.float32)
        lengths = rng.integers(1, 7, 3)
        if trial % 4:  # a NaN, an infinity, or a finite value whose normalised value overflows, anywhere
            X[rng.integers(3), rng.integers(6), rng.integers(3)] = rng.choice([np.nan, np.inf, -np.inf, FLT_MAX,
                                                                              -FLT_MAX, 3e38])
        valid = np.arange(6) < lengths[:, None]
        with np.errstate(over="ignore", invalid="ignore"):
            want = not (~np.isfinite((X - mean) / std) & valid[..., None]).any()
        assert sequences_finite_f32(X, mean, std, lengths) == want
