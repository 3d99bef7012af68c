"""Batches ingest has stored, handed to what runs beside the local endpoint besides alerts
(`dhtlink serve --mqtt`'s Home Assistant bridge).

Stdlib-only and small, as cloud/alerts/__init__.py: each listener only enqueues, so the
board's answer never waits for a broker. In AWS nothing is registered: the readings
table's stream invokes the deployed functions instead.
"""

import weakref
from collections.abc import Callable
from typing import Any

Listener = Callable[[str, list[Any], int], None]
_listeners: "weakref.WeakKeyDictionary[Any, list[Listener]]" = weakref.WeakKeyDictionary()


def add(store: Any, listener: Listener) -> None:
    """Call `listener(device_id, stored readings, received_at)` for every batch stored in `store`."""
    _listeners.setdefault(store, []).append(listener)


def remove(store: Any, listener: Listener) -> None:
    listeners = _listeners.get(store, [])
    if listener in listeners:
        listeners.remove(listener)


def after_store(store: Any, device_id: str, stored: list[Any], now: int) -> None:
    """Called by ingest once a batch is stored. Never raises: the readings are safe already."""
    if not stored:
        return
    for listener in list(_listeners.get(store, ())):
        try:
            listener(device_id, stored, now)
        except Exception as error:
            from cloud.observability import log

            log("ERROR", "stored-batch hand-off failed", device_id=device_id, error=type(error).__name__)
