"""The store contract every implementation meets (tests/cloud/test_store_contract.py)."""

from dataclasses import dataclass
from typing import Any, Protocol

from cloud.protocol import Reading


class DeviceExists(ValueError):
    pass


class NoSuchDevice(ValueError):
    pass


@dataclass(frozen=True)
class Delivery:
    """What one accepted request did, for the device row."""

    now: int
    status: dict[str, Any] | None
    stored: list[Reading]


def public_device(row: dict[str, Any]) -> dict[str, Any]:
    """A registry row as the read API shows it: no secret; delivery health derived."""
    first, last, received = row.get("first_seq"), row.get("max_seq"), row.get("received", 0)
    span = 0 if first is None or last is None else last - first + 1
    return {
        "device_id": row["device_id"],
        "created_at": row.get("created_at"),
        "last_seen": row.get("last_seen"),
        "last_reading": row.get("last_reading"),
        "last_status": row.get("last_status"),
        "health": {
            "first_seq": first,
            "max_seq": last,
            "received": received,
            # seqs inside the span the server never stored: lost or still on the device
            "missing": max(0, span - received),
        },
    }


def reading_item(reading: Reading) -> dict[str, Any]:
    return {"seq": reading.seq, "ts": reading.ts, "t": reading.t, "h": reading.h}


class Store(Protocol):
    def add_device(self, device_id: str, secret_hex: str, created_at: int) -> None: ...
    def get_device(self, device_id: str) -> dict[str, Any] | None: ...
    def list_devices(self) -> list[dict[str, Any]]: ...
    def remove_device(self, device_id: str) -> None: ...
    def set_secret(self, device_id: str, secret_hex: str) -> None: ...
    def put_readings(self, device_id: str, readings: list[Reading], received_at: int, expires_at: int) -> list[Reading]:
        """Store the readings not already stored; returns those newly stored."""
        ...

    def record_delivery(self, device: dict[str, Any], delivery: Delivery) -> None: ...
    def latest_reading(self, device_id: str) -> dict[str, Any] | None: ...
    def query_readings(
        self,
        device_id: str,
        from_ts: int | None = None,
        to_ts: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]: ...
