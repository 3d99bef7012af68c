"""The app's boot paths under MicroPython with small stand-ins for the ESP32's
machine, network and dht modules: no config, bad config, SAFE file, crash counter,
one cycle ending in deep sleep, sensor failures, and report() without secrets."""

import json

import pytest

# Hardware state lives in hw.json so that one process (one boot) can hand it to the next,
# as RTC memory and the reset cause do on the chip.
FAKE_MACHINE = """
import json, sys
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
def _st():
    try:
        return json.loads(open("hw.json").read())
    except OSError:
        return {}
def _put(s):
    open("hw.json", "w").write(json.dumps(s))
class Pin:
    def __init__(self, n, *args):
        self.n = n
class WDT:
    def __init__(self, id=0, timeout=5000):
        s = _st()
        s["wdt_ms"] = timeout
        _put(s)
    def feed(self):
        s = _st()
        s["fed"] = s.get("fed", 0) + 1
        _put(s)
class RTC:
    def memory(self, data=None):
        s = _st()
        if data is None:
            return s.get("rtc", "").encode()
        s["rtc"] = bytes(data).decode()
        _put(s)
    def datetime(self, dt=None):
        pass
def reset_cause():
    return _st().get("cause", PWRON_RESET)
def _exit(code, cause, key, value):
    s = _st()
    s["cause"] = cause
    s[key] = value
    _put(s)
    sys.exit(code)
def deepsleep(ms=0):
    _exit(75, DEEPSLEEP_RESET, "slept_ms", ms)
def reset():
    _exit(76, HARD_RESET, "resets", _st().get("resets", 0) + 1)  # ESP_RST_SW: modmachine.c
def lightsleep(ms=0):
    s = _st()
    s["light"] = s.get("light", []) + [[ms, s.get("fed", 0)]]
    _put(s)
    if sum(x[0] for x in s["light"]) >= 100000:
        sys.exit(80)  # enough: into the second interval
def unique_id():
    return b"\\x01\\x02\\x03\\x04\\x05\\x06"
"""
FAKE_NETWORK = """
STA_IF = 0
class WLAN:
    def __init__(self, i):
        pass
    def active(self, on=None):
        return False
    def isconnected(self):
        return False
    def scan(self):
        return []
    def connect(self, *a, **k):
        pass
    def disconnect(self):
        pass
    def status(self, what=None):
        raise OSError("not connected")
"""
FAKE_DHT = """
import json
_frame = json.loads(open("frame.json").read())
class DHT11:
    def __init__(self, pin):
        if _frame == "crash":
            raise RuntimeError("driver bug")
    def measure(self):
        if _frame is None:
            raise OSError(110)
    def temperature(self):
        return _frame[0]
    def humidity(self):
        return _frame[1]
DHT22 = DHT11
"""
CONFIG = {
    "device_id": "bench-01",
    "secret": "ab" * 32,
    "wifi": [{"ssid": "home", "password": "hunter2-secret"}],
    "endpoint": "http://127.0.0.1:9/data",
    "sensor": {"type": "DHT11", "pin": 4},
    "interval_s": 60,
}
BOOT = "import app\napp.main()\nprint('returned to the REPL')\n"


class Board:
    def __init__(self, mpy, frame=(21.5, 40.0), config=CONFIG):
        self.mpy = mpy
        for name, src in (("machine", FAKE_MACHINE), ("network", FAKE_NETWORK), ("dht", FAKE_DHT)):
            mpy.fake(name, src)
        self.set_frame(frame)
        if config is not None:
            (mpy.workdir / "config.json").write_text(json.dumps(config))

    def set_frame(self, frame):
        (self.mpy.workdir / "frame.json").write_text(json.dumps(frame))

    def boot(self):
        done = self.mpy.boot(BOOT)
        return done.returncode, done.stdout + done.stderr

    def hw(self):
        try:
            return json.loads((self.mpy.workdir / "hw.json").read_text())
        except FileNotFoundError:
            return {}

    def rtc(self):
        return json.loads(self.hw().get("rtc") or "{}")


def test_no_config_says_what_to_do_and_leaves_the_repl_free(mpy):
    board = Board(mpy, config=None)
    code, out = board.boot()
    assert code == 0
    assert "IMPROV\x01\x01\x01\x02" in out, "it offered Improv Wi-Fi (state READY) while it has no Wi-Fi"
    assert "no config.json on the board: run `dhtlink provision`" in out, "then, no host on the line, says why"
    assert "returned to the REPL" in out
    assert "cause" not in board.hw()  # no reset, no deep sleep: no crash loop


def test_bad_config_names_the_key_and_does_not_loop(mpy):
    board = Board(mpy, config={**CONFIG, "interval_s": "often"})
    code, out = board.boot()
    assert code == 0 and "interval_s: must be a whole number" in out
    assert "returned to the REPL" in out and "cause" not in board.hw()


def test_safe_file_keeps_the_app_off(mpy):
    board = Board(mpy)
    (mpy.workdir / "SAFE").write_text("by hand\n")
    code, out = board.boot()
    assert code == 0
    assert "safe mode (SAFE file present)" in out and "dhtlink safe-mode off" in out
    assert "returned to the REPL" in out
    assert not (mpy.workdir / "spool.0").exists()


def test_a_cycle_spools_the_reading_and_deep_sleeps_for_the_rest_of_the_interval(mpy):
    board = Board(mpy)
    code, out = board.boot()
    assert code == 75, out
    hw = board.hw()
    assert 50000 < hw["slept_ms"] <= 60000
    assert hw["wdt_ms"] > 8000  # the watchdog outlasts the awake cap
    code, _ = board.boot()  # the wake from deep sleep
    assert code == 75
    rtc = board.rtc()
    assert rtc["boot"] == 2 and rtc.get("sensor_errors", 0) == 0
    out = mpy.json("import json, spool\nsp = spool.Spool()\nprint(json.dumps([sp.depth(), sp.peek(5)]))")
    depth, items = out
    assert depth == 2 and [i[0] for i in items] == [0, 1]
    assert [(i[2], i[3]) for i in items] == [(215, 400), (215, 400)]


@pytest.mark.parametrize("frame", [None, [0, 0], [25.0, 140.0]], ids=["timeout", "all-zero", "humidity>100"])
def test_a_failed_read_is_counted_never_spooled(mpy, frame):
    board = Board(mpy, frame=frame)
    code, out = board.boot()
    assert code == 75, out
    rtc = board.rtc()
    assert rtc["sensor_errors"] == 1 and rtc["last_error"]
    assert mpy.json("import spool\nprint(spool.Spool().depth())") == 0


def test_three_crashing_boots_in_a_row_enter_safe_mode(mpy):
    board = Board(mpy, frame="crash")
    for n in (1, 2, 3):
        code, out = board.boot()
        assert code == 76, out  # the crash ends in a reset, never a hang
        # machine.reset() reads HARD_RESET at the next boot, which counts the crash.
        assert board.rtc().get("crashes", 0) == n - 1 and "crash" in board.rtc()["last_error"]
    code, out = board.boot()
    assert code == 0 and "safe mode (3 crashing boots in a row)" in out
    assert "returned to the REPL" in out
    assert (mpy.workdir / "SAFE").exists()
    assert "crash" in (mpy.workdir / "log.txt").read_text()


def test_report_is_one_json_line_without_secrets(mpy):
    board = Board(mpy)
    board.boot()
    done = mpy.boot("import app\napp.report()")  # compiled, as deployed
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert CONFIG["secret"] not in out and "hunter2" not in out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["device_id"] == "bench-01" and report["spool_depth"] == 1 and report["next_seq"] == 1
    assert report["safe_mode"] is False and report["config"]["wifi"] == ["home"]
    for key in ("fw", "sensor_errors", "last_error"):
        assert key in report
    counters = ("unverified", "dropped", "drop_full", "drop_clock", "drop_poison")
    assert {k: report[k] for k in counters} == dict.fromkeys(counters, 0)


def test_watchdog_resets_count_as_crashes(mpy):
    # A cycle that hangs never reaches the crash handler: the watchdog reset is the crash.
    board = Board(mpy)
    hw = {"cause": 3, "rtc": json.dumps({"crashes": 2, "boot": 5})}  # machine.WDT_RESET
    (mpy.workdir / "hw.json").write_text(json.dumps(hw))
    code, out = board.boot()
    assert code == 0 and "safe mode (3 crashing boots in a row)" in out


def test_power_on_gives_a_crashed_app_another_try(mpy):
    board = Board(mpy)
    hw = {"cause": 1, "rtc": json.dumps({"crashes": 5, "boot": 5})}  # machine.PWRON_RESET
    (mpy.workdir / "hw.json").write_text(json.dumps(hw))
    code, out = board.boot()
    assert code == 75, out
    assert board.rtc()["crashes"] == 0 and not (mpy.workdir / "SAFE").exists()


@pytest.mark.parametrize("cause, bumped", [(1, True), (2, False), (5, False), (3, False)])
def test_only_a_possible_power_loss_starts_a_new_clock_epoch(mpy, cause, bumped):
    # Readings taken before the clock is set carry the raw clock and its epoch; a soft or
    # watchdog reset keeps the RTC counting, so they must stay convertible.
    from tests.device.unit.test_clock_mpy import FAKE_TIME

    board = Board(mpy)
    mpy.fake("time", FAKE_TIME)
    (mpy.workdir / "now.txt").write_text("100")  # 2000-01-01 00:01:40: clock unset
    (mpy.workdir / "hw.json").write_text(json.dumps({"cause": cause, "rtc": "{}"}))
    code, out = board.boot()
    assert code == 75, out
    state = json.loads((mpy.workdir / "spool.state").read_text()) if (mpy.workdir / "spool.state").exists() else {}
    assert state.get("epoch", 0) == (1 if bumped else 0)
    assert mpy.json("import spool\nprint(spool.Spool().depth())") == 1


def test_always_on_light_sleeps_in_slices_the_watchdog_outlasts(mpy):
    board = Board(mpy, config={**CONFIG, "mode": "always_on"})
    code, out = board.boot()
    assert code == 80, out
    hw = board.hw()
    slices = [ms for ms, _ in hw["light"]]
    assert max(slices) < hw["wdt_ms"] and sum(slices) >= 100000
    fed = [n for _, n in hw["light"]]
    assert fed == sorted(set(fed))  # fed between every two slices
    assert board.rtc()["boot"] == 1
    assert mpy.json("import spool\nprint(spool.Spool().depth())") == 2  # a reading per interval
