"""firmware_ref/'s f32 and int8w steps with the ONNX layer extensions (runtime/spec.py) on the host.

Every case builds a small seeded model whose layers carry extensions (peepholes and h0 / c0 random, as
tests/train/test_model_extensions.py's extended_model), writes its weight file and golden vectors (which start from
h0 / c0, as a runtime Stream does), generates the C sources (export/firmware.py: each layer's `ext` field) and
replays the vectors with firmware_ref/tests/host_test_float.c (test_host_float.py's strict build): state and outputs
within 1e-5 of the runtime at every step, the state after rnnedge_state_reset_* equal to h0 / c0. Each extension
alone, then combined, in 1 and 2 layers; an RNN with each of ONNX's 11 activation functions; the functions
themselves against runtime.kernels_f32_ext.activate_f32. gcc or make missing fails under CI=true, skips otherwise.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnedge.export.firmware import (
    FIRMWARE_EXTENSIONS,
    _c_float,
    firmware_unsupported,
    write_firmware_sources,
    write_float_model_sources,
)
from rnnedge.export.vectors import ATOL, write_vectors
from rnnedge.runtime import artifact, layout
from rnnedge.runtime import spec as specs
from rnnedge.runtime.kernels_f32_ext import activate_f32
from rnnedge.train.model import RecurrentModel
from tests.firmware.test_host_float import ACTIVATION, FIRMWARE, STEPS, _assert_passes, _run
from tests.helpers import make_spec, random_inputs, write_artifact

MAX_DIFFS: dict[str, float] = {}  # case id -> the largest |C - runtime| measured (printed at the end with -s)


def ext_model(cell: str, ext: dict, layers: int = 1, kind: str = "dense", seed: int = 0) -> RecurrentModel:
    """A seeded model of hidden 12 whose layers all carry ext; peepholes and h0 / c0 uniform in [-0.8, 0.8]."""
    spec = make_spec(cell=cell, layers=layers, kind=kind, hidden=12, features=5, vocab=40, embed_dim=7, out=4,
                     activation=ACTIVATION[cell])
    spec["layers"] = [{"cell": cell, "hidden": 12, "bidirectional": False, **ext} for _ in range(layers)]
    torch.manual_seed(seed)
    model = RecurrentModel(spec).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.split(".")[-1].startswith(("h0_", "c0_", "peephole_")):
                param.copy_(torch.rand(param.shape) * 1.6 - 0.8)
    return model


def ext_case(folder: Path, precision: str, model: RecurrentModel, seed: int = 1) -> Path:
    """model's weight file, vectors (dense inputs at 4x the spec's spread) and C sources in folder."""
    weights = write_artifact(model, folder / f"model.{precision}.safetensors", precision)
    X = random_inputs(model.spec, 1, STEPS, seed=seed)[0]
    if model.spec["input"]["kind"] == "dense":
        X = ((X - 0.5) * 4.0 + 0.5).astype(np.float32)
    vectors = folder / f"model.{precision}.vectors.safetensors"
    write_vectors(vectors, weights, X, steps=STEPS)
    write_firmware_sources(weights, vectors, folder)
    return Path(weights)


def check(folder: Path, precision: str, model: RecurrentModel, name: str, target: str = "host-float") -> float:
    ext_case(folder, precision, model)
    max_diff = _assert_passes(folder, precision, target)
    assert max_diff <= ATOL
    MAX_DIFFS[f"{precision} {name}"] = max_diff
    return max_diff


SIGMOIDAL = [{"fn": "hardsigmoid", "alpha": 0.25, "beta": 0.45}]
ALONE = [
    ("lstm", {"input_forget": True}),
    ("lstm", {"peepholes": True}),
    ("lstm", {"clip": 0.7}),
    ("lstm", {"initial_state": True}),
    ("lstm", {"activations": SIGMOIDAL + [{"fn": "scaledtanh", "alpha": 1.3, "beta": 0.8}, {"fn": "softsign"}]}),
    ("gru", {"linear_before_reset": False}),
    ("gru", {"clip": 0.5}),
    ("gru", {"initial_state": True}),
    ("gru", {"activations": SIGMOIDAL + [{"fn": "elu", "alpha": 0.6}]}),
    ("rnn_tanh", {"clip": 0.4}),
    ("rnn_tanh", {"initial_state": True}),
    ("rnn_relu", {"clip": 0.6, "initial_state": True}),
]
COMBINED = [
    ("lstm", {"peepholes": True, "clip": 0.9, "input_forget": True, "initial_state": True,
              "activations": SIGMOIDAL + [{"fn": "softsign"}, {"fn": "scaledtanh", "alpha": 0.9, "beta": 1.2}]}),
    ("gru", {"linear_before_reset": False, "clip": 0.8, "initial_state": True,
             "activations": [{"fn": "sigmoid"}, {"fn": "elu", "alpha": 0.7}]}),
]
# each of ONNX's functions as an RNN's f (alpha / beta not at their defaults where the function has them)
FUNCTIONS = [
    {"fn": "relu"}, {"fn": "tanh"}, {"fn": "sigmoid"}, {"fn": "affine", "alpha": 0.6, "beta": -0.1},
    {"fn": "leakyrelu", "alpha": 0.2}, {"fn": "thresholdedrelu", "alpha": 0.1},
    {"fn": "scaledtanh", "alpha": 1.5, "beta": 0.7}, {"fn": "hardsigmoid", "alpha": 0.3, "beta": 0.4},
    {"fn": "elu", "alpha": 0.8}, {"fn": "softsign"}, {"fn": "softplus"},
]
assert sorted(f["fn"] for f in FUNCTIONS) == sorted(specs.ACTIVATION_FNS)


def case_id(case) -> str:
    cell, ext = case
    parts = []
    for key, value in ext.items():
        parts.append("-".join(a["fn"] for a in value) if key == "activations" else key)
    return f"{cell}[{','.join(parts)}]"


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("case", ALONE, ids=case_id)
def test_each_extension_alone_matches_vectors(tmp_path, host_cc, make_tool, case, precision):
    cell, ext = case
    check(tmp_path, precision, ext_model(cell, ext, layers=1, seed=2), case_id(case))


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("kind", ["dense", "tokens"])
@pytest.mark.parametrize("case", COMBINED, ids=case_id)
def test_combined_extensions_in_two_layers_match_vectors(tmp_path, host_cc, make_tool, case, kind, precision):
    cell, ext = case
    check(tmp_path, precision, ext_model(cell, ext, layers=2, kind=kind, seed=3), f"{case_id(case)} 2 layers {kind}")


@pytest.mark.parametrize("precision", ["f32", "int8w"])
@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f["fn"])
def test_rnn_with_each_onnx_function_matches_vectors(tmp_path, host_cc, make_tool, fn, precision):
    model = ext_model("rnn_tanh", {"activations": [fn], "initial_state": True}, layers=2, seed=4)
    check(tmp_path, precision, model, f"rnn_tanh[{fn['fn']}] 2 layers")


def test_a_mixed_model_keeps_plain_layers_on_the_fast_path(tmp_path, host_cc, make_tool):
    """Layer 0 PyTorch's cell (no ext field: the zero initialiser), layer 1 with extensions."""
    model = ext_model("gru", {"linear_before_reset": False, "initial_state": True}, layers=2, seed=5)
    model.spec["layers"][0] = {"cell": "gru", "hidden": 12, "bidirectional": False}
    spec = specs.validate(model.spec)
    torch.manual_seed(5)
    model = RecurrentModel(spec).eval()
    check(tmp_path, "int8w", model, "gru plain + [linear_before_reset,initial_state]")
    source = (tmp_path / "model_data.c").read_text()
    layers = source[source.index("model_layers[2]"):]
    first, second = layers.split("},\n    {")[:2]
    assert ".ext" not in first and ".flags = RNNEDGE_EXT_RESET_BEFORE | RNNEDGE_EXT_INIT," in second


@pytest.mark.parametrize(("precision", "case"), [("f32", COMBINED[0]), ("int8w", COMBINED[1])],
                         ids=["f32-lstm", "int8w-gru"])
def test_sanitizer_build_of_combined_extensions_runs_clean(tmp_path, host_cc, make_tool, precision, case):
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    built = _run([host_cc, "-fsanitize=address,undefined", str(probe), "-o", str(tmp_path / "probe")])
    if built.returncode != 0:
        message = f"gcc has no AddressSanitizer/UBSan runtime: {built.stderr[-500:]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    cell, ext = case
    check(tmp_path, precision, ext_model(cell, ext, layers=2, seed=6), f"{case_id(case)} sanitize",
          target="host-float-sanitize")


ACT_DRIVER = r"""
#include <stdio.h>
#include "rnnedge.h"
int main(void)
{
    int code;
    float alpha, beta, x;
    while (scanf("%d %a %a %a", &code, &alpha, &beta, &x) == 4) {
        printf("%a\n", (double)rnnedge_activate_f32(code, alpha, beta, x));
    }
    return 0;
}
"""


def test_activation_functions_match_the_runtime(tmp_path, host_cc):
    """rnnedge_activate_f32 against runtime.kernels_f32_ext.activate_f32 for every code, on [-100, 100]."""
    driver = tmp_path / "act_driver.c"
    driver.write_text(ACT_DRIVER)
    exe = tmp_path / "act_driver"
    built = _run([host_cc, "-std=c99", "-O2", "-I", str(FIRMWARE / "include"), str(driver),
                  str(FIRMWARE / "src" / "rnnedge_f32.c"), "-o", str(exe)])
    assert built.returncode == 0, built.stderr
    xs = np.concatenate([np.linspace(-100, 100, 2001), np.linspace(-3, 3, 1201), [-87.5, 19.999, 20.0, 20.001, 0.1,
                                                                                   -0.0, 0.0, 1e-30, -1e-30]])
    xs = xs.astype(np.float32)
    lines, want = [], []
    for f in FUNCTIONS:
        code = layout.FN_CODE[f["fn"]]
        alpha, beta = (np.float32(v) for v in (f.get("alpha", specs.ACTIVATION_FNS[f["fn"]][0]),
                                                f.get("beta", specs.ACTIVATION_FNS[f["fn"]][1])))
        a = xs.copy()
        activate_f32(a, code, alpha, beta)
        want.append(a)
        lines += [f"{code} {float(alpha).hex()} {float(beta).hex()} {float(x).hex()}\n" for x in xs]
    ran = subprocess.run([str(exe)], input="".join(lines), capture_output=True, text=True, check=True)
    got = np.array([float.fromhex(v) for v in ran.stdout.split()], dtype=np.float64).reshape(len(FUNCTIONS), -1)
    want = np.stack(want).astype(np.float64)
    for f, g, w in zip(FUNCTIONS, got, want):
        # a few ulps of the value (FMA or not; softplus: log1p by the library's own series), or 2.5e-7 absolute
        # where 2 / (1 + e^-2a) - 1 cancels near 0 (test_host_float's bound for tanh)
        np.testing.assert_allclose(g, w, rtol=5e-7, atol=2.5e-7, err_msg=f["fn"])
    MAX_DIFFS["activate_f32 (all 11 functions)"] = float(np.abs(got - want).max())


def test_extension_macros_are_the_layout_codes():
    header = "".join(p.read_text() for p in sorted((FIRMWARE / "include").glob("*.h")))  # rnnedge.h and its parts
    macros = dict(re.findall(r"^#define (RNNEDGE_(?:EXT|FN)_[A-Z_]+) (\d+)\b", header, re.MULTILINE))
    for name in ("REVERSE", "RESET_BEFORE", "INPUT_FORGET", "PEEPHOLES", "CLIP", "ACTIVATIONS", "INIT"):
        assert int(macros[f"RNNEDGE_EXT_{name}"]) == getattr(layout, f"F_{name}"), name
    for fn, code in layout.FN_CODE.items():
        assert int(macros[f"RNNEDGE_FN_{fn.upper()}"]) == code, fn
    assert int(macros["RNNEDGE_FN_COUNT"]) == len(layout.FN_CODE)


def test_float_firmware_implements_every_extension_that_streams():
    for precision in ("f32", "int8w"):
        assert FIRMWARE_EXTENSIONS[precision] == set(specs.EXTENSIONS) - {"reverse"}
        assert firmware_unsupported(ext_model(*COMBINED[0]).spec, precision) == []
        reverse = ext_model("gru", {"reverse": True, "clip": 1.0}).spec
        assert firmware_unsupported(reverse, precision) == ["layers[0] reverse"]


def test_generated_sources_hold_the_extension_fields_and_count_their_arrays(tmp_path):
    model = ext_model(*COMBINED[0], layers=2)
    weights = write_artifact(model, tmp_path / "model.f32.safetensors", "f32")
    header, source = write_float_model_sources(weights, tmp_path / "c")
    text = source.read_text()
    t = artifact.read(weights)[2]
    for l in (0, 1):
        for part in ("p", "h0", "c0"):
            assert f"model_l{l}_{part}[{t[f'layers.{l}.fwd.{part}'].size}]" in text
    flags = ("RNNEDGE_EXT_INPUT_FORGET | RNNEDGE_EXT_PEEPHOLES | RNNEDGE_EXT_CLIP | RNNEDGE_EXT_ACTIVATIONS | "
             "RNNEDGE_EXT_INIT")
    assert text.count(f".flags = {flags},") == 2
    assert ".fn = {{RNNEDGE_FN_HARDSIGMOID, 0x1.p-2f, 0x1.ccccccp-2f}, {RNNEDGE_FN_SOFTSIGN, 0.0f, 0.0f}, " \
           "{RNNEDGE_FN_SCALEDTANH," in text
    assert text.count(f".clip = {_c_float(0.9)},") == 2 and _c_float(0.9) == "0x1.ccccccp-1f"
    const = sum(arr.nbytes for arr in t.values()) + 2 * 4 * 5  # every tensor, with p, h0, c0; mean and std
    assert f"#define MODEL_CONST_BYTES {const} " in header.read_text()
    # int8w of a gru with linear_before_reset false: no b_hh in the file, so no b_hn
    gru = ext_model(*COMBINED[1], layers=1)
    weights = write_artifact(gru, tmp_path / "model.int8w.safetensors", "int8w")
    assert "layers.0.fwd.b_hh" not in artifact.read(weights)[2]
    _, source = write_float_model_sources(weights, tmp_path / "q")
    assert ".b_hn = 0," in source.read_text()


def test_reverse_models_are_refused(tmp_path):
    model = ext_model("lstm", {"reverse": True, "peepholes": True})
    weights = write_artifact(model, tmp_path / "model.f32.safetensors", "f32")
    with pytest.raises(ValueError, match=r"firmware_ref's f32 step does not implement .*layers\[0\] reverse"):
        write_float_model_sources(weights, tmp_path / "c")


def test_zz_report_max_diffs():
    """Prints the largest |C - runtime| of every case above (run with -s)."""
    for name, diff in sorted(MAX_DIFFS.items()):
        print(f"{name}: {diff:.3g}")
