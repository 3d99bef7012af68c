"""`dhtlink repl`: the board's REPL in this terminal (mpremote's, without a reset)."""

import argparse
import os
import sys

from host_tools.common import board_options
from host_tools.serial.ports import choose


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "repl",
        parents=[board_options()],
        help="open the board's REPL (Ctrl-] to leave)",
        description="The board's interactive REPL in this terminal, through mpremote, without resetting the "
        "board. Ctrl-C stops a running app, Ctrl-D soft-resets, Ctrl-] leaves.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    port = choose(args.port)
    command = [sys.executable, "-m", "mpremote", "connect", port, "resume", "repl"]
    os.execv(sys.executable, command)  # noqa: S606 - the terminal belongs to mpremote from here
    return 0
