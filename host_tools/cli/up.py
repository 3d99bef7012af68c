"""`dhtlink up`: the verb over host_tools.up."""

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from host_tools.common import (
    aws_options,
    board_options,
    data_dir_options,
    default_listen_port,
    duration,
    listen_address,
)
from host_tools.errors import UsageError
from host_tools.up import READING_WAIT_S, Choices, Outcome, Request, up


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "up",
        parents=[board_options(), data_dir_options(), aws_options("send to the deployed stack (its ApiUrl)")],
        help="from an ESP32 on USB to its readings on the dashboard: flash, app, register, Wi-Fi, check",
        description="Detect the board; if it has no MicroPython, erase it and write the pinned official "
        "ESP32_GENERIC image (or --firmware FILE); upload the app; register the device; give it Wi-Fi over "
        "Improv (a network from the board's own scan, its password asked for); start or reuse the local "
        "endpoint (or --endpoint, --aws); wait for the board's first reading and print the device's dashboard "
        "URL. Safe to re-run: a provisioned board keeps its identity and Wi-Fi.",
    )
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        default=None,
        help="the receiver's base URL (default: the local endpoint on this computer's LAN address, started "
        "with `dhtlink serve --listen 0.0.0.0:PORT` if none listens on --listen)",
    )
    parser.add_argument(
        "--listen",
        metavar="[HOST:]PORT",
        default=None,
        help="the local endpoint's TCP port, as `dhtlink serve --listen` takes it (default $LISTEN_PORT, "
        "else 8080; without a HOST it listens on every address, so the board can reach it)",
    )
    parser.add_argument("--firmware", type=Path, default=None, help="a MicroPython .bin to write (offline use)")
    parser.add_argument("--device", metavar="ID", default=None, help="device id (default: kept, else dht-<chip id>)")
    parser.add_argument("--wifi-ssid", default=None, help="the network to join (default: chosen from the scan)")
    parser.add_argument(
        "--wifi-password-file",
        type=Path,
        default=None,
        help="file holding the Wi-Fi password (else $DHTLINK_WIFI_PASSWORD, else a prompt)",
    )
    parser.add_argument(
        "--reading-wait",
        default=f"{READING_WAIT_S:.0f}s",
        metavar="DURATION",
        help=f"how long to wait for the board's first reading at the endpoint: 90s, 5m (default {READING_WAIT_S:.0f}s)",
    )
    parser.add_argument("--no-browser", action="store_true", help="print the dashboard URL, do not open it")
    parser.set_defaults(func=run)


def network_chooser(given: str | None) -> Any:
    def choose(networks: list[Any]) -> str:
        names = [network.ssid for network in networks]
        if given is not None:
            if given not in names:
                raise UsageError(
                    f"--wifi-ssid {given!r}: the board does not see it (it sees {', '.join(names)}); an ESP32 "
                    "joins 2.4 GHz networks only"
                )
            return given
        if not sys.stdin.isatty():
            raise UsageError(f"the board sees {', '.join(names)}: choose one with --wifi-ssid")
        for number, network in enumerate(networks, 1):
            lock = "secured" if network.secured else "open"
            print(f"  {number:2d}. {network.ssid}  ({network.rssi} dBm, {lock})")
        while True:
            answer = input("Wi-Fi network (number): ").strip()
            if answer.isdigit() and 1 <= int(answer) <= len(networks):
                return names[int(answer) - 1]

    return choose


def password_source(path: Path | None) -> Any:
    def password(ssid: str) -> str:
        if path is not None:
            try:
                return path.read_text().rstrip("\r\n")
            except OSError as error:
                raise UsageError(f"--wifi-password-file {path}: {error.strerror}") from None
        if os.environ.get("DHTLINK_WIFI_PASSWORD") is not None:
            return os.environ["DHTLINK_WIFI_PASSWORD"]
        if sys.stdin.isatty():
            return getpass.getpass(f"password for {ssid} (empty for an open network): ")
        raise UsageError("no Wi-Fi password: pass --wifi-password-file FILE or set DHTLINK_WIFI_PASSWORD")

    return password


def say(text: str) -> None:
    print(text, flush=True)


def report(outcome: Outcome) -> None:
    print(f"{outcome.device_id}: readings arrive at {outcome.endpoint}")
    for phase in outcome.phases:
        print(f"  {phase.name:9s} {phase.seconds:6.1f} s  {phase.what}")
    print(f"  total     {sum(p.seconds for p in outcome.phases):6.1f} s")
    print(f"dashboard: {outcome.dashboard}")


def run(args: argparse.Namespace) -> int:
    if args.endpoint is not None and args.aws:
        raise UsageError("--endpoint and --aws each choose the receiver: give one")
    request = Request(
        port=args.port,
        endpoint=args.endpoint,
        aws=args.aws,
        stack=args.stack,
        data_dir=args.data_dir,
        firmware=args.firmware,
        device=args.device,
        serve_address=listen_address(args.listen or default_listen_port(), "0.0.0.0"),
        board_wait_s=args.wait,
        reading_wait_s=duration("--reading-wait", args.reading_wait, 1, 3600),
    )
    if args.firmware is not None:
        from host_tools.serial import firmware_image

        firmware_image.inspect(args.firmware)  # checked before the board is touched
    prompted = args.wifi_password_file is None and "DHTLINK_WIFI_PASSWORD" not in os.environ and sys.stdin.isatty()
    choices = Choices(network_chooser(args.wifi_ssid), password_source(args.wifi_password_file), 3 if prompted else 1)
    outcome = up(request, choices, say)
    report(outcome)
    if not args.no_browser and sys.stdout.isatty():
        import webbrowser

        webbrowser.open(outcome.dashboard)
    return 0
