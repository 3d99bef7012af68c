"""Wi-Fi rules under MicroPython with a scripted stand-in for the ESP32 radio: the
time cap, the RTC-cached BSSID fast path and its fallback, the strongest configured
network from a scan, static IP, and backoff while no access point answers."""

import json

# aps.json: {"aps": [[ssid, bssid_hex, channel, rssi]], "up": bool}. connect() with a
# bssid succeeds only if that AP is up; calls are recorded in calls.json.
FAKE_NETWORK = """
import json
STA_IF = 0
_cfg = json.loads(open("aps.json").read())
calls = []
class WLAN:
    def __init__(self, i):
        self._up = False
        self.ifc = None
    def active(self, on=None):
        return True
    def isconnected(self):
        return self._up
    def scan(self):
        calls.append(["scan"])
        if not _cfg["up"]:
            return []
        return [(a[0].encode(), bytes.fromhex(a[1]), a[2], a[3], 3, False) for a in _cfg["aps"]]
    def connect(self, ssid, key, bssid=None):
        calls.append(["connect", ssid, bssid.hex() if bssid else None])
        if not _cfg["up"]:
            return
        for a in _cfg["aps"]:
            if a[0] == ssid and (bssid is None or bssid.hex() == a[1]):
                self._up = True
    def disconnect(self):
        self._up = False
    def ifconfig(self, c=None):
        self.ifc = c
    def status(self, what=None):
        return -61
"""
NETS = [{"ssid": "home", "password": "pw1"}, {"ssid": "shed", "password": "pw2"}]


def run(mpy, aps, up=True, rtc=None, budget=1000, static_ip=None):
    mpy.fake("network", FAKE_NETWORK)
    (mpy.workdir / "aps.json").write_text(json.dumps({"aps": aps, "up": up}))
    return mpy.json(f"""
        import json, time, wifi, network
        rtc = {json.dumps(rtc or {})}
        w = wifi.WiFi({json.dumps(NETS)}, rtc, {static_ip!r})
        t0 = time.ticks_ms()
        ok = w.connect({budget})
        took = time.ticks_diff(time.ticks_ms(), t0)
        print(json.dumps([ok, took, rtc, network.calls, w.rssi(), w.wlan.ifc]))
    """)


def test_scan_picks_the_strongest_configured_network_and_caches_it(mpy):
    aps = [["home", "aa0000000001", 1, -80], ["shed", "bb0000000002", 6, -50], ["other", "cc0000000003", 11, -30]]
    ok, _, rtc, calls, rssi, _ = run(mpy, aps)
    assert ok and rssi == -61
    assert calls == [["scan"], ["connect", "shed", "bb0000000002"]]
    assert rtc["ap"] == [1, "bb0000000002"] and rtc["wifi_fails"] == 0


def test_cached_access_point_connects_without_a_scan(mpy):
    aps = [["home", "aa0000000001", 1, -80]]
    ok, _, _, calls, _, _ = run(mpy, aps, rtc={"ap": [0, "aa0000000001"]})
    assert ok and calls == [["connect", "home", "aa0000000001"]]


def test_stale_cache_falls_back_to_a_full_connect(mpy):
    aps = [["home", "aa0000000009", 1, -70]]  # the AP was replaced: new BSSID
    ok, took, rtc, calls, _, _ = run(mpy, aps, rtc={"ap": [0, "aa0000000001"]}, budget=1000)
    assert ok and took < 1000
    assert calls == [["connect", "home", "aa0000000001"], ["scan"], ["connect", "home", "aa0000000009"]]
    assert rtc["ap"] == [0, "aa0000000009"]


def test_no_access_point_is_time_capped_and_backs_off_growing(mpy):
    aps = [["home", "aa0000000001", 1, -70]]
    ok, took, rtc, _, _, _ = run(mpy, aps, up=False, rtc={"ap": [0, "aa0000000001"]}, budget=600)
    assert not ok and took <= 700
    assert "ap" not in rtc and rtc["wifi_fails"] == 1 and rtc["wifi_skip"] == 1
    ok, _, rtc2, calls, _, _ = run(mpy, aps, up=False, rtc=rtc)
    assert not ok and calls == [] and rtc2["wifi_skip"] == 0  # skipped: no radio time spent
    ok, _, rtc3, _, _, _ = run(mpy, aps, up=False, rtc=rtc2)
    assert not ok and rtc3["wifi_fails"] == 2 and rtc3["wifi_skip"] == 3
    rtc3["wifi_skip"] = 0
    ok, _, rtc4, _, _, _ = run(mpy, aps, up=True, rtc=rtc3)
    assert ok and rtc4["wifi_fails"] == 0


def test_static_ip_is_applied(mpy):
    ip = {"ip": "192.168.1.50", "netmask": "255.255.255.0", "gateway": "192.168.1.1", "dns": "192.168.1.1"}
    ok, _, _, _, _, ifc = run(mpy, [["home", "aa0000000001", 1, -70]], static_ip=ip)
    assert ok and ifc == ["192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1"]
