"""A board at the other end of a serial port: the verbs the host tools need, over
mpremote's SerialTransport (raw REPL). Nothing here soft-resets the board on connect,
so a running app and the REPL state survive a look at the board."""

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from host_tools.errors import CommandError

CONNECT_TIMEOUT_S = 10
# MicroPython's own version ("1.29.0-preview"), not sys.version's leading "3.4.0", the
# Python language level MicroPython implements.
VERSION_EXPRESSION = (
    "'.'.join(str(p) for p in __import__('sys').implementation.version[:3])"
    " + ''.join('-' + str(p) for p in __import__('sys').implementation.version[3:] if p)"
)


class BoardFiles(Protocol):
    """What the board verbs need of a board: a real one on a serial port (Board, also a
    virtual board's pseudo-terminal), or a test's stand-in. Type-checked (make lint)."""

    def exec(self, code: str) -> str: ...
    def read_file(self, path: str) -> bytes | None: ...
    def exists(self, path: str) -> bool: ...
    def sha256(self, path: str) -> str | None: ...
    def write_file(self, path: str, data: bytes, progress: Callable[[int, int], Any] | None = None) -> None: ...
    def remove(self, path: str) -> None: ...
    def mpy_version(self) -> tuple[int, int]: ...


class Board:
    def __init__(self, port: str) -> None:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        self.port = port
        try:
            self.transport = SerialTransport(port, baudrate=115200)
        except TransportError as error:
            raise CommandError(
                f"cannot open {port}: {error}; is another program (a REPL, a monitor) holding it?"
            ) from None
        if not self._enter_raw_repl(CONNECT_TIMEOUT_S):
            self.transport.close()
            raise CommandError(
                f"the board on {port} does not answer: a program is running that ignores Ctrl-C, or this is "
                "not MicroPython. Press its reset button and retry, or `dhtlink flash --firmware` it"
            )

    def _enter_raw_repl(self, timeout_s: float) -> bool:
        """Interrupt whatever runs and enter the raw REPL, within a deadline: mpremote's own
        entry can block for ever on a board that never answers."""
        serial = self.transport.serial
        serial.timeout = 0.2
        # mpremote's exec expects the ">" prompt after the banner still unread: stop right before it.
        banner = b"raw REPL; CTRL-B to exit\r\n"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            serial.write(b"\r\x03")
            time.sleep(0.1)
            serial.reset_input_buffer()
            serial.write(b"\r\x01")
            seen = b""
            retry_at = time.monotonic() + 2
            while time.monotonic() < min(retry_at, deadline):
                seen += serial.read(1)
                if seen.endswith(banner):
                    self.transport.in_raw_repl = True
                    return True
        return False

    def __enter__(self) -> "Board":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self.transport.in_raw_repl:
                self.transport.exit_raw_repl()
        finally:
            self.transport.close()

    def exec(self, code: str) -> str:
        from mpremote.transport import TransportError

        try:
            return self.transport.exec(code).decode("utf-8", "replace")
        except TransportError as error:
            raise CommandError(f"the board raised: {str(error).strip()[-300:]}") from None

    def eval(self, expression: str) -> Any:
        return self.transport.eval(expression)

    def read_file(self, path: str) -> bytes | None:
        if not self.exists(path):
            return None
        return self.transport.fs_readfile(path)

    def exists(self, path: str) -> bool:
        out = self.exec(f"import os\ntry:\n os.stat({path!r})\n print(1)\nexcept OSError:\n print(0)")
        return out.strip() == "1"

    def sha256(self, path: str) -> str | None:
        if not self.exists(path):
            return None
        return self.transport.fs_hashfile(path, "sha256").hex()

    def write_file(self, path: str, data: bytes, progress: Callable[[int, int], Any] | None = None) -> None:
        """Write to a temporary name, check it, then rename: a cut never leaves a half file."""
        temporary = path + ".part"
        self.transport.fs_writefile(temporary, data, progress_callback=progress)
        if self.sha256(temporary) != hashlib.sha256(data).hexdigest():
            self.remove(temporary)
            raise CommandError(f"{path}: the copy on the board does not match; nothing was replaced")
        self.exec(f"import os\nos.rename({temporary!r}, {path!r})")

    def remove(self, path: str) -> None:
        self.exec(f"import os\ntry:\n os.remove({path!r})\nexcept OSError:\n pass")

    def listdir(self) -> list[str]:
        return json.loads(self.exec("import os, json\nprint(json.dumps(os.listdir()))"))

    def mpy_version(self) -> tuple[int, int]:
        """(mpy version, sub-version) the board's MicroPython loads."""
        value = int(self.eval("__import__('sys').implementation._mpy"))
        return value & 0xFF, (value >> 8) & 3

    def soft_reset(self) -> None:
        """Ctrl-D at the friendly REPL: a fresh interpreter that runs boot.py and main.py."""
        self.transport.exit_raw_repl()
        self.transport.serial.write(b"\x04")
        self.transport.read_until(1, b"soft reboot\r\n", timeout=5)

    def hard_reset(self) -> None:
        """machine.reset(): the chip reboots and runs boot.py and main.py."""
        self.transport.serial.write(b"import machine\r\nmachine.reset()\r\n\x04")
        self.transport.in_raw_repl = False


def probe(port: str) -> str | None:
    """The MicroPython version answering on port, or None."""
    try:
        with Board(port) as board:
            return str(board.eval(VERSION_EXPRESSION))
    except (CommandError, OSError):
        return None
