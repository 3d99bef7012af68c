"""Which store a host command works on, from its flags: the local SQLite file under
$DATA_DIR (default), or DynamoDB tables: a deployed stack's (--stack), or named ones
(--readings-table/--devices-table) in the account or on a DynamoDB-compatible server
(--dynamodb-endpoint: DynamoDB Local, moto_server).

`dhtlink serve` and `dhtlink devices` share these options; open_store() returns a store
the handlers take as is, after checking the tables are the template's."""

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools.common import add_aws_account_options
from host_tools.dynamodb_server import LOCAL_SESSION
from host_tools.errors import CommandError, UsageError

DEFAULT_STACK = "dhtlink"
# Threads of the local endpoint that may wait on DynamoDB at once.
ENDPOINT_POOL = 64


def add_store_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("store (default: the SQLite file in $DATA_DIR)")
    group.add_argument(
        "--store",
        choices=("sqlite", "dynamodb"),
        default=None,
        help="sqlite (default) or dynamodb: a deployed stack's tables, named tables, or a local DynamoDB server",
    )
    group.add_argument(
        "--dynamodb-endpoint",
        metavar="URL",
        default=None,
        help="a DynamoDB-compatible server (DynamoDB Local, moto_server), e.g. http://127.0.0.1:8000",
    )
    group.add_argument("--readings-table", metavar="NAME", default=None, help="readings table (with --devices-table)")
    group.add_argument("--devices-table", metavar="NAME", default=None, help="device registry table")
    group.add_argument(
        "--alerts-table", metavar="NAME", default=None, help="alert rules and state (optional; without it no alerts)"
    )
    group.add_argument(
        "--stack",
        metavar="NAME",
        default=None,
        help=f"take the table names from this CloudFormation stack's outputs (default {DEFAULT_STACK})",
    )
    add_aws_account_options(group)
    group.add_argument(
        "--create-tables",
        action="store_true",
        help="with --dynamodb-endpoint: create the tables as cloud/template.yaml defines them if absent",
    )


@dataclass(frozen=True)
class StoreChoice:
    kind: str  # "sqlite" or "dynamodb"
    endpoint: str | None = None
    readings_table: str | None = None
    devices_table: str | None = None
    alerts_table: str | None = None
    stack: str | None = None
    create_tables: bool = False

    def describe(self, data_dir: Path) -> str:
        if self.kind == "sqlite":
            return str(data_dir.resolve())
        if self.stack:
            return f"DynamoDB: the tables of stack {self.stack}"
        where = self.endpoint or "the AWS account"
        return f"DynamoDB: tables {self.readings_table} and {self.devices_table} at {where}"


def store_choice(args: argparse.Namespace, dynamodb: bool = False) -> StoreChoice:
    """Validate the store flags together (each error names the option); `dynamodb` is an older
    flag's way of asking for it (`devices --aws`)."""
    kind = args.store or ("dynamodb" if dynamodb else "sqlite")
    tables = (args.readings_table, args.devices_table)
    if kind == "sqlite":
        given = [
            flag
            for flag, value in (
                ("--dynamodb-endpoint", args.dynamodb_endpoint),
                ("--readings-table", args.readings_table),
                ("--devices-table", args.devices_table),
                ("--alerts-table", args.alerts_table),
                ("--stack", args.stack),
                ("--create-tables", args.create_tables),
            )
            if value
        ]
        if given:
            raise UsageError(f"{given[0]} needs --store dynamodb (the SQLite store is the file in $DATA_DIR)")
        return StoreChoice("sqlite")
    if any(tables) and not all(tables):
        raise UsageError("--readings-table and --devices-table go together: name both tables")
    endpoint = args.dynamodb_endpoint
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise UsageError(f"--dynamodb-endpoint must be a URL such as http://127.0.0.1:8000, got {endpoint!r}")
    if args.create_tables and endpoint is None:
        raise UsageError("--create-tables works only with --dynamodb-endpoint: a stack's tables come from make deploy")
    if args.stack and all(tables):
        raise UsageError("--stack takes the table names from the stack: give it or the two table names, not both")
    if endpoint is not None and not all(tables):
        raise UsageError("with --dynamodb-endpoint name the tables: --readings-table NAME --devices-table NAME")
    if args.alerts_table and not all(tables):
        raise UsageError("--alerts-table goes with --readings-table and --devices-table (a stack names its own)")
    if all(tables):
        return StoreChoice("dynamodb", endpoint, *tables, args.alerts_table, create_tables=args.create_tables)
    return StoreChoice("dynamodb", stack=args.stack or DEFAULT_STACK)


def _dynamodb_client(endpoint: str | None) -> Any:
    import boto3

    from cloud.stores.dynamodb import client

    if endpoint is None:
        return client(pool=ENDPOINT_POOL)
    # A local server takes any keys and region; the user's own are used when set.
    session = boto3.Session()
    local: dict[str, Any] = {}
    if session.region_name is None:
        local["region_name"] = LOCAL_SESSION["region_name"]
    if session.get_credentials() is None:
        local.update({key: LOCAL_SESSION[key] for key in ("aws_access_key_id", "aws_secret_access_key")})
    return client(endpoint, pool=ENDPOINT_POOL, **local)


def _enable_ttl(db: Any, readings_table: str) -> None:
    """TTL as the template sets it; a server without UpdateTimeToLive (dynalite) keeps
    readings for ever, which check_tables then says."""
    from botocore.exceptions import ClientError

    try:
        db.update_time_to_live(
            TableName=readings_table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
        )
    except ClientError:
        pass


def open_store(choice: StoreChoice, data_dir: Path) -> tuple[Any, list[str]]:
    """The store and any warnings about its tables; a CommandError in one line when the tables
    are missing or differ from the template, or DynamoDB cannot be reached."""
    from host_tools import registry

    if choice.kind == "sqlite":
        return registry.local_store(data_dir), []
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    from cloud.stores.dynamodb import (
        DynamoDBStore,
        TablesMismatch,
        TablesMissing,
        check_tables,
        check_transactions,
        create_alerts_table,
        create_tables,
    )

    readings, devices, alerts = choice.readings_table, choice.devices_table, choice.alerts_table or ""
    where = choice.endpoint or "AWS"
    try:
        db = _dynamodb_client(choice.endpoint)
        if choice.stack:
            try:
                outputs = registry.stack_outputs(choice.stack)
            except LookupError as error:
                raise CommandError(str(error)) from None
            readings, devices = outputs.get("ReadingsTableName"), outputs.get("DevicesTableName")
            alerts = outputs.get("AlertsTableName", "")
            if not readings or not devices:
                raise CommandError(f"stack {choice.stack!r} has no ReadingsTableName/DevicesTableName outputs")
        assert readings and devices
        if choice.create_tables:
            existing = set(db.list_tables()["TableNames"])
            if not {readings, devices} & existing:
                create_tables(db, readings, devices)
                _enable_ttl(db, readings)
            if alerts and alerts not in existing:
                create_alerts_table(db, alerts)
        warnings = check_tables(db, readings, devices, alerts)
        if not alerts:
            warnings.append("no alerts table: alert rules are off (--alerts-table NAME)")
        if choice.endpoint:
            check_transactions(db, readings)
    except TablesMismatch as mismatch:
        if not isinstance(mismatch, TablesMissing):
            fix = "the store needs the tables cloud/template.yaml defines"
        elif choice.endpoint:
            fix = "add --create-tables to create them"
        else:
            fix = "deploy the stack (make deploy) or name its tables"
        raise CommandError(f"{mismatch} at {where}: {fix}") from None
    except (NoCredentialsError, NoRegionError) as error:
        raise CommandError(
            f"cannot use DynamoDB at {where}: {error} (set AWS_PROFILE, or AWS_REGION and keys)"
        ) from None
    except (BotoCoreError, ClientError) as error:
        raise CommandError(f"cannot use DynamoDB at {where}: {str(error).splitlines()[0]}") from None
    # No stream function runs beside a local receiver: it summarises each batch itself.
    return DynamoDBStore(readings, devices, db, alerts_table=alerts, inline_summaries=True), warnings
