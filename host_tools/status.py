"""`dhtlink status`: what is on the board and how the app is doing, without secrets."""

import argparse
import json
from typing import Any

from host_tools.ports import choose

PROBE = """
import sys, os, gc, json
st = os.statvfs("/") if hasattr(os, "statvfs") else None
gc.collect()
print(json.dumps({"micropython": sys.version, "platform": sys.platform,
                  "flash_free": st[0] * st[3] if st else None, "heap_free": gc.mem_free()}))
"""


def read_status(board) -> dict[str, Any]:
    status = json.loads(board.exec(PROBE).strip().splitlines()[-1])
    if board.exists("app.mpy") or board.exists("app.py"):
        lines = [line for line in board.exec("import app\napp.report()").splitlines() if line.startswith("{")]
        status["app"] = json.loads(lines[-1]) if lines else None
    else:
        status["app"] = None
    return status


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="MicroPython version, free flash and heap, app and spool state")
    parser.add_argument("--port", default=None)
    parser.add_argument("--json", action="store_true")
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
