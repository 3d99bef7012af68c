# Virtual `network`: one station interface and the access points of the scenario.
# Wi-Fi outages are time ranges in the scenario ("wifi_down"); while one lasts the
# interface drops its association and the virtual socket module refuses traffic.
# An access point with a "password" takes only that key (another one ends in
# STAT_WRONG_PASSWORD, as the ESP32's station does after the 4-way handshake fails) and
# scans as secured (WPA2-PSK, 3), or open (0) for ""; one without takes any key.
import _board

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202


def _aps():
    aps = _board.scenario.get("access_points")
    if aps is None:
        try:
            import json

            with open("config.json") as f:
                ssid = json.loads(f.read())["wifi"][0]["ssid"]
        except (OSError, ValueError, KeyError, IndexError):
            ssid = "dhtlink-bench"
        aps = [{"ssid": ssid, "bssid": "a0b1c2d3e4f5", "channel": 6, "rssi": -61}]
    return aps


# The access points in range, found once as the chip starts: parsing config.json at every
# connect or scan put garbage, and the joined access point's dict, in the firmware's heap
# mid-wake, where the chip's Wi-Fi driver (C) keeps them out of it.
APS = _aps()


class WLAN:
    def __init__(self, interface=STA_IF):
        self._active = False
        self._target = None
        self._refused = False
        self._ready_ms = 0

    def active(self, on=None):
        if on is None:
            return self._active
        self._active = bool(on)
        if not on:
            self._target = None
        _board.state["wifi"] = "up" if self.isconnected() else "down"

    def _find(self, ssid, bssid=None):
        for ap in APS:
            if ap["ssid"] == ssid and (bssid is None or bytes.fromhex(ap["bssid"]) == bssid):
                return ap
        return None

    def connect(self, ssid, key=None, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started")
        self._target = self._find(ssid, bssid)
        self._refused = self._target is not None and self._target.get("password", key or "") != (key or "")
        # Association takes longer without a known BSSID (a full scan first).
        cost = _board.scenario.get("connect_ms", 700 if bssid else 1500)
        self._ready_ms = _board.now_ms() + cost

    def disconnect(self):
        self._target = None
        _board.state["wifi"] = "down"

    def isconnected(self):
        if self._target is not None and self._ready_ms <= _board.state.get("radio_off_ms", 0):
            self._target = None  # associated before a light sleep: lost in it
        up = (
            self._active
            and self._target is not None
            and not self._refused
            and not _board.in_ranges("wifi_down")
            and _board.now_ms() >= self._ready_ms
        )
        _board.state["wifi"] = "up" if up else "down"
        return up

    def status(self, param=None):
        if param == "rssi":
            if not self.isconnected():
                raise OSError("not connected")
            return self._target.get("rssi", -61)
        if self.isconnected():
            return STAT_GOT_IP
        if self._target is None or _board.in_ranges("wifi_down"):
            return STAT_NO_AP_FOUND
        if self._refused and _board.now_ms() >= self._ready_ms:
            return STAT_WRONG_PASSWORD
        return STAT_CONNECTING

    def scan(self):
        if not self._active:
            raise OSError("Wifi Not Started")
        _board.advance(_board.scenario.get("scan_ms", 1200))
        if _board.in_ranges("wifi_down"):
            return []
        return [
            (
                ap["ssid"].encode(),
                bytes.fromhex(ap["bssid"]),
                ap.get("channel", 6),
                ap.get("rssi", -61),
                0 if ap.get("password") == "" else 3,
                False,
            )
            for ap in APS
        ]

    def config(self, *args, **kwargs):
        if args and args[0] == "channel":
            return self._target.get("channel", 6) if self._target else 0
        if args and args[0] == "mac":
            return b"\x24\x0a\xc4\x00\x00\x01"
        if args and args[0] == "essid":
            return self._target["ssid"] if self._target else ""

    def ifconfig(self, cfg=None):
        if cfg is None:
            return ("192.168.4.20", "255.255.255.0", "192.168.4.1", "192.168.4.1")
