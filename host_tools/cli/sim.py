"""`dhtlink sim`: the verb over host_tools.sim.run."""

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from host_tools.common import DATA_PATH, base_url, checked_device, device_options, endpoint_options, json_options
from host_tools.errors import CommandError, UsageError
from host_tools.progress import Progress
from host_tools.sim.run import simulate


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

    secret = args.secret or os.environ.get("DHTLINK_SECRET", "")
    checked_device(args.device)
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
    if summary.requests and not summary.acknowledged:
        # The board sent and nothing landed: an endpoint down, a wrong URL, a device the
        # receiver does not know. The summary above holds no error of its own to notice.
        raise CommandError(
            f"delivered none of {summary.readings_taken} readings in {summary.requests} "
            f"request{'s' if summary.requests != 1 else ''}: "
            f"{summary.last_error or 'no answer the board could verify'}"
        )
    return 0
