"""`dhtlink provision`: register a device and write its config.json onto the board.

Everything is checked before the board is touched; the file is written under a temporary
name, verified by hash, then renamed, so a cut cable never leaves a half config. The
secret and the Wi-Fi password are never printed.
"""

import argparse
import getpass
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from host_tools.errors import CommandError, UsageError
from host_tools.ports import choose

CONFIG = "config.json"


def wifi_password(path: Path | None) -> str:
    if path:
        try:
            password = path.read_text().rstrip("\r\n")
        except OSError as error:
            raise UsageError(f"--wifi-password-file {path}: {error.strerror}") from None
    elif os.environ.get("DHTLINK_WIFI_PASSWORD") is not None:
        password = os.environ["DHTLINK_WIFI_PASSWORD"]
    elif sys.stdin.isatty():
        password = getpass.getpass("Wi-Fi password (empty for an open network): ")
    else:
        raise UsageError(
            "no Wi-Fi password: pass --wifi-password-file FILE or set DHTLINK_WIFI_PASSWORD (empty for an open network)"
        )
    if len(password) > 63:
        raise UsageError("the Wi-Fi password is longer than WPA2's 63 characters")
    return password


def check_endpoint(url: str) -> None:
    """The receiver must answer (any HTTP status) before a board is pointed at it."""
    import requests

    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--endpoint must be an http:// or https:// URL, got {url!r}")
    if not url.rstrip("/").endswith("/data"):
        raise UsageError(
            f"--endpoint is the URL boards POST to and ends in /data: did you mean {url.rstrip('/')}/data?"
        )
    try:
        requests.post(url, data=b"{}", headers={"Content-Type": "application/json"}, timeout=5)
    except requests.RequestException:
        raise CommandError(
            f"the endpoint {url} does not answer: start it (`make serve`, with --host 0.0.0.0 "
            "for a board on the LAN) or fix --endpoint; nothing was written to the board"
        ) from None


def identity(device_id: str, aws: bool, stack: str, rotate: bool) -> tuple[str, str]:
    """(secret, what happened): the registered secret, new, kept or rotated. device_id is
    already checked by run()."""
    from cloud import admin
    from host_tools.devices import open_store

    store = open_store(aws, stack)
    existing = store.get_device(device_id)
    if existing is None:
        return admin.add_device(store, device_id), "registered"
    if rotate:
        return admin.rotate_secret(store, device_id), "rotated its secret"
    return existing["secret"], "kept its registered identity"


def build_config(device_id: str, secret: str, ssid: str, password: str, endpoint: str) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "secret": secret,
        "wifi": [{"ssid": ssid, "password": password}],
        "endpoint": endpoint,
    }


def write_config(board, config: dict[str, Any]) -> None:
    data = json.dumps(config).encode()
    board.write_file(CONFIG, data)
    if board.sha256(CONFIG) != hashlib.sha256(data).hexdigest():
        raise CommandError("config.json on the board does not read back as written")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "provision",
        help="register a device and write its config.json to the board",
        description="Register DEVICE_ID (local store, or --aws) and write config.json with its secret, Wi-Fi "
        "and endpoint to the board. Re-running keeps the device's identity unless --rotate.",
    )
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--wifi-ssid", required=True)
    parser.add_argument(
        "--wifi-password-file",
        type=Path,
        default=None,
        help="file holding the Wi-Fi password (else $DHTLINK_WIFI_PASSWORD or a prompt)",
    )
    parser.add_argument("--endpoint", required=True, help="the URL the board POSTs to, ending in /data")
    parser.add_argument("--port", default=None)
    parser.add_argument("--aws", action="store_true", help="register in the deployed stack's registry")
    parser.add_argument("--stack", default="dhtlink")
    parser.add_argument("--rotate", action="store_true", help="give the device a new secret")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cloud import admin
    from host_tools.board import Board

    try:
        admin.check_device_id(args.device_id)
    except admin.InvalidDeviceId as error:
        raise UsageError(f"--device-id: {error}") from None
    if not 1 <= len(args.wifi_ssid.encode()) <= 32:
        raise UsageError("--wifi-ssid must be 1 to 32 bytes")
    password = wifi_password(args.wifi_password_file)
    check_endpoint(args.endpoint)
    port = choose(args.port)
    with Board(port) as board:  # opened before registering: no identity is minted for a board that isn't there
        secret, what = identity(args.device_id, args.aws, args.stack, args.rotate)
        write_config(board, build_config(args.device_id, secret, args.wifi_ssid, password, args.endpoint))
    print(f"{args.device_id}: {what}; config.json written to {port} and verified")
    print(f"  wifi {args.wifi_ssid}, endpoint {args.endpoint}; `dhtlink reset` starts it with the new config")
    return 0
