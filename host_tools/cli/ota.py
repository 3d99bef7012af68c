"""`dhtlink ota publish|rollout|status`: over-the-air app releases, local or on AWS (docs/ota.md)."""

import argparse
import json

from host_tools.common import aws_options, checked_device, data_dir, data_dir_options, json_options
from host_tools.errors import CommandError, UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ota",
        help="over-the-air app releases: publish, roll out, follow",
        description="Publish the app (device/) as a release with a manifest of file sizes and SHA-256 digests, "
        "offer it to boards, and follow each board's update. Locally the releases live under the data folder "
        "and `dhtlink serve` serves them; with --aws in the deployed stack's bucket. See docs/ota.md.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = [data_dir_options(), aws_options("use the deployed stack's releases and registry, not the local store")]
    actions.add_parser(
        "publish", parents=common, help="build the app into a release (its version: FW in device/app.py)"
    )
    roll = actions.add_parser(
        "rollout",
        parents=common,
        help="offer a published release to a device or the fleet",
        description="Offer release VERSION: the receiver names it in its signed answer to each targeted board, "
        "which downloads it over its next wakes, switches at a boot and rolls back by itself if the release "
        'crashes or hangs in 3 boots (docs/ota.md, "Trial and rollback").',
    )
    roll.add_argument("version", metavar="VERSION", help="a published release's version")
    _add_targets(roll, all_help="every registered device (see --canary)")
    roll.add_argument(
        "--canary", metavar="N", default=None, help="with --all: only N devices not yet offered it (a first wave)"
    )
    stop = actions.add_parser(
        "cancel",
        parents=common,
        help="stop offering a release to a device or to every board not yet running it",
        description="Stop offering release VERSION. Boards still downloading it stop at their next send; a board "
        "that has it downloaded whole switches at its next boot all the same, and one already running it keeps it "
        "(roll out another version to replace it).",
    )
    stop.add_argument("version", metavar="VERSION", help="the release offered")
    _add_targets(stop, all_help="every device it is offered to")
    actions.add_parser(
        "status", parents=[*common, json_options()], help="each device's release target and where its update is"
    )
    parser.set_defaults(func=run)


def _add_targets(parser: argparse.ArgumentParser, all_help: str) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--device", metavar="ID", default=None, help="one device")
    which.add_argument("--all", action="store_true", help=all_help)


def _registry(args: argparse.Namespace):
    from host_tools.cli.devices import open_store

    return open_store(args.aws, args.stack, args.data_dir)


def _releases(args: argparse.Namespace):
    from host_tools import ota

    return ota.stack_releases(args.stack) if args.aws else ota.LocalReleases(data_dir(args.data_dir))


def run(args: argparse.Namespace) -> int:
    from host_tools import ota

    if args.action == "publish":
        releases = _releases(args)
        version, manifest, new = ota.publish(releases)
        if new:
            print(
                f"published release {version}: {len(manifest['files'])} files, {manifest['size']} bytes, "
                f"in {releases.where}"
            )
            print(f"  `dhtlink ota rollout {version} --all --canary 1` offers it to a first board")
        else:
            print(f"release {version} is already published with this content ({releases.where})")
        return 0
    if getattr(args, "device", None) is not None:  # rollout and cancel
        checked_device(args.device)
    if args.action == "rollout":
        return _rollout(args)
    if args.action == "cancel":
        return _cancel(args)
    rows = _registry(args).list_devices()
    if args.json:
        print(json.dumps([_status_row(row, ota.state(row)) for row in rows], indent=2))
        return 0
    if not rows:
        print("no devices: `dhtlink devices add ID` registers one")
    for row in rows:
        fw = (row.get("last_status") or {}).get("fw", "-")
        print(f"{row['device_id']:<24} fw={fw:<10} {ota.state(row)}")
    return 0


def _status_row(row: dict, state: str) -> dict:
    status = row.get("last_status") or {}
    return {
        "device_id": row["device_id"],
        "target": (row.get("ota_target") or {}).get("v"),
        "fw": status.get("fw"),
        "phase": status.get("ota"),
        "failed": status.get("ota_failed"),
        "error": status.get("ota_error"),
        "state": state,
    }


def _rollout(args: argparse.Namespace) -> int:
    from host_tools import ota, registry

    canary = None
    if args.canary is not None:
        if not args.all:
            raise UsageError("--canary goes with --all")
        if not args.canary.isdigit() or int(args.canary) < 1:
            raise UsageError(f"--canary must be a whole number of devices from 1 up, got {args.canary!r}")
        canary = int(args.canary)
    offer = ota.target(_releases(args), args.version)
    try:
        chosen = ota.rollout(_registry(args), offer, args.device, canary)
    except registry.NoSuchDevice as error:
        raise CommandError(str(error)) from None
    print(f"release {args.version} offered to {len(chosen)} device(s): {', '.join(chosen) or 'none left'}")
    print("  each downloads it over its next wakes and switches at a boot; `dhtlink ota status` follows it")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from host_tools import ota

    stopped = ota.cancel(_registry(args), args.version, args.device)
    if not stopped:
        print(
            f"release {args.version} was not offered to {'device ' + args.device if args.device else 'any board'} "
            "that does not run it already"
        )
        return 0
    print(f"release {args.version} no longer offered to {len(stopped)} device(s): {', '.join(stopped)}")
    print("  a board that has it downloaded whole still switches at its next boot; `dhtlink ota status` follows it")
    return 0
