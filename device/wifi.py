# Station-mode Wi-Fi with a hard time cap, a fast path for the access point that
# worked last time (its BSSID kept in RTC memory across deep sleep; MicroPython's
# connect() takes a BSSID but no channel), and
# backoff while no access point answers, so an outage costs little battery.
import time
import network

MAX_SKIP = 16  # cycles skipped at most between attempts while the AP is gone


class WiFi:
    def __init__(self, nets, rtc, static_ip=None):
        self.nets = nets
        self.rtc = rtc
        self.static_ip = static_ip
        self.wlan = network.WLAN(network.STA_IF)

    def rssi(self):
        try:
            return self.wlan.status("rssi")
        except (OSError, ValueError):
            return None

    def _wait(self, deadline):
        while time.ticks_diff(deadline, time.ticks_ms()) > 0:
            if self.wlan.isconnected():
                return True
            time.sleep_ms(50)
        return False

    def _try(self, net, bssid, deadline):
        try:
            if bssid:
                self.wlan.connect(net["ssid"], net.get("password", ""), bssid=bssid)
            else:
                self.wlan.connect(net["ssid"], net.get("password", ""))
        except OSError:
            return False
        if self._wait(deadline):
            return True
        self.wlan.disconnect()
        return False

    def _scan_best(self):
        # The strongest visible configured network: (net index, bssid).
        best = None
        try:
            found = self.wlan.scan()
        except OSError:
            return None
        for ssid, bssid, _ch, rssi, _sec, _hidden in found:
            for i, net in enumerate(self.nets):
                if net["ssid"].encode() == ssid and (best is None or rssi > best[2]):
                    best = (i, bssid, rssi)
        return best

    def connect(self, budget_ms):
        """Connected within budget_ms? Skips the attempt while backing off."""
        w = self.wlan
        w.active(True)
        if w.isconnected():
            return True
        skip = self.rtc.get("wifi_skip", 0)
        if skip:
            self.rtc["wifi_skip"] = skip - 1
            return False
        if self.static_ip:
            ip = self.static_ip
            w.ifconfig((ip["ip"], ip["netmask"], ip["gateway"], ip["dns"]))
        deadline = time.ticks_add(time.ticks_ms(), budget_ms)
        ok = False
        cached = self.rtc.get("ap")
        if cached and cached[0] < len(self.nets):
            half = time.ticks_add(time.ticks_ms(), budget_ms // 2)
            ok = self._try(self.nets[cached[0]], bytes.fromhex(cached[1]), half)
        if not ok:
            best = self._scan_best()
            if best:
                ok = self._try(self.nets[best[0]], best[1], deadline)
                if ok:
                    self.rtc["ap"] = [best[0], best[1].hex()]
        if ok:
            self.rtc["wifi_fails"] = 0
        else:
            self.rtc.pop("ap", None)
            fails = self.rtc.get("wifi_fails", 0) + 1
            self.rtc["wifi_fails"] = fails
            self.rtc["wifi_skip"] = min(MAX_SKIP, (1 << min(fails, 5)) - 1)
        return ok

    def off(self):
        self.wlan.disconnect()
        self.wlan.active(False)
