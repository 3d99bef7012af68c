"""The same seed gives the same bench report on a quiet machine and on one whose CPU is
saturated by other processes: the figures are the firmware's, not the host's load."""

import os
import subprocess
import sys

import pytest

from host_tools.sim.fleet import run_bench
from host_tools.sim.report import as_json

HOST_ONLY = ("wall_s", "data_dir")


def figures(tmp_path, name):
    report = as_json(run_bench(2, 2, 60, seed=5, data_dir=tmp_path / name, show_progress=False))
    return {key: value for key, value in report.items() if key not in HOST_ONLY}


@pytest.mark.slow
def test_same_report_quiet_and_with_the_cpu_saturated(tmp_path):
    quiet = figures(tmp_path, "quiet")
    # Two spinning processes per core, at the same priority as the bench.
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))]
    try:
        busy = figures(tmp_path, "busy")
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert busy == quiet
    assert quiet["produced"] == 240 and quiet["lost"] == 0 and quiet["watchdog_resets"] == 0
