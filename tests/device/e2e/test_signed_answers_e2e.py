"""Protocol v1.1 end to end: the real firmware on the virtual board against the real local
endpoint, in the two ways issue 8 found readings lost: a wrong endpoint path, and a board
whose flash was erased and which was provisioned again under the same id."""

import pytest

from host_tools.sim.run import board_config
from tests.device.e2e.conftest import DEVICE, assert_exactly_once


def reprovision(rig, url=None):
    """What a user does after fixing a board: write its config again and power it on. The
    world's clock runs on (the board's RTC restarts, as after any power-on)."""
    cfg = board_config(DEVICE, rig.secret, (url or rig.endpoint.url) + "/data", 60, batch_size=5)
    rig.board.install(cfg, {}, start=rig.board.now())


@pytest.mark.slow
def test_a_wrong_url_for_an_hour_then_the_right_one_loses_nothing(rig):
    # /api/data answers the receiver's unsigned 404: before v1.1 each wake dropped a batch.
    rig.install(url=rig.endpoint.url + "/api")
    rig.run(60)
    wrong = rig.board.report()
    assert rig.stored() == []
    assert (wrong["spool_depth"], wrong["dropped"]) == (60, 0) and wrong["unverified"] >= 1
    reprovision(rig)
    summary = rig.run(30)
    stored = assert_exactly_once(rig, summary)
    assert summary.readings_taken == 90 and summary.dropped == 0
    assert len(stored) + summary.still_spooled == 90


@pytest.mark.slow
def test_an_erased_board_provisioned_again_lands_every_new_reading_and_keeps_the_old(rig):
    rig.install()
    rig.run(12)
    before = {r["seq"]: r for r in rig.stored()}
    assert len(before) >= 10
    for path in rig.board.dir.iterdir():
        if path.name.startswith("spool"):
            path.unlink()  # the flash is erased: the seq counter restarts at 0
    reprovision(rig)
    rig.run(20)
    report = rig.board.report()
    after = {r["seq"]: r for r in rig.stored()}
    assert {seq: after.get(seq) for seq in before} == before, "an old reading changed or vanished"
    new = [after[seq] for seq in sorted(set(after) - set(before))]
    assert report["dropped"] == 0 and report["next_seq"] > max(before)
    assert len(new) + report["spool_depth"] == 20 - report["sensor_errors"], "a new reading did not land"
    assert min(r["ts"] for r in new) > max(r["ts"] for r in before.values())
    assert rig.device_row()["last_status"]["drop_poison"] == 0
