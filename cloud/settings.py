"""Handler settings from the Lambda environment, checked once per process."""

import os
from functools import cache
from typing import Any, NamedTuple


class Settings(NamedTuple):  # not a dataclass: on every handler's cold start (cloud/protocol.py)
    readings_table: str
    devices_table: str
    read_token_sha256: str  # of the bearer token; the token itself is not in the function's environment
    retention_days: int

    @property
    def retention_s(self) -> int:
        return self.retention_days * 86400


def from_env() -> Settings:
    days = os.environ.get("RETENTION_DAYS", "400")
    token_hash = os.environ.get("READ_TOKEN_SHA256", "")
    if token_hash and not (len(token_hash) == 64 and all(c in "0123456789abcdefABCDEF" for c in token_hash)):
        raise ValueError("READ_TOKEN_SHA256 must be the 64 hex characters of the read token's SHA-256")
    if not days.isdigit() or not 1 <= int(days) <= 36500:
        raise ValueError(f"RETENTION_DAYS must be a whole number of days from 1 to 36500, got {days!r}")
    return Settings(
        readings_table=os.environ.get("READINGS_TABLE", ""),
        devices_table=os.environ.get("DEVICES_TABLE", ""),
        read_token_sha256=os.environ.get("READ_TOKEN_SHA256", "").lower(),
        retention_days=int(days),
    )


@cache
def lambda_ingest_store() -> tuple[Settings, Any]:
    """For POST /data: the DynamoDB store's ingest part only (less to compile at a cold start)."""
    from cloud.stores.dynamodb_ingest import IngestStore

    settings = from_env()
    return settings, IngestStore(settings.readings_table, settings.devices_table)


@cache
def lambda_store() -> tuple[Settings, Any]:
    """Settings and the DynamoDB store, made once per execution environment and reused."""
    from cloud.stores.dynamodb import DynamoDBStore

    settings = from_env()
    return settings, DynamoDBStore(settings.readings_table, settings.devices_table)
