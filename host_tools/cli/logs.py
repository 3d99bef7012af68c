"""`dhtlink logs`: the verb over host_tools.serial.logs."""

import argparse

from host_tools.common import board_options
from host_tools.serial.ports import choose


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "logs",
        parents=[board_options()],
        help="print the board's log file, or follow what it prints live",
        description="Print the app's stored log (log.1.txt, then log.txt) with UTC times: the board is "
        "interrupted for the read and handed back running. --follow instead shows what the board prints on "
        "its serial line as it happens (each wake's reset line, reading, sends and warnings), with the time "
        "each line arrived, without interrupting or waking it; Ctrl-C stops.",
    )
    parser.add_argument(
        "-f", "--follow", action="store_true", help="show the board's serial output live, without interrupting it"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host_tools.serial.board import Board
    from host_tools.serial.logs import open_passive, print_log, watch

    port = choose(args.port)
    if not args.follow:
        with Board(port, wait_s=args.wait) as board:
            print_log(board)
        return 0
    uart = open_passive(port)
    print(f"following {port} (Ctrl-C stops; the board is not interrupted)", flush=True)
    try:
        watch(uart)
    except KeyboardInterrupt:
        pass
    finally:
        uart.close()
    return 0
