"""`dhtlink status`: what is on the board and how the app is doing, without secrets."""

import argparse
import json
from typing import Any

from host_tools.board import VERSION_EXPRESSION, BoardFiles
from host_tools.board_files import MANIFEST
from host_tools.common import board_options, json_options
from host_tools.ports import choose

PROBE = f"""
import sys, os, gc, json
st = os.statvfs("/") if hasattr(os, "statvfs") else None
gc.collect()
print(json.dumps({{"micropython": {VERSION_EXPRESSION}, "platform": sys.platform,
                  "flash_free": st[0] * st[3] if st else None, "heap_free": gc.mem_free(),
                  "files": os.listdir()}}))
"""


def read_status(board: BoardFiles) -> dict[str, Any]:
    status = json.loads(board.exec(PROBE).strip().splitlines()[-1])
    files = set(status.pop("files"))
    status["app"] = status["app_incomplete"] = None
    if MANIFEST in files:
        # `dhtlink flash` removes the manifest before it changes a file and writes it after the
        # last one: present means the upload completed, unless a file it lists has gone since.
        missing = sorted(set(json.loads(board.read_file(MANIFEST) or b"[]")) - files)
        if missing:
            status["app_incomplete"] = f"missing {', '.join(missing)}"
        else:
            lines = [line for line in board.exec("import app\napp.report()").splitlines() if line.startswith("{")]
            status["app"] = json.loads(lines[-1]) if lines else None
    elif files & {"app.mpy", "app.py"}:
        status["app_incomplete"] = "app files without dhtlink's manifest: a `dhtlink flash` did not finish"
    return status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        parents=[board_options(), json_options()],
        help="MicroPython version, free flash and heap, app and spool state",
        description="What is on the board and how the app is doing: MicroPython's version, free flash and "
        "heap, the app's version and config (never its secrets), the spool and the last error.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host_tools.board import Board

    port = choose(args.port)
    with Board(port) as board:
        status = read_status(board)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    print(f"MicroPython  {status['micropython']} ({status['platform']})")
    print(f"flash free   {status['flash_free']} bytes    heap free {status['heap_free']} bytes")
    app = status["app"]
    if status["app_incomplete"]:
        print(f"app          INCOMPLETE ({status['app_incomplete']}): `dhtlink flash` completes it")
        return 0
    if app is None:
        print("app          not installed: `dhtlink flash` uploads it")
        return 0
    print(f"app          {app['fw']}{'  SAFE MODE' if app['safe_mode'] else ''}")
    if "config_error" in app:
        print(f"config       {app['config_error']}")
    else:
        config = app["config"]
        print(
            f"device       {app['device_id']} -> {config['endpoint']} (wifi {', '.join(config['wifi'])}, "
            f"every {config['interval_s']} s, {config['mode']})"
        )
    print(f"spool        {app['spool_depth']} unsent, next seq {app['next_seq']}, dropped {app['dropped']}")
    print(f"last error   {app['last_error'] or '-'}")
    return 0
