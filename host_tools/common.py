"""What the verb modules share: the CLI grammar's common options, where the local data
lives, and flag checks.

One spelling per idea, in every verb: `-p/--port` is the board's serial port, `--device`
the device id, `--endpoint` the receiver's base URL (the tools add /data), `--data-dir`
the local store, `--json` machine-readable output; each goes after the sub-command.
"""

import argparse
import os
from pathlib import Path

from host_tools.errors import UsageError

DATA_PATH = "/data"  # the ingest route under a receiver's base URL (docs/protocol.md)


def data_dir(chosen: Path | None = None) -> Path:
    return Path(chosen or os.environ.get("DATA_DIR") or ".dhtlink")


def tcp_port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise UsageError(f"--port must be a TCP port number from 0 to 65535, got {value!r}")
    return int(value)


def default_port() -> str:
    return os.environ.get("PORT") or "8080"


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
    parent.add_argument("--stack", default="dhtlink", help="CloudFormation stack name with --aws (default dhtlink)")
    return parent


def json_options(what: str = "print JSON instead of text") -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help=what)
    return parent
