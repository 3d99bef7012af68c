"""Alerts beside the local endpoint, over real HTTP: the board's answer never waits for
(or depends on) evaluation or a notifier; GET /alerts; the `dhtlink alerts` CLI."""

import json
import threading
import time

import pytest
import requests

from cloud import signing
from cloud.alerts import admin
from cloud.alerts.local import LocalAlerts
from cloud.alerts.notify import Notifier
from host_tools.cli import main
from tests.cloud.webhook_receiver import Script, WebhookReceiver

DEVICE = "greenhouse-01"


def post(endpoint, secret, readings, timeout=10):
    body = json.dumps({"device_id": DEVICE, "readings": readings}).encode()
    headers = signing.signed_headers(secret, DEVICE, int(time.time()), "/data", body)
    return requests.post(endpoint.url + "/data", data=body, headers=headers, timeout=timeout)


def hot_then_cool(seq, now):
    """Two readings: 35 °C then 20 °C, so each batch opens and resolves an 'above 30' rule."""
    ts = now - 200 + seq * 10
    return [{"seq": seq, "ts": ts, "t": 35.0, "h": 50.0}, {"seq": seq + 1, "ts": ts + 5, "t": 20.0, "h": 50.0}]


def test_a_broken_webhook_neither_delays_nor_fails_the_ack(endpoint):
    """Judged by order, not by time: the receiver holds every delivery until all three acks
    are in, so an ack that waited for its notification could never arrive (the notifier's
    timeout is longer than the POST's). Then it answers 500 to every attempt."""
    secret = endpoint.add_device(DEVICE)
    held = threading.Event()
    notifier = Notifier(endpoint.store, attempts=2, timeout_s=60, backoff_s=0.2)
    script = Script(then=500, gate=held)
    with WebhookReceiver(script=script) as receiver, LocalAlerts(endpoint.store, time.time, 3600, notifier) as alerts:
        try:
            rule, _ = admin.add_rule(endpoint.store, {"device": DEVICE, "metric": "t", "above": 30}, receiver.url)
            now = int(time.time())
            for batch in range(3):
                answer = post(endpoint, secret, hot_then_cool(batch * 2, now), timeout=30)
                assert answer.status_code == 200 and answer.json()["accepted"] == 2
            assert admin.list_rules(endpoint.store)[0]["last_delivery"] is None, "no delivery could end yet"
        finally:
            held.set()
        alerts.wait_idle(timeout=120)
    stored, _ = endpoint.store.query_readings(DEVICE, limit=100)
    assert len(stored) == 6, "a broken notifier costs no reading"
    assert [e["type"] for e in admin.history(endpoint.store, now + 60)] == ["resolve", "open"] * 3
    delivery = admin.list_rules(endpoint.store)[0]["last_delivery"]
    assert delivery["ok"] is False and delivery["webhook"]["attempts"] == 2
    assert len(receiver.received) == 12, "6 notifications, 2 attempts each"
    assert all(r.document["rule_id"] == rule.rule_id for r in receiver.received)


def test_an_evaluation_that_raises_costs_nothing_but_itself(endpoint, monkeypatch):
    secret = endpoint.add_device(DEVICE)
    with LocalAlerts(endpoint.store, time.time, 3600) as alerts:
        monkeypatch.setattr(alerts.evaluator, "on_stored", lambda *a: 1 / 0)
        answer = post(endpoint, secret, hot_then_cool(0, int(time.time())))
        alerts.wait_idle()
    assert answer.status_code == 200 and answer.json()["accepted"] == 2
    assert any("alert evaluation failed" in line for line in endpoint.log_lines())


def test_a_full_queue_drops_an_evaluation_not_a_reading(endpoint, monkeypatch):
    secret = endpoint.add_device(DEVICE)
    monkeypatch.setattr("cloud.alerts.local.QUEUE_LIMIT", 1)
    alerts = LocalAlerts(endpoint.store, time.time, 3600)
    alerts._evaluate_loop = lambda: None  # nobody takes from the queue
    alerts.start()
    try:
        for batch in range(3):
            assert post(endpoint, secret, hot_then_cool(batch * 2, int(time.time()))).json()["accepted"] == 2
        assert alerts.dropped_batches == 2
    finally:
        alerts.stop(drain_s=0)


def test_end_to_end_over_http_with_get_alerts(endpoint):
    secret = endpoint.add_device(DEVICE)
    with WebhookReceiver() as receiver, LocalAlerts(endpoint.store, time.time, 3600) as alerts:
        rule, key = admin.add_rule(endpoint.store, {"device": DEVICE, "metric": "t", "above": 30}, receiver.url)
        receiver.secret = key.webhook_secret
        now = int(time.time())
        post(endpoint, secret, [{"seq": 0, "ts": now - 5, "t": 33.0, "h": 50.0}])
        alerts.wait_idle()
        auth = {"Authorization": f"Bearer {endpoint.read_token}"}
        view = requests.get(endpoint.url + "/alerts", headers=auth, timeout=5)
        assert requests.get(endpoint.url + "/alerts", timeout=5).status_code == 401
        assert requests.get(endpoint.url + "/alerts?limit=0", headers=auth, timeout=5).status_code == 400
    assert view.status_code == 200
    body = view.json()
    assert [(a["rule_id"], a["device_id"], a["value"]) for a in body["open"]] == [(rule.rule_id, DEVICE, 33.0)]
    assert body["recent"][0]["delivery"]["webhook"]["status"] == 204
    assert body["rules"][0]["webhook"] is True
    assert "127.0.0.1" not in view.text and key.webhook_secret not in view.text, "never a webhook URL or secret"
    (got,) = receiver.received
    assert got.verified and got.document["type"] == "alert.open"


def test_the_schedule_runs_on_its_own(endpoint):
    secret = endpoint.add_device(DEVICE)
    admin.add_rule(endpoint.store, {"device": DEVICE, "stale": "1m", "email": True})
    clock = {"now": time.time()}
    with LocalAlerts(endpoint.store, lambda: clock["now"], interval_s=0.05) as alerts:
        post(endpoint, secret, [{"seq": 0, "ts": int(clock["now"]) - 5, "t": 20.0, "h": 50.0}])
        clock["now"] += 120
        deadline = time.monotonic() + 5
        while not endpoint.store.alert_events(int(clock["now"])) and time.monotonic() < deadline:
            time.sleep(0.05)
        alerts.wait_idle()
    (event,) = endpoint.store.alert_events(int(clock["now"]))
    assert event["type"] == "open" and event["device_id"] == DEVICE


def run_cli(capsys, *argv):
    code = main(["alerts", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_add_list_test_history_remove(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    assert main(["devices", "add", DEVICE]) == 0
    capsys.readouterr()
    with WebhookReceiver() as receiver:
        code, out, _ = run_cli(
            capsys, "add", "--device", DEVICE, "--metric", "t", "--above", "30", "--for", "10m", "--json",
            "--webhook", receiver.url,
        )  # fmt: skip
        assert code == 0
        added = json.loads(out)
        rule_id, receiver.secret = added["rule"]["rule_id"], added["webhook_secret"]
        assert added["rule"]["description"] == f"{DEVICE}: t above 30 for 10m"
        code, out, err = run_cli(capsys, "test", rule_id)
        assert code == 0 and "webhook ok" in out
        assert receiver.received[0].verified and receiver.received[0].document["type"] == "alert.test"
        assert receiver.url.split("?")[0] not in out + err and receiver.secret not in out + err
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and rule_id in out and "t above 30 for 10m" in out and "webhook ok" in out
    assert "127.0.0.1" not in out
    code, out, _ = run_cli(capsys, "history")
    assert code == 0 and "no alert events" in out, "a test notification is not an alert"
    assert run_cli(capsys, "remove", rule_id)[0] == 0
    code, _, err = run_cli(capsys, "remove", rule_id)
    assert code == 1 and f"no alert rule {rule_id}" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--device", DEVICE, "--metric", "t", "--above", "hot", "--email"], "--above: must be a number"),
        (["--device", DEVICE, "--metric", "t", "--above", "30"], "--webhook: a rule needs somewhere to notify"),
        (["--device", DEVICE, "--metric", "t", "--above", "30", "--webhook", "http://example.com/x"], "--webhook:"),
        (["--device", "ghost", "--stale", "1h", "--email"], "--device: no device ghost"),
        (["--all", "--stale", "soon", "--email"], "--stale: must be a duration"),
        (["--all", "--metric", "t", "--rising", "--email"], "--metric: must be one of sensor_errors"),
        # The README's placeholder typed as is: refused at once, not a traceback at `alerts test`.
        (["--all", "--stale", "1h", "--webhook", "https://..."], "--webhook: must name a real host"),
        (["--all", "--stale", "1h", "--webhook", "https://hooks..example.com/x"], "--webhook: must name a real host"),
    ],
)
def test_cli_refuses_bad_rules_naming_the_flag(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    main(["devices", "add", DEVICE])
    capsys.readouterr()
    code, _, err = run_cli(capsys, "add", *argv)
    assert code == 2 and message in err
    assert "http://example.com" not in err
    assert run_cli(capsys, "list")[1].startswith("no alert rules")


def test_cli_test_of_a_dead_webhook_fails_with_its_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    main(["devices", "add", DEVICE])
    with WebhookReceiver(script=Script(then=404)) as receiver:
        run_cli(capsys, "add", "--device", DEVICE, "--stale", "1h", "--webhook", receiver.url)
        rule_id = admin.list_rules(admin_store(tmp_path))[0]["rule_id"]
        code, out, err = run_cli(capsys, "test", rule_id)
    assert code == 1 and "HTTP 404" in out and "delivery failed" in err


def admin_store(tmp_path):
    from cloud.local.files import local_store

    return local_store(tmp_path / "data")


def test_cli_says_when_email_has_nowhere_to_go(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("ALERTS_TOPIC_ARN", raising=False)
    code, out, err = run_cli(capsys, "add", "--all", "--stale", "1h", "--email")
    assert code == 0 and "any device: no delivery for 1h" in out
    assert "no alerts SNS topic yet" in err and "ALERTS_TOPIC_ARN" in err
    monkeypatch.setenv("ALERTS_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:alerts")
    code, _, err = run_cli(capsys, "add", "--all", "--stale", "2h", "--email")
    assert code == 0 and "no alerts SNS topic" not in err


def test_a_webhook_stored_before_the_host_check_fails_its_test_in_one_line(tmp_path, monkeypatch, capsys):
    from cloud.alerts import rules

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(rules, "_is_host", lambda host: True)  # an older dhtlink let it through
    assert run_cli(capsys, "add", "--all", "--stale", "1h", "--webhook", "https://...")[0] == 0
    monkeypatch.undo()
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    rule_id = admin.list_rules(admin_store(tmp_path))[0]["rule_id"]
    code, out, err = run_cli(capsys, "test", rule_id)
    assert code == 1 and "delivery failed" in err and "Traceback" not in out + err


def test_all_devices_is_the_old_spelling_of_all(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ALERTS_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:alerts")
    code, out, err = run_cli(capsys, "add", "--all-devices", "--stale", "1h", "--email")
    assert code == 0 and "any device" in out and "--all-devices is now --all" in err
