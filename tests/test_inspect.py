"""`rnnedge inspect FILE`: the spec, sizes, kernels and firmware figures of a weight file, an ONNX file or a
checkpoint; anything else is refused in one line."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest

from rnnedge.export import footprint
from rnnedge.export.onnx_graphs import build_sequence_graph
from rnnedge.export.weights import canonical_tensors
from rnnedge.runtime import inspect_file
from rnnedge.train.checkpoint import save_checkpoint
from tests.helpers import make_model, make_spec, write_artifact

pytestmark = pytest.mark.specialised  # the step a user gets (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[1]
H, F, OUT = 16, 5, 4  # two LSTM layers of 16 units on 5 features, 4 outputs


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect")
    model = make_model(make_spec("lstm", layers=2, hidden=H, features=F, out=OUT))
    paths = {p: write_artifact(model, folder / f"model.{p}.safetensors", p) for p in ("f32", "int8w", "int8")}
    paths["pt"] = str(folder / "model.pt")
    save_checkpoint(paths["pt"], model, {"metric": "accuracy", "val_metric": 0.9, "test_metric": 0.875,
                                         "kept_epoch": 3})
    paths["onnx"] = str(folder / "model.onnx")
    onnx.save(build_sequence_graph(model.spec, canonical_tensors(model)), paths["onnx"])
    return paths


def inspected(capsys, *args) -> dict:
    assert inspect_file.main([*map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def needs_footprint_tools() -> None:
    """Skip where the ARM toolchain or QEMU is missing; under CI (which installs them) that is a failure."""
    ok, reason = footprint.available()
    if not ok:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI installs the firmware tools, but {reason}")
        pytest.skip(reason)


def expected_macs() -> int:
    """Two LSTM layers (4 gates of H rows over the layer's input and h) and a linear head, counted by hand."""
    return 4 * H * (F + H) + 4 * H * (H + H) + OUT * H


@pytest.mark.parametrize("precision, state_item", [("f32", 4), ("int8w", 4), ("int8", 2)])
def test_inspect_a_weight_file_of_each_precision_gives_spec_sizes_kernel_and_firmware(files, capsys, precision,
                                                                                        state_item):
    facts = inspected(capsys, files[precision])
    assert facts["precision"] == precision and facts["file"]["kind"] == "rnnedge weight file"
    assert [(layer["cell"], layer["hidden"], layer["directions"]) for layer in facts["layers"]] == [
        ("lstm", H, "forward"), ("lstm", H, "forward")]
    assert facts["input"] == {"kind": "dense", "features": F}
    assert facts["head"] == {"hidden": [], "out": OUT, "activation": "softmax", "on": "every_step"}
    assert facts["parameters"] == (4 * H * (F + H) + 8 * H) + (4 * H * (H + H) + 8 * H) + (OUT * H + OUT)
    assert facts["macs_per_step"]["total"] == expected_macs()
    assert facts["state_values"] == 2 * 2 * H  # h and c of both layers
    assert facts["bytes"]["state_on_device"] == state_item * 4 * H
    assert facts["kernel"]["module"] == f"runtime/kernels_{precision}.py"
    # a stacked forward LSTM is what the specialised steps cover: inspect says that one runs, from where
    assert facts["kernel"]["step"]["step"] == "specialised" and facts["kernel"]["step"]["precision"] == precision
    assert Path(facts["kernel"]["step"]["source"]).is_file()
    firmware = facts["firmware"]
    assert firmware["runs"] and firmware["state_bytes"] == state_item * 4 * H
    assert firmware["ram_bytes"] == firmware["state_bytes"] + firmware["scratch_bytes"]
    assert firmware["const_bytes"] >= facts["parameters"] * (4 if precision == "f32" else 1)
    assert inspect_file.main([files[precision]]) == 0
    text = capsys.readouterr().out
    assert f"MACs/step   {expected_macs():,} " in text and f"firmware_ref {precision}: flash " in text


def test_inspect_int8_files_measure_the_firmware_footprint_on_request(files, capsys):
    needs_footprint_tools()
    measured = inspected(capsys, files["int8"], "--measure-footprint")["firmware"]["measured"]
    assert measured["board"] == "an385" and measured["library_code_bytes"] > 0
    assert measured["ram_state_scratch_bytes"] == inspected(capsys, files["int8"])["firmware"]["ram_bytes"]
    assert measured["instructions_per_step"] > expected_macs()  # at least one instruction per multiply-accumulate


def test_inspect_measures_the_footprint_on_the_cortex_m55_board_too(files, capsys):
    needs_footprint_tools()
    measured = inspected(capsys, files["int8"], "--measure-footprint", "--board", "an547")["firmware"]["measured"]
    assert measured["board"] == "an547" and measured["cpu"] == "cortex-m55" and measured["library_code_bytes"] > 0
    m3 = inspected(capsys, files["int8"], "--measure-footprint", "--board", "an385")["firmware"]["measured"]
    # the same step on Helium's vector instructions: fewer instructions than the plain-C Cortex-M3 build runs
    assert 0 < measured["instructions_per_step"] < m3["instructions_per_step"]


def test_inspect_a_checkpoint_gives_its_spec_metrics_and_the_export_command(files, capsys):
    facts = inspected(capsys, files["pt"])
    assert facts["file"]["kind"] == "rnnedge checkpoint (PyTorch)"
    assert facts["macs_per_step"]["total"] == expected_macs()
    assert facts["metrics"] == {"metric": "accuracy", "val_metric": 0.9, "test_metric": 0.875, "kept_epoch": 3}
    assert facts["firmware_ram"]["int8"] == inspected(capsys, files["int8"])["firmware"]["ram_bytes"]
    assert facts["next"] == f"rnnedge export {files['pt']} --precision f32,int8w,int8 --out DIR"


def test_inspect_an_onnx_file_gives_its_nodes_and_the_spec_it_maps_to(files, capsys):
    facts = inspected(capsys, files["onnx"])
    assert facts["file"]["kind"] == "ONNX model" and facts["onnx"]["nodes"]["LSTM"] == 2
    assert facts["mapping"].startswith("maps to the rnnedge spec below")
    assert [(layer["cell"], layer["hidden"]) for layer in facts["layers"]] == [("lstm", H), ("lstm", H)]
    assert facts["macs_per_step"]["total"] == expected_macs()


@pytest.mark.parametrize("content, says", [
    (b"\x00\x01garbage" * 50, "is not a file rnnedge knows: rnnedge inspect reads weight files"),
    (b"sequence_id,a,label\n", "is a text file: rnnedge inspect reads weight files"),
    (b"", "is empty: rnnedge inspect reads weight files"),
])
def test_inspect_refuses_other_files_in_one_line_with_exit_2(tmp_path, capsys, content, says):
    path = tmp_path / "thing.bin"
    path.write_bytes(content)
    assert inspect_file.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rnnedge inspect: error: {path} {says}") and err.count("\n") == 1


def test_inspect_refuses_a_damaged_weight_file_naming_the_seal(files, tmp_path, capsys):
    data = bytearray(Path(files["f32"]).read_bytes())
    data[-3] ^= 0x40  # a weight's byte
    damaged = tmp_path / "model.f32.safetensors"
    damaged.write_bytes(bytes(data))
    assert inspect_file.main([str(damaged)]) == 2
    assert "does not match rnnedge.sha256" in capsys.readouterr().err


def inspect_on_a_device(path):
    """`rnnedge inspect PATH` where torch and onnx cannot be imported, as on a device."""
    program = textwrap.dedent("""
        import sys
        class Device:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "onnx", "onnxruntime", "onnxscript"):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Device())
        from rnnedge.runtime.umbrella import main
        sys.exit(main(["inspect", sys.argv[1]]))
    """)
    return subprocess.run([sys.executable, "-c", program, path], capture_output=True, text=True, check=False,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)


def test_inspect_a_weight_file_on_a_device_gives_everything_without_torch(files):
    done = inspect_on_a_device(files["int8"])
    assert done.returncode == 0, done.stderr
    assert f"MACs/step   {expected_macs():,} " in done.stdout and "firmware_ref int8: flash " in done.stdout


@pytest.mark.parametrize("kind, needs", [("pt", "torch"), ("onnx", "onnx")])
def test_inspect_on_a_device_names_the_extra_a_checkpoint_or_onnx_file_needs(files, kind, needs):
    done = inspect_on_a_device(files[kind])
    assert done.returncode == 2
    assert done.stderr == (f"rnnedge inspect: error: {files[kind]}: reading "
                           f"{'an rnnedge checkpoint' if kind == 'pt' else 'an ONNX file'} needs the training extra "
                           f'({needs} is not installed here): pip install "rnnedge[train]"\n')


def test_inspect_a_weight_file_beside_its_export_report_gives_its_parity_rows(tmp_path, capsys, monkeypatch):
    from rnnedge.export import cli as export_cli

    monkeypatch.setenv("RNNEDGE_FOOTPRINT", "0")  # the footprint is tested above; here only the parity rows
    model = make_model(make_spec("gru", hidden=4))
    save_checkpoint(tmp_path / "model.pt", model)
    out = tmp_path / "export"
    assert export_cli.main([str(tmp_path / "model.pt"), "--out", str(out), "--precision", "f32,int8",
                            "--stream-steps", "30"]) == 0
    capsys.readouterr()
    report = inspected(capsys, out / "model.int8.safetensors")["export_report"]
    assert report["stale"] is False and report["passed"] is True
    assert [r["comparison"] for r in report["rows"]] == ["PyTorch forward vs runtime int8 stream().step() loop",
                                                        "PyTorch forward vs runtime int8 run()"]
    assert inspect_file.main([str(out / "model.int8.safetensors")]) == 0
    assert f"  parity      PASS in {out / 'report.json'}" in capsys.readouterr().out
    other = make_model(make_spec("gru", hidden=4), seed=1)
    write_artifact(other, out / "model.f32.safetensors")  # not the file the report describes
    assert inspected(capsys, out / "model.f32.safetensors")["export_report"] == {"path": str(out / "report.json"),
                                                                                 "stale": True}
