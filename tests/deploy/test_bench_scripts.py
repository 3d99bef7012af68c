"""Each cloud benchmark runs end to end on a tiny workload, so none of them can rot unnoticed.

These check that the scripts still measure what they claim (figures present and sane),
not the figures themselves: those are machine-dependent and live in docs/performance.md.
"""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_bench(script: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args, "--json"],
        capture_output=True,
        text=True,
        # A guard against a hung script, not a speed bound: fleet_jobs.py's 200 devices against
        # moto took longer than 120 s at load average 20 (issue 23's fifth load run).
        timeout=540,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_coldstart_compares_our_import_with_the_sdk_alone():
    result = run_bench("cloud_coldstart.py", "--runs", "1")
    assert result["ours_ms"] > 0 and result["baseline_ms"] > 0
    assert result["overhead_ms"] == round(result["ours_ms"] - result["baseline_ms"], 1)


def test_warm_handler_counts_dynamodb_calls_per_batch():
    result = run_bench("cloud_warm.py", "--batches", "2")
    dynamodb = result["dynamodb_moto"]
    assert dynamodb["calls_resent_detail"] == ["GetItem", "TransactWriteItems", "UpdateItem"]
    assert dynamodb["calls_new_batch"] == 2  # the device row rides in the readings' transaction
    assert dynamodb["calls_mixed_detail"] == ["GetItem", "TransactWriteItems", "TransactWriteItems"]
    assert dynamodb["calls_conflict_detail"] == ["GetItem", "TransactWriteItems", "Query"]
    assert 0 < dynamodb["outside_calls_ms"] <= dynamodb["median_ms"]
    assert result["sqlite"]["median_ms"] > 0


def test_endpoint_load_stores_every_posted_reading():
    result = run_bench("endpoint_load.py", "--devices", "3", "--batches", "2", "--rate", "600")
    for phase in ("capacity", "paced"):
        assert result[phase]["readings"] == 3 * 2 * 20  # checked against the SQLite file by the script
        assert result[phase]["p99_ms"] >= result[phase]["p50_ms"] > 0
    assert result["paced"]["offered_readings_per_s"] == 600


def test_bad_workload_sizes_are_refused():
    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "endpoint_load.py"), "--devices", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 2 and "--devices must be positive" in out.stderr


def test_homeassistant_bridge_measures_batch_to_state_and_a_whole_republication():
    result = run_bench("homeassistant_bridge.py", "--devices", "3", "--batches", "6")
    assert result["devices"] == 3 and result["republish_messages"] == 10
    assert 0 < result["post_to_state"]["p50_ms"] <= result["post_to_state"]["max_ms"]
    assert result["republish_all_ms"] > 0


def test_capacity_bench_names_what_gives_first_for_each_fleet():
    result = run_bench("aws_capacity.py")
    for name in ("A", "B"):
        fleet = result["fleets"][name]
        assert set(fleet["sizes"]) == {"1000", "100000", "1000000"}
        limit_at, limit = fleet["first_limit"]
        assert limit_at > 1_000_000, f"fleet {name}: {limit} gives at {limit_at}"
        assert 0.05 < fleet["sizes"]["1000000"]["usd_per_device_month"] < 0.5


def test_fleet_jobs_bench_weighs_the_alert_run_and_a_summary_batch():
    result = run_bench("fleet_jobs.py", "--sizes", "200")
    (size,) = result["results"]
    assert size["devices"] == 200
    for job in ("alerts", "summary"):
        assert size[job]["rss_peak_mb"] >= size[job]["rss_at_start_mb"] > 0
        first, warm = size[job]["runs"]
        assert first["requests"] > 0 and warm["cpu_s"] >= 0 and warm["heap_peak_mb"] >= 0
    assert size["summary"]["runs"][1]["answer"] == {"batchItemFailures": []}
