"""bench/ota_update.py and bench/device_settings_heap.py run and print the figures
docs/performance.md cites ("Remote settings and OTA"), so neither rots unnoticed."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.slow
def test_ota_update_measures_a_whole_app_update_of_one_board():
    out = run("ota_update.py", "20")
    size, files = map(int, re.search(r"release: (\d+) bytes in (\d+) files", out).groups())
    assert size > 10_000 and files >= 10
    assert 2 <= int(re.search(r"wakes until the new app runs: (\d+)", out).group(1)) <= 10
    before, peak, grown = map(int, re.search(r"flash: (\d+) bytes before, (\d+) at the peak \(\+(\d+)\)", out).groups())
    assert peak - before == grown and grown >= size, "the staged release sits beside the app"
    assert int(re.search(r"downloading wake \(batch 20\): (\d+) KiB", out).group(1)) <= 64


@pytest.mark.slow
def test_a_full_batch_of_100_still_fits_after_an_update():
    """An update leaves ota.last behind for good: the wakes after it must not pay for it
    (reading it in every wake once cost the batch-100 send 12 KiB)."""
    out = run("ota_update.py", "100")
    assert int(re.search(r"downloading wake \(batch 100\): (\d+) KiB", out).group(1)) <= 64
    assert int(re.search(r"send on the updated board: (\d+) KiB", out).group(1)) <= 64


@pytest.mark.slow
def test_settings_heap_measures_both_batches():
    rows = re.findall(r"^\s+(20|100)\s+(\d+)\s+(\d+)$", run("device_settings_heap.py"), re.M)
    assert [row[0] for row in rows] == ["20", "100"]
    assert all(int(kib) <= 64 for row in rows for kib in row[1:])
