"""`dhtlink devices add|list|remove|rotate`: the device registry, local or on AWS."""

import argparse
import json
import sys

from host_tools import device_settings, store_options
from host_tools.common import data_dir
from host_tools.errors import CommandError, UsageError
from host_tools.store_options import add_store_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="manage the device registry",
        description="Manage the registry in the local store ($DATA_DIR) or, with --aws or --store dynamodb, "
        "in DynamoDB: a deployed stack's, named tables, or a local DynamoDB server (as `dhtlink serve`).",
    )
    parser.add_argument(
        "--aws", action="store_true", help="use the deployed stack's registry (boto3 credentials): --store dynamodb"
    )
    add_store_options(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="register a device and print its new secret once")
    add.add_argument("device_id")
    add.add_argument("--json", action="store_true", help='print {"device_id": ..., "secret": ...}')
    actions.add_parser("list", help="list devices with last seen time and delivery health")
    remove = actions.add_parser("remove", help="remove a device from the registry (its readings stay)")
    remove.add_argument("device_id")
    rotate = actions.add_parser("rotate", help="give a device a new secret and print it once")
    rotate.add_argument("device_id")
    rotate.add_argument("--json", action="store_true")
    settings = actions.add_parser(
        "set",
        help="change a deployed board's settings remotely (applied from its next wake)",
        description="Store desired settings for DEVICE_ID with a new version. The receiver sends them in its "
        "signed answer to the board's next POST; the board checks them, applies them from its next wake and "
        "reports the version it runs (`devices list`). Settings not given keep their desired value.",
    )
    settings.add_argument("device_id")
    device_settings.add_arguments(settings, remote=True)
    parser.set_defaults(func=run)


def open_store(aws: bool, stack: str):
    """The local registry, or with `aws` the deployed stack's, unchecked: provision, bench and
    alerts say what they need of it themselves (`dhtlink devices` checks the tables)."""
    from cloud import admin

    if not aws:
        return admin.local_store(data_dir())
    try:
        return admin.aws_store(stack)
    except LookupError as error:
        raise CommandError(str(error)) from None
    except Exception as error:  # botocore's credential and region errors share no base class worth naming
        raise CommandError(f"cannot reach AWS: {error}") from None


def _print_secret(device_id: str, secret: str, as_json: bool, verb: str) -> None:
    if as_json:
        print(json.dumps({"device_id": device_id, "secret": secret}))
    else:
        print(f"{verb} {device_id}")
        print(f"secret: {secret}")
        print("This is the only time the secret is shown; `dhtlink provision` writes it to the board.")


def _shadow(settings: dict) -> str:
    if not settings["desired_version"]:
        return "settings=as provisioned"
    text = f"settings v{settings['desired_version']} " + ("in sync" if settings["in_sync"] else "pending")
    if settings.get("refused_version") == settings["desired_version"]:
        text = f"settings v{settings['desired_version']} REFUSED: {settings.get('refused_because')}"
    return f"{text} (board runs v{settings['reported_version'] or 0})"


def set_settings(args: argparse.Namespace, store) -> int:
    from cloud import admin

    changes = device_settings.parse_settings(args)
    if not changes:
        raise UsageError(
            "nothing to set: give at least one of " + ", ".join(s.option for s in device_settings.SETTINGS)
        )
    try:
        admin.check_device_id(args.device_id)
    except admin.InvalidDeviceId as error:
        raise UsageError(str(error)) from None
    try:
        version, desired = store.set_desired(args.device_id, changes)
    except admin.NoSuchDevice:
        raise CommandError(f"no device {args.device_id} in the registry") from None
    print(
        f"{args.device_id}: desired settings v{version}: " + ", ".join(f"{k}={v}" for k, v in sorted(desired.items()))
    )
    print("  sent with the receiver's answer to its next POST; applied from the wake after that")
    return 0


def run(args: argparse.Namespace) -> int:
    from cloud import admin

    if args.aws and args.store == "sqlite":
        raise UsageError("--aws is the DynamoDB registry: leave out --store sqlite")
    store, warnings = store_options.open_store(store_options.store_choice(args, dynamodb=args.aws), data_dir())
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.action == "set":
        return set_settings(args, store)
    try:
        if args.action == "add":
            _print_secret(args.device_id, admin.add_device(store, args.device_id), args.json, "registered")
        elif args.action == "rotate":
            _print_secret(args.device_id, admin.rotate_secret(store, args.device_id), args.json, "new secret for")
        elif args.action == "remove":
            admin.remove_device(store, args.device_id)
            print(f"removed {args.device_id}")
        else:
            rows = admin.list_devices(store)
            if not rows:
                print("no devices: `dhtlink devices add ID` registers one")
            for row in rows:
                health = row["health"]
                print(
                    f"{row['device_id']:<24} last_seen={row['last_seen'] or '-'} "
                    f"received={health['received']} missing={health['missing']} {_shadow(row['settings'])}"
                )
    except admin.InvalidDeviceId as error:
        raise UsageError(str(error)) from None
    except (admin.DeviceExists, admin.NoSuchDevice) as error:
        raise CommandError(str(error)) from None
    return 0
