"""`dhtlink reset`: reboot the board (machine.reset), which runs boot.py and main.py."""

import argparse

from host_tools.common import board_options
from host_tools.serial.ports import choose


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reset",
        parents=[board_options()],
        help="reboot the board",
        description="Reboot the board (machine.reset()): it runs boot.py and main.py, so the app starts "
        "with the config and files now on it.",
    )
    parser.add_argument("--soft", action="store_true", help="restart the interpreter only (Ctrl-D)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host_tools.serial.board import Board

    port = choose(args.port)
    with Board(port, wait_s=args.wait) as board:
        if args.soft:
            board.soft_reset()
        else:
            board.hard_reset()
    print(f"{port}: {'soft ' if args.soft else ''}reset")
    return 0
