"""`dhtlink devices add|list|remove|rotate|set`: the device registry, local or on AWS."""

import argparse
import json
import sys
from pathlib import Path

from host_tools import device_settings, store_options
from host_tools.common import data_dir, data_dir_options, json_options, when
from host_tools.errors import CommandError, UsageError
from host_tools.store_options import add_store_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="manage the device registry",
        description="Manage the registry in the local store (--data-dir) or, with --aws or --store dynamodb, "
        "in DynamoDB: a deployed stack's, named tables, or a local DynamoDB server (as `dhtlink serve`).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = [data_dir_options(), _store_parent()]
    secret_json = json_options('print {"device_id": ..., "secret": ...}')
    device = {"metavar": "DEVICE", "help": "the device id: 1-64 characters of A-Z a-z 0-9 _ -"}
    add = actions.add_parser(
        "add", parents=[*common, secret_json], help="register a device and print its new secret once"
    )
    add.add_argument("device_id", **device)
    actions.add_parser(
        "list",
        parents=[*common, json_options()],
        help="list devices with last seen time and delivery health",
    )
    remove = actions.add_parser("remove", parents=common, help="remove a device from the registry (its readings stay)")
    remove.add_argument("device_id", **device)
    rotate = actions.add_parser(
        "rotate", parents=[*common, secret_json], help="give a device a new secret and print it once"
    )
    rotate.add_argument("device_id", **device)
    settings = actions.add_parser(
        "set",
        parents=common,
        help="name a device and its room, or change a deployed board's settings remotely (from its next wake)",
        description="--name and --room label DEVICE on the dashboard and in `devices list` (the board never "
        'sees them; "" clears one). The board settings are stored as desired settings with a new version: the '
        "receiver sends them in its signed answer to the board's next POST; the board checks them, applies them "
        "from its next wake and reports the version it runs (`devices list`). Settings not given keep their "
        "desired value.",
    )
    settings.add_argument("device_id", **device)
    settings.add_argument("--name", metavar="TEXT", help="a name people know the device by (up to 64 characters)")
    settings.add_argument("--room", metavar="TEXT", help="where it is (up to 64 characters)")
    device_settings.add_arguments(settings, remote=True)
    parser.set_defaults(func=run)


def _store_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--aws", action="store_true", help="use the deployed stack's registry (boto3 credentials): --store dynamodb"
    )
    add_store_options(parent)
    return parent


def open_store(aws: bool, stack: str, directory: Path | None = None):
    """The local registry, or with `aws` the deployed stack's, unchecked: provision, bench and
    alerts say what they need of it themselves (`dhtlink devices` checks the tables)."""
    from host_tools import registry

    if not aws:
        return registry.local_store(data_dir(directory))
    try:
        return registry.aws_store(stack)
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


def _print_devices(rows: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print("no devices: `dhtlink devices add ID` registers one")
    for row in rows:
        health = row["health"]
        labels = " · ".join(label for label in (row["name"], row["room"]) if label)
        print(
            f"{row['device_id']:<24} {f'({labels}) ' if labels else ''}last seen {when(row['last_seen'])} "
            f"received={health['received']} missing={health['missing']} {_shadow(row['settings'])}"
        )


def _shadow(settings: dict) -> str:
    if not settings["desired_version"]:
        return "settings=as provisioned"
    text = f"settings v{settings['desired_version']} " + ("in sync" if settings["in_sync"] else "pending")
    if settings.get("refused_version") == settings["desired_version"]:
        text = f"settings v{settings['desired_version']} REFUSED: {settings.get('refused_because')}"
    return f"{text} (board runs v{settings['reported_version'] or 0})"


def _set_settings(args: argparse.Namespace, store) -> None:
    from host_tools import registry

    changes = device_settings.parse_settings(args)
    labels = {field: getattr(args, field) for field in ("name", "room") if getattr(args, field) is not None}
    if not changes and not labels:
        options = ["--name", "--room"] + [s.option for s in device_settings.SETTINGS if s.remote]
        raise UsageError("nothing to set: give at least one of " + ", ".join(options))
    if labels:
        try:
            shown = registry.set_labels(store, args.device_id, labels)
        except registry.InvalidLabel as error:
            raise UsageError(str(error)) from None
        print(f"{args.device_id}: " + ", ".join(f"{k}={v!r}" if v else f"{k} cleared" for k, v in shown.items()))
    if not changes:
        return
    version, desired = registry.set_desired(store, args.device_id, changes)
    print(
        f"{args.device_id}: desired settings v{version}: " + ", ".join(f"{k}={v}" for k, v in sorted(desired.items()))
    )
    print("  sent with the receiver's answer to its next POST; applied from the wake after that")


def _forget_in_home_assistant(stack: str, device_id: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from host_tools import registry

    try:
        if registry.forget_in_home_assistant(stack, device_id):
            print(f"removed {device_id} from Home Assistant (AWS IoT Core)")
    except (BotoCoreError, ClientError) as error:
        raise CommandError(
            f"{device_id} left the registry but not Home Assistant ({str(error).splitlines()[0]}): delete it on its "
            f"device page, or `mosquitto_pub -r -n -t homeassistant/device/dhtlink_{device_id}/config` on your broker"
        ) from None


def run(args: argparse.Namespace) -> int:
    from host_tools import registry

    if args.aws and args.store == "sqlite":
        raise UsageError("--aws is the DynamoDB registry: leave out --store sqlite")
    choice = store_options.store_choice(args, dynamodb=args.aws)
    store, warnings = store_options.open_store(choice, data_dir(args.data_dir))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        if args.action == "add":
            _print_secret(args.device_id, registry.add_device(store, args.device_id), args.json, "registered")
        elif args.action == "rotate":
            _print_secret(args.device_id, registry.rotate_secret(store, args.device_id), args.json, "new secret for")
        elif args.action == "remove":
            registry.remove_device(store, args.device_id)
            print(f"removed {args.device_id}")
            if choice.stack:
                _forget_in_home_assistant(choice.stack, args.device_id)
        elif args.action == "set":
            _set_settings(args, store)
        else:
            _print_devices(registry.list_devices(store), args.json)
    except registry.InvalidDeviceId as error:
        raise UsageError(str(error)) from None
    except (registry.DeviceExists, registry.NoSuchDevice) as error:
        raise CommandError(str(error)) from None
    return 0
