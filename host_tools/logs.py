"""`dhtlink logs [--follow]`: the firmware's rotating log (log.1.txt, then log.txt)."""

import argparse
import sys
import time

from host_tools.ports import choose


def read_log(board) -> bytes:
    return (board.read_file("log.1.txt") or b"") + (board.read_file("log.txt") or b"")


def added(previous: bytes, current: bytes) -> bytes:
    """What current adds to previous. The log only grows, except that a rotation drops its
    oldest half, so the new part starts after where previous's tail now stands."""
    if not previous:
        return current
    tail = previous[-200:]
    at = current.rfind(tail)
    return current[at + len(tail) :] if at >= 0 else current


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("logs", help="print the board's log file")
    parser.add_argument("--port", default=None)
    parser.add_argument("--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host_tools.board import Board

    port = choose(args.port)
    seen = b""
    while True:
        with Board(port) as board:
            text = read_log(board)
        # After a rotation the old tail is in log.1.txt: print only what follows what was seen.
        new = text[text.rfind(seen[-200:]) + len(seen[-200:]) :] if seen and seen[-200:] in text else text
        sys.stdout.write(new.decode("utf-8", "replace"))
        sys.stdout.flush()
        seen = text
        if not args.follow:
            return 0
        time.sleep(2)
