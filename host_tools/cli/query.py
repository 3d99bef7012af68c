"""`dhtlink query latest|range|devices`: the read API from the command line."""

import argparse
import json
import os
from pathlib import Path
from typing import Any

from host_tools.common import (
    base_url,
    data_dir,
    data_dir_options,
    default_listen_port,
    device_options,
    endpoint_options,
    json_options,
    timestamp,
    when,
)
from host_tools.errors import CommandError, UsageError
from host_tools.registry import TOKEN_FILE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "query",
        help="read stored readings and devices through the read API",
        description="Query the read API of the local endpoint (default) or a deployed stack (--endpoint ApiUrl). "
        "The read token comes from --token-file, $READ_TOKEN, or the local endpoint's read-token in --data-dir "
        "(never the command line).",
    )
    what = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    common = [_api_options(), data_dir_options(), json_options("print JSON instead of a table")]
    what.add_parser("latest", parents=[device_options(), *common], help="the newest reading of a device")
    span = what.add_parser("range", parents=[device_options(), *common], help="readings of a device, newest first")
    for option, edge in (("--from", "first"), ("--to", "last")):
        span.add_argument(
            option,
            dest=f"{option[2:]}_ts",
            metavar="TIME",
            default=None,
            help=f"the {edge} measurement time, inclusive: ISO 8601 (2026-12-07, 2026-12-07T06:00; UTC unless "
            "it names a zone) or Unix seconds",
        )
    span.add_argument("--limit", type=int, default=100, help="readings at most (default 100)")
    what.add_parser(
        "devices", parents=common, help="every device with last seen time, last reading and delivery health"
    )
    parser.set_defaults(func=run)


def _api_options() -> argparse.ArgumentParser:
    parent = endpoint_options(required=False, what="the read API")
    parent.add_argument("--url", dest="endpoint", help=argparse.SUPPRESS)  # the old spelling
    parent.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        default=None,
        help="file holding the read token (default $READ_TOKEN, else the local endpoint's in --data-dir)",
    )
    # A token typed as an option lands in shell history and `ps`: refused with the way to give it.
    parent.add_argument("--token", default=None, help=argparse.SUPPRESS)
    return parent


def _token(args: argparse.Namespace) -> str:
    if args.token is not None:
        raise UsageError(
            "--token would put the read token in shell history and the process list: "
            "use --token-file FILE or $READ_TOKEN"
        )
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"--token-file {args.token_file}: {getattr(error, 'strerror', None) or error}") from None
        if not token:
            raise UsageError(f"--token-file {args.token_file} is empty")
        return token
    if os.environ.get("READ_TOKEN"):
        return os.environ["READ_TOKEN"]
    path = data_dir(args.data_dir) / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    raise UsageError(
        "no read token: give --token-file FILE, set READ_TOKEN, or name the endpoint's --data-dir "
        "(`dhtlink serve` creates one there)"
    )


def _get(session: Any, url: str, token: str, params: dict[str, Any]) -> dict[str, Any]:
    import requests

    try:
        response = session.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=15)
    except requests.ConnectionError:
        raise CommandError(f"cannot reach {url}: is `dhtlink serve` running, or is --endpoint right?") from None
    if response.status_code == 401:
        raise CommandError(
            f"{url} refused the read token: check --token-file / $READ_TOKEN, and that --endpoint names the "
            "server the token belongs to"
        )
    try:
        body = response.json()
    except ValueError:
        raise CommandError(
            f"{url} answered {response.status_code} without JSON: is --endpoint the API's base URL?"
        ) from None
    if response.status_code != 200:
        raise CommandError(f"{response.status_code} {body.get('error')}: {body.get('message')}")
    return body


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def query(args: argparse.Namespace) -> Any:
    import requests

    base = base_url(args.endpoint) if args.endpoint else f"http://127.0.0.1:{default_listen_port()}"
    token = _token(args)
    session = requests.Session()
    if args.what == "latest":
        return _get(session, base + "/data/latest", token, {"device_id": args.device})
    if args.what == "devices":
        devices: list[dict[str, Any]] = []
        cursor = None
        while True:  # the receiver answers /devices in pages: follow next_cursor to the end
            page = _get(session, base + "/devices", token, {"limit": 100, **({"cursor": cursor} if cursor else {})})
            devices += page["devices"]
            cursor = page.get("next_cursor")
            if not cursor:
                return devices
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {
        "device_id": args.device,
        "from": None if args.from_ts is None else timestamp("--from", args.from_ts),
        "to": None if args.to_ts is None else timestamp("--to", args.to_ts),
    }
    while len(items) < args.limit:
        params["limit"] = min(1000, args.limit - len(items))
        page = _get(session, base + "/data", token, params)
        items += page["items"]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    return items


def run(args: argparse.Namespace) -> int:
    result = query(args)
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.what == "devices":
        rows = [
            [
                d["device_id"],
                when(d["last_seen"]),
                (d["last_reading"] or {}).get("t", "-"),
                (d["last_reading"] or {}).get("h", "-"),
                d["health"]["received"],
                d["health"]["missing"],
            ]
            for d in result
        ]
        print(_table(rows, ["DEVICE", "LAST SEEN", "T C", "H %", "RECEIVED", "MISSING"]))
    else:
        readings = [result] if args.what == "latest" else result
        rows = [[r["seq"], when(r["ts"]), r["t"], r["h"]] for r in readings]
        print(_table(rows, ["SEQ", "MEASURED", "T C", "H %"]))
    return 0
