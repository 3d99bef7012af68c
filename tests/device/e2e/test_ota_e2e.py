"""Over-the-air updates end to end: releases published with `dhtlink ota publish`'s library,
offered by the real receiver in its signed answers, downloaded, verified, switched and
rolled back by the real firmware on virtual boards."""

import io
import json
import shutil

import pytest

from cloud import observability
from cloud.local import LocalEndpoint
from host_tools import ota
from host_tools.cli import status
from host_tools.serial import firmware
from host_tools.sim.run import board_config, run_board
from host_tools.sim.vboard import VirtualBoard


def release(tmp_path, data_dir, version, broken=False, hangs=False):
    """Publish the app as `version` into data_dir: optionally one that crashes at import,
    or one whose every wake hangs until the watchdog resets the board."""
    device = tmp_path / f"src-{version}"
    shutil.copytree(firmware.DEVICE, device)
    app = device / "app.py"
    text = app.read_text().replace('FW = "0.1.0"', f'FW = "{version}"')
    if broken:
        text = text.replace("import machine\n", "import machine\n\nraise ImportError('this release is broken')\n", 1)
    if hangs:
        hang = '        """One wake: returns the ms to sleep until the next reading is due."""\n'
        assert hang in text
        text = text.replace(hang, hang + "        time.sleep(WDT_MS // 1000 + 5)  # stuck, never feeding\n", 1)
    app.write_text(text)
    assert ota.publish(ota.LocalReleases(data_dir), device)[0] == version
    return ota.target(ota.LocalReleases(data_dir), version)


class Fleet:
    def __init__(self, tmp_path, size):
        observability.set_output(io.StringIO())
        self.boards = {f"node-{i}": VirtualBoard(tmp_path / f"node-{i}") for i in range(size)}
        self.endpoint = LocalEndpoint(tmp_path / "endpoint", read_token="t", clock=lambda d: self.boards[d].now())
        self.endpoint.start()
        for device_id, board in self.boards.items():
            secret = self.endpoint.add_device(device_id)
            board.install(board_config(device_id, secret, self.endpoint.url + "/data", 60, batch_size=1))

    def run(self, cycles, scenarios=None):
        return {d: run_board(b, cycles, (scenarios or {}).get(d)) for d, b in self.boards.items()}

    def stored(self, device_id):
        items, cursor = self.endpoint.store.query_readings(device_id, limit=1000)
        assert cursor is None
        return items

    def close(self):
        self.endpoint.stop()
        observability.set_output(None)


@pytest.fixture
def fleet(tmp_path):
    made = []

    def make(size):
        made.append(Fleet(tmp_path, size))
        return made[-1]

    yield make
    for f in made:
        f.close()


def one_board(fleet):
    """A fleet of one board that has run its first two wakes (so it has reported)."""
    f = fleet(1)
    f.run(2)
    return f, f.boards["node-0"]


def app_files(board):
    return {p.name: p.read_bytes() for p in board.dir.glob("*.mpy") if p.name != "updater.mpy"}


def assert_no_reading_lost(fleet, device_id, board):
    report = board.report()
    stored = fleet.stored(device_id)
    seqs = sorted(r["seq"] for r in stored)
    assert len(seqs) == len(set(seqs)), "a reading stored twice"
    assert report["dropped"] == 0
    assert set(seqs) | set(range(report["next_seq"] - report["spool_depth"], report["next_seq"])) == set(
        range(report["next_seq"])
    ), "a seq neither stored nor still on the board"


@pytest.mark.slow
def test_a_release_reaches_a_fleet_through_power_cuts_in_download_and_switch(fleet, tmp_path):
    f = fleet(3)
    f.run(2)
    offer = release(tmp_path, f.endpoint.data_dir, "0.2.0")
    expected = {n: d for n, d in ota.release_files(tmp_path / "src-0.2.0").items()}
    for device_id in f.boards:
        f.endpoint.store.set_ota_target(device_id, offer)
    # node-0: cuts in the wakes that download; node-1: in the wakes that switch and try it.
    f.run(10, {"node-0": {"power_cuts": [0, 1], "seed": 5}, "node-1": {"power_cuts": [2, 3, 4], "seed": 7}})
    f.run(4)
    for device_id, board in f.boards.items():
        report = board.report()
        assert report["fw"] == "0.2.0", (device_id, report)
        assert app_files(board) == expected, f"{device_id} runs exactly the release"
        assert not list((board.dir / "ota.old").glob("*")) and not list((board.dir / "ota.new").glob("*"))
        assert not (board.dir / "ota.state").exists() and not (board.dir / "ota.dl").exists()
        assert json.loads((board.dir / "ota.last").read_text()) == {"v": "0.2.0"}
        assert f.endpoint.store.get_device(device_id)["last_status"]["fw"] == "0.2.0"
        assert ota.state(f.endpoint.store.get_device(device_id)) == "runs 0.2.0"
        assert_no_reading_lost(f, device_id, board)


@pytest.mark.slow
def test_a_release_that_crashes_at_import_is_rolled_back_by_every_board(fleet, tmp_path):
    f = fleet(2)
    f.run(2)
    before = {d: app_files(b) for d, b in f.boards.items()}
    offer = release(tmp_path, f.endpoint.data_dir, "0.2.1", broken=True)
    for device_id in f.boards:
        f.endpoint.store.set_ota_target(device_id, offer)
    f.run(12)
    for device_id, board in f.boards.items():
        report = board.report()
        assert report["fw"] == "0.1.0" and not report["safe_mode"], (device_id, report)
        assert app_files(board) == before[device_id], "the previous app is back, whole"
        assert not (board.dir / "ota.state").exists(), "the update is over"
        last = json.loads((board.dir / "ota.last").read_text())
        assert last["failed"] == "0.2.1" and "3 trial boots failed" in last["why"]
        assert status.update_line(report) == f"release 0.2.1 rolled back or refused: {last['why']}"
        row = f.endpoint.store.get_device(device_id)
        assert row["last_status"]["ota_failed"] == "0.2.1"
        assert "ROLLED BACK" in ota.state(row)
        assert_no_reading_lost(f, device_id, board)


@pytest.mark.slow
def test_a_tampered_release_is_refused(fleet, tmp_path):
    f, board = one_board(fleet)
    before = app_files(board)
    offer = release(tmp_path, f.endpoint.data_dir, "0.2.2")
    target = f.endpoint.data_dir / "releases" / "0.2.2" / "spool.mpy"
    target.write_bytes(target.read_bytes()[:-1] + b"\x00")  # someone changed a file in the store
    f.endpoint.store.set_ota_target("node-0", offer)
    f.run(12)  # fetched again twice (a download damaged on the way is), then refused
    report = board.report()
    assert report["fw"] == "0.1.0" and app_files(board) == before
    row = f.endpoint.store.get_device("node-0")
    assert row["last_status"]["ota_failed"] == "0.2.2" and "spool.mpy" in row["last_status"]["ota_error"]
    assert not list((board.dir / "ota.new").glob("*"))
    assert_no_reading_lost(f, "node-0", board)


def phase(board):
    path = board.dir / "ota.state"
    return json.loads(path.read_text()).get("phase") if path.exists() else None


@pytest.mark.slow
def test_a_wifi_outage_through_the_trial_does_not_roll_a_good_release_back(fleet, tmp_path):
    f, board = one_board(fleet)
    f.endpoint.store.set_ota_target("node-0", release(tmp_path, f.endpoint.data_dir, "0.2.3"))
    for _ in range(12):  # until the release is downloaded and verified: the next boot switches
        f.run(1)
        if phase(board) == "ready":
            break
    assert phase(board) == "ready"
    state = board._read_state()
    since_start_s = (board.now() * 1000 - state["start_ms"]) / 1000
    # Wi-Fi down for the switching boot and seven more: more than the trial's 3 boots.
    (board.state_dir / "scenario.json").write_text(json.dumps({"wifi_down": [[0, since_start_s + 8 * 60 - 1]]}))
    f.run(8)
    assert phase(board) == "trial", "the release waits on trial for a network to prove itself on"
    assert board.report()["fw"] == "0.2.3"
    (board.state_dir / "scenario.json").write_text("{}")
    for _ in range(40):  # the Wi-Fi backoff the outage built up (wifi.py) ends within these
        f.run(1)
        if phase(board) is None:
            break
    report = board.report()
    assert report["fw"] == "0.2.3" and phase(board) is None
    assert json.loads((board.dir / "ota.last").read_text()) == {"v": "0.2.3"}
    assert_no_reading_lost(f, "node-0", board)


@pytest.mark.slow
def test_a_file_damaged_once_on_the_way_is_fetched_again_not_refused(fleet, tmp_path):
    f, board = one_board(fleet)
    offer = release(tmp_path, f.endpoint.data_dir, "0.2.4")
    target = f.endpoint.data_dir / "releases" / "0.2.4" / "spool.mpy"
    good = target.read_bytes()
    target.write_bytes(good[:-1] + b"\x00")  # what a broken proxy might hand over once
    f.endpoint.store.set_ota_target("node-0", offer)
    for _ in range(8):
        f.run(1)
        if (board.dir / "ota.dl").exists() and json.loads((board.dir / "ota.dl").read_text()).get("bad"):
            break
    assert json.loads((board.dir / "ota.dl").read_text())["bad"] == 1
    target.write_bytes(good)
    f.run(6)
    assert board.report()["fw"] == "0.2.4" and phase(board) is None
    assert_no_reading_lost(f, "node-0", board)


@pytest.mark.slow
def test_a_release_that_hangs_is_rolled_back_after_the_watchdog_resets_it(fleet, tmp_path):
    f, board = one_board(fleet)
    before = app_files(board)
    f.endpoint.store.set_ota_target("node-0", release(tmp_path, f.endpoint.data_dir, "0.2.5", hangs=True))
    summary = f.run(12)["node-0"]
    assert summary.boots.get("watchdog", 0) == 3, summary.boots
    report = board.report()
    assert report["fw"] == "0.1.0" and app_files(board) == before and not report["safe_mode"]
    last = json.loads((board.dir / "ota.last").read_text())
    assert last["failed"] == "0.2.5" and "3 trial boots failed" in last["why"]
    assert f.endpoint.store.get_device("node-0")["last_status"]["ota_failed"] == "0.2.5"
    assert_no_reading_lost(f, "node-0", board)


@pytest.mark.slow
def test_a_release_the_flash_cannot_hold_is_refused_before_any_download(fleet, tmp_path):
    f, board = one_board(fleet)
    free = int(board.run("import os\nst = os.statvfs('/')\nprint(st[0] * st[3])").split()[-1])
    (board.dir / "photos.bin").write_bytes(bytes(free - 40_000))  # 40 KB left: less than release + spare
    offer = release(tmp_path, f.endpoint.data_dir, "0.2.6")
    f.endpoint.store.set_ota_target("node-0", offer)
    f.run(4)
    last = json.loads((board.dir / "ota.last").read_text())
    assert last["refused"] == offer["sha"] and "not enough flash" in last["why"]
    row = f.endpoint.store.get_device("node-0")
    assert row["last_status"]["ota_failed"] == "0.2.6" and "not enough flash" in row["last_status"]["ota_error"]
    assert not (board.dir / "ota.new").exists(), "nothing was downloaded"
    assert board.report()["fw"] == "0.1.0"
    assert_no_reading_lost(f, "node-0", board)
