"""`make flash FIRMWARE=... ERASE=1` on a blank chip, for real: esptool erases, writes and
verifies against an emulated ESP32 ROM bootloader, the chip boots MicroPython, dhtlink
uploads the app, and once provisioned the app delivers (tests/serial/usb_esp32.py says
what the emulation leaves out)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools.cli import main
from host_tools.serial.files import MANIFEST
from tests.serial.test_firmware_image import build_image
from tests.serial.usb_esp32 import UsbEsp32

REPO = Path(__file__).resolve().parents[2]


def esptool(port: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "esptool", "--chip", "esp32", "--port", port, "--baud", "460800", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def chip(tmp_path):
    usb = UsbEsp32(tmp_path / "usb")
    yield usb
    usb.close()


@pytest.mark.slow
def test_make_flash_erase_takes_a_blank_chip_to_a_delivering_app(chip, endpoint, tmp_path, capsys, monkeypatch):
    from esptool import bin_image

    # Something already in flash that --erase must remove, written through the ROM directly.
    old = tmp_path / "old.bin"
    old.write_bytes(b"\xaa" * 4096)
    assert esptool(chip.rom_port, "write-flash", "0x300000", str(old)).returncode == 0
    firmware = build_image(tmp_path, bin_image.ESP32FirmwareImage, "ESP32_GENERIC.bin")

    env = {**os.environ, "DATA_DIR": str(endpoint.data_dir)}
    done = subprocess.run(
        ["make", "-s", "flash", f"PORT={chip.port}", f"FIRMWARE={firmware}", "ERASE=1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Hash of data verified" in done.stdout + done.stderr, "esptool verified the write"
    assert f"writing {firmware.name} (esp32) at 0x1000" in done.stdout
    assert "app on " in done.stdout and " sent, 0 unchanged, 0 removed" in done.stdout

    # The ROM holds the image at 0x1000, byte for byte, and the erase took the old data.
    assert "digest matched" in esptool(chip.rom_port, "verify-flash", "0x1000", str(firmware)).stdout
    # Judged by the ROM's MD5 of the region: read-flash streams with a fixed 3 s between
    # frames (esptool's loader.py), which the mock ROM missed at load average 20.
    erased = tmp_path / "erased.bin"
    erased.write_bytes(b"\xff" * 4096)
    assert "digest matched" in esptool(chip.rom_port, "verify-flash", "0x300000", str(erased)).stdout
    # MicroPython came up on an empty flash and holds the app whole.
    assert chip.booted.is_set() and (chip.board_dir / MANIFEST).exists()

    monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))
    password = tmp_path / "wifi"
    password.write_text("correct horse\n")
    assert (
        main(
            [
                "provision",
                "-p",
                chip.port,
                "--device",
                "blank-1",
                "--wifi-ssid",
                "home",
                "--wifi-password-file",
                str(password),
                "--endpoint",
                endpoint.url,
                "--interval",
                "5",
            ]
        )
        == 0
    )
    assert main(["reset", "-p", chip.port]) == 0
    deadline = time.monotonic() + 60
    while not endpoint.store.latest_reading("blank-1") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert endpoint.store.latest_reading("blank-1"), "the app runs and its readings arrive"
