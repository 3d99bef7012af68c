# Improv Wi-Fi over the serial line (improv-wifi.com/serial), spoken while the board has
# no Wi-Fi settings: a host (`dhtlink up`, ESP Web Tools, any Improv client) asks for the
# board's state, its identity and its own Wi-Fi scan, then sends an SSID and password; the
# board joins, keeps them in config.json and answers with its dashboard URL.
#
# A packet, both ways: "IMPROV", version 1, type, length, data, checksum (the low byte of
# the sum of every byte before it); a newline may follow and is ignored. The host sends
# type 3 (RPC: command, data length, data); the board answers with type 1 (current
# state), 2 (error state) or 4 (RPC result: command, total length, then each string as
# length + UTF-8).
#
# The REPL shares the line. Improv's RPC type byte is 3, which is Ctrl-C, so the UART's
# interrupt character is switched off while listening (micropython.kbd_intr(-1)) and a
# Ctrl-C is recognised here instead: a 3 anywhere but at a packet's type byte raises
# KeyboardInterrupt with the interrupt character back on, as a Ctrl-C at a running
# program does, so mpremote and every dhtlink tool reach the REPL as before.
import gc
import json
import micropython
import select
import sys
import time
import network

READY, PROVISIONING, PROVISIONED = 2, 3, 4  # current state (type 1)
INVALID_RPC, UNKNOWN_RPC, UNABLE_TO_CONNECT = 1, 2, 3  # error state (type 2)
WIFI_SETTINGS, CURRENT_STATE, DEVICE_INFO, SCAN = 1, 2, 3, 4  # RPC commands
HEADER = b"IMPROV\x01"
CTRL_C = 3
CONNECT_MS = 20000  # a join and DHCP on a real network take 2-10 s
PACKET_MS = 1000  # a packet's bytes arrive within this of each other, or it is dropped
PATH = "config.json"


def packet(kind, data):
    out = bytearray(HEADER)
    out.append(kind)
    out.append(len(data))
    out.extend(data)
    out.append(sum(out) & 0xFF)
    out.append(10)
    return out


def result(command, strings):
    data = bytearray()
    for s in strings:
        b = s.encode() if isinstance(s, str) else s
        data.append(len(b))
        data.extend(b)
    return packet(4, bytes((command, len(data))) + data)


def wifi_settings(data):
    """(ssid, password) from a Wi-Fi settings RPC's data, or None when malformed."""
    if not data:
        return None
    n = data[0]
    if n < 1 or 1 + n >= len(data):
        return None
    m = data[1 + n]
    if 2 + n + m != len(data):
        return None
    try:
        return bytes(data[1 : 1 + n]).decode(), bytes(data[2 + n :]).decode()
    except UnicodeError:
        return None


class Improv:
    def __init__(self, fw, out=None):
        self.fw = fw
        self.out = out or sys.stdout.buffer
        self.state = READY
        self.url = None
        self.wlan = network.WLAN(network.STA_IF)
        self.buf = bytearray()
        self.at = 0  # ticks_ms of the packet's last byte

    def send(self, data):
        self.out.write(data)

    def send_state(self):
        self.send(packet(1, bytes((self.state,))))

    def error(self, code):
        self.send(packet(2, bytes((code,))))

    def _config(self):
        try:
            with open(PATH) as f:
                cfg = json.loads(f.read())
            return cfg if isinstance(cfg, dict) else {}
        except (OSError, ValueError):
            return {}

    def info(self):
        import machine

        impl = sys.implementation
        name = self._config().get("device_id") or "dhtlink-" + machine.unique_id().hex()[-6:]
        chip = "ESP32" if sys.platform == "esp32" else sys.platform.upper()
        return ("dhtlink", self.fw, chip, name, impl.name, "%d.%d.%d" % impl.version[:3])

    def scan(self):
        """The board's own scan: {ssid: (rssi, security)}, one entry per network (its
        strongest access point), hidden ones left out. Clients sort it."""
        w = self.wlan
        w.active(True)
        try:
            found = w.scan()
        except OSError:
            return {}
        best = {}
        for ssid, _bssid, _ch, rssi, security, hidden in found:
            if ssid and not hidden and (ssid not in best or rssi > best[ssid][0]):
                best[ssid] = (rssi, security)
        return best

    def join(self, ssid, password):
        w = self.wlan
        w.active(True)
        try:
            w.connect(ssid, password)
        except OSError:
            return False
        deadline = time.ticks_add(time.ticks_ms(), CONNECT_MS)
        while time.ticks_diff(deadline, time.ticks_ms()) > 0:
            if w.isconnected():
                return True
            if w.status() == network.STAT_WRONG_PASSWORD:
                break
            time.sleep_ms(100)
        w.disconnect()
        return False

    def store(self, ssid, password):
        """Keep the network in config.json (written whole under another name, then renamed)."""
        import os

        cfg = self._config()
        cfg["wifi"] = [{"ssid": ssid, "password": password}]
        with open(PATH + ".part", "w") as f:
            f.write(json.dumps(cfg))
        os.rename(PATH + ".part", PATH)
        endpoint, dev = cfg.get("endpoint"), cfg.get("device_id")
        if isinstance(endpoint, str) and endpoint.endswith("/data") and dev:
            # The dashboard is served beside the receiver (docs/dhtlink-up.md).
            self.url = endpoint[:-5] + "/#/device/" + dev

    def rpc(self, data):
        if len(data) < 2 or data[1] != len(data) - 2:
            return self.error(INVALID_RPC)
        command, args = data[0], data[2:]
        if command == CURRENT_STATE:
            self.send_state()
            if self.state == PROVISIONED:
                self.send(result(CURRENT_STATE, [self.url] if self.url else []))
        elif command == DEVICE_INFO:
            self.send(result(DEVICE_INFO, self.info()))
        elif command == SCAN:
            best = self.scan()
            gc.collect()  # the scan's list: one tuple per access point
            for ssid in best:
                rssi, security = best[ssid]
                self.send(result(SCAN, (ssid, str(rssi), "YES" if security else "NO")))
            self.send(result(SCAN, ()))
        elif command == WIFI_SETTINGS:
            creds = wifi_settings(args)
            if creds is None:
                return self.error(INVALID_RPC)
            self.state = PROVISIONING
            self.send_state()
            if not self.join(creds[0], creds[1]):
                self.state = READY
                self.error(UNABLE_TO_CONNECT)
                return self.send_state()
            self.store(creds[0], creds[1])
            self.state = PROVISIONED
            self.send_state()
            self.send(result(WIFI_SETTINGS, [self.url] if self.url else []))
        else:
            self.error(UNKNOWN_RPC)

    def feed(self, b):
        """One byte from the line; raises KeyboardInterrupt for a Ctrl-C outside a packet."""
        buf = self.buf
        n = len(buf)
        if n and time.ticks_diff(time.ticks_ms(), self.at) > PACKET_MS:
            buf[:] = b""  # the rest of a packet that never came
            n = 0
        self.at = time.ticks_ms()
        if n < 7:
            if b == HEADER[n]:
                buf.append(b)
            elif b == CTRL_C:
                buf[:] = b""
                micropython.kbd_intr(CTRL_C)
                raise KeyboardInterrupt
            else:
                buf[:] = b"I" if b == 73 else b""
            return
        buf.append(b)
        if n < 9 or len(buf) < 10 + buf[8]:
            return
        data = bytes(buf[9:-1])
        good = sum(buf[:-1]) & 0xFF == buf[-1]
        kind = buf[7]
        buf[:] = b""
        if not good:
            self.error(INVALID_RPC)
        elif kind == 3:
            self.rpc(data)

    def serve(self):
        """Answer Improv until the board has joined a network and kept it, or its input ends;
        a Ctrl-C on the line ends it with KeyboardInterrupt (the interrupt character is on
        again either way)."""
        poll = select.poll()
        poll.register(sys.stdin, select.POLLIN)
        read = sys.stdin.buffer.read
        micropython.kbd_intr(-1)
        try:
            self.send_state()  # told once at boot, for a host already listening
            while self.state != PROVISIONED:
                if poll.poll(PACKET_MS):
                    b = read(1)
                    if not b:
                        return  # no serial line (a wake without a host): nobody to ask
                    self.feed(b[0])
        finally:
            micropython.kbd_intr(CTRL_C)
