"""Remote settings end to end: desired settings stored in the registry travel in the
receiver's signed answer to the real firmware on the virtual board, which checks them,
applies them from its next wake, keeps them through power loss and reports the version it
runs; invalid ones are refused whole and reported with why."""

import json

import pytest

from cloud.stores.base import public_device
from host_tools.cli import status
from tests.device.e2e.conftest import DEVICE, assert_exactly_once


def shadow(rig):
    return public_device(rig.device_row())["settings"]


@pytest.mark.slow
def test_settings_applied_from_the_next_wake_kept_through_power_loss_and_reported(rig):
    rig.install(interval=60, batch_size=1)
    rig.run(2)
    assert rig.board.last_sleep_s() == pytest.approx(60, abs=2)
    version, _ = rig.endpoint.store.set_desired(DEVICE, {"interval_s": 300, "sensor.type": "DHT11"})
    assert shadow(rig)["in_sync"] is False

    rig.run(1)  # this wake's answer carries the settings: stored, not yet running
    assert json.loads((rig.board.dir / "settings.json").read_text()) == {
        "v": version,
        "interval_s": 300,
        "sensor.type": "DHT11",
    }
    assert rig.board.last_sleep_s() == pytest.approx(60, abs=2), "applied only from the next wake"
    rig.run(2)
    assert rig.board.last_sleep_s() == pytest.approx(300, abs=2)
    report = rig.board.report()
    assert report["cfg_v"] == version and report["config"]["sensor"]["type"] == "DHT11"
    assert status.settings_line(report) == f"remote v{version}", "what `dhtlink status` prints"
    assert shadow(rig) == {
        "desired": {"interval_s": 300, "sensor.type": "DHT11"},
        "desired_version": version,
        "reported_version": version,
        "in_sync": True,
    }
    # A power cut (RTC memory gone): the settings are on flash and still run.
    summary = rig.run(3, {"power_cuts": [0]})
    assert rig.board.last_sleep_s() == pytest.approx(300, abs=2)
    assert rig.board.report()["cfg_v"] == version
    assert_exactly_once(rig, summary)


@pytest.mark.slow
def test_invalid_settings_are_refused_whole_and_reported(rig):
    rig.install(interval=60, batch_size=1)
    rig.run(1)
    good, _ = rig.endpoint.store.set_desired(DEVICE, {"interval_s": 120})
    rig.run(2)
    assert rig.board.report()["cfg_v"] == good
    # One valid change and one invalid: nothing of it may apply. (The CLI refuses such a
    # value; the board must not rely on that.)
    bad, _ = rig.endpoint.store.set_desired(DEVICE, {"interval_s": 600, "batch_size": 500})
    rig.run(3)
    report = rig.board.report()
    assert report["cfg_v"] == good and report["cfg_refused"] == bad
    assert "batch_size" in report["cfg_error"]
    assert status.settings_line(report) == f"remote v{good}; v{bad} REFUSED: {report['cfg_error']}"
    assert rig.board.last_sleep_s() == pytest.approx(120, abs=2), "the valid half was not applied"
    assert json.loads((rig.board.dir / "settings.json").read_text())["v"] == good
    state = shadow(rig)
    assert state["reported_version"] == good and state["refused_version"] == bad
    assert "batch_size" in state["refused_because"] and state["in_sync"] is False
    # A key the board does not take remotely (its endpoint could cut it off) is refused too.
    worse, _ = rig.endpoint.store.set_desired(DEVICE, {"batch_size": 2, "endpoint": "http://x/data"})
    rig.run(2)
    report = rig.board.report()
    assert report["cfg_refused"] == worse and "endpoint" in report["cfg_error"] and report["cfg_v"] == good
    # A fixed version (None removes a desired key) is taken.
    fixed, desired = rig.endpoint.store.set_desired(DEVICE, {"batch_size": 2, "interval_s": 90, "endpoint": None})
    assert desired == {"batch_size": 2, "interval_s": 90}
    rig.run(3)
    assert rig.board.report()["cfg_v"] == fixed and rig.board.last_sleep_s() == pytest.approx(90, abs=2)
    assert shadow(rig)["in_sync"] is True


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_power_cuts_around_the_offer_leave_old_or_new_settings_whole(rig, seed):
    rig.install(interval=60, batch_size=1)
    rig.run(1)
    version, _ = rig.endpoint.store.set_desired(DEVICE, {"interval_s": 180, "batch_size": 2})
    # Cuts land at random moments of these wakes: in the send, the check, the write.
    summary = rig.run(6, {"seed": seed, "power_cuts": [0, 1, 2]})
    summary2 = rig.run(4)
    report = rig.board.report()
    assert "config_error" not in report
    assert report["cfg_v"] == version and report["config"]["batch_size"] == 2
    stored = rig.stored()
    assert len({r["seq"] for r in stored}) == len(stored), "a reading stored twice"
    assert summary.dropped == summary2.dropped == 0
