"""`dhtlink devices add|list|remove|rotate`: the device registry, local or on AWS."""

import argparse
import json
import sys

from host_tools import store_options
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


def run(args: argparse.Namespace) -> int:
    from cloud import admin

    if args.aws and args.store == "sqlite":
        raise UsageError("--aws is the DynamoDB registry: leave out --store sqlite")
    store, warnings = store_options.open_store(store_options.store_choice(args, dynamodb=args.aws), data_dir())
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
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
                    f"received={health['received']} missing={health['missing']}"
                )
    except admin.InvalidDeviceId as error:
        raise UsageError(str(error)) from None
    except (admin.DeviceExists, admin.NoSuchDevice) as error:
        raise CommandError(str(error)) from None
    return 0
