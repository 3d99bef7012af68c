"""`dhtlink vboard`: a virtual board on a pseudo-terminal, for every board command."""

import argparse
import tempfile
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "vboard",
        help="run a virtual board on a pseudo-terminal (prints its path first)",
        description="Start the MicroPython Unix port with the virtual ESP32 hardware on a pseudo-terminal and "
        "print the terminal's path on the first line; pass it as --port to flash, provision, repl, logs, "
        "status. Runs until killed. The board's flash is DIR.",
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


def run(args: argparse.Namespace) -> int:
    from host_tools.sim.vboard import pty_bridge

    directory = args.dir or Path(tempfile.mkdtemp(prefix="dhtlink-vboard-"))
    try:
        pty_bridge.run(directory, allow_unconfined=args.unconfined)
    except KeyboardInterrupt:
        pass
    return 0
