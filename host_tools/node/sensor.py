"""DHT11/DHT22 reads on a Linux board through adafruit-circuitpython-dht on Blinka.

The read rules are the firmware's (device/sensor.py): a settle time after start, a
minimum interval between reads, up to three tries, implausible frames refused, every
failed try counted, and a failed read gives None, never the previous value.
"""

import grp
import importlib
import os
import random
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from host_tools.node.clock import Clock

KINDS = ("DHT22", "DHT11")
MIN_INTERVAL_S = {"DHT22": 2.0, "DHT11": 1.0}
POWER_UP_S = {"DHT22": 2.0, "DHT11": 1.0}
# Plausible values in tenths: t_lo, t_hi, h_lo, h_hi (the datasheets' ranges, as the firmware).
RANGE = {"DHT22": (-400, 800, 0, 1000), "DHT11": (0, 500, 200, 900)}
PIN_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,15}$")


class SensorSetupError(Exception):
    """A configuration the sensor can never work with (no such pin on this board): the node
    stops for good (exit 2, which the systemd unit does not restart on)."""


class SensorUnavailable(Exception):
    """The GPIO stack or the sensor cannot be opened now (a package missing, no access to
    /dev/gpiochip*, no GPIO controller): the node says why and tries again later."""


class FrameError(Exception):
    """One read gave no usable frame (timeout, short frame, checksum): try again later."""


class Driver(Protocol):
    def read_frame(self) -> tuple[float, float]:
        """(°C, %RH) of a fresh frame, or FrameError."""
        ...

    def close(self) -> None: ...


def _missing(error: ModuleNotFoundError) -> SensorUnavailable:
    return SensorUnavailable(
        f"the GPIO backend is not installed (no module {error.name!r}): install the pi extra into this "
        f"environment, {sys.prefix}/bin/pip install '/path/to/dhtlink[pi]' (docs/pi-node.md)"
    )


def gpio_access_problem(dev: Path = Path("/dev")) -> str | None:
    """Why this user cannot use the GPIO character devices, when that is the trouble: the
    gpiod binding Blinka uses reports a refused open as a bare OSError (errno 0)."""
    chips = sorted(dev.glob("gpiochip*"))
    if not chips or any(os.access(chip, os.R_OK | os.W_OK) for chip in chips):
        return None
    try:
        group = grp.getgrgid(chips[0].stat().st_gid).gr_name
    except (KeyError, OSError):
        group = "gpio"
    return (
        f"no access to {chips[0]} (group {group}): add the user to it with `sudo usermod -aG {group} USER` "
        "and log in again (the service's unit has SupplementaryGroups=gpio)"
    )


def resolve_pin(name: str, board: Any = None) -> Any:
    """The Blinka pin object for a board pin name such as D4 (GPIO4 on a Raspberry Pi)."""
    if not PIN_NAME.match(name):
        raise SensorSetupError(f"--pin must be a board pin name such as D4, got {name!r}")
    if board is None:
        try:
            board = importlib.import_module("board")
        except ModuleNotFoundError as error:  # Blinka itself, or gpiod, which it imports on a Pi
            raise _missing(error) from None
        except NotImplementedError as error:  # Blinka's word for a board it does not know
            raise SensorUnavailable(
                f"Blinka does not know this board ({error}); without a sensor, try `dhtlink node --simulate`"
            ) from None
        except Exception as error:  # RuntimeError or OSError from probing the hardware
            if isinstance(error.__cause__, ModuleNotFoundError):  # Blinka's rewording of a missing gpiod
                raise _missing(error.__cause__) from None
            raise SensorUnavailable(f"cannot load Blinka's board module ({type(error).__name__}: {error})") from None
    pin = getattr(board, name, None)
    if pin is None or isinstance(pin, str | int | types.ModuleType):
        names = sorted(n for n in dir(board) if re.match(r"^D\d+$", n))
        known = ", ".join(names) if names else "none: Blinka knows no GPIO here; `--simulate` runs without a sensor"
        raise SensorSetupError(f"--pin {name}: this board has no such pin (pins: {known})")
    return pin


class AdafruitDriver:
    """adafruit_dht's DHT11/DHT22 on a Blinka pin.

    The library answers a call within 2 s of the previous one with its cached values, and
    keeps them after a failed frame. The node owns the timing (Sensor waits the minimum
    interval), so each read clears that cache first: a frame either decodes now or fails.
    """

    def __init__(self, kind: str, pin: Any, use_pulseio: bool | None = None) -> None:
        try:
            import adafruit_dht
        except ModuleNotFoundError as error:
            raise _missing(error) from None

        cls = adafruit_dht.DHT22 if kind == "DHT22" else adafruit_dht.DHT11
        try:
            self.dev = cls(pin) if use_pulseio is None else cls(pin, use_pulseio=use_pulseio)
        except ModuleNotFoundError as error:  # sysv_ipc, which Blinka's pulseio imports
            raise _missing(error) from None
        except (OSError, RuntimeError, ValueError) as error:
            why = gpio_access_problem() or f"cannot open the sensor pin ({type(error).__name__}: {error})"
            raise SensorUnavailable(why) from None

    def read_frame(self) -> tuple[float, float]:
        # Private state of adafruit-circuitpython-dht 4.0 (pinned): see the class docstring.
        self.dev._last_called = 0
        self.dev._temperature = self.dev._humidity = None
        try:
            self.dev.measure()
        except (RuntimeError, OSError) as error:
            access = gpio_access_problem() if isinstance(error, OSError) else None
            raise FrameError(f"{error}; {access}" if access else str(error)) from None
        t, h = self.dev._temperature, self.dev._humidity
        if t is None or h is None:
            raise FrameError("no frame decoded")
        return t, h

    def close(self) -> None:
        self.dev.exit()


class SimulatedDriver:
    """A DHT22 by a seeded random walk; `fail_rate` of frames fail as a bad wire would.
    `dhtlink node --simulate` and the bench's Pi nodes read this one."""

    def __init__(self, t_mean: float = 21.0, seed: int = 1, fail_rate: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.t = t_mean
        self.h = 50.0
        self.fail_rate = fail_rate

    def read_frame(self) -> tuple[float, float]:
        if self.rng.random() < self.fail_rate:
            raise FrameError("Checksum did not validate. Try again.")
        self.t = min(79.0, max(-39.0, self.t + self.rng.gauss(0, 0.1)))
        self.h = min(99.0, max(1.0, self.h + self.rng.gauss(0, 0.3)))
        return round(self.t, 1), round(self.h, 1)

    def close(self) -> None:
        pass


def open_driver(kind: str, pin: str, simulate: bool = False, seed: int = 1, **climate: float) -> Driver:
    """The driver `dhtlink node` reads (and the bench's Pi nodes): the simulated one, with
    SimulatedDriver's `t_mean` and `fail_rate` in `climate`, or adafruit_dht on the board's
    pin. SensorSetupError: never usable as configured; SensorUnavailable: try again later."""
    if simulate:
        return SimulatedDriver(seed=seed, **climate)
    return AdafruitDriver(kind, resolve_pin(pin))


@dataclass
class Reading:
    t10: int  # tenths of °C
    h10: int  # tenths of %RH


class Sensor:
    def __init__(self, kind: str, driver: Driver, clock: Clock | None = None, powered_up_s: float = 0.0) -> None:
        if kind not in KINDS:
            raise SensorSetupError(f"--sensor must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind = kind
        self.driver = driver
        self.clock = clock or Clock()
        self.ready = self.clock.monotonic() + max(0.0, POWER_UP_S[kind] - powered_up_s)
        self.errors = 0
        self.last_error: str | None = None

    def _wait(self) -> None:
        left = self.ready - self.clock.monotonic()
        if left > 0:
            self.clock.sleep(left)
        self.ready = self.clock.monotonic() + MIN_INTERVAL_S[self.kind]

    def read(self, tries: int = 3) -> Reading | None:
        """A fresh reading, or None after `tries` failed tries (each counted in `errors`)."""
        t_lo, t_hi, h_lo, h_hi = RANGE[self.kind]
        for _ in range(tries):
            self._wait()
            try:
                t, h = self.driver.read_frame()
                t10, h10 = round(t * 10), round(h * 10)
            except FrameError as error:
                self.last_error = f"read failed: {error}"
            except (TypeError, ValueError, OverflowError) as error:  # NaN or a non-number from a driver
                self.last_error = f"read failed: {error}"
            else:
                if t10 == 0 and h10 == 0:
                    self.last_error = "all-zero frame"  # a known-bad frame of a sensor losing power
                elif not (t_lo <= t10 <= t_hi and h_lo <= h10 <= h_hi):
                    self.last_error = f"out of range: t={t10 / 10} h={h10 / 10}"
                else:
                    return Reading(t10, h10)
            self.errors += 1
        return None

    def close(self) -> None:
        self.driver.close()
