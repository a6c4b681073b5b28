"""Shared by the firmware tests: a C tool that is missing fails under CI=true and skips elsewhere."""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str) -> str:
    """The path of executable `name`; missing: pytest.fail when CI=true (CI must build the C), else skip."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed: the firmware_ref C tests need it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: a missing tool fails)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def host_cc() -> str:
    """The host C compiler for firmware_ref/ (gcc; the Makefile's CC)."""
    return require_tool("gcc")


@pytest.fixture(scope="session")
def make_tool() -> str:
    return require_tool("make")
