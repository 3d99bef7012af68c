"""The board settings a user may set from the host: by `dhtlink provision` into config.json,
or remotely by `dhtlink devices set` through the registry. One table, so both commands
take the same options with the same limits, and every value is checked (with a message
naming the option) before anything is written. The limits are device/config.py's: the
board validates again, and tests/host_tools/test_device_settings.py keeps the two equal."""

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from host_tools.common import DURATION_HELP, duration
from host_tools.errors import UsageError


@dataclass(frozen=True)
class Setting:
    option: str  # the CLI option, e.g. --interval
    key: str  # its config.json key; "sensor.type" for a key inside the sensor object
    parse: Callable[[str, str], Any]
    help: str
    remote: bool = True  # may be changed by `dhtlink devices set` (see docs/protocol.md)
    metavar: str = "VALUE"


def whole(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(option: str, text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise UsageError(f"{option} must be a whole number, got {text!r}") from None
        if not lo <= value <= hi:
            raise UsageError(f"{option} must be from {lo} to {hi}, got {value}")
        return value

    return parse


def seconds(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(option: str, text: str) -> int:
        return duration(option, text, lo, hi)

    return parse


def one_of(*choices: str) -> Callable[[str, str], str]:
    def parse(option: str, text: str) -> str:
        for choice in choices:
            if text.lower() == choice.lower():
                return choice
        raise UsageError(f"{option} must be one of {', '.join(choices)}, got {text!r}")

    return parse


# The GPIOs of a classic ESP32 that can carry a DHT's data line, and why each other pin
# cannot: device/config.py's DHT_PINS and PIN_WHY (tests/cli/test_provision_settings.py
# keeps them equal). A wrong pin sent by `devices set` would be refused by the board
# anyway; refused here, the user learns it at once.
DHT_PINS = (0, 2, 4, 5, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 25, 26, 27, 32, 33)
PIN_WHY = (
    ((1, 3), "is the USB serial port (the REPL and every dhtlink tool)"),
    ((6, 7, 8, 9, 10, 11), "is wired to the module's flash"),
    ((12,), "is a strapping pin: the sensor's pull-up at power-on selects 1.8 V flash and the board does not start"),
    ((34, 35, 36, 37, 38, 39), "is input-only: a DHT needs a pin that can also pull its data line low"),
)


def dht_pin(option: str, text: str) -> int:
    # D4 and GPIO4 as a DevKit's silkscreen and `dhtlink node --pin` spell it: GPIO 4.
    number = text.strip().upper().removeprefix("GPIO").removeprefix("D")
    try:
        pin = int(number, 10)
    except ValueError:
        raise UsageError(f"{option} must be a GPIO number such as 4 (or D4), got {text!r}") from None
    if pin in DHT_PINS:
        return pin
    why = next((text for pins, text in PIN_WHY if pin in pins), "does not exist on an ESP32")
    raise UsageError(f"{option} {pin}: GPIO {pin} {why}; use one of {', '.join(map(str, DHT_PINS))}")


SETTINGS = (
    Setting("--sensor", "sensor.type", one_of("DHT22", "DHT11"), "sensor type (default DHT22)", metavar="TYPE"),
    Setting(
        "--pin",
        "sensor.pin",
        dht_pin,
        "GPIO of the sensor's data line: 4 or D4 (default 4; one an ESP32 can drive)",
        metavar="GPIO",
    ),
    Setting(
        "--interval",
        "interval_s",
        seconds(2, 86400),
        f"time between readings: {DURATION_HELP} (default 60s)",
        metavar="DURATION",
    ),
    Setting("--batch-size", "batch_size", whole(1, 100), "readings per POST (default 20)", metavar="N"),
    Setting(
        "--max-batch-delay",
        "max_batch_delay_s",
        seconds(0, 7 * 86400),
        f"send a partial batch once its oldest reading is this old: {DURATION_HELP} (default 20m)",
        metavar="DURATION",
    ),
    Setting("--mode", "mode", one_of("deep_sleep", "always_on"), "deep_sleep (battery) or always_on"),
    Setting(
        "--spool-max",
        "spool_max",
        whole(10, 100000),
        "readings kept on the board while offline (default 5000)",
        metavar="N",
    ),
)


def add_arguments(parser: argparse.ArgumentParser, remote: bool = False) -> None:
    """Add the settings' options; each is parsed as a string and checked by parse_settings,
    so an error names the option the same way for every command."""
    for setting in SETTINGS:
        if remote and not setting.remote:
            continue
        dest = setting.option[2:].replace("-", "_")
        parser.add_argument(
            setting.option, dest=f"setting_{dest}", default=None, metavar=setting.metavar, help=setting.help
        )


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
