"""The export report carries the int8 firmware's Cortex-M3 footprint (export/footprint.py), or why it has none.

A model of PyTorch's cells is measured with the library its user would link, built without the ONNX layer
extensions' code (-DRNNEDGE_EXTENSIONS=0; library.extensions False), a model with extensions with it (True).

Measuring needs arm-none-eabi-gcc (+ newlib, binutils), qemu-system-arm and make: a missing tool fails the
measuring test under CI=true and skips it elsewhere. The "not measured" paths run everywhere.
"""

from __future__ import annotations

import json
import math
import os

import pytest

from rnnedge.export import footprint
from rnnedge.export.pipeline import export_checkpoint
from tests.export.test_export_cli import checkpoint


def _require_tools():
    ok, reason = footprint.available()
    if not ok:
        message = f"Cortex-M toolchain/emulator missing: {reason}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: a missing tool fails)", pytrace=False)
        pytest.skip(message)


def test_a_streamable_int8_export_reports_the_firmware_footprint(tmp_path, monkeypatch):
    _require_tools()
    monkeypatch.delenv("RNNEDGE_FOOTPRINT", raising=False)
    report = export_checkpoint(checkpoint(tmp_path / "m.pt"), tmp_path / "out", steps=50, precisions=("int8",))
    fw = report["firmware"]
    assert fw["measured"], fw
    assert (fw["board"], fw["cpu"]) == ("an385", "cortex-m3")
    assert fw["seconds"]["total"] < 5.0  # one build and one short run
    # lstm 12 -> gru 8 on 3 features, head 4: PyTorch's parameter count, one byte each
    params = (48 * 3 + 48 * 12 + 2 * 48) + (24 * 12 + 24 * 8 + 2 * 24) + (4 * 8 + 4)
    assert fw["model_const"]["raw_int8_params"] == params
    assert fw["model_const"]["by_kind"]["weights"] == 48 * 15 + 24 * 20 + 4 * 8
    assert fw["ram"]["state_plus_scratch_bytes"] == 2 * (12 + 12 + 8) + 2 * (4 * 12)
    assert fw["ram"]["bss_agrees"]
    assert 0 < fw["library"]["code_bytes"] <= footprint.LIBRARY_CODE_TARGET
    # PyTorch's cells: the library without the extensions' code, the size it had before they existed (1,912 B;
    # 1,954 B measured with the refusals of extension flags and of an initial state at reset)
    lib = fw["library"]
    assert lib["extensions"] is False and footprint.NO_EXTENSIONS_FLAG in fw["cflags"].split()
    assert lib["code_bytes"] == lib["code_bytes_without_extensions"] <= 2048
    assert lib["code_bytes_with_extensions"] > lib["code_bytes"] + 1024  # the extensions' paths, not linked here
    assert fw["library"]["const_bytes"] == 512  # the sigmoid table
    assert 0 < fw["ram"]["stack_used_bytes"] < fw["ram"]["stack_size_bytes"]
    ic = fw["icount"]
    assert ic["steps"] == 16 and 0 < ic["per_step_min"] <= ic["per_step_median"] <= ic["per_step_max"]
    assert ic["per_step_min"] % 40 == 0 and math.isfinite(ic["per_step_mean"])
    assert [t["name"] for t in fw["targets"]] == ["library_code", "ram_state_scratch", "weights_flash"]
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["firmware"]["model_const"]["flash_bytes"] == fw["model_const"]["flash_bytes"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"library code {fw['library']['code_bytes']} B" in md and "instructions per step" in md
    assert (f"without the ONNX layer extensions (-DRNNEDGE_EXTENSIONS=0; {lib['code_bytes_with_extensions']} B with "
            "them)") in md


def test_an_int8_export_with_layer_extensions_reports_its_footprint(tmp_path, monkeypatch):
    """h0 / c0 and peepholes are const arrays of model_data.c too: counted by kind and in MODEL_CONST_BYTES."""
    from tests.export.test_export_extensions import write_checkpoint
    from tests.train.test_model_extensions import extended_model

    _require_tools()
    monkeypatch.delenv("RNNEDGE_FOOTPRINT", raising=False)
    model = extended_model("lstm", {"peepholes": True, "initial_state": True, "clip": 2.0}, hidden=6)
    report = export_checkpoint(write_checkpoint(tmp_path, model), tmp_path / "out", steps=50, precisions=("int8",))
    fw = report["firmware"]
    assert fw["measured"], fw
    # h0, c0 and the peepholes as int16 (6 + 6 + 18 values), a multiplier (int32) and shift (int8) per gate
    assert fw["model_const"]["by_kind"]["extensions"] == 2 * (6 + 6 + 18) + 4 * 3 + 3
    # the model needs the extensions' code: the library is built with it (a build without it would not compile)
    lib = fw["library"]
    assert lib["extensions"] is True and footprint.NO_EXTENSIONS_FLAG not in fw["cflags"].split()
    assert lib["code_bytes"] == lib["code_bytes_with_extensions"] <= footprint.LIBRARY_CODE_TARGET
    assert lib["code_bytes_without_extensions"] < lib["code_bytes"] - 1024
    assert "with the ONNX layer extensions" in footprint.summary_line(fw)
    assert "with the ONNX layer extensions" in fw["targets"][0]["description"]


def test_which_library_a_model_needs_is_read_from_its_sources(tmp_path):
    """MODEL_USES_EXTENSIONS of model_data.h (export/firmware.py); sources from before the macro: whether
    model_data.c sets a layer's flags."""
    (tmp_path / "model_data.c").write_text("    .cell_power = 0,\n")
    for value, expected in (("0", False), ("1", True)):
        (tmp_path / "model_data.h").write_text(f"#include \"rnnedge.h\"\n\n#define MODEL_USES_EXTENSIONS {value}\n")
        assert footprint.model_uses_extensions(tmp_path) is expected
    (tmp_path / "model_data.h").write_text("#define MODEL_STATE_LEN 12 /* int16 */\n")
    assert footprint.model_uses_extensions(tmp_path) is False
    (tmp_path / "model_data.c").write_text("        .flags = RNNEDGE_EXT_CLIP,\n        .clip_q = 100,\n")
    assert footprint.model_uses_extensions(tmp_path) is True
    assert footprint.library_build({"extensions": False, "code_bytes_with_extensions": 3358}) == (
        "without the ONNX layer extensions (-DRNNEDGE_EXTENSIONS=0; 3358 B with them)")


def test_without_the_tools_the_report_says_not_measured(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNEDGE_FOOTPRINT", raising=False)
    monkeypatch.setattr(footprint, "available", lambda: (False, "qemu-system-arm not installed"))
    report = export_checkpoint(checkpoint(tmp_path / "m.pt"), tmp_path / "out", steps=30, precisions=("int8",))
    assert report["passed"]
    assert report["firmware"] == {"measured": False, "reason": "qemu-system-arm not installed"}
    md = (tmp_path / "out" / "report.md").read_text()
    assert "- firmware/int8 footprint: not measured: qemu-system-arm not installed" in md


def test_a_failing_measurement_never_fails_the_export(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNEDGE_FOOTPRINT", raising=False)
    monkeypatch.setattr(footprint, "available", lambda: (True, ""))

    def broken(*args, **kwargs):
        raise footprint.FootprintError("compiling model_data.c failed (1): boom")

    monkeypatch.setattr(footprint, "measure_footprint", broken)
    report = export_checkpoint(checkpoint(tmp_path / "m.pt"), tmp_path / "out", steps=30, precisions=("int8",))
    assert report["firmware"] == {"measured": False, "reason": "compiling model_data.c failed (1): boom"}


def test_switched_off_or_without_firmware_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")
    report = export_checkpoint(checkpoint(tmp_path / "m.pt"), tmp_path / "a", steps=30, precisions=("int8",))
    assert report["firmware"] == {"measured": False, "reason": "disabled by RNNEDGE_FOOTPRINT"}
    monkeypatch.delenv("RNNEDGE_FOOTPRINT")
    report = export_checkpoint(checkpoint(tmp_path / "m.pt"), tmp_path / "b", steps=30)  # f32 only: no firmware
    assert "firmware" not in report
    assert "firmware/int8 footprint" not in (tmp_path / "b" / "report.md").read_text()
