"""bench/alerts_ingest.py runs (a tiny workload) and prints its figures, so it does not rot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.slow
def test_alerts_ingest_bench_prints_figures():
    done = subprocess.run(
        [sys.executable, str(BENCH / "alerts_ingest.py"), "--batches", "5", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    runs = {run["mode"]: run for run in json.loads(done.stdout)["runs"]}
    assert set(runs) == {"no-rule", "hang", "500"}
    for run in runs.values():
        assert run["stored"] == 100, "a broken notifier costs no reading"
    assert runs["hang"]["transitions_recorded"] == runs["500"]["transitions_recorded"] == 10
    assert runs["no-rule"]["transitions_recorded"] == 0
