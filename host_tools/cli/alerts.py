"""`dhtlink alerts add|list|remove|history|test`: alert rules, local or on AWS."""

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from host_tools.common import DURATION_HELP, aws_options, data_dir_options, json_options, warn_renamed, when
from host_tools.errors import CommandError, UsageError

EPILOG = """examples:
  dhtlink alerts add --device greenhouse-01 --metric t --above 30 --for 10m --webhook https://hooks.example.com/x
  dhtlink alerts add --all --stale 30m --email
  dhtlink alerts add --all --metric sensor_errors --rising 5 --for 1h --webhook-file hook.url
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "alerts",
        help="alert rules: thresholds, silent boards, rising errors; webhooks and e-mail",
        description="Manage alert rules in the local store (--data-dir) or, with --aws, in a deployed stack. "
        "See docs/alerts.md.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = [data_dir_options(), aws_options("use the deployed stack's rules, not the local store")]
    rule = {"metavar": "RULE", "help": "the rule's id, as `dhtlink alerts list` shows it"}

    add = actions.add_parser(
        "add",
        parents=common,
        help="add a rule; prints its webhook signing secret once",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    who = add.add_mutually_exclusive_group(required=True)
    who.add_argument("--device", metavar="ID", help="the device the rule watches")
    who.add_argument("--all", action="store_true", help="watch every device, present and future")
    who.add_argument("--all-devices", action="store_true", help=argparse.SUPPRESS)  # the old spelling
    add.add_argument("--metric", help="t or h (with --above/--below); sensor_errors, dropped or gaps (with --rising)")
    add.add_argument("--above", help="open when the metric is above this value")
    add.add_argument("--below", help="open when the metric is below this value")
    add.add_argument(
        "--for",
        dest="for_",
        metavar="DURATION",
        help=f"how long it must hold; the window of --rising ({DURATION_HELP})",
    )
    add.add_argument("--hysteresis", help="how far back it must come to clear (default 1 for t, 3 for h)")
    add.add_argument(
        "--stale", metavar="DURATION", help=f"open when a device has not delivered for this long ({DURATION_HELP})"
    )
    add.add_argument(
        "--rising", nargs="?", const="1", metavar="N", help="open when the counter rose by N (default 1) within --for"
    )
    add.add_argument("--webhook", metavar="URL", help="POST signed JSON here (https://; http:// only to loopback)")
    add.add_argument("--webhook-file", type=Path, help="read the webhook URL from this file (keeps it out of history)")
    add.add_argument("--email", action="store_true", help="publish to the stack's alerts SNS topic (e-mail)")
    add.add_argument("--name", metavar="TEXT", help="a label shown in notifications")
    add.add_argument("--json", action="store_true", help='print {"rule": ..., "webhook_secret": ...}')

    actions.add_parser("list", parents=[*common, json_options()], help="list rules and each one's last delivery")
    remove = actions.add_parser("remove", parents=common, help="remove a rule (its history stays until it expires)")
    remove.add_argument("rule_id", **rule)
    past = actions.add_parser(
        "history", parents=[*common, json_options()], help="open/resolve events of the last 30 days, newest first"
    )
    past.add_argument("--rule", help="only this rule's events")
    past.add_argument("--limit", type=int, default=50, help="at most this many events (default 50)")
    test = actions.add_parser(
        "test", parents=common, help="send a test notification through a rule's webhook and e-mail now"
    )
    test.add_argument("rule_id", **rule)
    parser.set_defaults(func=run)


def _topic_arn(aws: bool, stack: str) -> str | None:
    if not aws:
        return os.environ.get("ALERTS_TOPIC_ARN") or None
    from host_tools import registry

    return registry.stack_outputs(stack).get("AlertsTopicArn")


def _webhook_url(args: argparse.Namespace) -> str | None:
    if args.webhook and args.webhook_file:
        raise UsageError("--webhook and --webhook-file: give one of them")
    if args.webhook_file:
        try:
            return args.webhook_file.read_text().strip()
        except OSError as error:
            raise UsageError(f"--webhook-file {args.webhook_file}: {error.strerror}") from None
    return args.webhook


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    if args.all_devices:
        warn_renamed("--all-devices", "--all")
    spec: dict[str, Any] = {"device": "*" if args.all or args.all_devices else args.device, "email": args.email}
    for key, value in (
        ("metric", args.metric),
        ("above", args.above),
        ("below", args.below),
        ("for", args.for_),
        ("hysteresis", args.hysteresis),
        ("stale", args.stale),
        ("rising", args.rising),
        ("name", args.name),
    ):
        if value is not None:
            spec[key] = value
    return spec


def _flag(field: str) -> str:
    return {"rule_id": "RULE", "device": "--device"}.get(field, "--" + field.replace("_", "-"))


def _delivery(delivery: dict[str, Any] | None) -> str:
    if not delivery:
        return "never sent"
    parts = []
    for channel in ("webhook", "email"):
        if channel in delivery:
            result = delivery[channel]
            outcome = "ok" if result["ok"] else result.get("error") or f"HTTP {result.get('status')}"
            parts.append(f"{channel} {outcome}")
    return f"{when(delivery.get('at'))} " + ", ".join(parts)


def run(args: argparse.Namespace) -> int:
    from cloud import observability

    observability.set_output(sys.stderr)  # the notifier's log lines; stdout is the command's answer
    try:
        return _run(args)
    finally:
        observability.set_output(None)


def _run(args: argparse.Namespace) -> int:
    from cloud.alerts import admin as alerts_admin
    from cloud.alerts.notify import Notifier
    from host_tools.cli.devices import open_store

    store = open_store(args.aws, args.stack, args.data_dir)
    if args.aws and not store.alerts:
        raise CommandError(f"stack {args.stack!r} has no AlertsTableName output: `make deploy` updates it")
    try:
        if args.action == "add":
            rule, secret = alerts_admin.add_rule(store, _spec(args), _webhook_url(args))
            if args.json:
                key = secret.webhook_secret if secret else None
                print(json.dumps({"rule": rule.public(), "webhook_secret": key}))
                return 0
            print(f"added rule {rule.rule_id}: {rule.describe()}")
            if rule.email and not _topic_arn(args.aws, args.stack):
                where = (
                    "deploy with `dhtlink deploy --alert-email ADDRESS`"
                    if args.aws
                    else "deploy with `dhtlink deploy --alert-email ADDRESS`, then set ALERTS_TOPIC_ARN to the "
                    "stack's AlertsTopicArn output for `dhtlink serve` (with AWS credentials)"
                )
                print(f"note: no alerts SNS topic yet, so e-mail deliveries will fail: {where}", file=sys.stderr)
            if secret:
                print(f"webhook signing secret: {secret.webhook_secret}")
                print("This is the only time it is shown: your receiver checks X-Dhtlink-Signature with it.")
        elif args.action == "list":
            rules = alerts_admin.list_rules(store)
            if args.json:
                print(json.dumps(rules))
                return 0
            if not rules:
                print("no alert rules: `dhtlink alerts add --help` shows how to add one")
            for row in rules:
                channels = "+".join(c for c in ("webhook", "email") if row[c])
                print(f"{row['rule_id']}  {row['description']:<48} {channels:<14} {_delivery(row['last_delivery'])}")
        elif args.action == "remove":
            alerts_admin.remove_rule(store, args.rule_id)
            print(f"removed rule {args.rule_id}")
        elif args.action == "history":
            if not 1 <= args.limit <= 1000:
                raise UsageError("--limit must be from 1 to 1000")
            events = alerts_admin.history(store, int(time.time()), args.limit, args.rule)
            if args.json:
                print(json.dumps(events))
                return 0
            if not events:
                print("no alert events in the last 30 days")
            for event in events:
                print(f"{when(event['at'])}  {event['type']:<7} {event['text']}  [{_delivery(event.get('delivery'))}]")
        else:
            notifier = Notifier(store, topic_arn=_topic_arn(args.aws, args.stack), backoff_s=0.5)
            delivery = alerts_admin.send_test(store, args.rule_id, notifier)
            print(f"test notification for rule {args.rule_id}: {_delivery(delivery)}")
            if not delivery["ok"]:
                raise CommandError("delivery failed (details above); the receiver must answer 2xx")
    except alerts_admin.InvalidRule as error:
        raise UsageError(f"{_flag(error.field)}: {error.message}") from None
    except alerts_admin.NoSuchRule as error:
        raise CommandError(str(error)) from None
    return 0
