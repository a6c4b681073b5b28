"""The int8 step compiled for the loaded model (runtime/fused_int8.py) gives the generic kernel's integers and the
NumPy twin's, bit for bit, on both mat-vec paths (AVX512-VNNI and portable), every cell, dense and token input,
one and two layers, batch 1 and 3, over saturating steps; it refuses what the generic kernel refuses, leaves the
models it does not cover to the generic kernels, and allocates nothing per step."""

import functools
from pathlib import Path

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from rnnedge.runtime import fused_int8, fused_int8_simd, vnni, vnni_quad
from rnnedge.runtime.fused_int8_math import mbqm_right, pair_table, rdbpot32, rounding_rows, sat16_32
from rnnedge.runtime.fused_int8_simd import (
    as_float32,
    as_int8,
    gate_sums_bounded_at,
    gate_sums_rows_at,
    gru_candidate_bounded_at,
    gru_candidate_rows_at,
    sigmoid_rows_at,
    tanh_rows_at,
)
from rnnedge.runtime.int8_math import (
    multiply_by_quantized_multiplier_right,
    rounding_divide_by_pot,
    sat16,
    sigmoid_q15,
    tanh_q15,
)
from rnnedge.runtime.kernels_int8 import gemv_t_int8
from rnnedge.runtime.model import Model
from rnnedge.runtime.spec import CELLS
from tests.helpers import bytes_allocated_by_steps, int8_paths, make_spec, with_paths
from tests.runtime.int8_twin import Int8Twin, random_int8_tensors, saturating_dense_inputs

pytestmark = pytest.mark.specialised  # the step a user gets (tests/conftest.py)

VOCAB, STEPS = 20, 300
PATHS = int8_paths()
CASES = [(cell, kind, layers) for cell in CELLS for kind in ("dense", "tokens") for layers in (1, 2)]


@functools.cache
def _case(cell, kind, layers):
    """(spec, tensors, X (3, T, ...)): hot constants, inputs that clamp and tie; sizes off the 16-lane grid."""
    i = CASES.index((cell, kind, layers))
    spec = make_spec(cell, layers=layers, kind=kind, activation=("none", "softmax", "log_softmax", "sigmoid")[i % 4],
                     hidden=(5, 19, 12)[i % 3], features=3 + i % 5, vocab=VOCAB, embed_dim=3 + (i + 2) % 5, out=3)
    rng = np.random.default_rng(500 + i)
    tensors = random_int8_tensors(spec, rng, hot=True, cell_powers=[(-15, 1), (-12, -9)][i % 2][:layers])
    if layers > 1:  # the second layer without left shifts: the shorter requantisation form
        for name in [n for n in tensors if n.startswith("layers.1.") and n.endswith(".shift")]:
            tensors[name] = np.minimum(tensors[name], 0).astype(np.int8)
    if kind == "dense":
        X = saturating_dense_inputs(spec, float(tensors["input.scale"][0]), rng, 3, STEPS)
    else:
        X = rng.integers(0, VOCAB, (3, STEPS)).astype(np.int64)
        X[:, :VOCAB] = np.arange(VOCAB)
    return spec, tensors, X


def _models(spec, tensors, path, monkeypatch):
    """(generic model, specialised model on `path`: this CPU's blocked one, AVX2's on an AVX-512 VNNI CPU, or the
    portable loops)."""
    monkeypatch.setenv("RNNEDGE_SPECIALISE", "0")
    generic = Model(spec, "int8", tensors)
    assert generic.kernel_info["step"] == "generic"
    monkeypatch.setenv("RNNEDGE_SPECIALISE", "1")
    monkeypatch.setenv("RNNEDGE_VNNI", "0" if path == "portable" else "1")
    monkeypatch.setattr(vnni, "best_path", lambda: path)
    fused = Model(spec, "int8", tensors)
    return generic, fused


# each cell on dense and token input, each input kind at one and two layers (each case compiles its own step)
STEP_CASES = [(cell, kind, 1 + (i + (kind == "tokens")) % 2) for i, cell in enumerate(CELLS)
              for kind in ("dense", "tokens")]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("cell,kind,layers,path", with_paths(STEP_CASES, 3))
def test_specialised_int8_step_equals_the_generic_kernel_and_the_twin_bit_exact(cell, kind, layers, batch, path,
                                                                               monkeypatch):
    spec, tensors, X = _case(cell, kind, layers)
    generic, fused = _models(spec, tensors, path, monkeypatch)
    assert fused.kernel_info["step"] == "specialised" and fused.kernel_info["path"] == path
    a, b = generic.stream(batch), fused.stream(batch)
    twin = Int8Twin(spec, tensors, batch=batch)
    for t in range(STEPS):
        x = np.ascontiguousarray(X[:batch, t])
        y_generic, y = a.step(x).copy(), b.step(x)
        acc = twin.step_quantised(twin.quantize_input(x) if kind == "dense" else twin.embed(x))
        for what, got, expected in [("state", b.state, a.state), ("integer logits", b.logits_q, a.logits_q),
                                    ("y", y, y_generic), ("twin state", b.state, twin.state_vector()),
                                    ("twin logits", b.logits_q, acc)]:
            np.testing.assert_array_equal(got, expected, err_msg=f"{what} at step {t}")
    counts = dict(twin.counts)
    assert counts.get("pre_activation", 0) > 0 and counts.get("yh_wide", 0) > 0, counts  # wide terms summed whole
    assert counts.get("mbqm_left_shift", 0) > 0, counts
    if cell == "lstm":
        assert counts.get("cell", 0) > 0, counts
    assert np.unique(b.state).size > 2 * layers


def _right_shift_tensors(tensors: dict, bounded: bool) -> dict:
    """tensors with every shift made a right shift (the vector gate sums' form); bounded: biases and shifts small
    enough for fused_int8_cells' proof (|acc| + 2^e < 2^30), else one bias left at check_int32_sums' limit."""
    t = dict(tensors)
    for name in [n for n in t if n.startswith("layers.") and n.endswith(".shift")]:
        t[name] = np.clip(t[name], -20 if bounded else -31, 0).astype(np.int8)
    if bounded:
        for name in [n for n in t if n.startswith("layers.") and n.endswith((".b_ih", ".b_hh"))]:
            t[name] = np.clip(t[name], -(2**24), 2**24).astype(np.int32)
    return t


@pytest.mark.parametrize("bounded", [True, False])
@pytest.mark.parametrize("cell,kind", [("lstm", "dense"), ("gru", "tokens"), ("gru", "dense"), ("rnn_tanh", "dense")])
def test_gate_sums_take_the_bounded_form_exactly_where_it_is_proved_and_give_the_generic_integers(cell, kind,
                                                                                                   bounded,
                                                                                                   monkeypatch):
    spec, tensors, X = _case(cell, kind, 2)
    tensors = _right_shift_tensors(tensors, bounded)
    generic, fused = _models(spec, tensors, vnni.best_path(), monkeypatch)
    source = Path(fused.kernel_info["source"]).read_text()
    if fused.kernel_info["path"] != "portable":
        assert ("gate_sums_bounded_at(" in source) == bounded and ("gate_sums_rows_at(" in source) != bounded
        assert cell != "gru" or ("gru_candidate_bounded_at(" in source) == bounded
    a, b = generic.stream(3), fused.stream(3)
    twin = Int8Twin(spec, tensors, batch=3)
    for t in range(STEPS):
        x = np.ascontiguousarray(X[:, t])
        y_generic, y = a.step(x).copy(), b.step(x)
        acc = twin.step_quantised(twin.quantize_input(x) if kind == "dense" else twin.embed(x))
        np.testing.assert_array_equal(b.state, a.state, err_msg=f"state at step {t}")
        np.testing.assert_array_equal(y, y_generic, err_msg=f"y at step {t}")
        np.testing.assert_array_equal(b.logits_q, acc, err_msg=f"twin logits at step {t}")
    counts = dict(twin.counts)
    assert counts.get("pre_activation", 0) > 0, counts  # sums that saturate int16
    assert np.unique(b.state).size > 4


@pytest.mark.parametrize("path", PATHS)
def test_specialised_int8_stream_refuses_bad_values_and_tokens_with_the_state_unchanged(path, monkeypatch):
    for kind in ("dense", "tokens"):
        spec, tensors, X = _case("gru", kind, 2)
        _, fused = _models(spec, tensors, path, monkeypatch)
        stream = fused.stream(3)
        stream.step(np.ascontiguousarray(X[:, 0]))
        before = stream.state.copy()
        x = np.ascontiguousarray(X[:, 1])
        if kind == "dense":
            x[2, 1] = np.nan
            with pytest.raises(ValueError, match="NaN or infinity"):
                stream.step(x)
            np.testing.assert_array_equal(stream.state, before)
            x[2, 1], x[1, 0] = 0.0, -np.inf
        else:
            x[2] = VOCAB
        with pytest.raises(ValueError, match="outside the vocabulary" if kind == "tokens" else "NaN or infinity"):
            stream.step(x)
        np.testing.assert_array_equal(stream.state, before)


def test_specialised_int8_kernel_info_names_the_path_and_the_source(monkeypatch):
    spec, tensors, _ = _case("lstm", "dense", 1)
    monkeypatch.delenv("RNNEDGE_VNNI", raising=False)
    info = Model(spec, "int8", tensors).kernel_info
    assert info["step"] == "specialised" and info["precision"] == "int8"
    assert info["path"] == vnni.best_path() and info["path"] in ("avx512_vnni", "avx2", "portable")
    assert info["source"].endswith(".py")
    assert info["activations"] == fused_int8_simd.describe() and "table reads" in info["activations"]
    assert info["products"] == fused_int8.PRODUCTS[info["path"]]
    assert ("vpdpbusd" in info["products"]) == (info["path"] == "avx512_vnni")
    monkeypatch.setenv("RNNEDGE_VNNI", "0")
    info = Model(spec, "int8", tensors).kernel_info
    assert info["path"] == "portable" and info["products"].startswith("plain loops")
    with pytest.raises(ValueError, match="path 'neon'"):
        fused_int8.generate(Model(spec, "int8", tensors), "neon")


@pytest.mark.parametrize("layer", [{"cell": "lstm", "clip": 2.0}, {"cell": "gru", "linear_before_reset": False},
                                   {"cell": "lstm", "peepholes": True, "input_forget": True}])
def test_the_extensions_int8_runs_are_on_the_specialised_step(layer):
    """(tests/runtime/test_fused_int8_extensions.py holds their integers to the generic kernels'; the activation
    functions int8 cannot run are refused at load, tests/runtime/test_extensions.py.)"""
    spec = make_spec(layer["cell"], hidden=6, features=4, out=3)
    spec["layers"] = [{"hidden": 6, "bidirectional": False, **layer}]
    tensors = random_int8_tensors(spec, np.random.default_rng(1))
    model = Model(spec, "int8", tensors)
    assert fused_int8.uncovered(model) is None and model.kernel_info["step"] == "specialised"


@pytest.mark.parametrize("hidden,path", with_paths([([(7, "relu"), (5, "tanh")],), ([(17, "sigmoid"), (4, "gelu")],),
                                                    ([(9, "none"), (3, "gelu_tanh")],)], 3))
def test_specialised_int8_step_with_hidden_head_layers_equals_the_generic_kernel_and_the_twin(hidden, path,
                                                                                             monkeypatch):
    spec = make_spec("gru", layers=2, kind="tokens", activation="none", hidden=6, vocab=VOCAB, embed_dim=5, out=3,
                     head_hidden=hidden)
    tensors = random_int8_tensors(spec, np.random.default_rng(len(hidden[0]) * 10 + hidden[0][0]))
    generic, fused = _models(spec, tensors, path, monkeypatch)
    assert fused.kernel_info["step"] == "specialised"
    a, b = generic.stream(2), fused.stream(2)
    twin = Int8Twin(spec, tensors, batch=2)
    X = np.random.default_rng(4).integers(0, VOCAB, (2, STEPS))
    for t in range(STEPS):
        x = np.ascontiguousarray(X[:, t])
        y_generic, y = a.step(x).copy(), b.step(x)
        acc = twin.step_quantised(twin.embed(x))
        np.testing.assert_array_equal(b.logits_q, a.logits_q, err_msg=f"integer logits at step {t}")
        np.testing.assert_array_equal(b.logits_q, acc, err_msg=f"twin logits at step {t}")
        np.testing.assert_array_equal(b.state, a.state, err_msg=f"state at step {t}")
        np.testing.assert_array_equal(y, y_generic, err_msg=f"y at step {t}")
    assert sum(v for k, v in twin.counts.items() if k.startswith("head_hidden")) > 0, dict(twin.counts)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", ["dense", "tokens"])
def test_specialised_int8_step_allocates_nothing(kind, path, monkeypatch):
    spec, tensors, X = _case("lstm", kind, 2)
    _, fused = _models(spec, tensors, path, monkeypatch)
    X5 = np.concatenate([X, X[:2]])[:, :200]  # five streams: a group of four (matrix products) and one alone
    grown = bytes_allocated_by_steps(fused.stream(5), X5)
    assert grown == 0, f"step() allocated {grown} bytes over 200 steps"


# -- the pieces, alone ----------------------------------------------------------------------------------------
# The helpers below are compiled in each run, not cached: numba keys a test module's cache on this file alone,
# so after a change to a runtime intrinsic they inline (fused_int8_simd, vnni) a cached helper would run the old
# machine code against the new tables (the generated steps are keyed on their callees: specialize.py).
@njit
def _activations(x, table, sig, tanh, sig_ref, tanh_ref):
    sig[:] = x
    tanh[:] = x
    sigmoid_rows_at(sig, 0, x.shape[0], table, 0)
    tanh_rows_at(tanh, 0, x.shape[0], table, 0)
    for i in range(x.shape[0]):
        sig_ref[i] = sigmoid_q15(x[i])
        tanh_ref[i] = tanh_q15(x[i])


def test_vector_gate_activations_equal_int8_math_on_every_int16():
    x = np.arange(-(2**15), 2**15, dtype=np.int32)
    out = [np.zeros_like(x) for _ in range(4)]
    _activations(x, pair_table(), *out)
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[1], out[3])


@pytest.mark.parametrize("read", ["gather", "explicit", "planes"])
def test_vector_gate_activations_equal_int8_math_with_each_table_read(read, monkeypatch):
    if read == "explicit" and not vnni.has_avx2():
        pytest.skip("AVX2's vpgatherdd: this CPU has no AVX2")
    if read == "planes" and not fused_int8_simd.byte_planes():
        pytest.skip("the byte planes' vpermi2b: this CPU has no AVX512-VBMI")
    monkeypatch.setattr(fused_int8_simd, "explicit_gathers", lambda: read == "explicit")
    monkeypatch.setattr(fused_int8_simd, "byte_planes", lambda: read == "planes")
    activations = njit(_activations.py_func)  # compiled here, with the table read asked for (not from the cache)
    x = np.arange(-(2**15), 2**15, dtype=np.int32)
    out = [np.zeros_like(x) for _ in range(4)]
    activations(x, pair_table(), *out)
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[1], out[3])


@njit
def _activations_at(a, off, n, table):
    sigmoid_rows_at(a, off, n, table, 0)
    tanh_rows_at(a, off + n, n, table, 0)


@pytest.mark.parametrize("n", [16, 32, 48, 64, 80, 112, 128])
def test_vector_gate_activations_change_exactly_their_rows(n):
    """Row counts that leave 16, 32 or 48 rows for a last pass of 64 (byte planes: the missing vectors masked off
    their loads and stores), at an offset: every row in range gets int8_math's value, nothing around it changes."""
    rng = np.random.default_rng(n)
    a = rng.integers(-(2**15), 2**15, 2 * n + 40).astype(np.int32)
    before = a.copy()
    _activations_at(a, 7, n, pair_table())
    expected = before.copy()
    expected[7 : 7 + n] = [sigmoid_q15(v) for v in before[7 : 7 + n]]
    expected[7 + n : 7 + 2 * n] = [tanh_q15(v) for v in before[7 + n : 7 + 2 * n]]
    np.testing.assert_array_equal(a, expected)


def test_vector_gate_activations_equal_int8_math_without_vpmaddwd(monkeypatch):
    """Where the CPU has neither AVX2 nor AVX-512BW (ARM64...), the interpolation's pmaddwd is shifts and multiplies
    in generic IR and the table read llvm.masked.gather: the same integers."""

    class NoSimd:
        @staticmethod
        def get_host_cpu_features():
            return {}

    monkeypatch.setattr(fused_int8_simd, "llvm", NoSimd)
    activations = njit(_activations.py_func)  # compiled here, on the generic IR
    x = np.arange(-(2**15), 2**15, dtype=np.int32)
    out = [np.zeros_like(x) for _ in range(4)]
    activations(x, pair_table(), *out)
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[1], out[3])


@njit
def _views(blob):
    w8, fl = as_int8(blob), as_float32(blob)
    return w8.copy(), fl.copy(), w8.shape[0], fl.shape[0]


@njit
def _write_byte(blob, at, value):
    as_int8(blob)[at] = value


@pytest.mark.parametrize("writeable", [True, False])
def test_blob_reinterpretations_equal_numpy_views_and_share_the_memory(writeable):
    rng = np.random.default_rng(5)
    blob = rng.integers(-(2**31), 2**31, 37, dtype=np.int64).astype(np.int32)
    blob[3] = np.float32(-2.75).view(np.int32)
    blob.flags.writeable = writeable
    w8, fl, n8, nf = _views(blob)
    assert (n8, nf) == (4 * 37, 37)
    np.testing.assert_array_equal(w8, blob.view(np.int8))
    np.testing.assert_array_equal(fl.view(np.int32), blob)
    assert fl[3] == np.float32(-2.75)
    if writeable:  # the same memory, not a copy
        _write_byte(blob, 9, np.int8(-3))
        assert blob.view(np.int8)[9] == -3
    else:  # a read-only blob stays read-only
        with pytest.raises(TypingError, match="readonly"):
            _write_byte(blob, 9, np.int8(-3))


@njit
def _rounding(x, e, got, ref):
    for i in range(x.shape[0]):
        got[i] = sat16_32(rdbpot32(x[i], e))
        ref[i] = min(max(rounding_divide_by_pot(x[i], e), -32768), 32767)


@pytest.mark.parametrize("e", [1, 8, 15, 16, 30, 31])
def test_int32_rounding_equals_int8_math_where_the_step_uses_it(e):
    rng = np.random.default_rng(e)
    bound = min(2**30, 2**31 - 2 ** (e - 1) - 1)  # rdbpot32's domain, which holds every product the step rounds
    x = rng.integers(-bound, bound + 1, 100_000).astype(np.int32)
    x[:6] = [-bound, bound, 0, -1, 1, -(2 ** (e - 1))]
    got, ref = np.zeros_like(x), np.zeros_like(x)
    _rounding(x, e, got, ref)
    np.testing.assert_array_equal(got, ref)


@njit
def _matvec_quad(dst, wp, bias, v, k, blocks):
    vnni_quad.matvec_quad_at(dst, 3, wp, 64, bias, 5, v, 7, k, blocks)


@njit
def _matvec_avx2(dst, wp, bias, v, k, blocks):
    vnni.matvec_avx2_at(dst, 3, wp, 64, bias, 5, v, 7, k, blocks)


# the blocked mat-vecs this CPU has, with their layouts: vpdpbusd on quads (AVX512-VNNI), vpmaddwd on pairs (AVX2)
ISAS = [pytest.param((_matvec_quad, vnni_quad.pack_quad), id="vnni",
                     marks=pytest.mark.skipif(not vnni.has_avx512_vnni(), reason="no VNNI")),
        pytest.param((_matvec_avx2, vnni.pack_vnni), id="avx2",
                     marks=pytest.mark.skipif(not vnni.has_avx2(), reason="no AVX2"))]


@pytest.mark.parametrize("isa", ISAS)
# K = 1025: more inputs than a pass packs beforehand (vnni.PACKED_PAIRS pairs, vnni_quad.CHUNK), so it runs in chunks
@pytest.mark.parametrize(("K", "N"), [(7, 5), (40, 512), (128, 512), (1, 16), (33, 40), (6, 192), (1025, 32)])
def test_blocked_matvec_at_offsets_equals_gemv_t_int8(K, N, isa):
    _matvec_at, pack = isa
    rng = np.random.default_rng(K * 7 + N)
    w_t = rng.integers(-127, 128, (K, N)).astype(np.int8)
    v = rng.integers(-32768, 32768, K).astype(np.int32)
    v[::3] = rng.choice([-32768, 32767], v[::3].size)
    blocks = -(-N // 16)
    bias = np.zeros(5 + 16 * blocks, np.int32)
    bias[5 : 5 + N] = rng.integers(-(2**20), 2**20, N)
    expected = bias[5 : 5 + N].copy()
    gemv_t_int8(expected, w_t, v)
    dst = np.full(3 + 16 * blocks + 4, -1, np.int32)
    _matvec_at(dst, np.concatenate([np.zeros(64, np.int8), pack(w_t).ravel()]), bias,
               np.concatenate([np.zeros(7, np.int32), v]), K, blocks)
    np.testing.assert_array_equal(dst[3 : 3 + N], expected)
    assert (dst[:3] == -1).all() and (dst[3 + 16 * blocks :] == -1).all()  # nothing written outside the blocks


@njit
def _requantise(x, M, S, e, half, half_neg, got, ref):
    for i in range(x.shape[0]):
        got[i] = mbqm_right(x[i], M[i], e[i], half[i], half_neg[i])
        ref[i] = multiply_by_quantized_multiplier_right(x[i], M[i], S[i])


def test_requantisation_with_row_constants_equals_int8_math_on_every_right_shift():
    rng = np.random.default_rng(3)
    n = 400_000
    x = rng.integers(-(2**31), 2**31, n, dtype=np.int64)
    x[::4] >>= rng.integers(0, 31, x[::4].size)  # small values too, where the roundings' ties lie
    x[:4] = [-(2**31), 2**31 - 1, -1, 0]
    M = rng.integers(2**30, 2**31, n, dtype=np.int64)
    M[::7] = 0
    S = rng.integers(-31, 1, n, dtype=np.int64)
    got, ref = np.zeros(n, np.int32), np.zeros(n, np.int32)
    _requantise(x.astype(np.int32), M.astype(np.int32), S.astype(np.int32), *rounding_rows(S), got, ref)
    np.testing.assert_array_equal(got, ref)


N_ROWS = 1 << 18


def _extreme_terms(rng, n):
    """(acc (2 n,) int64: n x-side then n h-side accumulators, extreme and small ones; blob: the 8 rows of
    requantisation constants [M | e | half | half_neg] for each side), every right shift 0..31 among them."""
    acc = rng.integers(-(2**31), 2**31, 2 * n, dtype=np.int64)
    acc[::4] >>= rng.integers(0, 31, acc[::4].size)  # small values too, where the roundings' ties lie
    acc[:8] = [-(2**31), 2**31 - 1, -1, 0, -(2**31), 2**31 - 1, 5, -5]
    acc[n : n + 8] = [-(2**31), 2**31 - 1, 0, -1, 2**31 - 1, -(2**31), -5, 5]  # int32 sums that overflow, cancel
    M = rng.integers(2**30, 2**31, 2 * n, dtype=np.int64)
    M[::7] = 0
    M[:8] = M[n : n + 8] = 2**31 - 1
    S = rng.integers(-31, 1, 2 * n, dtype=np.int64)
    S[:8] = S[n : n + 8] = 0
    e, half, half_neg = rounding_rows(S)
    blob = np.concatenate([M[:n], e[:n], half[:n], half_neg[:n], M[n:], e[n:], half[n:], half_neg[n:]]).astype(np.int32)
    return acc, blob


@njit
def _reference_terms(ref, n, blob, j):
    """Row j's two requantised terms (int64) by int8_math, from ref's accumulators (x side at j, h side at n + j)
    and blob's rows as _extreme_terms lays them out."""
    yx = np.int64(multiply_by_quantized_multiplier_right(ref[j], blob[j], -blob[n + j]))
    yh = np.int64(multiply_by_quantized_multiplier_right(ref[n + j], blob[4 * n + j], -blob[5 * n + j]))
    return yx, yh


def _gate_sums_against_int8_math(sums):
    """A compiled check (a, n, blob, ref) of one gate-sums intrinsic (gate_sums_rows_at, gate_sums_bounded_at): a's
    first n rows by the intrinsic, ref's by int8_math, from the same accumulators."""

    @njit
    def check(a, n, blob, ref):
        sums(a, 0, n, n, blob, 0, n, 2 * n, 3 * n, 4 * n, 5 * n, 6 * n, 7 * n)
        for r in range(n):
            yx, yh = _reference_terms(ref, n, blob, r)
            ref[r] = np.int32(sat16(yx + yh))

    return check


def _gru_candidate_against_int8_math(candidate):
    """The same for a GRU candidate intrinsic (gru_candidate_rows_at, gru_candidate_bounded_at)."""

    @njit
    def check(a, n, blob, ref):
        candidate(a, 0, 2 * n, n, n, blob, 0, n, 2 * n, 3 * n, 4 * n, 5 * n, 6 * n, 7 * n)
        for j in range(n):
            yx, yh = _reference_terms(ref, n, blob, j)
            ref[j] = np.int32(sat16(yx + np.int64(rounding_divide_by_pot(np.int64(ref[2 * n + j]) * yh, 15))))

    return check


_gate_sums = _gate_sums_against_int8_math(gate_sums_rows_at)
_gru_candidate = _gru_candidate_against_int8_math(gru_candidate_rows_at)
_gate_sums_bounded = _gate_sums_against_int8_math(gate_sums_bounded_at)
_gru_candidate_bounded = _gru_candidate_against_int8_math(gru_candidate_bounded_at)


def test_vector_gate_sums_equal_int8_math_on_extreme_accumulators_and_every_right_shift():
    acc, blob = _extreme_terms(np.random.default_rng(4), N_ROWS)
    n = N_ROWS
    a, ref = acc.astype(np.int32), acc.astype(np.int32)
    _gate_sums(a, n, blob, ref)
    np.testing.assert_array_equal(a[:n], ref[:n])
    assert (a[:n] == 32767).any() and (a[:n] == -32768).any() and (np.abs(a[:n]) < 32767).any()


def _bounded_terms(rng, n):
    """(acc, blob) as _extreme_terms, the accumulators within the bounded form's proof, |acc| + 2^e < 2^30 (those
    at the limit included, every right shift 0..29 among the rows)."""
    acc, blob = _extreme_terms(rng, n)
    rows = blob.reshape(8, n).astype(np.int64)
    S = -rng.integers(0, 30, (2, n))
    S[:, :8] = [[0, -29, -1, -13, -29, 0, -2, -12]] * 2
    limit = (2**30 - 1 - (np.int64(1) << -S)).ravel()
    acc = np.clip(acc, -limit, limit)
    acc[[0, 4, 5, n, n + 4, n + 5]] = limit[[0, 4, 5, n, n + 4, n + 5]] * np.array([1, -1, -1, -1, 1, -1])
    sides = [[rows[4 * side], *rounding_rows(S[side])] for side in (0, 1)]
    return acc, np.concatenate(sides[0] + sides[1]).astype(np.int32)


@pytest.mark.parametrize("gru", [False, True])
def test_bounded_vector_gate_sums_equal_int8_math_up_to_the_limit_of_their_proof(gru):
    rng = np.random.default_rng(8 + gru)
    n = N_ROWS
    acc, blob = _bounded_terms(rng, n)
    gate = rng.integers(0, 2**15, n, dtype=np.int64)
    gate[:4] = [0, 2**15 - 1, 1, 16384]
    a = np.concatenate([acc, gate]).astype(np.int32)
    ref = a.copy()
    (_gru_candidate_bounded if gru else _gate_sums_bounded)(a, n, blob, ref)
    np.testing.assert_array_equal(a, ref)
    assert (a[:n] == 32767).any() and (a[:n] == -32768).any() and (np.abs(a[:n]) < 32767).any()


def test_vector_gru_candidate_equals_int8_math_on_extreme_accumulators_every_gate_and_right_shift():
    rng = np.random.default_rng(6)
    acc, blob = _extreme_terms(rng, N_ROWS)
    n = N_ROWS
    gate = rng.integers(0, 2**15, n, dtype=np.int64)  # the reset gate: a sigmoid's output, Q0.15 in [0, 32767]
    gate[:8] = [0, 2**15 - 1, 2**15 - 1, 1, 2**15 - 1, 2**15 - 1, 16384, 16385]
    gate[8::9] = 2**15 - 1
    gate[9::9] = 0
    a = np.concatenate([acc, gate]).astype(np.int32)
    ref = a.copy()
    _gru_candidate(a, n, blob, ref)
    np.testing.assert_array_equal(a[:n], ref[:n])
    np.testing.assert_array_equal(a[n:], ref[n:])  # nothing else written
    assert (a[:n] == 32767).any() and (a[:n] == -32768).any() and (np.abs(a[:n]) < 32767).any()
