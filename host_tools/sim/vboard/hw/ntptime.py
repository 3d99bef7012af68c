# Virtual NTP, standing in for micropython-lib's ntptime.py (frozen into the ESP32
# firmware by bundle-networking): sets the RTC to true virtual time, or fails as the
# scenario says ("ntp": "fail", or "ntp_fail" time ranges). The real module, run over the
# virtual socket, cost the firmware 1 KiB of its batch-100 heap here (docs/virtual-board.md).
import _board

host = "pool.ntp.org"
timeout = 1


def time():
    down = _board.state.get("wifi") != "up"
    if down or _board.scenario.get("ntp") == "fail" or _board.in_ranges("ntp_fail"):
        _board.advance(timeout * 1000)
        raise OSError(110)
    return _board.epoch_ms() // 1000


def settime():
    time()
    _board.state["rtc_offset_ms"] = 0
    _board.save()
