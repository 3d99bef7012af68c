"""`dhtlink vboard`: a virtual board on a pseudo-terminal, for every board command."""

import argparse
import os
import tempfile
from pathlib import Path

from host_tools.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "vboard",
        help="run a virtual board on a pseudo-terminal (prints its path first)",
        description="Start the MicroPython Unix port with the virtual ESP32 hardware on a pseudo-terminal and "
        "print the terminal's path on the first line; pass it as --port to flash, provision, repl, logs, "
        "status. Runs until killed. The board's flash is DIR, readable by you only (config.json holds secrets).",
    )
    parser.add_argument("--dir", type=Path, default=None, help="the board's filesystem (default: a new temp dir)")
    parser.add_argument(
        "--unconfined-board-can-reach-host",
        dest="unconfined",
        action="store_true",
        help="start even where the OS sandbox cannot be built: code on the board can then read and write this "
        "computer's files (docs/virtual-board.md)",
    )
    parser.set_defaults(func=run)


def board_dir(chosen: Path | None) -> Path:
    """The board's flash folder, created owner-only: config.json on it holds the device secret
    and the Wi-Fi password."""
    if chosen is None:
        return Path(tempfile.mkdtemp(prefix="dhtlink-vboard-"))  # mode 700
    try:
        chosen.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"--dir {chosen} is a file: name a folder (it is created if missing)") from None
    except OSError as error:
        raise UsageError(f"--dir {chosen}: {error.strerror}; name a folder you can write") from None
    if not os.access(chosen, os.W_OK | os.X_OK):
        raise UsageError(f"--dir {chosen}: not writable by you; name a folder you can write")
    return chosen


def run(args: argparse.Namespace) -> int:
    from host_tools.sim.vboard import pty_bridge

    # Refused before anything is made: a refused board leaves no folder behind.
    pty_bridge.check_confinement(args.unconfined)
    directory = board_dir(args.dir)
    # Every file the board writes (config.json above all) is its owner's only, as on a board nobody else holds.
    os.umask(0o077)
    try:
        pty_bridge.run(directory, allow_unconfined=args.unconfined)
    except KeyboardInterrupt:
        pass
    return 0
