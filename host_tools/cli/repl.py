"""`dhtlink repl`: the board's REPL in this terminal (mpremote's), the app resumed after."""

import argparse
import subprocess
import sys

from host_tools.common import board_options
from host_tools.serial.ports import choose


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "repl",
        parents=[board_options()],
        help="open the board's REPL (Ctrl-] to leave)",
        description="The board's interactive REPL in this terminal, through mpremote. The running app is "
        "stopped (a sleeping board is caught at its next wake) and its watchdog re-armed for 30 min so the "
        "session is not reset under you; when you leave (Ctrl-]) the app is started again by a soft reset, "
        "which it does not count as a crash. Ctrl-D in the REPL soft-resets it meanwhile.",
    )
    parser.add_argument(
        "--halt", action="store_true", help="leave the app stopped at the REPL when you leave (watchdog still held)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host_tools.serial.board import HOLD_WDT_MS, Board

    port = choose(args.port)
    with Board(port, wait_s=args.wait) as board:
        was_running = board.was_running
        board.leave_at_repl()
    print(f"REPL of {port} (Ctrl-] leaves{'; the app restarts then' if was_running and not args.halt else ''})")
    subprocess.run([sys.executable, "-m", "mpremote", "connect", port, "resume", "repl"], check=False)
    if args.halt or not was_running:
        print(
            f"{port}: left at the REPL (watchdog held {HOLD_WDT_MS // 60000} min); "
            f"`dhtlink reset --soft -p {port}` starts the app"
        )
        return 0
    with Board(port, wait_s=args.wait, say=None) as board:
        board.was_running = True  # hand it back running, whatever the session left it doing
    print(f"{port}: the app runs again")
    return 0
