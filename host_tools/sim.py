"""`dhtlink sim`: one virtual board running the real firmware against an endpoint.

The library function `simulate` is what the tests and `dhtlink bench` run.
"""

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from host_tools.common import DATA_PATH, base_url, device_options, endpoint_options, json_options
from host_tools.errors import CommandError, UsageError
from host_tools.progress import Progress
from host_tools.vboard import VirtualBoard

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
    unverified: int = 0


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
    scenario says: "power_cuts" (boot numbers) or "power_cut_rate" (0..1, seeded)."""
    scenario = scenario or {}
    rng = random.Random(scenario.get("seed", 1))
    scheduled = set(scenario.get("power_cuts", ()))
    rate = float(scenario.get("power_cut_rate", 0))
    boots: dict[str, int] = {}
    wake_s = 0.05  # running mean of a wake's real duration: cuts land inside a wake
    for number in range(cycles):
        cut = number in scheduled or (rate and rng.random() < rate)
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
    return summarize(board, cycles, boots)


def summarize(board: VirtualBoard, cycles: int, boots: dict[str, int]) -> Summary:
    report = board.report()
    net = board.net()
    taken = report["next_seq"]
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


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim",
        parents=[
            endpoint_options(required=True, what="the receiver the board sends to"),
            device_options(),
            json_options("print the summary as JSON"),
        ],
        help="run one virtual board with the real firmware against an endpoint",
        description="Boot a virtual ESP32 running device/ under MicroPython for N wake cycles, posting to "
        "ENDPOINT. Sleep is skipped, so an hour of 60 s cycles takes seconds; the board keeps real dates "
        "so any receiver accepts them. The secret may come from $DHTLINK_SECRET instead of --secret.",
    )
    parser.add_argument("--secret", default=None, help="the device secret (64 hex); default $DHTLINK_SECRET")
    parser.add_argument("--cycles", type=int, default=60, help="wake cycles to run (default 60)")
    parser.add_argument("--interval", type=int, default=60, help="seconds between readings (default 60)")
    parser.add_argument("--batch-size", type=int, default=20, help="readings per POST (default 20)")
    parser.add_argument("--scenario", type=Path, default=None, help="JSON scenario (docs/virtual-board.md)")
    parser.add_argument("--heap", default="64k", help="the firmware's heap budget (default 64k)")
    parser.add_argument("--dir", type=Path, default=None, help="board directory to keep (default: a temp dir)")
    parser.set_defaults(func=run)


def _load_scenario(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        scenario = json.loads(path.read_text())
    except OSError as error:
        raise UsageError(f"--scenario {path}: {error.strerror}") from None
    except ValueError as error:
        raise UsageError(f"--scenario {path}: not valid JSON ({error})") from None
    if not isinstance(scenario, dict):
        raise UsageError(f"--scenario {path}: must hold a JSON object")
    return scenario


def run(args: argparse.Namespace) -> int:
    from cloud.protocol import SECRET
    from host_tools.registry import check_device_id

    secret = args.secret or os.environ.get("DHTLINK_SECRET", "")
    try:
        check_device_id(args.device)
    except ValueError as error:
        raise UsageError(f"--device: {error}") from None
    if not SECRET.fullmatch(secret):
        raise UsageError("--secret (or $DHTLINK_SECRET) must be the device's 64 lowercase hex characters")
    endpoint = base_url(args.endpoint) + DATA_PATH
    if not 1 <= args.cycles <= 100000:
        raise UsageError("--cycles must be from 1 to 100000")
    if not 2 <= args.interval <= 86400:
        raise UsageError("--interval must be from 2 to 86400 seconds")
    if not 1 <= args.batch_size <= 100:
        raise UsageError("--batch-size must be from 1 to 100")
    scenario = _load_scenario(args.scenario)

    task = None if args.json else Progress().task(args.device, args.cycles, "wakes")

    def show(step: dict[str, Any]) -> None:
        if task:
            task.update(step["boot"])

    try:
        summary = simulate(
            endpoint,
            args.device,
            secret,
            args.cycles,
            args.interval,
            scenario,
            args.heap,
            args.dir,
            compressed=True,
            progress=show,
            batch_size=args.batch_size,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    finally:
        if task:
            task.close()
    if args.json:
        print(json.dumps(asdict(summary)))
    else:
        for key, value in asdict(summary).items():
            print(f"{key:<16} {value}")
    return 0
