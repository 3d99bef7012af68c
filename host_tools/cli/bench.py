"""`dhtlink bench`: the verb over host_tools.sim.fleet."""

import argparse
import json
from pathlib import Path

from host_tools.common import DURATION_HELP, add_aws_account_options, base_url, duration, warn_renamed
from host_tools.errors import CommandError, UsageError
from host_tools.sim.fleet import run_bench
from host_tools.sim.report import as_json, render


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a fleet of virtual boards against the local endpoint and report",
        description="Start the local endpoint, provision N virtual boards and run the real firmware on each "
        "for a simulated stretch of time, then report delivery, wire, memory, battery and cost figures. "
        "Fails (exit 1) if any reading was lost or stored twice.",
    )
    parser.add_argument("--devices", type=int, default=5, help="number of boards (default 5)")
    parser.add_argument(
        "--duration", metavar="DURATION", default=None, help=f"simulated time to run: {DURATION_HELP} (default 24h)"
    )
    parser.add_argument("--hours", type=float, default=None, help=argparse.SUPPRESS)  # the old spelling
    parser.add_argument(
        "--interval", metavar="DURATION", default="60s", help=f"time between readings: {DURATION_HELP} (default 60s)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for sensor noise and faults (default 1)")
    parser.add_argument(
        "--chaos", action="store_true", help="faults between boards and endpoint, Wi-Fi outages and power cuts"
    )
    parser.add_argument(
        "--pi-nodes", type=int, default=0, help="also run this many Linux nodes (`dhtlink node`, simulated sensor)"
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "dynamodb"),
        default="sqlite",
        help="the local endpoint's store: sqlite (default) or dynamodb (a moto_server started for the run)",
    )
    parser.add_argument(
        "--dynamodb-endpoint",
        metavar="URL",
        default=None,
        help="with --store dynamodb: use this DynamoDB server (e.g. DynamoDB Local) instead of starting one; "
        "the run creates its own tables there",
    )
    parser.add_argument(
        "--ota",
        action="store_true",
        help="publish the app as a new release and offer it to every board from the start; fails if a board "
        "rolls it back (with --chaos, each board's power is also cut in one of its update's wakes)",
    )
    parser.add_argument("--json-out", type=Path, default=None, help="also write the report as JSON here")
    parser.add_argument("--data-dir", type=Path, default=None, help="where to keep the run (default .dhtlink/bench-*)")
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        default=None,
        help="run against this receiver's base URL instead (a `dhtlink serve` whose $DATA_DIR is "
        "this one's, or a deployed stack with --aws); no proxy, boards keep real dates",
    )
    parser.add_argument("--aws", action="store_true", help="with --endpoint: register and verify in the stack")
    parser.add_argument(
        "--stack", metavar="NAME", default="dhtlink", help="with --aws: the stack name (default dhtlink)"
    )
    add_aws_account_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.devices <= 500:
        raise UsageError("--devices must be from 1 to 500")
    if args.hours is not None:
        if args.duration is not None:
            raise UsageError("--hours is the old spelling of --duration: give one of them")
        warn_renamed("--hours H", "--duration Hh")
        args.duration = f"{args.hours:g}h"
    hours = duration("--duration", args.duration or "24h", 60, 31 * 86400) / 3600
    interval = duration("--interval", args.interval, 2, 86400)
    if hours * 3600 < interval:
        raise UsageError("--duration must cover at least one --interval")
    if not 0 <= args.pi_nodes <= 100:
        raise UsageError("--pi-nodes must be from 0 to 100")
    if args.dynamodb_endpoint is not None:
        if args.store != "dynamodb":
            raise UsageError("--dynamodb-endpoint goes with --store dynamodb")
        if not args.dynamodb_endpoint.startswith(("http://", "https://")):
            raise UsageError("--dynamodb-endpoint must be a URL such as http://127.0.0.1:8000")
    registry = None
    if args.endpoint and args.ota:
        raise UsageError("--ota runs against the endpoint the bench starts itself, not with --endpoint")
    if args.endpoint and args.pi_nodes:
        raise UsageError("--pi-nodes runs against the endpoint the bench starts itself, not with --endpoint")
    if args.endpoint:
        from host_tools.cli.devices import open_store

        if args.chaos:
            raise UsageError("--chaos runs against the endpoint the bench starts itself, not with --endpoint")
        if args.store != "sqlite":
            raise UsageError("--store picks the store of the endpoint the bench starts, not with --endpoint")
        args.endpoint = base_url(args.endpoint)
        registry = open_store(args.aws, args.stack)
    elif args.aws:
        raise UsageError("--aws goes with --endpoint (the deployed stack's ApiUrl)")
    report = run_bench(
        args.devices,
        hours,
        interval,
        args.seed,
        args.chaos,
        args.data_dir,
        endpoint=args.endpoint,
        registry=registry,
        pi_nodes=args.pi_nodes,
        store=args.store,
        dynamodb_endpoint=args.dynamodb_endpoint,
        ota=args.ota,
    )
    print(render(report))
    if args.json_out:
        args.json_out.write_text(json.dumps(as_json(report), indent=2))
    if report.lost or report.duplicates_stored:
        bad = {d: r["missing_seqs"] for d, r in report.per_device.items() if r["lost"] or r["duplicates_stored"]}
        raise CommandError(
            f"{report.lost} readings lost, {report.duplicates_stored} stored twice; "
            f"missing seq ranges per device: {bad}"
        )
    if report.ota.get("rolled_back"):
        raise CommandError(
            f"release {report.ota['version']} was rolled back on {', '.join(report.ota['rolled_back'])}: a good "
            "release must reach a verified answer on every board (see each board's log.txt)"
        )
    if report.drops.get("unexplained"):
        raise CommandError(
            f"{report.drops['unexplained']} dropped readings have no cause on their board "
            "(status.dropped exceeds drop_full + drop_clock + drop_poison)"
        )
    return 0
