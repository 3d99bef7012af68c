"""`dhtlink query latest|range|devices`: the read API from the command line."""

import argparse
import datetime as dt
import json
import os
from typing import Any

from host_tools.common import (
    base_url,
    data_dir,
    data_dir_options,
    default_port,
    device_options,
    endpoint_options,
    json_options,
)
from host_tools.errors import CommandError, UsageError
from host_tools.registry import TOKEN_FILE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "query",
        help="read stored readings and devices through the read API",
        description="Query the read API of the local endpoint (default) or a deployed stack (--endpoint ApiUrl). "
        "The read token comes from --token, $READ_TOKEN, or the local endpoint's read-token in --data-dir.",
    )
    what = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    common = [_api_options(), data_dir_options(), json_options("print JSON instead of a table")]
    what.add_parser("latest", parents=[device_options(), *common], help="the newest reading of a device")
    span = what.add_parser("range", parents=[device_options(), *common], help="readings of a device, newest first")
    span.add_argument("--from", dest="from_ts", type=int, default=None, help="Unix seconds, inclusive")
    span.add_argument("--to", dest="to_ts", type=int, default=None, help="Unix seconds, inclusive")
    span.add_argument("--limit", type=int, default=100, help="readings at most (default 100)")
    what.add_parser(
        "devices", parents=common, help="every device with last seen time, last reading and delivery health"
    )
    parser.set_defaults(func=run)


def _api_options() -> argparse.ArgumentParser:
    parent = endpoint_options(required=False, what="the read API")
    parent.add_argument("--url", dest="endpoint", help=argparse.SUPPRESS)  # the old spelling
    parent.add_argument("--token", default=None, help="read token (default $READ_TOKEN, else the local endpoint's)")
    return parent


def _token(args: argparse.Namespace) -> str:
    if args.token or os.environ.get("READ_TOKEN"):
        return args.token or os.environ["READ_TOKEN"]
    path = data_dir(args.data_dir) / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    raise UsageError("no read token: pass --token, set READ_TOKEN, or run `dhtlink serve` once to create one")


def _get(session: Any, url: str, token: str, params: dict[str, Any]) -> dict[str, Any]:
    import requests

    try:
        response = session.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=15)
    except requests.ConnectionError:
        raise CommandError(f"cannot reach {url}: is `dhtlink serve` running, or is --endpoint right?") from None
    if response.status_code == 401:
        raise CommandError(
            f"{url} refused the read token: check --token / $READ_TOKEN, and that --endpoint names the "
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


def _when(ts: int | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def query(args: argparse.Namespace) -> Any:
    import requests

    base = base_url(args.endpoint) if args.endpoint else f"http://127.0.0.1:{default_port()}"
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
    params: dict[str, Any] = {"device_id": args.device, "from": args.from_ts, "to": args.to_ts}
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
                _when(d["last_seen"]),
                (d["last_reading"] or {}).get("t", "-"),
                (d["last_reading"] or {}).get("h", "-"),
                d["health"]["received"],
                d["health"]["missing"],
            ]
            for d in result
        ]
        print(_table(rows, ["DEVICE", "LAST SEEN (UTC)", "T C", "H %", "RECEIVED", "MISSING"]))
    else:
        readings = [result] if args.what == "latest" else result
        rows = [[r["seq"], _when(r["ts"]), r["t"], r["h"]] for r in readings]
        print(_table(rows, ["SEQ", "MEASURED (UTC)", "T C", "H %"]))
    return 0
