"""The fleet benchmarks run (tiny workloads): they print figures, so they must not rot."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.slow
@pytest.mark.parametrize("script", ["fleet_walltime.py", "fleet_capacity.py"])
def test_fleet_scripts_print_their_figures(script):
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--devices", "1", "--hours", "0.2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "wakes per second" in done.stdout
