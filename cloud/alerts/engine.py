"""Alert evaluation: rule + what was observed + the stored state -> the new state and
the transitions (open, resolve) to notify.

State is kept per (rule, device): status "ok", "pending" (a value rule's condition holds
but not yet for long enough) or "open". It is written only when it changes, with the
version it was read at: of two evaluators racing on the same state, only the one whose
write lands notifies, so a transition is announced once (docs/alerts.md).
"""

import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cloud.alerts.rules import HISTORY_S, VALUE_KINDS, Rule, format_duration, rule_from_item
from cloud.observability import log

Deliver = Callable[[Rule, dict[str, Any]], object]  # what it returns (a delivery record) is not used here


def fresh_state(rule: Rule, device_id: str) -> dict[str, Any]:
    return {"rule_id": rule.rule_id, "device_id": device_id, "status": "ok", "version": 0}


def make_event(rule: Rule, device_id: str, kind: str, at: int, value: Any, detail: str) -> dict[str, Any]:
    return {
        "event_id": f"{at:012d}-{secrets.token_hex(4)}",
        "type": kind,
        "rule_id": rule.rule_id,
        "device_id": device_id,
        "at": at,
        "value": value,
        "rule": rule.describe(),
        "name": rule.name,
        "text": f"[dhtlink] {kind.upper()} {device_id}: {detail} ({rule.name or rule.condition()}; {rule.rule_id})",
    }


def _breach(rule: Rule, value: float) -> bool:
    assert rule.threshold is not None
    return value > rule.threshold if rule.kind == "above" else value < rule.threshold


def _clear(rule: Rule, value: float) -> bool:
    assert rule.threshold is not None
    if rule.kind == "above":
        return value <= rule.threshold - rule.hysteresis
    return value >= rule.threshold + rule.hysteresis


def step_value(rule: Rule, state: dict[str, Any], readings: Iterable[dict[str, Any]]) -> list[tuple[str, int, float]]:
    """Run a t/h rule over readings (oldest first); updates `state` in place and returns
    the transitions as (kind, reading ts, value)."""
    transitions = []
    for reading in readings:
        ts, value = reading["ts"], reading[rule.metric or "t"]
        if ts < state.get("at", 0):
            continue  # older than what last moved this state: a late batch cannot undo it
        status = state["status"]
        if status == "open":
            if _clear(rule, value):
                state.update(status="ok", at=ts, value=value)
                state.pop("since", None)
                transitions.append(("resolve", ts, value))
        elif _breach(rule, value):
            since = state.get("since", ts) if status == "pending" else ts
            if ts - since >= rule.for_s:
                state.update(status="open", at=ts, value=value, opened_at=ts)
                state.pop("since", None)
                transitions.append(("open", ts, value))
            elif status == "ok":
                state.update(status="pending", since=ts, at=ts, value=value)
        elif status == "pending":
            # "for at least N minutes" means without a break: a reading back inside restarts it
            state.update(status="ok", at=ts, value=value)
            state.pop("since", None)
    return transitions


def step_stale(rule: Rule, state: dict[str, Any], last_seen: int | None, now: int) -> list[tuple[str, int, Any]]:
    """A device never seen is not stale: it has not started reporting (docs/alerts.md)."""
    if last_seen is None:
        return []
    silent = now - last_seen >= rule.for_s
    if silent and state["status"] != "open":
        state.update(status="open", at=now, value=now - last_seen, opened_at=now, last_seen=last_seen)
        return [("open", now, now - last_seen)]
    if not silent and state["status"] == "open":
        state.update(status="ok", at=now, value=now - last_seen, last_seen=last_seen)
        return [("resolve", now, now - last_seen)]
    return []


def step_rising(rule: Rule, state: dict[str, Any], counter: int | None, now: int) -> list[tuple[str, int, Any]]:
    """A counter that rose by at least `threshold` within the window opens the alert; a
    full window without any rise resolves it. A counter that went down restarted (a
    power cut clears a board's RTC memory), so its whole value is new."""
    if counter is None:
        return []
    transitions: list[tuple[str, int, Any]] = []
    previous = state.get("counter")
    rises = [rise for rise in state.get("rises", []) if rise[0] > now - rule.for_s]
    if previous is not None and counter != previous:
        delta = counter - previous if counter > previous else counter
        if delta > 0:
            rises.append([now, delta])
    state["counter"] = counter
    state["rises"] = rises
    risen = sum(delta for _at, delta in rises)
    assert rule.threshold is not None
    if state["status"] != "open" and risen >= rule.threshold:
        state.update(status="open", at=now, value=risen, opened_at=now)
        transitions.append(("open", now, risen))
    elif state["status"] == "open" and not rises:
        state.update(status="ok", at=now, value=0)
        transitions.append(("resolve", now, 0))
    return transitions


def counter_of(rule: Rule, device: dict[str, Any]) -> int | None:
    if rule.metric == "gaps":
        from cloud.stores.base import public_device

        return public_device(device)["health"]["missing"]
    status = device.get("last_status") or {}
    value = status.get(rule.metric)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _detail(rule: Rule, kind: str, value: Any) -> str:
    if rule.kind in VALUE_KINDS:
        unit = "°C" if rule.metric == "t" else "%RH"
        return f"{rule.metric} {value:g} {unit}" + (" (back to normal)" if kind == "resolve" else "")
    if rule.kind == "stale":
        if kind == "open":
            return f"no delivery for {format_duration(int(value))}"
        return "delivering again"
    if kind == "open":
        return f"{rule.metric} rose by {value} within {format_duration(rule.for_s)}"
    return f"{rule.metric} steady for {format_duration(rule.for_s)}"


class Evaluator:
    """Runs rules against a store; `deliver(rule, event)` sends (or queues) a notification."""

    def __init__(self, store: Any, deliver: Deliver) -> None:
        self.store = store
        self.deliver = deliver

    def rules(self) -> list[Rule]:
        return [rule_from_item(item) for item in self.store.list_alert_rules()]

    def on_stored(
        self, device_id: str, readings: list[dict[str, Any]], now: int, rules: list[Rule] | None = None
    ) -> int:
        """After a batch is stored: value rules over its readings; stale alerts of this
        device resolve at once. Returns the number of transitions. `rules`: the rules read
        once for a whole stream batch (one read of the rules' partition a batch, not a device)."""
        rules = [
            r
            for r in (self.rules() if rules is None else rules)
            if r.applies_to(device_id) and r.kind in (*VALUE_KINDS, "stale")
        ]
        if not rules:
            return 0
        states = {s["rule_id"]: s for s in self.store.alert_states(device_id)}
        ordered = sorted(readings, key=lambda r: (r["ts"], r["seq"]))
        done = 0
        for rule in rules:
            state = dict(states.get(rule.rule_id) or fresh_state(rule, device_id))
            if rule.kind == "stale":
                if state["status"] != "open":
                    continue
                transitions = step_stale(rule, state, now, now)
            else:
                transitions = step_value(rule, state, ordered)
            done += self._commit(rule, device_id, states.get(rule.rule_id), state, transitions, now)
        return done

    def on_schedule(self, now: int, shard: str | None = None) -> int:
        """Every few minutes: stale and rising rules over every device row (of one shard).

        The fleet and the states are both read in device-id order, a page at a time, and
        walked side by side: memory holds one device's states and a page of each stream,
        whatever the fleet's size (bench/fleet_jobs.py measures it)."""
        rules = [r for r in self.rules() if r.kind in ("stale", "rising")]
        if not rules:
            return 0
        done = 0
        walk = _with_states(self.store.iter_devices(shard), self.store.iter_alert_states(shard))
        for device, stored_states in walk:
            device_id = device["device_id"]
            for rule in rules:
                if not rule.applies_to(device_id):
                    continue
                stored = stored_states.get(rule.rule_id)
                state = dict(stored or fresh_state(rule, device_id))
                if rule.kind == "stale":
                    transitions = step_stale(rule, state, device.get("last_seen"), now)
                else:
                    transitions = step_rising(rule, state, counter_of(rule, device), now)
                done += self._commit(rule, device_id, stored, state, transitions, now)
        return done

    def _commit(
        self,
        rule: Rule,
        device_id: str,
        stored: dict[str, Any] | None,
        state: dict[str, Any],
        transitions: list[tuple[str, int, Any]],
        now: int,
    ) -> int:
        if stored is not None and _same(stored, state):
            return 0
        if stored is None and state["status"] == "ok" and "counter" not in state and not transitions:
            return 0  # nothing to remember: no row until something happens
        version = stored["version"] if stored else 0
        state["version"] = version + 1
        if not self.store.put_alert_state(state, version):
            log("INFO", "alert state moved on elsewhere", rule_id=rule.rule_id, device_id=device_id)
            return 0
        for kind, at, value in transitions:
            event = make_event(rule, device_id, kind, at, value, _detail(rule, kind, value))
            self.store.add_alert_event(event, now + HISTORY_S)
            log("INFO", f"alert {kind}", rule_id=rule.rule_id, device_id=device_id, at=at)
            self.deliver(rule, event)
        return len(transitions)


def _with_states(
    devices: Iterator[dict[str, Any]], states: Iterator[dict[str, Any]]
) -> Iterator[tuple[dict[str, Any], dict[str, dict[str, Any]]]]:
    """Each device with its stored states by rule id: a merge of two streams ordered by
    device id (states of removed devices are passed over)."""
    pending = next(states, None)
    for device in devices:
        device_id = device["device_id"]
        while pending is not None and pending["device_id"] < device_id:
            pending = next(states, None)
        mine: dict[str, dict[str, Any]] = {}
        while pending is not None and pending["device_id"] == device_id:
            mine[pending["rule_id"]] = pending
            pending = next(states, None)
        yield device, mine


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    ignore = ("version",)
    return {k: v for k, v in a.items() if k not in ignore} == {k: v for k, v in b.items() if k not in ignore}
