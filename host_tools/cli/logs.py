"""`dhtlink logs`: the verb over host_tools.serial.logs."""

import argparse

from host_tools.common import board_options
from host_tools.serial.logs import follow
from host_tools.serial.ports import choose


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "logs",
        parents=[board_options()],
        help="print the board's log file",
        description="Print the app's log (log.1.txt, then log.txt) with UTC times; --follow keeps printing "
        "new lines as the board writes them, each once.",
    )
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host_tools.serial.board import Board

    port = choose(args.port)
    follow(lambda: Board(port), once=not args.follow)
    return 0
