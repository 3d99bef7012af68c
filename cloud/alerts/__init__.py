"""Alerts: rules over readings and device health, evaluated after ingest and on a
schedule, notified by signed webhooks and e-mail (docs/alerts.md).

This module is what the ingest handler imports, so it stays stdlib-only and small:
`after_store` hands a stored batch to whatever evaluates alerts beside that store (the
local endpoint's background worker). In AWS nothing is registered and it does nothing:
the readings table's stream invokes the alerts function instead, so the board's answer
never waits for, or depends on, an alert or a notifier.
"""

import weakref
from collections.abc import Callable
from typing import Any

Sink = Callable[[str, list[Any], int], None]
_sinks: "weakref.WeakKeyDictionary[Any, Sink]" = weakref.WeakKeyDictionary()


def register_sink(store: Any, sink: Sink | None) -> None:
    """Evaluate alerts for batches stored in `store` with `sink` (None: stop)."""
    if sink is None:
        _sinks.pop(store, None)
    else:
        _sinks[store] = sink


def after_store(store: Any, device_id: str, stored: list[Any], now: int) -> None:
    """Called by ingest once a batch is stored. Never raises: the readings are safe
    already, and the board's answer must not depend on alerting."""
    sink = _sinks.get(store)
    if sink is None or not stored:
        return
    try:
        sink(device_id, stored, now)
    except Exception as error:  # the ack matters more than one batch's alert evaluation
        from cloud.observability import log

        log("ERROR", "alert hand-off failed", device_id=device_id, error=type(error).__name__)
