"""`dhtlink provision`: the verb over host_tools.serial.provision."""

import argparse
from pathlib import Path
from typing import Any

from host_tools import device_settings
from host_tools.common import (
    aws_options,
    board_options,
    checked_device,
    data_dir_options,
    device_options,
    endpoint_options,
    lan_address,
    unreachable_by_a_board,
)
from host_tools.errors import UsageError
from host_tools.serial.files import MANIFEST
from host_tools.serial.ports import choose
from host_tools.serial.provision import (
    CA_FILE,
    build_config,
    hand_back_to_usb,
    identity,
    ingest_url,
    read_board_config,
    start_seq_after,
    tls_ca,
    wifi_password,
    write_config,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "provision",
        parents=[
            board_options(),
            device_options(required=False),
            endpoint_options(required=False, what="the receiver the board sends to"),
            data_dir_options(),
            aws_options("register in the deployed stack's registry, not the local store"),
        ],
        help="register a device and write its config.json to the board",
        description="Register the device (local store, or --aws), check that the endpoint answers a probe "
        "signed with its identity, and write config.json with its secret, Wi-Fi, endpoint and settings to the "
        "board. --device, --endpoint and --wifi-ssid are needed the first time; re-running keeps the device's "
        "identity unless --rotate, and every setting on the board it is not told to change. Neither the secret "
        "nor the Wi-Fi password is printed.",
    )
    parser.add_argument("--wifi-ssid", default=None, help="the Wi-Fi network's name, 1-32 bytes (kept if omitted)")
    parser.add_argument(
        "--wifi-password-file",
        type=Path,
        default=None,
        help="file holding the Wi-Fi password (else $DHTLINK_WIFI_PASSWORD or a prompt); only with --wifi-ssid",
    )
    parser.add_argument("--rotate", action="store_true", help="give the device a new secret")
    parser.add_argument(
        "--tls-ca",
        default=None,
        metavar="FILE|none",
        help="CA certificate (PEM or DER) the board checks its https endpoint against; with --aws the default "
        "is Amazon Root CA 1, which API Gateway's certificates chain to; none: do not check (kept if omitted)",
    )
    device_settings.add_arguments(parser.add_argument_group("board settings (kept from the board if omitted)"))
    parser.set_defaults(func=run)


def _kept(option: str, given: Any, old: dict[str, Any] | None, key: str) -> Any:
    if given is not None:
        return given
    if old and old.get(key):
        return old[key]
    raise UsageError(f"{option} is required: the board has no config.json to keep it from")


def check_reachable(endpoint: str, port: str, option: str = "--endpoint") -> None:
    """A board on Wi-Fi sends to the endpoint from its own network: loopback and listen-all
    addresses reach nothing there. Only a virtual board (a pseudo-terminal on this machine)
    shares this computer's loopback."""
    unreachable = unreachable_by_a_board(endpoint)
    if unreachable is None:
        return
    why, loopback = unreachable
    if loopback and _virtual(port):
        return
    lan = lan_address()
    example = f"http://{lan}:PORT" if lan else "http://192.168.1.20:8080"
    raise UsageError(
        f"{option} {endpoint}: {why}, which a board on Wi-Fi cannot reach. Give this computer's LAN address "
        f"instead, e.g. {example} (run `dhtlink serve --host 0.0.0.0`, which prints it), or a deployed "
        "stack's ApiUrl"
    )


def _virtual(port: str) -> bool:
    import os

    return os.path.realpath(port).startswith("/dev/pts/")


def run(args: argparse.Namespace) -> int:
    from host_tools import registry
    from host_tools.serial.board import Board

    # Everything given is checked before the board is touched.
    if args.device is not None:
        checked_device(args.device)
    if args.wifi_ssid is not None and not 1 <= len(args.wifi_ssid.encode()) <= 32:
        raise UsageError("--wifi-ssid must be 1 to 32 bytes")
    if args.wifi_password_file is not None and args.wifi_ssid is None:
        raise UsageError("--wifi-password-file goes with --wifi-ssid (the board keeps its Wi-Fi otherwise)")
    given_endpoint = ingest_url(args.endpoint) if args.endpoint is not None else None
    settings = device_settings.parse_settings(args)
    password = wifi_password(args.wifi_password_file) if args.wifi_ssid is not None else None
    port = choose(args.port)
    if given_endpoint is not None:
        check_reachable(given_endpoint, port)
    # Opened before registering: no identity is minted for a board that isn't there.
    with Board(port, wait_s=args.wait) as board:
        old = read_board_config(board)
        device_id = _kept("--device", args.device, old, "device_id")
        endpoint = _kept("--endpoint", given_endpoint, old, "endpoint")
        try:  # a kept value must be as valid as a given one
            registry.check_device_id(device_id)
            endpoint = ingest_url(endpoint, "config.json's endpoint")
        except (registry.InvalidDeviceId, UsageError) as error:
            raise UsageError(f"the board's config.json: {error}; pass the option to replace it") from None
        check_reachable(endpoint, port, "the board's config.json: endpoint")
        if args.wifi_ssid is not None:
            wifi = [{"ssid": args.wifi_ssid, "password": password}]
        else:
            wifi = _kept("--wifi-ssid", None, old, "wifi")
        ca = tls_ca(endpoint, args.aws, args.tls_ca)
        secret, what, max_seq = identity(device_id, args.aws, args.stack, args.rotate, endpoint, args.data_dir)
        config = build_config(old, device_id, secret, wifi, endpoint, settings)
        if ca is not None:
            board.write_file(CA_FILE, ca)  # before config.json names it: the board checks it is there
            config["tls_ca"] = CA_FILE
        elif args.tls_ca == "none" or not endpoint.startswith("https://"):
            config.pop("tls_ca", None)
        write_config(board, config)
        next_seq = start_seq_after(board, max_seq)
        handed_back = (
            hand_back_to_usb(board, device_id, args.aws, args.stack, settings, args.data_dir) if settings else []
        )
        has_app = board.exists(MANIFEST)
        resumed = board.was_running  # handed back by a soft reset: the app reads the new config
    print(f"{device_id}: {what}; config.json written to {port} and verified")
    print(f"  wifi {wifi[0]['ssid']}, endpoint {endpoint}")
    if config.get("tls_ca"):
        print(f"  the endpoint's certificate is checked against {config['tls_ca']} on the board")
    elif endpoint.startswith("https://"):
        print("  the endpoint's certificate is not checked (--tls-ca FILE, or --aws, sets that up)")
    if settings:
        print("  set " + ", ".join(f"{key}={value}" for key, value in settings.items()))
    if handed_back:
        print(f"  no longer set remotely: {', '.join(handed_back)} (removed from the registry's desired settings)")
    if next_seq is not None:
        print(f"  readings continue from seq {next_seq} (the registry has seen up to {max_seq})")
    if has_app and resumed:
        print("  the app restarted with the new config")
        if config.get("mode", "deep_sleep") == "deep_sleep":  # device/config.py's DEFAULTS
            # Its first wake may end before the next command opens the port.
            interval = config.get("interval_s", 60)
            print(f"  it sleeps between readings: a command reaches it at its next wake, up to {interval} s away")
    elif has_app:
        print("  `dhtlink reset` starts the app with the new config")
    else:
        print(f"  no app on the board yet: `dhtlink flash -p {port}` uploads it, and the app starts with this config")
    return 0
