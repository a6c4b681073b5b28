"""A checkpoint with the head contract's forms (hidden dense layers, log_softmax) through export_checkpoint: every
precision's artifacts pass the report's rules, the firmware sources of each precision are written, gelu and
gelu_tanh in int8 too (integer gelu, runtime/int8_math.py)."""

from __future__ import annotations

import shutil

from rnnedge.export.pipeline import export_checkpoint
from rnnedge.export.vectors import check_vectors, vectors_file
from tests.export.test_export_extensions import write_checkpoint
from tests.helpers import make_model, make_spec


def test_head_stack_with_log_softmax_exports_every_precision_with_a_passing_report_and_firmware(tmp_path):
    model = make_model(make_spec("gru", layers=2, activation="log_softmax", head_hidden=((10, "relu"), (6, "tanh"))))
    out = tmp_path / "out"
    report = export_checkpoint(write_checkpoint(tmp_path, model), out, steps=300, precisions=("f32", "int8w", "int8"))
    assert report["passed"], report["failures"]
    rows = {row["name"]: row for row in report["artifacts"]}
    for name in ("pytorch_step", "onnx", "onnx_step", "runtime_stream", "runtime_run"):
        assert rows[name]["max_abs_diff"] <= 1e-5, rows[name]
    assert "refused" not in (report.get("firmware") or {})
    for precision in ("f32", "int8w", "int8"):
        assert check_vectors(out / vectors_file(precision), out / f"model.{precision}.safetensors") == []
        source = (out / "firmware" / precision / "model_data.c").read_text()
        assert "RNNEDGE_HIDDEN_RELU" in source and "RNNEDGE_HIDDEN_TANH" in source
    assert report["quantization"]["int8"]["calibration"]["head_absmax"][0] > 0
    if shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"):  # the footprint counts the head's arrays
        assert report["firmware"]["measured"], report["firmware"]
    assert report["spec"]["version"] == 3


def test_gelu_head_exports_every_precision_with_a_passing_report_and_firmware(tmp_path):
    model = make_model(make_spec("lstm", layers=2, head_hidden=((8, "gelu"), (6, "gelu_tanh"))))
    out = tmp_path / "out"
    report = export_checkpoint(write_checkpoint(tmp_path, model), out, steps=300, precisions=("f32", "int8w", "int8"))
    assert report["passed"], report["failures"]
    rows = {row["name"]: row for row in report["artifacts"]}
    for name in ("runtime_int8_stream", "runtime_int8_run"):  # the no-data rule: within 0.1 of PyTorch
        assert rows[name]["max_abs_diff"] <= 0.1, rows[name]
    assert "refused" not in (report.get("firmware") or {})
    for precision in ("f32", "int8w", "int8"):
        assert check_vectors(out / vectors_file(precision), out / f"model.{precision}.safetensors") == []
        source = (out / "firmware" / precision / "model_data.c").read_text()
        assert "RNNEDGE_HIDDEN_GELU," in source and "RNNEDGE_HIDDEN_GELU_TANH" in source
    assert [layer["output_scale"] for layer in report["quantization"]["int8"]["head_hidden"]] == [2.0**-12] * 2
