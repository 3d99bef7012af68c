"""The real firmware (device/) on the virtual board against the real local endpoint."""

import pytest

from host_tools.sim.chaos import ChaosProxy
from tests.device.e2e.conftest import assert_exactly_once

BUDGET = 64 * 1024


def test_happy_path_stores_every_reading_with_exact_values(rig):
    values = [[20.0 + i / 10, 40.0 + i / 2] for i in range(30)]
    scenario = {"sensor_values": values}
    rig.install(scenario)
    summary = rig.run(30, scenario)
    stored = assert_exactly_once(rig, summary)
    assert summary.readings_taken == 30 and summary.still_spooled < 5
    for reading in stored:
        assert [reading["t"], reading["h"]] == pytest.approx(values[reading["seq"]])
    # Wakes are 60 s apart; the first reading waits for the DHT22's 2 s power-up settle time.
    deltas = [b["ts"] - a["ts"] for a, b in zip(stored, stored[1:], strict=False)]
    assert 56 <= deltas[0] <= 58
    assert set(deltas[1:]) <= {60, 61}
    assert summary.heap_high_water <= BUDGET
    assert rig.device_row()["last_status"]["fw"] == "0.1.0"


def test_wifi_outage_of_50_cycles_loses_nothing(rig):
    scenario = {"wifi_down": [[5 * 60, 55 * 60]]}
    rig.install(scenario)
    summary = rig.run(100, scenario)
    stored = assert_exactly_once(rig, summary)
    assert summary.readings_taken == 100
    assert len(stored) >= 95 and summary.dropped == 0
    assert summary.requests < 60, "the board backs off while the access point is gone"


@pytest.mark.slow
def test_receiver_faults_deliver_everything_once(rig):
    rates = {"error_before": 0.15, "error_after": 0.15, "drop": 0.1, "reset": 0.1, "truncate": 0.1, "delay": 0.02}
    with ChaosProxy(rig.endpoint.url, rates, seed=7, delay_s=5.5) as proxy:
        rig.install(url=proxy.url, batch_size=3)
        summary = rig.run(90)
        assert sum(proxy.stats.faults.values()) >= 5
    # Faults over: the board keeps its flash and is pointed at the receiver itself to drain.
    # Its backoff may have reached the one-hour cap, so the drain runs longer than that.
    config_path = rig.board.dir / "config.json"
    config_path.write_text(config_path.read_text().replace(proxy.url, rig.endpoint.url))
    summary = rig.run(75)
    stored = assert_exactly_once(rig, summary)
    assert summary.still_spooled < 3 and summary.dropped == 0
    assert len(stored) == summary.readings_taken - summary.still_spooled


@pytest.mark.slow
def test_power_cuts_over_200_cycles_lose_at_most_the_reading_being_written(rig):
    scenario = {"power_cut_rate": 0.15, "seed": 11}
    rig.install(scenario)
    summary = rig.run(200, scenario)
    assert summary.power_cuts >= 15
    stored = assert_exactly_once(rig, summary)
    # Each cut can cost the one reading of that wake (never written, so never given a seq)
    # and nothing else: every other boot's reading is stored, spooled or accounted dropped.
    assert summary.readings_taken >= 200 - summary.power_cuts
    assert len(stored) >= summary.readings_taken - 5 - summary.dropped


def test_without_ntp_timestamps_come_from_the_receiver(rig):
    scenario = {"ntp": "fail"}
    rig.install(scenario)
    summary = rig.run(12, scenario)
    stored = assert_exactly_once(rig, summary)
    assert stored, "readings arrive although NTP never answers"
    start = rig.board.now() - 12 * 60 - 60
    for reading in stored:
        assert start <= reading["ts"] <= rig.board.now()
        assert reading["ts"] > 1_700_000_000, "never a 1970 or 2000 date"


def test_sensor_faults_are_counted_and_never_sent(rig):
    # Ten wakes with a dead sensor, and flaky reads (retried) the rest of the time.
    scenario = {"sensor_fail": [[10 * 60, 20 * 60]], "sensor_fail_rate": 0.3, "seed": 5}
    rig.install(scenario, batch_size=2)
    summary = rig.run(40, scenario)
    stored = assert_exactly_once(rig, summary)
    assert summary.sensor_errors >= 10
    assert summary.readings_taken + summary.sensor_errors == 40, "a failed wake stores nothing"
    assert rig.device_row()["last_status"]["sensor_errors"] >= summary.sensor_errors - 2
    assert all(-40 <= r["t"] <= 80 and 0 <= r["h"] <= 100 for r in stored)


def test_a_full_default_batch_is_sent_within_64k(rig):
    # The default batch (20) is the largest send the heap budget is checked for here; the
    # first wake reports at once, the 21st sends a full batch.
    rig.install(batch_size=20, max_batch_delay_s=86400)
    summary = rig.run(21)
    stored = assert_exactly_once(rig, summary)
    assert summary.boots == {"deepsleep": 21}, "no MemoryError crash on the sending wake"
    assert len(stored) == 21 and summary.requests == 2
