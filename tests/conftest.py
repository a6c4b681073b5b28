"""Suite-wide settings: one PyTorch thread, and which runtime step the tests run.

Which step: the step compiled for each loaded model (runtime/fused.py) is compiled anew for every model shape,
10-30 s each on this machine's 2 cores, and the suite builds hundreds of shapes to test export, import, heads,
refusals and files, which the step does not change. So a test runs the generic kernels (RNNEDGE_SPECIALISE=0,
compiled once for the session) unless it is marked `specialised`: tests/runtime/test_fused_*.py compare the
specialised steps with the generic kernels over every cell, input kind, depth, direction, head, width mix and
batch, and the marked end-to-end tests (export, inspect, compile, threads, the benchmark smoke run) run the step
a user gets by default.
"""

import os

import pytest
import torch

# PyTorch's intra-op threads make small per-step ops many times slower on a 2-core machine
torch.set_num_threads(1)


def pytest_configure(config):
    config.addinivalue_line("markers", "specialised: run the step compiled for the loaded model (the default for "
                                       "users); unmarked tests run the generic kernels (tests/conftest.py)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before the test's fixtures are set up (a module's shared fixture too, with its first test): the step this
    test runs, in the environment, so the commands a test starts in other processes run it too."""
    if item.get_closest_marker("specialised") is None:
        os.environ["RNNEDGE_SPECIALISE"] = "0"
    else:
        os.environ.pop("RNNEDGE_SPECIALISE", None)
