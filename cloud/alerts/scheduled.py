"""The scheduled alert function: stale and rising rules over every device, every few
minutes (EventBridge in AWS, every 5 minutes; `dhtlink serve`, every minute)."""

import os
import time
from functools import cache
from typing import Any

from cloud.alerts.engine import Evaluator
from cloud.alerts.notify import Notifier
from cloud.observability import log, metrics
from cloud.settings import lambda_store
from cloud.stores.base import SHARDS


def run_schedule(evaluator: Evaluator, store: Any, now: int, shard: str | None = None) -> int:
    started = time.perf_counter()
    transitions = evaluator.on_schedule(now, shard)
    pruned = store.prune_alert_events(now)
    log(
        "INFO",
        "scheduled alert run",
        shard=shard,
        transitions=transitions,
        pruned=pruned,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return transitions


@cache
def lambda_evaluator() -> Evaluator:
    """Made once per execution environment; deliveries run in the invocation (no queue)."""
    _settings, store = lambda_store()
    notifier = Notifier(store, topic_arn=os.environ.get("ALERTS_TOPIC_ARN") or None)
    return Evaluator(store, notifier.deliver)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One shard of the fleet a run: the template's schedule invokes the function once per
    shard ({"shard": "07"}), in parallel, so a run's time is a 16th of the fleet's. An event
    without one (a test, a manual invoke) runs the whole fleet."""
    shard = event.get("shard")
    if shard is not None and shard not in SHARDS:
        raise ValueError(f"shard must be one of {SHARDS[0]}..{SHARDS[-1]}, got {shard!r}")
    evaluator = lambda_evaluator()
    transitions = run_schedule(evaluator, evaluator.store, int(time.time()), shard)
    metrics("schedule", AlertTransitions=transitions)
    return {"transitions": transitions}
