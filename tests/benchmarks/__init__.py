"""Shared by the benchmark smoke tests."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quick_peers(out: Path, engines: str, workloads: str) -> subprocess.CompletedProcess:
    """`python -m benchmarks.peers --quick` on these engines and workloads, no empty-cache cold start, JSON to out."""
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.peers", "--quick", "--engines", engines, "--workloads", workloads,
         "--cold-reps", "0", "--out", str(out)],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
