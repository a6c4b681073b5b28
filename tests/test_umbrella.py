"""`rnnedge`: one command for every stage, its --version, the old names as aliases, renamed options."""

import importlib
import os
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

from rnnedge.export import cli as export_cli
from rnnedge.runtime import umbrella
from rnnedge.train import cli as train_cli

ROOT = Path(__file__).resolve().parents[1]


def rnnedge(*args, program: str = "import sys; from runtime.umbrella import main; sys.exit(main())"):
    """The umbrella command in a fresh interpreter of this venv, with this checkout first on the path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", program, *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=300, env=env, cwd=ROOT)


def test_rnnedge_version_is_the_installed_distributions_and_loads_neither_numba_nor_torch():
    program = textwrap.dedent("""
        import sys
        from rnnedge.runtime.umbrella import main
        status = main(["--version"])
        heavy = sorted(m for m in ("numba", "torch", "onnx", "numpy") if m in sys.modules)
        print("loaded:", heavy)
        sys.exit(status)
    """)
    done = rnnedge(program=program)
    assert done.returncode == 0, done.stderr
    first, loaded = done.stdout.splitlines()
    assert first.startswith(f"rnnedge {metadata.version('rnnedge')} from {ROOT} (python ")
    assert loaded == "loaded: []"


def test_rnnedge_version_of_a_checkout_that_is_not_installed_reads_its_pyproject(monkeypatch):
    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    declared = re.search(r'^version = "(.+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    assert umbrella.version() == f"{declared} (not installed)"


def test_rnnedge_without_a_command_lists_every_command_and_exits_2():
    done = rnnedge()
    assert done.returncode == 2
    for name in ("train", "export", "run", "compile", "inspect", "eval"):
        assert re.search(rf"^  {name} +\S", done.stdout, re.MULTILINE), done.stdout


def test_rnnedge_refuses_an_unknown_command_in_one_line(capsys):
    assert umbrella.main(["deploy"]) == 2
    err = capsys.readouterr().err
    assert err == ("rnnedge: error: unknown command 'deploy'; the commands are train, export, run, compile, inspect, "
                   "eval (`rnnedge --help` describes them)\n")


@pytest.mark.parametrize("name", ["train", "export", "run", "compile", "inspect"])
def test_rnnedge_subcommand_help_is_the_commands_own_usage(name, capsys):
    with pytest.raises(SystemExit) as ended:
        umbrella.main([name, "--help"])
    assert ended.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: rnnedge {name} ")


@pytest.mark.parametrize("name", ["train", "export", "run"])
def test_old_command_names_still_work_and_say_once_they_are_going(name):
    done = rnnedge("--help", program=f"import sys; from runtime.umbrella import old_{name}; sys.exit(old_{name}())")
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"rnnedge-{name} is now `rnnedge {name}`; the old name goes in the next release\n"
    assert done.stdout.startswith(f"usage: rnnedge {name} ")


def test_export_state_dict_option_keeps_its_old_name_checkpoint_hidden_with_a_note(capsys):
    args = export_cli.parser().parse_args(["--module", "m.py:Net", "--checkpoint", "weights.pt"])
    assert args.state_dict == "weights.pt"
    assert capsys.readouterr().err == ("rnnedge export: --checkpoint is now --state-dict; the old name goes in the "
                                       "next release\n")
    assert export_cli.parser().parse_args(["--module", "m.py:Net", "--state-dict", "w.pt"]).state_dict == "w.pt"
    usage = export_cli.parser().format_help()
    assert "--state-dict STATE_DICT" in usage and "--checkpoint STATE_DICT" not in usage
    assert "--checkpoint is now --state-dict" in " ".join(usage.split())


def test_steps_options_are_renamed_for_what_they_count_and_the_old_spelling_still_works(capsys):
    assert export_cli.parser().parse_args(["m.pt", "--steps", "7"]).steps == 7
    assert export_cli.parser().parse_args(["m.pt", "--stream-steps", "9"]).steps == 9
    assert train_cli.build_parser().parse_args(["--steps", "5"]).steps == 5
    assert train_cli.build_parser().parse_args(["--adding-steps", "6"]).steps == 6
    assert capsys.readouterr().err.splitlines() == [
        "rnnedge export: --steps is now --stream-steps; the old name goes in the next release",
        "rnnedge train: --steps is now --adding-steps; the old name goes in the next release",
    ]


@pytest.mark.parametrize("build", [train_cli.build_parser, export_cli.parser], ids=["train", "export"])
def test_help_states_each_default_once_and_never_none_or_false(build):
    options = build().format_help().split("options:")[1]
    entries = re.split(r"\n  (?=-)", options)
    for entry in entries:
        text = " ".join(entry.split())
        assert text.count("(default:") <= 1, text
        assert "(default: None)" not in text and "(default: False)" not in text, text


def test_every_console_script_names_a_function_of_the_dispatcher():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"rnnedge": "rnnedge.runtime.umbrella:main", "rnnedge-train": "rnnedge.runtime.umbrella:old_train",
                       "rnnedge-export": "rnnedge.runtime.umbrella:old_export", "rnnedge-run": "rnnedge.runtime.umbrella:old_run"}
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), target
