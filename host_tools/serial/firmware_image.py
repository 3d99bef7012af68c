"""Which chip a MicroPython .bin is for, and where it goes in flash.

An ESP image starts with magic 0xE9; its extended header (bytes 8-23) carries the chip
id at bytes 12-13. The classic ESP32 boots its second-stage bootloader from 0x1000; the
S2, S3, C3 and C6 from 0x0. A MicroPython release .bin starts with that bootloader.
"""

from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import UsageError

MAGIC = 0xE9
CHIPS = {
    0x0000: ("esp32", 0x1000),
    0x0002: ("esp32s2", 0x0),
    0x0005: ("esp32c3", 0x0),
    0x0009: ("esp32s3", 0x0),
    0x000D: ("esp32c6", 0x0),
}


@dataclass(frozen=True)
class FirmwareImage:
    path: Path
    chip: str
    offset: int


def inspect(path: Path) -> FirmwareImage:
    try:
        header = path.read_bytes()[:24]
    except OSError as error:
        raise UsageError(f"--firmware {path}: {error.strerror}") from None
    if len(header) < 24 or header[0] != MAGIC:
        raise UsageError(
            f"--firmware {path} is not an ESP firmware image (no 0xE9 header): download the .bin, not the .uf2 or .elf"
        )
    chip_id = int.from_bytes(header[12:14], "little")
    if chip_id not in CHIPS:
        raise UsageError(
            f"--firmware {path} is for chip id {chip_id:#06x}, which dhtlink does not flash "
            f"(supported: {', '.join(c for c, _ in CHIPS.values())})"
        )
    chip, offset = CHIPS[chip_id]
    return FirmwareImage(path, chip, offset)
