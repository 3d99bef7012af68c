"""`dhtlink safe-mode on|off`: keep the app from starting (a SAFE file), or let it start."""

import argparse

from host_tools.common import board_options
from host_tools.serial.files import SAFE
from host_tools.serial.ports import choose


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "safe-mode",
        parents=[board_options()],
        help="stop the app from starting at boot, or allow it again",
        description="on: write the SAFE file, so the board boots to the REPL without starting the app; off: "
        "remove it. Either way the board restarts.",
    )
    parser.add_argument("state", choices=["on", "off"], help="on: boot to the REPL only; off: start the app again")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host_tools.serial.board import Board

    port = choose(args.port)
    with Board(port, wait_s=args.wait) as board:
        if args.state == "on":
            board.write_file(SAFE, b"requested with dhtlink safe-mode on\n")
        else:
            board.remove(SAFE)
        board.hard_reset()
    print(f"{port}: safe mode {args.state}; the board restarted")
    return 0
