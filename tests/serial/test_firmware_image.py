"""The esptool step, tested with esptool's own image tools: no board is attached here."""

import subprocess
import sys

import pytest
from esptool import bin_image

from host_tools.errors import UsageError
from host_tools.serial import firmware_image
from host_tools.serial.flash import esptool_command


def build_image(tmp_path, cls, name):
    image = cls()
    image.entrypoint = 0x40080000
    image.segments = [bin_image.ELFSection(b".dram0.data", 0x3FFB0000, b"\x00" * 64, 0)]
    path = tmp_path / name
    image.save(str(path))
    return path


@pytest.mark.parametrize(
    ("cls", "chip", "offset"),
    [
        (bin_image.ESP32FirmwareImage, "esp32", 0x1000),
        (bin_image.ESP32S3FirmwareImage, "esp32s3", 0x0),
        (bin_image.ESP32S2FirmwareImage, "esp32s2", 0x0),
        (bin_image.ESP32C3FirmwareImage, "esp32c3", 0x0),
    ],
)
def test_offset_follows_the_image_header(tmp_path, cls, chip, offset):
    path = build_image(tmp_path, cls, f"{chip}.bin")
    info = subprocess.run(
        [sys.executable, "-m", "esptool", "image-info", str(path)], capture_output=True, text=True, check=False
    )
    assert info.returncode == 0 and "Checksum: " in info.stdout and "(valid)" in info.stdout
    image = firmware_image.inspect(path)
    assert (image.chip, image.offset) == (chip, offset)


def test_exact_esptool_command_lines(tmp_path):
    image = firmware_image.inspect(build_image(tmp_path, bin_image.ESP32FirmwareImage, "fw.bin"))
    commands = esptool_command("/dev/ttyUSB0", image, erase=True)
    base = [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", "/dev/ttyUSB0", "--baud", "460800"]
    assert commands == [[*base, "erase-flash"], [*base, "write-flash", "-z", "0x1000", str(image.path)]]
    assert esptool_command("/dev/ttyUSB0", image, erase=False) == commands[1:]


def test_not_an_image(tmp_path):
    bogus = tmp_path / "firmware.uf2"
    bogus.write_bytes(b"UF2\n" + bytes(60))
    with pytest.raises(UsageError, match="not an ESP firmware image"):
        firmware_image.inspect(bogus)
    with pytest.raises(UsageError, match="No such file"):
        firmware_image.inspect(tmp_path / "missing.bin")


def test_esptool_without_a_board_fails_cleanly(tmp_path):
    image = firmware_image.inspect(build_image(tmp_path, bin_image.ESP32FirmwareImage, "fw.bin"))
    command = esptool_command(str(tmp_path / "no-such-port"), image, erase=False)[0]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
