"""What export/footprint.py and export/footprint_sizes.py share: FootprintError and run_tool, the one way they run a
tool (make, arm-none-eabi-gcc/-size/-nm), which turns a failure into a FootprintError."""

from __future__ import annotations

import subprocess


class FootprintError(RuntimeError):
    """The footprint could not be measured (a tool missing, a build or run failing); the message says why."""


def run_tool(command: list[str], what: str, cwd=None) -> str:
    """The command's stdout; FootprintError naming `what` when it cannot start, times out or fails."""
    try:
        proc = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FootprintError(f"{what}: {e}") from None
    if proc.returncode != 0:
        raise FootprintError(f"{what} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-600:]}")
    return proc.stdout
