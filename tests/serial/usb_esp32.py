"""One serial port that behaves like a USB-attached ESP32 through `dhtlink flash --firmware
--erase`: the ROM bootloader first (esp32-mock-bootloader on a pseudo-terminal, speaking
esptool's SLIP protocol), then, once esptool has written and verified an image and would
reset the chip into it, MicroPython (a virtual board whose flash the erase left empty).

What this cannot model, and what stands in for it: a pseudo-terminal has no DTR/RTS lines,
so esptool's reset into the bootloader and its reset after the write do nothing; the chip
starts in its bootloader, and the "reset into the firmware" is taken to happen when the ROM
answers esptool's verifying SPI_FLASH_MD5 after flash data was written (esptool sends
nothing after that before it resets the chip). The image written is not run: the virtual
board stands in for the MicroPython it holds."""

import os
import select
import subprocess
import sys
import threading
import tty
from pathlib import Path

from tests.cli.conftest import VBoard, start_vboard

SLIP_END, SLIP_ESC = 0xC0, 0xDB
FLASH_DATA, FLASH_DEFL_DATA, SPI_FLASH_MD5 = 0x03, 0x11, 0x13
MOCK = str(Path(sys.executable).parent / "esp32-mock-bootloader")


class SlipWatch:
    """Opcodes of the SLIP packets going one way: (direction, opcode) per packet."""

    def __init__(self) -> None:
        self.frame = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        packets = []
        for byte in data:
            if byte == SLIP_END:
                if len(self.frame) >= 2:
                    packets.append((self.frame[0], self.frame[1]))
                self.frame = bytearray()
            elif len(self.frame) < 2 and byte != SLIP_ESC:
                self.frame.append(byte)
        return packets


class UsbEsp32:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(root)}  # the mock's registry and logs stay in the test's directory
        self.mock = subprocess.Popen(
            [MOCK, "run", "--pty", "--chip", "esp32"], stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.mock.stdout is not None
        self.rom_port = self.mock.stdout.readline().strip()
        assert self.rom_port.startswith("/dev/"), self.rom_port
        self.board_dir = root / "flash"
        self.vboard: tuple[subprocess.Popen, VBoard] | None = None
        self.host_fd, follower = os.openpty()
        tty.setraw(follower)
        self.port = str(root / "ttyUSB0")
        os.symlink(os.ttyname(follower), self.port)
        self.follower = follower  # held open, so the host side never hangs up between tools
        # Opened at the host's first byte: until then the ROM's own port is free for a test's checks.
        self.backend = -1
        self.to_rom, self.from_rom = SlipWatch(), SlipWatch()
        self.written = False
        self.booted = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _open(path: str) -> int:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        return fd

    def _boot_firmware(self) -> None:
        """The chip resets into the image just written: MicroPython on an empty flash."""
        if self.backend >= 0:
            os.close(self.backend)
        self.backend = -1
        self.vboard = start_vboard(self.board_dir)
        self.backend = self._open(self.vboard[1].port)
        self.booted.set()

    def _serve(self) -> None:
        while not self.stopping:
            fds = [self.host_fd] + ([self.backend] if self.backend >= 0 else [])
            readable, _, _ = select.select(fds, [], [], 0.1)
            if self.host_fd in readable:
                data = os.read(self.host_fd, 65536)
                if self.backend < 0 and not self.booted.is_set():
                    self.backend = self._open(self.rom_port)
                if self.backend >= 0:
                    if not self.booted.is_set():
                        for direction, op in self.to_rom.feed(data):
                            self.written |= direction == 0 and op in (FLASH_DATA, FLASH_DEFL_DATA)
                    os.write(self.backend, data)
            if self.backend >= 0 and self.backend in readable:
                try:
                    data = os.read(self.backend, 65536)
                except OSError:
                    data = b""
                os.write(self.host_fd, data)
                if not self.booted.is_set():
                    answers = self.from_rom.feed(data)
                    if self.written and (1, SPI_FLASH_MD5) in answers:
                        self._boot_firmware()

    def close(self) -> None:
        self.stopping = True
        self.thread.join(timeout=5)
        if self.vboard:
            self.vboard[0].terminate()
            self.vboard[0].wait(timeout=10)
        self.mock.terminate()
        self.mock.wait(timeout=10)
        os.unlink(self.port)
        for fd in (self.host_fd, self.follower, self.backend):
            if fd >= 0:
                os.close(fd)
