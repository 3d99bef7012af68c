"""bench/node_spool.py runs (a tiny workload): it prints the figures docs/pi-node.md cites."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "node_spool.py"


@pytest.mark.slow
def test_spool_bench_prints_every_candidate():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--readings", "60", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert [r["candidate"] for r in figures["rows"]] == ["sqlite-full", "sqlite-normal", "firmware", "firmware+fsync"]
    assert figures["sigkill"]["all_confirmed_kept"] is True
    assert all(r["disk_bytes_per_reading"] > 0 for r in figures["rows"])
