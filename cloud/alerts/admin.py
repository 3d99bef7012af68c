"""Alert operations behind `dhtlink alerts` and GET /alerts. Nothing here returns a
webhook URL or secret except `add_rule`, once, to the person who gave the URL."""

import time
from typing import Any

from cloud.alerts.engine import make_event
from cloud.alerts.notify import Notifier
from cloud.alerts.rules import (
    ALL_DEVICES,
    RULE_ID,
    InvalidRule,
    NoSuchRule,
    Rule,
    RuleSecret,
    check_webhook_url,
    new_webhook_secret,
    parse_rule,
    rule_from_item,
)

__all__ = ["InvalidRule", "NoSuchRule"]
RECENT_LIMIT = 100


def add_rule(store: Any, spec: dict[str, Any], webhook_url: str | None = None) -> tuple[Rule, RuleSecret | None]:
    """Validate and store a rule; returns it and, if it has a webhook, the new signing secret."""
    if webhook_url is not None:
        check_webhook_url(webhook_url)
    rule = parse_rule({**spec, "webhook": webhook_url is not None}, created_at=int(time.time()))
    if rule.device != ALL_DEVICES and store.get_device(rule.device) is None:
        raise InvalidRule("device", f'no device {rule.device} in the registry (`dhtlink devices list`; "*" for all)')
    secret = RuleSecret(webhook_url, new_webhook_secret()) if webhook_url is not None else None
    store.put_alert_rule(rule.as_item(), secret.__dict__ if secret else None)
    return rule, secret


def check_rule_id(rule_id: str) -> str:
    if not RULE_ID.fullmatch(rule_id or ""):
        raise InvalidRule("rule_id", f"{rule_id!r} is not a rule id (8 characters of a-z 0-9: `dhtlink alerts list`)")
    return rule_id


def find_rule(store: Any, rule_id: str) -> Rule:
    check_rule_id(rule_id)
    for item in store.list_alert_rules():
        if item["rule_id"] == rule_id:
            return rule_from_item(item)
    raise NoSuchRule(f"no alert rule {rule_id} (`dhtlink alerts list` shows them)")


def list_rules(store: Any) -> list[dict[str, Any]]:
    """Each rule as a read shows it, with its last delivery's status."""
    return [
        {**rule_from_item(item).public(), "last_delivery": item.get("last_delivery")}
        for item in store.list_alert_rules()
    ]


def remove_rule(store: Any, rule_id: str) -> None:
    check_rule_id(rule_id)
    try:
        store.remove_alert_rule(rule_id)
    except NoSuchRule:
        raise NoSuchRule(f"no alert rule {rule_id} (`dhtlink alerts list` shows them)") from None


def history(store: Any, now: int, limit: int = RECENT_LIMIT, rule_id: str | None = None) -> list[dict[str, Any]]:
    return store.alert_events(now, limit, check_rule_id(rule_id) if rule_id else None)


def send_test(store: Any, rule_id: str, notifier: Notifier) -> dict[str, Any]:
    """Send a test notification through every channel of a rule, now, on this thread."""
    rule = find_rule(store, rule_id)
    device = rule.device if rule.device != ALL_DEVICES else "any-device"
    now = int(time.time())
    event = make_event(rule, device, "test", now, None, "a test notification: this rule's delivery works")
    return notifier.deliver(rule, event)


def overview(store: Any, now: int, limit: int = RECENT_LIMIT, device_id: str | None = None) -> dict[str, Any]:
    """GET /alerts: open alerts, recent history (30 days at most), and the rules."""
    items = store.list_alert_rules()
    rules = {item["rule_id"]: rule_from_item(item) for item in items}
    open_alerts = [
        {
            "rule_id": state["rule_id"],
            "device_id": state["device_id"],
            "opened_at": state.get("opened_at"),
            "value": state.get("value"),
            "rule": rules[state["rule_id"]].describe(),
            "name": rules[state["rule_id"]].name,
            "kind": rules[state["rule_id"]].kind,  # what value means: seconds silent for stale
            "metric": rules[state["rule_id"]].metric,
        }
        for state in store.alert_states(device_id)
        if state["status"] == "open" and state["rule_id"] in rules
    ]
    recent = store.alert_events(now, limit if device_id is None else 1000)
    if device_id is not None:
        recent = [event for event in recent if event["device_id"] == device_id][:limit]
    return {
        "open": sorted(open_alerts, key=lambda a: a["opened_at"] or 0, reverse=True),
        "recent": recent,
        # With each rule's last delivery (when, ok, the status or kind of failure): never its webhook URL.
        "rules": [{**rules[item["rule_id"]].public(), "last_delivery": item.get("last_delivery")} for item in items],
    }
