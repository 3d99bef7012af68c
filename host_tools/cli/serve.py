"""`dhtlink serve`: the local endpoint in the foreground."""

import argparse
import functools
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from host_tools.common import (
    data_dir,
    data_dir_options,
    default_listen_port,
    lan_address,
    listen_address,
    warn_renamed,
)
from host_tools.store_options import add_store_options, open_store, store_choice

SCHEDULE_S = 60  # the scheduled alert handler's period here (5 minutes in AWS)
METRICS_FILE = "metrics.jsonl"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        parents=[data_dir_options()],
        help="run the Lambda handlers on a local HTTP endpoint",
        description="Serve POST /data and the read API on --listen [HOST:]PORT with the same handlers as the Lambda "
        "functions; data (registry, readings, read token) in --data-dir, or in DynamoDB tables with --store "
        "dynamodb (a deployed stack's, for debugging it; DynamoDB Local or moto_server with --dynamodb-endpoint). "
        "Set $READ_TOKEN to choose the read token.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface, for boards on the LAN)"
    )
    parser.add_argument(
        "--listen",
        metavar="[HOST:]PORT",
        default=None,
        help="TCP port to listen on, or HOST:PORT (default $LISTEN_PORT, else 8080)",
    )
    # -p/--port is the board's serial port in every other verb: the old spelling here, unlisted.
    parser.add_argument("-p", "--port", dest="old_port", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="open connections at once; beyond it a client gets 503 and Retry-After (default 4000, "
        "lowered to what the open-file limit allows)",
    )
    mqtt = parser.add_argument_group("Home Assistant (docs/home-assistant.md)")
    mqtt.add_argument(
        "--mqtt",
        metavar="URL",
        help="publish every device to this MQTT broker with Home Assistant discovery: mqtt://[USER@]HOST[:PORT] "
        "or mqtts://...; the password from --mqtt-password-file or $DHTLINK_MQTT_PASSWORD, never the URL",
    )
    mqtt.add_argument("--mqtt-password-file", type=Path, metavar="FILE", help="file holding the broker password")
    mqtt.add_argument(
        "--mqtt-ca", type=Path, metavar="FILE", help="CA certificate for mqtts:// (default: the system's)"
    )
    parser.add_argument(
        "--aws",
        action="store_true",
        help="serve over the deployed stack's tables (boto3 credentials): --store dynamodb",
    )
    add_store_options(parser)
    parser.set_defaults(func=run)


def mqtt_bridge(args: argparse.Namespace, data: Path) -> Callable[[Any], Any] | None:
    """The Home Assistant bridge --mqtt asks for, as a function of the store (checked before
    the endpoint starts), or None."""
    from cloud.homeassistant import bridge
    from host_tools.errors import UsageError

    if args.mqtt is None:
        if args.mqtt_password_file or args.mqtt_ca:
            raise UsageError("--mqtt-password-file and --mqtt-ca go with --mqtt URL")
        return None
    try:
        broker = bridge.parse_broker(args.mqtt)
    except bridge.BrokerUrlError as error:
        raise UsageError(f"--mqtt: {error}") from None
    password = os.environ.get("DHTLINK_MQTT_PASSWORD")
    if args.mqtt_password_file:
        try:
            password = args.mqtt_password_file.read_text().rstrip("\r\n")
        except OSError as error:
            raise UsageError(f"--mqtt-password-file {args.mqtt_password_file}: {error.strerror}") from None
    if password is not None and broker.username is None:
        raise UsageError("a broker password was given without a user: write --mqtt mqtt://USER@HOST")
    if args.mqtt_ca and not broker.tls:
        raise UsageError("--mqtt-ca is for mqtts:// URLs")
    # One client id per data directory: a restarted serve takes over its own session at once.
    client_id = "dhtlink-" + hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:12]
    ca_file = str(args.mqtt_ca) if args.mqtt_ca else None
    return functools.partial(
        bridge.HomeAssistantBridge, broker=broker, password=password, client_id=client_id, ca_file=ca_file
    )


def run(args: argparse.Namespace) -> int:
    from cloud import observability
    from cloud.alerts.local import LocalAlerts
    from cloud.local import LocalEndpoint
    from cloud.local.server import CONNECTION_CAP
    from cloud.stores.sqlite import StoreDamaged
    from host_tools.errors import CommandError, UsageError

    if args.old_port is not None:
        warn_renamed("serve -p/--port", "--listen (-p is the serial port of the board verbs)")
    host, port = listen_address(args.listen or args.old_port or default_listen_port(), args.host)
    data = data_dir(args.data_dir)
    if data.exists() and not data.is_dir():
        raise CommandError(f"--data-dir {data} is a file, not a folder: name a folder (it is created if missing)")
    cap = CONNECTION_CAP if args.max_connections is None else args.max_connections
    if not 1 <= cap <= 100_000:
        raise CommandError(f"--max-connections must be from 1 to 100000, got {cap}")
    if args.aws and args.store == "sqlite":
        raise UsageError("--aws is the deployed stack's DynamoDB tables: leave out --store sqlite")
    choice = store_choice(args, dynamodb=args.aws)
    new_bridge = mqtt_bridge(args, data)
    # The SQLite store is the endpoint's own (store=None): it opens the file under DATA_DIR.
    store, warnings = open_store(choice, data) if choice.kind == "dynamodb" else (None, [])
    try:
        endpoint = LocalEndpoint(
            data,
            host=host,
            port=port,
            read_token=os.environ.get("READ_TOKEN"),
            connection_cap=cap,
            store=store,
        )
    except StoreDamaged as damaged:
        raise CommandError(str(damaged)) from None
    except OSError as error:
        if error.filename is not None:  # the data folder, not the socket
            raise CommandError(
                f"--data-dir {data}: cannot use {error.filename}: {error.strerror}; name a folder you can write"
            ) from None
        raise CommandError(f"cannot listen on {host}:{port}: {error.strerror}; pick another with --listen") from None
    board_url = endpoint.url
    if host in ("0.0.0.0", "::", ""):
        # Every interface: a board needs this machine's address on its network, never 0.0.0.0.
        lan = lan_address()
        board_url = f"http://{lan}:{endpoint.port}" if lan else f"http://THIS-COMPUTER'S-LAN-ADDRESS:{endpoint.port}"
    print(f"dhtlink local endpoint on {endpoint.url}", flush=True)
    print(f"  boards POST to   {board_url}/data   (provision --endpoint {board_url})", flush=True)
    print(f"  dashboard        {board_url}/   (sign in with the token below)", flush=True)
    print(f"  read token       {endpoint.read_token}   (Authorization: Bearer ...; set READ_TOKEN to choose it)")
    print(f"  data             {choice.describe(endpoint.data_dir)}", flush=True)
    for warning in warnings:
        print(f"  warning          {warning}", flush=True)
    # The console shows JSON log lines only; CloudWatch's metric records go to a file beside the data.
    endpoint.data_dir.mkdir(parents=True, exist_ok=True)  # with --store dynamodb it holds only the token
    metrics_file = (endpoint.data_dir / METRICS_FILE).open("a")
    observability.set_metrics_output(metrics_file)
    print(f"  metrics          {endpoint.data_dir.resolve() / METRICS_FILE} (CloudWatch EMF records)", flush=True)
    if endpoint.connection_cap < cap:
        print(f"  connections      at most {endpoint.connection_cap} (open-file limit; raise it with ulimit -n)")
    bridge = new_bridge(endpoint.store) if new_bridge else None
    if bridge is not None:
        print(f"  home assistant   {bridge.broker.describe()} (MQTT discovery)", flush=True)
    print("Ctrl-C stops it; every reading and device is kept for the next start.", flush=True)
    alerts = LocalAlerts(endpoint.store, clock=time.time, interval_s=SCHEDULE_S)  # docs/alerts.md
    if store is None or store.alerts:  # DynamoDB without an alerts table: its warning said alerts are off
        alerts.start()
    if bridge is not None:
        bridge.start()
    try:
        endpoint.serve_forever()  # returns on Ctrl-C: the server's loop ends on KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    finally:
        if bridge is not None:
            bridge.stop()
        alerts.stop()  # first: its last writes are in the store endpoint.stop() checkpoints
        endpoint.stop()
        observability.set_metrics_output(None)
        metrics_file.close()
    print("\nstopped", flush=True)
    return 0
