"""Alerts through a bench run: the real firmware on a virtual board, the local endpoint on
the board's clock, alerts evaluated beside it, a real webhook receiver on loopback. The
scenario keys drive it: the sensor crosses a threshold (sensor_values) and the access point
goes away (wifi_down), so the board falls silent. (Rising counters are left to
tests/cloud/test_alert_engine.py: a watchdog reset of a board on a loaded host can restart
status.sensor_errors, which makes the number of rises in a run unpredictable.)"""

import time

import pytest

from cloud.alerts import admin
from cloud.alerts.local import LocalAlerts
from cloud.alerts.notify import Notifier, verify_signature
from tests.cloud.webhook_receiver import WebhookReceiver
from tests.device.e2e.conftest import DEVICE, assert_exactly_once

MINUTE = 60


@pytest.mark.slow
def test_one_notification_per_transition_through_a_bench_run(rig):
    # 10 minutes at 33 °C in every 30 (the list cycles; a longer one would not fit the heap)
    values = [[25.0, 50.0]] * 10 + [[33.0, 50.0]] * 10 + [[25.0, 50.0]] * 10
    scenario = {
        "sensor_values": values,
        "wifi_down": [[50 * MINUTE, 80 * MINUTE]],
    }
    store = rig.endpoint.store
    with WebhookReceiver() as receiver:
        keys = {}
        for spec in (
            {"metric": "t", "above": 30, "for": "5m"},
            {"stale": "15m"},
        ):
            rule, secret = admin.add_rule(store, {"device": DEVICE, **spec}, receiver.url)
            keys[rule.rule_id] = (rule.kind, secret.webhook_secret)
        notifier = Notifier(store, attempts=1)
        # The scheduled handler runs often in real time; it reads the board's clock, so it
        # sees each virtual minute (in AWS: every 5 minutes of real time). A board wakes about
        # every 20 ms of real time: at 0.2 s the handler saw only every ~10th virtual minute.
        with LocalAlerts(store, rig.board.now, interval_s=0.02, notifier=notifier) as alerts:
            rig.install(scenario, batch_size=5)
            summary = rig.run(130, scenario)
            time.sleep(0.5)  # one more scheduled run after the last wake
            alerts.wait_idle()
    stored = assert_exactly_once(rig, summary)
    hot_spells = _hot_spells(stored)
    assert len(hot_spells) >= 3

    notices = {}
    for received in receiver.received:
        document = received.document
        kind, key = keys[document["rule_id"]]
        assert verify_signature(key, received.headers, received.body), "signed with that rule's secret"
        assert document["device_id"] == DEVICE
        notices.setdefault(kind, []).append(document)
    # exactly one notification per transition, in order, for each rule
    expected = [kind for _run, cool in hot_spells for kind in ("alert.open", "alert.resolve")[: 2 if cool else 1]]
    assert {kind: [d["type"] for d in docs] for kind, docs in notices.items()} == {
        "above": expected,
        "stale": ["alert.open", "alert.resolve"],
    }
    for (run, cool), opened, resolved in zip(hot_spells, notices["above"][::2], notices["above"][1::2], strict=False):
        assert opened["at"] == next(r["ts"] for r in run if r["ts"] - run[0]["ts"] >= 5 * MINUTE)
        assert opened["value"] == 33.0 and (resolved["at"], resolved["value"]) == (cool["ts"], 25.0)
    stale_open, stale_resolve = notices["stale"]
    # Whole seconds, as the alerts' times are: the board's clock ends a fraction past its last wake.
    start = int(rig.board.now()) - 130 * MINUTE
    assert 60 * MINUTE <= stale_open["at"] - start <= 75 * MINUTE, "silent from ~50 min, stale after 15 more"
    assert stale_resolve["at"] - start >= 80 * MINUTE, "delivering again once the access point is back"
    # the history holds the same six transitions, each with its delivery recorded
    history = admin.history(store, int(rig.board.now()))
    assert len(history) == len(expected) + 2 and all(event["delivery"]["ok"] for event in history)
    still_open = len(expected) % 2
    assert len(admin.overview(store, int(rig.board.now()))["open"]) == still_open


def _hot_spells(stored):
    """From what the store holds, independently of the evaluator: each run of readings above
    30 °C lasting at least 5 minutes, with the first cool reading after it (None: still hot)."""
    spells, run = [], []
    for reading in [*stored, None]:
        if reading is not None and reading["t"] > 30:
            run.append(reading)
            continue
        if run and run[-1]["ts"] - run[0]["ts"] >= 5 * MINUTE:
            spells.append((run, reading))
        run = []
    return spells
