"""What the verb modules share: the CLI grammar's common options, where the local data
lives, and flag checks.

One spelling per idea, in every verb: `-p/--port` is the board's serial port (never a TCP
port: `serve --listen`), `--device` the device id, `--all` every device, `--endpoint` the
receiver's base URL (the tools add /data), `--data-dir` the local store, `--json`
machine-readable output, a DURATION `90s`, `10m`, `6h` or `30d` (a bare number is seconds),
a TIME ISO 8601 (`2026-12-07`, `2026-12-07T06:00`, UTC unless it names a zone) or Unix
seconds; each goes after the sub-command. tests/cli/test_grammar.py holds every verb to it.
"""

import argparse
import datetime as dt
import os
import re
import sys
from pathlib import Path

from host_tools.errors import UsageError

DATA_PATH = "/data"  # the ingest route under a receiver's base URL (docs/protocol.md)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_HELP = "90s, 10m, 6h or 30d; a bare number is seconds"


def format_duration(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= DURATION_UNITS[unit] and seconds % DURATION_UNITS[unit] == 0:
            return f"{int(seconds) // DURATION_UNITS[unit]}{unit}"
    return f"{seconds:g}s"


def duration(option: str, text: str, lo: float, hi: float, whole: float = 1) -> int:
    """Seconds from a DURATION as every verb spells it, or a UsageError naming the option, the
    grammar and the range; `whole` is the unit the value must be a multiple of (86400: days)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", str(text))
    if not match:
        raise UsageError(f"{option} must be a duration ({DURATION_HELP}), got {text!r}")
    seconds = float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]
    if not lo <= seconds <= hi:
        bare = "" if match.group(2) else " (a bare number is seconds)"
        raise UsageError(f"{option} must be from {format_duration(lo)} to {format_duration(hi)}, got {text}{bare}")
    if seconds % whole:
        unit = {86400: "days", 3600: "hours", 60: "minutes"}.get(int(whole), "seconds")
        raise UsageError(f"{option} must be a whole number of {unit} (e.g. {format_duration(whole * 3)}), got {text}")
    return int(seconds)


def timestamp(option: str, text: str) -> int:
    """Unix seconds from a TIME: ISO 8601 (a date, or a date and time; UTC unless it names
    a zone) or Unix seconds."""
    if text.strip().isdigit():
        return int(text)
    try:
        when = dt.datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise UsageError(
            f"{option} must be a time: ISO 8601 such as 2026-12-07 or 2026-12-07T06:00 (UTC unless it "
            f"names a zone, e.g. 2026-12-07T07:00+01:00), or Unix seconds; got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


def when(ts: float | None) -> str:
    """A stored Unix time as every verb prints it."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if ts else "-"


def warn_renamed(old: str, new: str) -> None:
    print(f"warning: {old} is now {new}; the old spelling will go in a later release", file=sys.stderr)


def data_dir(chosen: Path | None = None) -> Path:
    return Path(chosen or os.environ.get("DATA_DIR") or ".dhtlink")


def listen_address(value: str, host: str) -> tuple[str, int]:
    """(address, TCP port) from `serve --listen [HOST:]PORT`; `host` is --host's."""
    address, colon, port = value.rpartition(":")
    if colon and address:
        host = address.strip("[]")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--listen must be a TCP port number from 0 to 65535 or HOST:PORT, got {value!r}")
    return host, int(port)


def default_listen_port() -> str:
    """`dhtlink serve`'s TCP port: $LISTEN_PORT, else 8080 ($PORT is make's serial port)."""
    return os.environ.get("LISTEN_PORT") or "8080"


def lan_address() -> str | None:
    """This machine's address on the network its default route leads to (what a board on the
    same Wi-Fi reaches), or None. A UDP socket's connect() picks the route and sends nothing."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never answered, and nothing is sent
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith(("127.", "0.")) else address


def unreachable_by_a_board(url: str) -> tuple[str, bool] | None:
    """Why a board on Wi-Fi could never reach this receiver URL, and whether it is this
    computer's loopback (which a virtual board shares); None for any other address."""
    import ipaddress
    import urllib.parse

    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} names this computer itself", True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_unspecified:
        return f"{host} is the address a server listens on, not one to send to", False
    if address.is_loopback:
        return f"{host} is this computer's loopback address", True
    return None


def base_url(value: str, option: str = "--endpoint") -> str:
    """The receiver's base URL from what the user typed: a URL ending in /data (what boards
    POST to) is taken as its base, so both spellings work."""
    url = value.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or "://" == url[-3:]:
        raise UsageError(
            f"{option} must be the receiver's http:// or https:// base URL, e.g. http://127.0.0.1:8080 "
            "or a deployed stack's ApiUrl"
        )
    return url[: -len(DATA_PATH)] if url.endswith(DATA_PATH) else url


def checked_device(device_id: str, option: str = "--device") -> str:
    """The device id a user typed, or a UsageError naming the option and the rule."""
    from host_tools import registry

    try:
        return registry.check_device_id(device_id)
    except registry.InvalidDeviceId as error:
        raise UsageError(f"{option}: {error}") from None


def board_options() -> argparse.ArgumentParser:
    from host_tools.serial.board import WAKE_WAIT_S

    """-p/--port for every verb that talks to a board over a serial port."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-p",
        "--port",
        default=None,
        help="the board's serial port, e.g. /dev/ttyUSB0 or the path `dhtlink vboard` prints "
        "(default $DHTLINK_PORT, else the one ESP32 board attached)",
    )
    parent.add_argument(
        "--wait",
        type=float,
        default=WAKE_WAIT_S,
        metavar="SECONDS",
        help="how long to wait for a board asleep between readings to wake (default 75: longer than the "
        "app's default 60 s interval); serial input does not wake a sleeping ESP32",
    )
    return parent


def device_options(required: bool = True) -> argparse.ArgumentParser:
    """--device ID (--device-id still works, unlisted)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_mutually_exclusive_group(required=required)
    group.add_argument("--device", metavar="ID", help="the device id: 1-64 characters of A-Z a-z 0-9 _ -")
    group.add_argument("--device-id", dest="device", help=argparse.SUPPRESS)
    return parent


def endpoint_options(required: bool, what: str = "the receiver") -> argparse.ArgumentParser:
    """--endpoint BASE_URL; a URL ending in /data is accepted too."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--endpoint",
        metavar="URL",
        required=required,
        help=f"{what}'s base URL: http://HOST:PORT for `dhtlink serve`, or a deployed stack's ApiUrl; "
        "boards POST to it + /data (a URL ending in /data works too)",
    )
    return parent


def data_dir_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the local store's folder: registry, readings, read token (default $DATA_DIR, else .dhtlink)",
    )
    return parent


def aws_options(what: str) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--aws", action="store_true", help=f"{what} (boto3 credentials)")
    parent.add_argument(
        "--stack", metavar="NAME", default="dhtlink", help="CloudFormation stack name with --aws (default dhtlink)"
    )
    add_aws_account_options(parent)
    return parent


def add_aws_account_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--region and --profile for every verb that may call AWS; main() hands them to boto3."""
    parser.add_argument("--region", default=None, help="AWS region (default $AWS_REGION or the profile's)")
    parser.add_argument("--profile", default=None, help="AWS named profile (default $AWS_PROFILE)")


def apply_aws_account(args: argparse.Namespace) -> None:
    """The AWS account options as boto3 reads them: every session made later uses them."""
    if getattr(args, "profile", None):
        os.environ["AWS_PROFILE"] = args.profile
    if getattr(args, "region", None):
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = args.region


def json_options(what: str = "print JSON instead of text") -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help=what)
    return parent
