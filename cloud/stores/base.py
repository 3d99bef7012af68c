"""The store contract every implementation meets (tests/cloud/test_store_contract.py)."""

from dataclasses import dataclass
from typing import Any, Protocol

from cloud.protocol import Reading


class DeviceExists(ValueError):
    pass


class NoSuchDevice(ValueError):
    pass


MAX_CONFLICTS = 10  # seqs named in a 409: enough to debug, bounded for a small board's buffer


class SeqConflict(Exception):
    """Some seqs of the batch are already stored with other content; nothing was stored."""

    def __init__(self, seqs: list[int], next_seq: int) -> None:
        super().__init__(f"{len(seqs)} seq(s) already hold other readings; next_seq {next_seq}")
        self.count = len(seqs)
        self.seqs = sorted(seqs)[:MAX_CONFLICTS]
        self.next_seq = next_seq


class StoreBusy(Exception):
    """The store throttled or stayed locked through the store's own retries; nothing was
    stored by the failed call, and the same request may be sent again later."""


def same_content(stored: Reading, sent: Reading) -> bool:
    """A re-send or another reading under the same seq? ts exactly, t and h at the 0.1
    resolution of the sensors, so a float's round trip through a store is no conflict."""
    return (
        stored.ts == sent.ts
        and round(stored.t * 10) == round(sent.t * 10)
        and round(stored.h * 10) == round(sent.h * 10)
    )


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
        """Store the readings (at most MAX_READINGS: one request) not already stored, all or
        nothing; returns those newly stored. A seq already stored with the same content is
        a duplicate; with other content it raises SeqConflict and stores nothing."""
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
