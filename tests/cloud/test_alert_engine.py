"""Alert evaluation against both stores: hysteresis, durations, stale and rising rules,
one notification per transition, versioned state, 30-day history."""

import boto3
import pytest
from moto import mock_aws

from cloud.alerts import admin
from cloud.alerts.engine import Evaluator
from cloud.alerts.rules import HISTORY_S, NoSuchRule
from cloud.protocol import Reading
from cloud.stores.base import Delivery
from cloud.stores.dynamodb import DynamoDBStore, create_alerts_table, create_tables
from cloud.stores.sqlite import SQLiteStore

T0 = 1_800_000_000
DEVICE = "greenhouse-01"


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request, tmp_path, aws_env):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "store.sqlite3")
        s.add_device(DEVICE, "00" * 32, T0)
        yield s
        return
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, "readings", "devices")
        create_alerts_table(client, "alerts")
        s = DynamoDBStore("readings", "devices", client, alerts_table="alerts")
        s.add_device(DEVICE, "00" * 32, T0)
        yield s


class Outbox:
    def __init__(self):
        self.events = []

    def __call__(self, rule, event):
        self.events.append(event)

    def kinds(self):
        return [(e["type"], e["device_id"], e["at"] - T0) for e in self.events]


def readings(values, start=0, step=60):
    return [{"seq": start + i, "ts": T0 + (start + i) * step, "t": t, "h": 50.0} for i, t in enumerate(values)]


def add(store, webhook="http://127.0.0.1:9/x", **spec):
    rule, _secret = admin.add_rule(store, {"device": DEVICE, **spec}, webhook)
    return rule


def test_above_for_ten_minutes_opens_once_and_clears_below_the_hysteresis(store):
    rule = add(store, metric="t", above=30, **{"for": "10m"})
    outbox = Outbox()
    evaluator = Evaluator(store, outbox)
    # 5 minutes above, a dip to 29.9: no alert; then 12 minutes above: open at the 10th minute
    evaluator.on_stored(DEVICE, readings([31] * 5 + [29.9] + [31] * 12), T0)
    assert outbox.kinds() == [("open", DEVICE, 16 * 60)]
    # wobbling between 29.1 and 30.5 around the threshold: still open, nothing sent
    evaluator.on_stored(DEVICE, readings([29.1, 30.5, 29.5, 30.2] * 5, start=18), T0)
    assert len(outbox.events) == 1
    (state,) = store.alert_states(DEVICE)
    assert state["status"] == "open" and state["rule_id"] == rule.rule_id
    # 29.0 = threshold - hysteresis: resolved, once
    evaluator.on_stored(DEVICE, readings([29.0, 28.0, 27.0], start=38), T0)
    assert outbox.kinds()[1:] == [("resolve", DEVICE, 38 * 60)]
    evaluator.on_stored(DEVICE, readings([28.0] * 3, start=41), T0)
    assert len(outbox.events) == 2
    history = store.alert_events(T0 + 3600)
    assert [e["type"] for e in history] == ["resolve", "open"], "newest first"
    assert history[1]["value"] == 31 and history[1]["rule_id"] == rule.rule_id


def test_a_batch_sent_again_or_late_moves_nothing(store):
    add(store, metric="h", below=30)
    outbox = Outbox()
    evaluator = Evaluator(store, outbox)
    batch = readings([50, 25, 25])
    evaluator.on_stored(DEVICE, [dict(r, h=r["t"]) for r in batch], T0)
    evaluator.on_stored(DEVICE, [dict(r, h=r["t"]) for r in batch], T0)
    late = [dict(r, h=60.0) for r in readings([0], start=0)]  # older than the state's last change
    evaluator.on_stored(DEVICE, late, T0)
    assert outbox.kinds() == [("open", DEVICE, 60)]


def test_two_evaluators_racing_announce_a_transition_once(store):
    add(store, metric="t", above=30)
    first, second = Outbox(), Outbox()
    a, b = Evaluator(store, first), Evaluator(store, second)
    rules = a.rules()
    states_before = store.alert_states(DEVICE)
    a.on_stored(DEVICE, readings([35]), T0)
    # b read the same (empty) state before a wrote: its conditional write must lose
    b.rules = lambda: rules
    original = store.alert_states
    store.alert_states = lambda device_id=None: states_before
    b.on_stored(DEVICE, readings([35]), T0)
    store.alert_states = original
    assert len(first.events) + len(second.events) == 1


def test_stale_opens_on_schedule_and_resolves_on_the_next_delivery(store):
    add(store, stale="30m")
    outbox = Outbox()
    evaluator = Evaluator(store, outbox)
    evaluator.on_schedule(T0)
    assert outbox.events == [], "a device that never delivered is not stale"
    store.record_delivery(store.get_device(DEVICE), Delivery(T0, None, [Reading(0, T0, 20.0, 50.0)]))
    for minute in (10, 29):
        evaluator.on_schedule(T0 + minute * 60)
    assert outbox.events == []
    for minute in (30, 35, 40):
        evaluator.on_schedule(T0 + minute * 60)
    assert outbox.kinds() == [("open", DEVICE, 30 * 60)]
    assert [s["version"] for s in store.alert_states(DEVICE)] == [1], "written once, not by every run"
    evaluator.on_stored(DEVICE, readings([20.0], start=41), T0 + 41 * 60)
    assert outbox.kinds()[1:] == [("resolve", DEVICE, 41 * 60)]
    store.record_delivery(store.get_device(DEVICE), Delivery(T0 + 41 * 60, None, []))
    evaluator.on_schedule(T0 + 45 * 60)
    assert len(outbox.events) == 2


def test_rising_sensor_errors_open_and_resolve_after_a_quiet_window(store):
    add(store, metric="sensor_errors", rising="3", **{"for": "1h"})
    outbox = Outbox()
    evaluator = Evaluator(store, outbox)
    device = store.get_device(DEVICE)

    def status(at, errors):
        store.record_delivery(device, Delivery(at, {"sensor_errors": errors, "dropped": 0}, []))
        evaluator.on_schedule(at)

    status(T0, 10)  # the baseline: errors counted before the rule saw the device
    status(T0 + 300, 11)
    status(T0 + 600, 12)
    assert outbox.events == []
    status(T0 + 900, 13)
    assert outbox.kinds() == [("open", DEVICE, 900)]
    status(T0 + 1200, 20)
    assert len(outbox.events) == 1, "still rising: still the same open alert"
    status(T0 + 1200 + 3599, 20)
    assert len(outbox.events) == 1
    status(T0 + 1200 + 3600, 20)
    assert outbox.kinds()[1:] == [("resolve", DEVICE, 4800)]
    status(T0 + 6000, 2)  # a power cut cleared the counter: 2 new errors, below 3
    assert len(outbox.events) == 2


def test_gaps_rising_counts_seqs_missing_from_the_stored_span(store):
    add(store, metric="gaps", rising=True)
    outbox = Outbox()
    evaluator = Evaluator(store, outbox)
    device = store.get_device(DEVICE)
    store.record_delivery(device, Delivery(T0, None, [Reading(s, T0 + s, 20.0, 50.0) for s in range(5)]))
    evaluator.on_schedule(T0 + 60)
    store.record_delivery(store.get_device(DEVICE), Delivery(T0, None, [Reading(9, T0 + 9, 20.0, 50.0)]))
    evaluator.on_schedule(T0 + 120)
    assert outbox.kinds() == [("open", DEVICE, 120)]
    assert outbox.events[0]["value"] == 4


def test_rules_for_every_device_keep_state_per_device(store):
    store.add_device("shed-02", "11" * 32, T0)
    add(store, metric="t", above=30, device="*")
    outbox = Outbox()
    evaluator = Evaluator(store, outbox)
    evaluator.on_stored(DEVICE, readings([31]), T0)
    evaluator.on_stored("shed-02", readings([31, 25]), T0)
    evaluator.on_stored(DEVICE, readings([31], start=5), T0)
    assert sorted(outbox.kinds()) == [("open", DEVICE, 0), ("open", "shed-02", 0), ("resolve", "shed-02", 60)]


def test_rules_stored_listed_and_removed_without_their_secrets(store):
    rule, secret = admin.add_rule(store, {"device": DEVICE, "metric": "t", "above": 30}, "https://hooks.example.com/s")
    email_rule, none = admin.add_rule(store, {"device": "*", "stale": "1h", "email": True})
    assert none is None and store.get_alert_secret(email_rule.rule_id) is None
    assert store.get_alert_secret(rule.rule_id) == {
        "webhook_url": "https://hooks.example.com/s",
        "webhook_secret": secret.webhook_secret,
    }
    listed = admin.list_rules(store)
    assert {r["rule_id"] for r in listed} == {rule.rule_id, email_rule.rule_id}
    assert "hooks.example.com" not in str(listed) and secret.webhook_secret not in str(listed)
    Evaluator(store, Outbox()).on_stored(DEVICE, readings([35]), T0)
    admin.remove_rule(store, rule.rule_id)
    assert store.get_alert_secret(rule.rule_id) is None
    assert store.alert_states() == [], "its state goes with it"
    assert [e["rule_id"] for e in store.alert_events(T0 + 60)] == [rule.rule_id], "its history stays"
    with pytest.raises(NoSuchRule):
        admin.remove_rule(store, rule.rule_id)


def test_a_per_device_rule_needs_a_registered_device(store):
    with pytest.raises(admin.InvalidRule) as caught:
        admin.add_rule(store, {"device": "nobody", "stale": "1h", "email": True})
    assert caught.value.field == "device"


def test_history_is_kept_30_days_and_delivery_recorded(store):
    rule = add(store, metric="t", above=30)
    Evaluator(store, Outbox()).on_stored(DEVICE, readings([35]), T0)
    (event,) = store.alert_events(T0)
    store.record_alert_delivery(rule.rule_id, event["event_id"], {"ok": True, "webhook": {"ok": True, "status": 204}})
    (event,) = store.alert_events(T0 + HISTORY_S - 1)
    assert event["delivery"]["webhook"]["status"] == 204
    assert admin.list_rules(store)[0]["last_delivery"]["ok"] is True
    assert store.alert_events(T0 + HISTORY_S + 1) == [], "older than 30 days: gone from every read"
    store.prune_alert_events(T0 + HISTORY_S + 1)
    assert store.alert_events(T0) == [] or isinstance(store, DynamoDBStore), "SQLite deletes; DynamoDB's TTL does"


def test_overview_shows_open_alerts_and_history(store):
    rule = add(store, metric="t", above=30, name="greenhouse hot")
    Evaluator(store, Outbox()).on_stored(DEVICE, readings([35]), T0)
    view = admin.overview(store, T0 + 60)
    assert [(a["rule_id"], a["device_id"], a["value"], a["name"]) for a in view["open"]] == [
        (rule.rule_id, DEVICE, 35, "greenhouse hot")
    ]
    assert [e["type"] for e in view["recent"]] == ["open"]
    assert view["rules"][0]["description"] == "greenhouse-01: t above 30"
    assert admin.overview(store, T0 + 60, device_id="shed-02")["open"] == []
