"""`dhtlink status`: the verb over host_tools.serial.status."""

import argparse
import json

from host_tools.common import board_options, json_options
from host_tools.serial.ports import choose
from host_tools.serial.status import read_status


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
    from host_tools.serial.board import Board

    port = choose(args.port)
    with Board(port, wait_s=args.wait) as board:
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
    print(f"settings     {settings_line(app)}")
    update = update_line(app)
    if update:
        print(f"update       {update}")
    print(f"spool        {app['spool_depth']} unsent, next seq {app['next_seq']}, dropped {app['dropped']}")
    print(
        f"sensor       {app.get('sensor_errors', 0)} readings lost, "
        f"{app.get('sensor_retries', 0)} failed tries (timeouts, checksum errors)"
    )
    print(f"last error   {app['last_error'] or '-'}")
    return 0


def settings_line(app: dict) -> str:
    """The remote settings the board runs (docs/protocol.md, "Remote settings")."""
    running = app.get("cfg_v") or (app.get("config") or {}).get("settings_v") or 0
    line = f"remote v{running}" if running else "as provisioned (no remote settings)"
    if app.get("cfg_new"):
        line += f"; v{app['cfg_new']} received, runs from the next wake"
    if app.get("cfg_refused"):
        line += f"; v{app['cfg_refused']} REFUSED: {app.get('cfg_error')}"
    return line


def update_line(app: dict) -> str | None:
    """An over-the-air update under way, or the last one that failed (docs/ota.md)."""
    if app.get("ota"):
        return f"over the air: {app['ota']}"
    if app.get("ota_failed"):
        return f"release {app['ota_failed']} rolled back or refused: {app.get('ota_error')}"
    return None
