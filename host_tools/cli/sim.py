"""`dhtlink sim`: the verb over host_tools.sim.run."""

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from host_tools.common import (
    DATA_PATH,
    DURATION_HELP,
    base_url,
    checked_device,
    device_options,
    duration,
    endpoint_options,
    json_options,
)
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
        "so any receiver accepts them. The device secret comes from --secret-file, $DHTLINK_SECRET or a prompt. "
        "Exits 1 when the receiver stored none of the readings sent, or refused any for good.",
    )
    parser.add_argument(
        "--secret-file",
        type=Path,
        metavar="FILE",
        help="file holding the device secret (mode 600), or `devices add --json` output; else $DHTLINK_SECRET, "
        "else a prompt (never on the command line)",
    )
    # A secret typed as an option lands in shell history and `ps`: refused with the way to give it.
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    parser.add_argument("--cycles", type=int, default=60, help="wake cycles to run (default 60)")
    parser.add_argument(
        "--interval", metavar="DURATION", default="60s", help=f"time between readings: {DURATION_HELP} (default 60s)"
    )
    parser.add_argument("--batch-size", metavar="N", type=int, default=20, help="readings per POST (default 20)")
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


def device_secret(args: argparse.Namespace) -> str:
    """The secret from --secret-file, $DHTLINK_SECRET or a prompt at a terminal; never an option's value."""
    import getpass
    import sys

    from cloud.protocol import SECRET
    from host_tools.node.command import read_secret

    if args.secret is not None:
        raise UsageError(
            "--secret would put the device secret in shell history and the process list: "
            "use --secret-file FILE or $DHTLINK_SECRET (or leave both out to be asked)"
        )
    if args.secret_file is not None:
        return read_secret(args.secret_file, args.device)
    secret = os.environ.get("DHTLINK_SECRET", "")
    if not secret and sys.stdin.isatty():
        secret = getpass.getpass(f"{args.device}'s secret (`dhtlink devices add` printed it; not shown): ").strip()
    if not SECRET.fullmatch(secret):
        raise UsageError(
            "the device secret must be its 64 lowercase hex characters: give it with --secret-file FILE, "
            "$DHTLINK_SECRET or at the prompt"
        )
    return secret


def run(args: argparse.Namespace) -> int:
    checked_device(args.device)
    secret = device_secret(args)
    endpoint = base_url(args.endpoint) + DATA_PATH
    if not 1 <= args.cycles <= 100000:
        raise UsageError("--cycles must be from 1 to 100000")
    interval = duration("--interval", args.interval, 2, 86400)
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
            interval,
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
    refused = summary.drops.get("drop_poison", 0)
    if refused:
        # The receiver answered that these readings can never be stored: the board dropped them.
        raise CommandError(
            f"the receiver refused {refused} of {summary.readings_taken} readings as invalid and the board dropped "
            f"them: {summary.last_error or 'see the receiver log'}"
        )
    return 0
