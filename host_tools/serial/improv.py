"""Improv Wi-Fi over a serial line, host side: the client `dhtlink up` uses to give an
unprovisioned board its network (device/improv.py is the board's side; the packet format
is in its header). The tests also check the board against the protocol's reference
client (tests/improv/)."""

import time
from dataclasses import dataclass
from typing import Any

from host_tools.errors import CommandError

HEADER = b"IMPROV\x01"
CURRENT_STATE, ERROR_STATE, RPC, RPC_RESULT = 1, 2, 3, 4
READY, PROVISIONING, PROVISIONED = 2, 3, 4
WIFI_SETTINGS, REQUEST_STATE, REQUEST_INFO, REQUEST_SCAN = 1, 2, 3, 4
ERRORS = {1: "invalid RPC packet", 2: "unknown RPC command", 3: "unable to connect", 0xFF: "unknown error"}
UNABLE_TO_CONNECT = 3


class ImprovError(CommandError):
    """The board answered with Improv's error state (code) or not at all (code None)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Network:
    ssid: str
    rssi: int
    secured: bool


def packet(kind: int, data: bytes) -> bytes:
    body = HEADER + bytes((kind, len(data))) + data
    return body + bytes((sum(body) & 0xFF,)) + b"\n"


def rpc_packet(command: int, data: bytes = b"") -> bytes:
    return packet(RPC, bytes((command, len(data))) + data)


def strings(data: bytes) -> list[str]:
    """An RPC result's strings (after its command and total length)."""
    out, index = [], 2
    while index < 2 + data[1]:
        size = data[index]
        out.append(data[index + 1 : index + 1 + size].decode("utf-8", "replace"))
        index += 1 + size
    return out


class Improv:
    """An Improv client over an open pyserial port (or anything with read/write/in_waiting)."""

    def __init__(self, serial: Any) -> None:
        self.serial = serial
        self.pending = b""
        self.other = bytearray()  # what the board printed that was not Improv (its boot lines)
        self.state: int | None = None

    def _packets(self, until: float) -> Any:
        """Each (type, data) the board sends before the monotonic time `until`."""
        while True:
            start = self.pending.find(HEADER)
            if start >= 0 and len(self.pending) >= start + 9:
                end = start + 10 + self.pending[start + 8]
                if len(self.pending) >= end:
                    frame, self.other = self.pending[start:end], self.other + self.pending[:start]
                    self.pending = self.pending[end:]
                    if sum(frame[:-1]) & 0xFF == frame[-1]:
                        yield frame[7], frame[9:-1]
                    continue
            elif start < 0 and len(self.pending) > len(HEADER):
                self.other += self.pending[: -len(HEADER)]
                self.pending = self.pending[-len(HEADER) :]
            if time.monotonic() >= until:
                return
            self.pending += self.serial.read(max(1, self.serial.in_waiting))

    def _call(self, command: int, data: bytes, timeout: float, many: bool = False) -> list[Any]:
        self.serial.write(rpc_packet(command, data))
        results: list[Any] = []
        for kind, body in self._packets(time.monotonic() + timeout):
            if kind == CURRENT_STATE:
                self.state = body[0]
                if command == REQUEST_STATE and self.state != PROVISIONED:
                    return []
            elif kind == ERROR_STATE and body[0]:
                raise ImprovError(f"the board answered: {ERRORS.get(body[0], body[0])}", body[0])
            elif kind == RPC_RESULT and body[0] == command:
                answer = strings(body)
                if not many:
                    return answer
                if not answer:
                    return results
                results.append(answer)
        raise ImprovError(f"the board gave no Improv answer within {timeout:g} s", None)

    def listen(self, timeout: float) -> int | None:
        """The state an unprovisioned board announces when it starts listening, or None.
        Waited for, not asked: a request's type byte (3) reaching the board before it
        listens is a Ctrl-C, which stops its start-up at the REPL."""
        for kind, body in self._packets(time.monotonic() + timeout):
            if kind == CURRENT_STATE:
                self.state = body[0]
                return self.state
        return None

    def current_state(self, timeout: float = 10) -> int:
        """Ask until the board answers (it may still be booting), as Improv's clients do."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call(REQUEST_STATE, b"", min(1.0, max(0.1, deadline - time.monotonic())))
            except ImprovError as error:
                if error.code is not None or time.monotonic() >= deadline:
                    raise
                continue
            assert self.state is not None
            return self.state

    def info(self, timeout: float = 5) -> dict[str, str]:
        keys = ("firmware", "version", "chip", "name", "os", "os_version")
        return dict(zip(keys, self._call(REQUEST_INFO, b"", timeout), strict=False))

    def scan(self, timeout: float = 30) -> list[Network]:
        """The networks the board sees, strongest first."""
        found = self._call(REQUEST_SCAN, b"", timeout, many=True)
        networks = [Network(ssid, int(rssi), secured != "NO") for ssid, rssi, secured in found]
        return sorted(networks, key=lambda network: -network.rssi)

    def provision(self, ssid: str, password: str, timeout: float = 40) -> str | None:
        """Send the network; the board's redirect URL (its dashboard) once it has joined."""
        name, key = ssid.encode(), password.encode()
        answer = self._call(WIFI_SETTINGS, bytes((len(name),)) + name + bytes((len(key),)) + key, timeout)
        return answer[0] if answer else None
