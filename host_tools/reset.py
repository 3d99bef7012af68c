"""`dhtlink reset`: reboot the board (machine.reset), which runs boot.py and main.py."""

import argparse

from host_tools.ports import choose


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("reset", help="reboot the board")
    parser.add_argument("--port", default=None)
    parser.add_argument("--soft", action="store_true", help="restart the interpreter only (Ctrl-D)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host_tools.board import Board

    port = choose(args.port)
    with Board(port) as board:
        if args.soft:
            board.soft_reset()
        else:
            board.hard_reset()
    print(f"{port}: {'soft ' if args.soft else ''}reset")
    return 0
