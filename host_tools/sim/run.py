"""`dhtlink sim`: one virtual board running the real firmware against an endpoint.

The library function `simulate` is what the tests and `dhtlink bench` run.
"""

import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools.errors import CommandError
from host_tools.sim.vboard import VirtualBoard

OnWake = Callable[[dict[str, Any]], None]  # told each wake's number and how it ended
# The firmware's drop counters (device/spool.py), whose sum is status.dropped.
DROP_CAUSES = ("drop_full", "drop_clock", "drop_poison")


@dataclass
class Summary:
    device_id: str
    cycles: int
    readings_taken: int
    acknowledged: int
    still_spooled: int
    dropped: int
    sensor_errors: int
    heap_high_water: int
    requests: int
    bytes_sent: int
    bytes_received: int
    power_cuts: int
    boots: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    # What the board dropped, by cause (status.drop_full, drop_clock, drop_poison), and how
    # many answers it could not verify (impostors, truncated or forged answers: kept, retried).
    drops: dict[str, int] = field(default_factory=dict)
    # Of drop_clock, readings whose power-on had a clock, which was forgotten later: not
    # the designed case (device/spool.py; app.report() only, not on the wire).
    clock_forgotten: int = 0
    unverified: int = 0
    # The board's seq counter: it numbered readings_taken readings below it, and jumped over
    # the rest in renumberings after a 409. None where the counter is not known.
    next_seq: int | None = None


def board_config(device_id: str, secret: str, endpoint: str, interval: int, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "device_id": device_id,
        "secret": secret,
        "wifi": [{"ssid": "dhtlink-bench", "password": "virtual"}],
        "endpoint": endpoint,
        "interval_s": interval,
    }
    config.update(overrides)
    return config


def run_board(
    board: VirtualBoard,
    cycles: int,
    scenario: dict[str, Any] | None = None,
    progress: OnWake | None = None,
) -> Summary:
    """Boot the installed board `cycles` times (one wake each), cutting power where the
    scenario says: "power_cuts" (boot numbers), "power_cut_rate" (0..1, seeded), or
    "ota_cuts" (phases of an over-the-air update, docs/ota.md: the first wake that begins
    in each is cut, e.g. "download" resuming one, "ready" switching to the release)."""
    scenario = scenario or {}
    rng = random.Random(scenario.get("seed", 1))
    scheduled = set(scenario.get("power_cuts", ()))
    rate = float(scenario.get("power_cut_rate", 0))
    ota_cuts = set(scenario.get("ota_cuts", ()))
    boots: dict[str, int] = {}
    wake_s = 0.05  # running mean of a wake's real duration: cuts land inside a wake
    for number in range(cycles):
        cut = number in scheduled or (rate and rng.random() < rate)
        phase = _ota_phase(board) if ota_cuts else None
        if phase in ota_cuts:
            ota_cuts.discard(phase)
            cut = True
            boots[f"ota_cut_{phase}"] = 1  # for the report: this update's phase had its cut
        started = time.monotonic()
        # Somewhere inside the wake: during the sensor read, the spool append or the send.
        result = board.boot(power_cut_after=rng.uniform(0.0, wake_s) if cut else None)
        if result.status == "deepsleep":
            wake_s = 0.9 * wake_s + 0.1 * (time.monotonic() - started)
        boots[result.status] = boots.get(result.status, 0) + 1
        if result.status in ("halted", "crashed"):
            raise CommandError(f"board stopped at boot {number + 1} ({result.status}): {result.output.strip()[-400:]}")
        if progress:
            progress({"boot": number + 1, "cycles": cycles, "status": result.status})
    # A cut in a switching boot leaves the app's files between two releases until the next
    # boot finishes the switch (device/updater.py): the board gets that boot, as it would,
    # before its files are read.
    for _ in range(3):
        if _ota_phase(board) not in SWITCHING:
            break
        result = board.boot()
        boots[result.status] = boots.get(result.status, 0) + 1
    return summarize(board, cycles, boots)


SWITCHING = ("retire", "install", "rb_clear", "rb_restore")  # phases that move the app's files


def _ota_phase(board: VirtualBoard) -> str | None:
    try:
        if not (board.dir / "ota.state").exists():  # a download keeps its own state (device/ota.py)
            return "download" if (board.dir / "ota.dl").exists() else None
        return json.loads((board.dir / "ota.state").read_text()).get("phase")
    except (OSError, ValueError, AttributeError):
        return None


def summarize(board: VirtualBoard, cycles: int, boots: dict[str, int]) -> Summary:
    report = board.report()
    net = board.net()
    # A renumbering after a seq conflict moves next_seq past the receiver's seqs: those
    # jumps are no readings taken.
    taken = report["next_seq"] - report.get("seq_skipped", 0)
    return Summary(
        device_id=report.get("device_id", ""),
        cycles=cycles,
        readings_taken=taken,
        acknowledged=taken - report["spool_depth"] - report["dropped"],
        still_spooled=report["spool_depth"],
        dropped=report["dropped"],
        sensor_errors=report["sensor_errors"],
        heap_high_water=report["heap_hw"],
        requests=net.get("connects", 0),
        bytes_sent=net.get("bytes_out", 0),
        bytes_received=net.get("bytes_in", 0),
        power_cuts=boots.get("power_cut", 0),
        boots=boots,
        last_error=report.get("last_error"),
        drops={cause: report.get(cause, 0) for cause in DROP_CAUSES},
        unverified=report.get("unverified", 0),
        next_seq=report["next_seq"],
        clock_forgotten=report.get("clock_forgotten", 0),
    )


def simulate(
    endpoint: str,
    device_id: str,
    secret: str,
    cycles: int = 60,
    interval: int = 60,
    scenario: dict[str, Any] | None = None,
    heap: str = "64k",
    board_dir: Path | None = None,
    compressed: bool = True,
    progress: OnWake | None = None,
    **config: Any,
) -> Summary:
    """Install a fresh board in `board_dir` and run it. `compressed` keeps the board's
    dates real (an endpoint with a wall clock); pass False when the endpoint uses the
    board's clock (LocalEndpoint(clock=...)), so that virtual days pass."""
    directory = Path(board_dir or tempfile.mkdtemp(prefix=f"vboard-{device_id}-"))
    board = VirtualBoard(directory, heap=heap)
    board.install(board_config(device_id, secret, endpoint, interval, **config), scenario, compressed=compressed)
    return run_board(board, cycles, scenario, progress)
