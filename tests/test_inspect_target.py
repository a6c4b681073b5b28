"""`rnnedge inspect FILE --target TARGET`: the cost of one firmware_ref step predicted by runtime/cost_model.py
(instructions per step and per MAC, flash, RAM) for a weight file's precision or, for a checkpoint, every precision
the target runs; a bad target name, a precision the target does not run, a target not measured yet and a model the
fit does not cover exit 2 naming why. (The predictions against QEMU: tests/firmware/test_cost_model.py.)"""

import json

import pytest

from rnnedge.runtime import cost_coefficients, cost_model, inspect_file
from rnnedge.runtime.cost_model import TARGETS
from rnnedge.train.checkpoint import save_checkpoint
from tests.helpers import make_model, make_spec, write_artifact

H, F, OUT = 24, 7, 5


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect-target")
    model = make_model(make_spec("gru", layers=2, hidden=H, features=F, out=OUT))
    paths = {p: write_artifact(model, folder / f"model.{p}.safetensors", p) for p in ("f32", "int8")}
    paths["pt"] = str(folder / "model.pt")
    save_checkpoint(paths["pt"], model, {"metric": "accuracy", "val_metric": 0.9, "test_metric": 0.875,
                                         "kept_epoch": 3})
    return paths


def inspected(capsys, *args) -> dict:
    assert inspect_file.main([*map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def refused(capsys, *args) -> str:
    with pytest.raises(SystemExit) as e:  # argparse's refusals exit through SystemExit
        code = inspect_file.main([*map(str, args)])
        raise SystemExit(code)
    assert e.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m4", "rv32"])
def test_inspect_target_predicts_cost_of_an_int8_file_consistent_with_its_firmware_sources(files, capsys, target):
    facts = inspected(capsys, files["int8"], "--target", target)
    [cost] = facts["cost"]
    assert (cost["target"], cost["precision"]) == (target, "int8")
    macs = facts["macs_per_step"]["total"]
    assert cost["macs_per_step"] == macs
    assert cost["instructions_per_step"] > macs  # at least one instruction per multiply-accumulate
    assert cost["instructions_per_mac"] == pytest.approx(cost["instructions_per_step"] / macs, rel=1e-3)
    firmware = facts["firmware"]  # the generated model_data.h's macros: the exact figures
    assert (cost["ram"]["state"], cost["ram"]["scratch"]) == (firmware["state_bytes"], firmware["scratch_bytes"])
    # MODEL_CONST_BYTES counts the integer arrays; the linked constants add the layer structs and the model struct
    structs = cost["flash"]["model_const"] - firmware["const_bytes"]
    assert 0 < structs <= 128 * (len(facts["layers"]) + 1), (cost["flash"], firmware)
    assert cost["flash"]["library_code"] > 1000 and cost["ram"]["stack"] > 0


def test_inspect_target_text_says_instructions_not_cycles_and_how_the_model_was_fitted(files, capsys):
    assert inspect_file.main([files["int8"], "--target", "cortex-m3"]) == 0
    out = capsys.readouterr().out
    cost_line = next(line for line in out.splitlines() if line.lstrip().startswith("cost "))
    assert "cortex-m3 int8: ~" in cost_line and "instructions per step" in cost_line
    assert "QEMU instruction counts, not cycles" in cost_line
    assert "fitted to" in out and "measured under QEMU" in out


def test_inspect_target_of_a_checkpoint_gives_every_precision_the_target_runs(files, capsys):
    costs = inspected(capsys, files["pt"], "--target", "cortex-m4f")["cost"]
    assert [c["precision"] for c in costs] == ["f32", "int8w", "int8"]
    f32, _, int8 = costs
    assert f32["ram"]["state"] == 2 * int8["ram"]["state"]  # float h vs int16 h
    assert int8["instructions_per_step"] == cost_model.predict(make_spec("gru", layers=2, hidden=H, features=F,
                                                                         out=OUT), "cortex-m4", "int8")[
        "instructions_per_step"]  # cortex-m4f's int8 is cortex-m4's image


def test_inspect_target_with_a_bad_name_exits_2_listing_the_valid_targets(files, capsys):
    err = refused(capsys, files["int8"], "--target", "cortex-m7")
    assert "cortex-m7" in err
    assert all(name in err for name in TARGETS), err


def test_inspect_target_of_a_float_file_on_an_int8_only_target_exits_2(files, capsys):
    assert inspect_file.main([files["f32"], "--target", "cortex-m3"]) == 2
    err = capsys.readouterr().err
    assert "--target cortex-m3" in err and "int8 step, not f32" in err


def test_inspect_target_without_coefficients_says_not_measured_yet_and_exits_2(files, capsys, monkeypatch):
    """A target whose coefficients are missing (taken out here, as for a target not measured yet) says so."""
    monkeypatch.delitem(cost_coefficients.COEFFICIENTS, "cortex-m4/int8")
    monkeypatch.delitem(cost_coefficients.COEFFICIENTS, "cortex-m55/int8", raising=False)
    for target in ("cortex-m4", "cortex-m55"):
        assert inspect_file.main([files["int8"], "--target", target]) == 2
        err = capsys.readouterr().err
        assert f"{target} int8 has not been measured yet" in err, err
    assert inspect_file.main([files["pt"], "--target", "cortex-m55"]) == 2
    assert "cortex-m55 int8 has not been measured yet" in capsys.readouterr().err


def test_inspect_target_names_what_the_fit_does_not_cover(tmp_path, capsys):
    spec = make_spec("lstm", layers=1, hidden=8, features=3, out=2)
    spec["layers"][0]["bidirectional"] = True
    path = write_artifact(make_model(spec), tmp_path / "model.int8.safetensors", "int8")
    assert inspect_file.main([path, "--target", "cortex-m3"]) == 2
    assert "layers[0] is bidirectional" in capsys.readouterr().err
