"""The board settings a user may set from the host: by `dhtlink provision` into config.json,
or remotely by `dhtlink devices set` through the registry. One table, so both commands
take the same options with the same limits, and every value is checked (with a message
naming the option) before anything is written. The limits are device/config.py's: the
board validates again, and tests/host_tools/test_device_settings.py keeps the two equal."""

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from host_tools.errors import UsageError


@dataclass(frozen=True)
class Setting:
    option: str  # the CLI option, e.g. --interval
    key: str  # its config.json key; "sensor.type" for a key inside the sensor object
    parse: Callable[[str, str], Any]
    help: str
    remote: bool = True  # may be changed by `dhtlink devices set` (see docs/protocol.md)


def whole(lo: int, hi: int, unit: str = "") -> Callable[[str, str], int]:
    def parse(option: str, text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise UsageError(f"{option} must be a whole number{unit}, got {text!r}") from None
        if not lo <= value <= hi:
            raise UsageError(f"{option} must be from {lo} to {hi}{unit}, got {value}")
        return value

    return parse


def one_of(*choices: str) -> Callable[[str, str], str]:
    def parse(option: str, text: str) -> str:
        for choice in choices:
            if text.lower() == choice.lower():
                return choice
        raise UsageError(f"{option} must be one of {', '.join(choices)}, got {text!r}")

    return parse


SETTINGS = (
    Setting("--sensor", "sensor.type", one_of("DHT22", "DHT11"), "sensor type (default DHT22)"),
    Setting("--pin", "sensor.pin", whole(0, 48), "GPIO of the sensor's data line (default 4)"),
    Setting("--interval", "interval_s", whole(2, 86400, " seconds"), "seconds between readings (default 60)"),
    Setting("--batch-size", "batch_size", whole(1, 100), "readings per POST (default 20)"),
    Setting(
        "--max-batch-delay",
        "max_batch_delay_s",
        whole(0, 7 * 86400, " seconds"),
        "send a partial batch once its oldest reading is this old (default 1200)",
    ),
    Setting("--mode", "mode", one_of("deep_sleep", "always_on"), "deep_sleep (battery) or always_on"),
    Setting("--spool-max", "spool_max", whole(10, 100000), "readings kept on the board while offline (default 5000)"),
)


def add_arguments(parser: argparse.ArgumentParser, remote: bool = False) -> None:
    """Add the settings' options; each is parsed as a string and checked by parse_settings,
    so an error names the option the same way for every command."""
    for setting in SETTINGS:
        if remote and not setting.remote:
            continue
        dest = setting.option[2:].replace("-", "_")
        parser.add_argument(setting.option, dest=f"setting_{dest}", default=None, metavar="VALUE", help=setting.help)


def parse_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, checked: {config key: value}."""
    out = {}
    for setting in SETTINGS:
        text = getattr(args, "setting_" + setting.option[2:].replace("-", "_"), None)
        if text is not None:
            out[setting.key] = setting.parse(setting.option, text)
    return out


def apply(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """config with settings applied ("sensor.pin" inside "sensor"); config is not changed."""
    out = dict(config)
    for key, value in settings.items():
        if "." in key:
            outer, inner = key.split(".", 1)
            nested = dict(out.get(outer) or {"type": "DHT22", "pin": 4})
            nested[inner] = value
            out[outer] = nested
        else:
            out[key] = value
    return out
