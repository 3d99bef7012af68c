"""The virtual hardware under real MicroPython, driven by a throwaway firmware whose
main.py does one thing per wake, and `dhtlink sim` end to end."""

import io
import json
import socket
from pathlib import Path

import pytest

from cloud import observability
from cloud.local import LocalEndpoint
from host_tools import cli
from host_tools.sim.vboard import VirtualBoard
from host_tools.sim.vboard.board import DEEPSLEEP_RESET, HARD_RESET, PWRON_RESET, WDT_RESET

# Each wake prints what the chip would tell it, then does what the wake number says.
MAIN = """
import json, machine, network, time, socket
rtc = machine.RTC()
mem = json.loads(rtc.memory() or b"{}")
n = mem.get("n", 0)
print(json.dumps({"cause": machine.reset_cause(), "n": n, "t": time.time()}))
mem["n"] = n + 1
rtc.memory(json.dumps(mem).encode())
step = STEPS[n] if n < len(STEPS) else "sleep"
if step == "sleep":
    machine.deepsleep(600000)
elif step == "reset":
    machine.reset()
elif step == "slow_sleep":
    # The old race, forced: the host reads the state after deepsleep's write and long
    # before the process ends, with the watchdog's timeout long past in real time.
    import _chip, utime
    dump = _chip.dump
    def slow(name, obj):
        dump(name, obj)
        if name == "state.json" and "sleep_ms" in obj:
            utime.sleep_ms(1500)
    _chip.dump = slow
    wdt = machine.WDT(timeout=1000)
    machine.deepsleep(600000)
elif step == "hang":
    wdt = machine.WDT(timeout=5000)
    time.sleep(6)
elif step == "spin":
    wdt = machine.WDT(timeout=1000)
    while True:
        pass
elif step == "post":
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    wlan.connect("dhtlink-bench", "x")
    time.sleep_ms(2000)
    up = wlan.isconnected()  # the firmware's check before it posts
    s = socket.socket()
    try:
        s.connect(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
        print("connected", up)
    except OSError as e:
        print("refused", e.args[0])
    s.close()
    machine.deepsleep(1000)
"""


def _board(tmp_path: Path, steps: list[str], scenario: dict | None = None, port: int = 9) -> VirtualBoard:
    firmware = tmp_path / "fw"
    firmware.mkdir()
    (firmware / "main.py").write_text(f"STEPS = {steps!r}\nPORT = {port}\n" + MAIN)
    board = VirtualBoard(tmp_path / "board", firmware=firmware)
    board.install({"device_id": "hw-test", "wifi": [{"ssid": "dhtlink-bench"}]}, scenario)
    return board


def _said(result) -> dict:
    return json.loads(next(line for line in result.output.splitlines() if line.startswith("{")))


def test_exit_statuses_and_reset_causes(tmp_path):
    board = _board(tmp_path, ["sleep", "reset", "hang", "sleep"])
    first = board.boot()
    assert (first.status, first.exit_code, _said(first)["cause"]) == ("deepsleep", 75, PWRON_RESET)
    second = board.boot()
    assert (second.status, second.exit_code) == ("reset", 76)
    assert _said(second)["cause"] == DEEPSLEEP_RESET
    # 600 s of deep sleep took no real time, but the board's clock moved on by it.
    assert _said(second)["t"] - _said(first)["t"] >= 600
    third = board.boot()
    # machine.reset() is ESP_RST_SW: HARD_RESET (ports/esp32/modmachine.c), not SOFT_RESET.
    assert _said(third)["cause"] == HARD_RESET
    assert (third.status, third.exit_code) == ("watchdog", 77), "a 6 s stall past a 5 s watchdog resets"
    fourth = board.boot()
    assert _said(fourth)["cause"] == WDT_RESET and _said(fourth)["n"] == 3, "RTC memory kept across resets"


def test_deep_sleep_never_races_the_watchdog(tmp_path):
    board = _board(tmp_path, ["slow_sleep", "sleep"])
    result = board.boot()
    assert (result.status, result.exit_code) == ("deepsleep", 75), result.output
    assert _said(board.boot())["cause"] == DEEPSLEEP_RESET


def test_scenario_start_sets_the_boards_world(tmp_path):
    board = _board(tmp_path, ["sleep"], {"start": 1_800_000_000})
    assert abs(board.now() - 1_800_000_000) < 5
    board.boot()
    assert 1_800_000_600 <= board.now() < 1_800_000_700, "the 600 s deep sleep passed at once"


def test_watchdog_resets_a_board_that_hangs_without_sleeping(tmp_path):
    board = _board(tmp_path, ["spin", "sleep"])
    result = board.boot(timeout=20)
    assert (result.status, result.exit_code) == ("watchdog", 77)
    assert _said(board.boot())["cause"] == WDT_RESET


def test_power_cut_clears_rtc_memory_and_the_rtc(tmp_path):
    board = _board(tmp_path, ["sleep"])
    board.boot()
    # A wake that never ends: cut it.
    (tmp_path / "board" / "main.py").write_text("while True:\n    pass\n")
    assert board.boot(power_cut_after=0.5).status == "power_cut"
    (tmp_path / "board" / "main.py").write_text(f"STEPS = []\nPORT = 9\n{MAIN}")
    said = _said(board.boot())
    assert said["cause"] == PWRON_RESET and said["n"] == 0
    assert said["t"] < 1_000_000_000, "the RTC restarts at 2000-01-01 after a power cut"


@pytest.mark.parametrize(("outage", "expected"), [(None, "connected True"), ([[0, 3600]], "refused 113")])
def test_sockets_follow_the_virtual_wifi(tmp_path, outage, expected):
    observability.set_output(io.StringIO())
    with LocalEndpoint(tmp_path / "endpoint") as endpoint:
        port = int(endpoint.url.rsplit(":", 1)[1])
        board = _board(tmp_path, ["post"], {"wifi_down": outage} if outage else {}, port)
        result = board.boot()
    observability.set_output(None)
    assert expected in result.output
    assert board.net().get("connects", 0) == (0 if outage else 1)


def test_sim_cli_reports_what_the_store_holds(tmp_path, monkeypatch, capsys):
    observability.set_output(io.StringIO())
    with LocalEndpoint(tmp_path / "endpoint") as endpoint:
        secret = endpoint.add_device("cli-01")
        monkeypatch.setenv("DHTLINK_SECRET", secret)
        argv = ["sim", "--endpoint", endpoint.url, "--device", "cli-01", "--cycles", "25"]
        assert cli.main([*argv, "--batch-size", "10", "--json"]) == 0
        stored = endpoint.store.query_readings("cli-01", limit=100)[0]
    observability.set_output(None)
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert secret not in out.out + out.err
    assert summary["readings_taken"] == 25 and summary["acknowledged"] == len(stored) == 21
    assert summary["still_spooled"] == 4 and summary["requests"] == 3
    assert [r["seq"] for r in stored] == list(range(20, -1, -1))


def test_sim_cli_names_the_bad_option(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("DHTLINK_SECRET", raising=False)
    argv = ["sim", "--endpoint", "http://127.0.0.1:9", "--device", "x"]
    assert cli.main(argv) == 2  # no secret, and no terminal to ask at
    assert "--secret-file FILE, $DHTLINK_SECRET" in capsys.readouterr().err
    assert cli.main([*argv, "--secret", "00" * 32]) == 2
    err = capsys.readouterr().err
    assert "shell history" in err and "00" * 32 not in err
    secret_file = tmp_path / "secret"
    secret_file.write_text("00" * 32)
    secret_file.chmod(0o600)
    argv += ["--secret-file", str(secret_file)]
    assert cli.main([*argv, "--cycles", "0"]) == 2
    assert "--cycles" in capsys.readouterr().err
    assert cli.main([*argv, "--interval", "1h30"]) == 2
    assert "--interval must be a duration (90s, 10m, 6h or 30d" in capsys.readouterr().err
    assert cli.main([*argv, "--interval", "2d"]) == 2
    assert "--interval must be from 2s to 1d, got 2d" in capsys.readouterr().err


def test_sim_counts_the_readings_a_board_took_after_a_seq_conflict(tmp_path, monkeypatch, capsys):
    """A second board under the same id starts from seq 0: the receiver's 409 renumbers it
    past the first board's 21 readings, which moves next_seq but takes no reading. The second
    board senses its own values (another scenario seed): with the first board's seed its readings
    repeat the first board's, and any that fall in the same second are true duplicates by the
    protocol's rule (same seq, same content), stored once."""
    observability.set_output(io.StringIO())
    with LocalEndpoint(tmp_path / "endpoint") as endpoint:
        monkeypatch.setenv("DHTLINK_SECRET", endpoint.add_device("cli-01"))
        argv = ["sim", "--endpoint", endpoint.url, "--device", "cli-01", "--cycles", "25", "--batch-size", "10"]
        summaries = []
        for run in range(2):
            scenario = tmp_path / f"scenario-{run}.json"
            scenario.write_text(json.dumps({"seed": run + 1}))
            board = ["--dir", str(tmp_path / f"board-{run}"), "--scenario", str(scenario)]
            assert cli.main([*argv, *board, "--json"]) == 0
            summaries.append(json.loads(capsys.readouterr().out))
        stored = endpoint.store.query_readings("cli-01", limit=100)[0]
    observability.set_output(None)
    assert [s["readings_taken"] for s in summaries] == [25, 25]
    assert len(stored) == summaries[0]["acknowledged"] + summaries[1]["acknowledged"] == 42


@pytest.mark.parametrize(
    "why, cause",
    [
        ("endpoint down", "send:"),
        ("wrong path", "answer 404 not signed"),
        ("unknown device", "answer 401 not signed"),
    ],
)
def test_sim_that_delivered_nothing_fails_with_the_cause(tmp_path, monkeypatch, capsys, why, cause):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{unused.getsockname()[1]}"  # nothing listens once it closes
    observability.set_output(io.StringIO())
    try:
        with LocalEndpoint(tmp_path / "endpoint") as endpoint:
            secret = endpoint.add_device("cli-01")
            monkeypatch.setenv("DHTLINK_SECRET", "ab" * 32 if why == "unknown device" else secret)
            url = {"endpoint down": down, "wrong path": endpoint.url + "/api"}.get(why, endpoint.url)
            argv = ["sim", "--endpoint", url, "--device", "cli-01", "--cycles", "12", "--batch-size", "10"]
            assert cli.main(argv) == 1, why
    finally:
        observability.set_output(None)
    *progress, last = capsys.readouterr().err.strip().splitlines()  # progress lines, then the one-line cause
    assert all("wakes" in line for line in progress) and "delivered none of 12 readings" in last and cause in last
