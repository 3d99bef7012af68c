"""bench/read_scaling.py and bench/endpoint_load.py run end to end on tiny workloads (figures: docs/performance.md)."""

import subprocess
import sys

from tests.deploy.test_bench_scripts import REPO, run_bench


def test_read_scaling_times_first_and_deep_pages():
    result = run_bench("read_scaling.py", "--sizes", "2000,4000", "--repeat", "3")
    assert [r["readings"] for r in result["results"]] == [2000, 4000]
    for row in result["results"]:
        assert row["first_ms"] > 0 and row["deep_ms"] > 0 and row["old_condition_deep_ms"] > 0
        assert row["deep_over_first"] == round(row["deep_ms"] / row["first_ms"], 2)
    assert result["load_average_1m"] >= 0


def test_endpoint_load_reports_its_fraction_of_the_handler_limit():
    result = run_bench("endpoint_load.py", "--devices", "3", "--batches", "2", "--rate", "600")
    # The limit at the server's concurrency and workload: a thread per device, every batch.
    assert (result["limit"]["threads"], result["limit"]["batches"]) == (3, 3 * 2)
    assert result["limit"]["readings_per_s"] > 0
    assert set(result["load_average_1m"]) == {"start", "end"}
    assert result["fraction_of_limit"] == round(
        result["capacity"]["readings_per_s"] / result["limit"]["readings_per_s"], 2
    )


def test_read_scaling_refuses_bad_sizes():
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "read_scaling.py"), "--sizes", "10k"], capture_output=True, text=True
    )
    assert out.returncode == 2 and "--sizes must be whole numbers" in out.stderr
