"""The same seed gives the same bench report on a quiet machine and on one whose CPU is
saturated by other processes: the figures are the firmware's, not the host's load."""

import os
import subprocess
import sys
import time

import pytest

from host_tools.sim.fleet import run_bench
from host_tools.sim.report import as_json

HOST_ONLY = ("wall_s", "data_dir")
# The heap high-water mark counts garbage not yet collected, and with two boards flown at
# once it has moved by two 16-byte GC blocks either way (first seen with issue 14's
# firmware; a single board is exact, and the boards' sensors follow the time of day, so
# both runs share one simulated start; the allocation that follows the interleaving is not
# found yet): compared within that, every other figure exactly.
HEAP_SLACK = 32


def split_heap(report):
    """The report without its heap high-water marks, and those marks by device."""
    marks = {"fleet": report["heap_high_water"]}
    rest = {**report, "heap_high_water": None, "per_device": {}}
    for device_id, device in report["per_device"].items():
        marks[device_id] = device["heap_high_water"]
        rest["per_device"][device_id] = {**device, "heap_high_water": None}
    return rest, marks


def figures(tmp_path, name, start):
    report = as_json(run_bench(2, 2, 60, seed=5, data_dir=tmp_path / name, show_progress=False, start=start))
    return {key: value for key, value in report.items() if key not in HOST_ONLY}


@pytest.mark.slow
def test_same_report_quiet_and_with_the_cpu_saturated(tmp_path):
    start = time.time() - 2 * 3600 - 60
    quiet = figures(tmp_path, "quiet", start)
    # Two spinning processes per core, at the same priority as the bench.
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))]
    try:
        busy = figures(tmp_path, "busy", start)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    (busy_rest, busy_heap), (quiet_rest, quiet_heap) = split_heap(busy), split_heap(quiet)
    assert busy_rest == quiet_rest
    assert busy_heap.keys() == quiet_heap.keys()
    assert all(abs(busy_heap[k] - quiet_heap[k]) <= HEAP_SLACK for k in quiet_heap), (busy_heap, quiet_heap)
    assert quiet["produced"] == 240 and quiet["lost"] == 0 and quiet["watchdog_resets"] == 0
