"""`dhtlink ports`, and choosing the serial port a command talks to."""

import os
from dataclasses import dataclass

from host_tools.errors import UsageError

# USB VID:PID -> the bridge or chip on the board.
KNOWN = {
    (0x10C4, 0xEA60): "CP210x",
    (0x1A86, 0x7523): "CH340",
    (0x1A86, 0x55D4): "CH9102",
    (0x0403, 0x6001): "FTDI FT232R",
    (0x0403, 0x6010): "FTDI FT2232",
    (0x0403, 0x6014): "FTDI FT232H",
    (0x0403, 0x6015): "FTDI FT231X",
    (0x303A, 0x1001): "ESP32-S3/C3 native USB (JTAG/serial)",
    (0x303A, 0x0002): "ESP32-S2 native USB",
    (0x303A, 0x4001): "ESP32-S2/S3 native USB (MicroPython)",
    (0x303A, 0x80D1): "ESP32-S3 native USB (TinyUSB)",
}


@dataclass(frozen=True)
class Port:
    device: str
    vid_pid: str
    chip: str
    description: str


def candidates() -> list[Port]:
    """Serial ports that look like an ESP32 board (a known USB bridge or Espressif's own USB)."""
    from serial.tools import list_ports

    found = []
    for info in list_ports.comports():
        if info.vid is None:
            continue
        chip = KNOWN.get((info.vid, info.pid)) or ("Espressif USB" if info.vid == 0x303A else None)
        if chip:
            found.append(Port(info.device, f"{info.vid:04X}:{info.pid:04X}", chip, info.description or ""))
    return found


def choose(port: str | None) -> str:
    """--port, then $DHTLINK_PORT, then the one board attached; otherwise a message that says how."""
    chosen = port or os.environ.get("DHTLINK_PORT")
    if chosen:
        if not os.path.exists(chosen):
            raise UsageError(f"no serial port {chosen}: `dhtlink ports` lists the boards attached")
        return chosen
    found = candidates()
    if len(found) == 1:
        return found[0].device
    if not found:
        raise UsageError(
            "no ESP32 board found on USB: plug one in (a data cable, not charge-only), or pass "
            "--port (PORT= with make); `dhtlink vboard` gives a virtual one"
        )
    listing = ", ".join(f"{p.device} ({p.chip})" for p in found)
    raise UsageError(f"{len(found)} boards attached: {listing}; choose one with --port (PORT= with make)")
