"""`dhtlink provision`: the verb over host_tools.serial.provision."""

import argparse
from pathlib import Path

from host_tools.common import (
    aws_options,
    board_options,
    data_dir_options,
    device_options,
    endpoint_options,
)
from host_tools.errors import UsageError
from host_tools.serial.files import MANIFEST
from host_tools.serial.ports import choose
from host_tools.serial.provision import build_config, identity, ingest_url, wifi_password, write_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "provision",
        parents=[
            board_options(),
            device_options(),
            endpoint_options(required=True, what="the receiver the board sends to"),
            data_dir_options(),
            aws_options("register in the deployed stack's registry, not the local store"),
        ],
        help="register a device and write its config.json to the board",
        description="Register the device (local store, or --aws), check that the endpoint answers a probe "
        "signed with its identity, and write config.json with its secret, Wi-Fi and endpoint to the board. "
        "Re-running keeps the device's identity unless --rotate. Neither the secret nor the Wi-Fi password "
        "is printed.",
    )
    parser.add_argument("--wifi-ssid", required=True, help="the Wi-Fi network's name (1-32 bytes)")
    parser.add_argument(
        "--wifi-password-file",
        type=Path,
        default=None,
        help="file holding the Wi-Fi password (else $DHTLINK_WIFI_PASSWORD or a prompt)",
    )
    parser.add_argument("--rotate", action="store_true", help="give the device a new secret")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host_tools import registry
    from host_tools.serial.board import Board

    try:
        registry.check_device_id(args.device)
    except registry.InvalidDeviceId as error:
        raise UsageError(f"--device: {error}") from None
    if not 1 <= len(args.wifi_ssid.encode()) <= 32:
        raise UsageError("--wifi-ssid must be 1 to 32 bytes")
    password = wifi_password(args.wifi_password_file)
    endpoint = ingest_url(args.endpoint)
    port = choose(args.port)
    with Board(port) as board:  # opened before registering: no identity is minted for a board that isn't there
        secret, what = identity(args.device, args.aws, args.stack, args.rotate, endpoint, args.data_dir)
        write_config(board, build_config(args.device, secret, args.wifi_ssid, password, endpoint))
        has_app = board.exists(MANIFEST)
    print(f"{args.device}: {what}; config.json written to {port} and verified")
    print(f"  wifi {args.wifi_ssid}, endpoint {endpoint}")
    if has_app:
        print("  `dhtlink reset` starts the app with the new config")
    else:
        print(f"  no app on the board yet: `dhtlink flash -p {port}` uploads it, and the app starts with this config")
    return 0
