"""The device reaction table (docs/protocol.md, "Signed answers") against scripted
loopback receivers that sign their answers with cloud.signing.sign_answer."""

import email.utils
import json
import random
import time

import pytest

from host_tools.node.clock import Clock
from host_tools.node.delivery import Backoff, Delivery, Sender, parse_retry_after
from host_tools.node.spool import MAYBE_STORED, NEVER_SENT, Spool
from tests.node.scripted import ScriptedReceiver, Step

SECRET = "ab" * 32
DEVICE = "pi-test"


@pytest.fixture
def spool(tmp_path):
    s = Spool(tmp_path)
    now = int(time.time())
    for i in range(5):
        s.append(now - 300 + i * 60, 214 + i, 452)
    yield s
    s.close()


def delivery_to(url: str, spool: Spool, timeout=(2.0, 2.0)) -> Delivery:
    return Delivery(spool, Sender(url, DEVICE, SECRET, timeout), Clock(), Backoff(rng=random.Random(1)))


def sent_states(spool: Spool) -> list[int]:
    return [state for (state,) in spool.db.execute("SELECT sent FROM readings ORDER BY seq")]


def test_signed_ack_removes_the_batch(spool):
    with ScriptedReceiver(SECRET) as rx:
        delivery = delivery_to(rx.url, spool)
        result = delivery.send_batch(3)
    assert result.sent == 3 and result.retry_in is None
    assert [i.seq for i in spool.peek(10)] == [3, 4]
    body = rx.requests[0]
    assert rx.bad_signatures == 0
    assert [r["seq"] for r in body["readings"]] == [0, 1, 2]
    assert body["readings"][0]["t"] == 21.4 and body["readings"][0]["h"] == 45.2
    assert body["status"]["dropped"] == 0
    assert spool.get("last_send") == "sent 3 readings, seq 0-2"
    sender = delivery.sender
    # Both ways, headers included: the signature alone is 67 bytes each way.
    sent_body = json.dumps({k: v for k, v in body.items() if k != "_timestamp"}, separators=(",", ":"))
    assert sender.bytes_sent > len(sent_body) + 2 * 67
    assert sender.bytes_received > 150


@pytest.mark.parametrize(
    "step",
    [
        Step(200, b"<html>Welcome to the hotel Wi-Fi</html>", signed=False),  # a captive portal
        Step(200, {"accepted": 3, "duplicates": 0, "rejected": [], "server_time": 1}, signed=False),  # a forger
        Step(200, {"accepted": 3, "duplicates": 0, "rejected": []}, signed="other-request"),  # a replayed answer
        Step(400, {"error": "bad_request", "message": "gateway"}, signed=False),  # a gateway's 4xx is not poison
        Step(401, {"error": "unauthorized", "message": "unknown device or bad signature"}, signed=False),
        Step(403, b"Forbidden", signed=False),
        Step(429, b"slow down", signed=False),
        Step(307, b"", signed=False, headers={"Location": "http://127.0.0.1:9/data"}),  # never followed
    ],
    ids=["portal", "forged-ack", "replayed-ack", "unsigned-400", "unauthorized", "403", "429", "redirect"],
)
def test_unverified_answers_keep_the_batch(spool, step):
    with ScriptedReceiver(SECRET, step) as rx:
        delivery = delivery_to(rx.url, spool)
        result = delivery.send_batch(3)
    assert result.sent == 0 and result.retry_in is not None
    assert spool.depth() == 5 and spool.get("dropped") == 0
    assert spool.get("unverified") == 1
    # The receiver may have stored them: their ts is fixed from now on.
    assert sent_states(spool) == [MAYBE_STORED] * 3 + [NEVER_SENT] * 2
    assert "without a valid signature" in spool.get("last_error")


def test_signed_401_unauthorized_keeps_and_backs_off(spool):
    step = Step(401, {"error": "unauthorized", "message": "unknown device or bad signature"})
    with ScriptedReceiver(SECRET, step) as rx:
        result = delivery_to(rx.url, spool).send_batch(3)
    assert result.retry_in is not None and spool.depth() == 5 and spool.get("dropped") == 0


def test_5xx_with_retry_after_is_honoured(spool):
    step = Step(503, {"error": "unavailable", "message": "busy"}, headers={"Retry-After": "120"})
    with ScriptedReceiver(SECRET, step) as rx:
        result = delivery_to(rx.url, spool).send_batch(3)
    assert result.retry_in >= 120
    assert spool.depth() == 5


def test_unsigned_retry_after_is_capped(spool):
    step = Step(503, b"busy", signed=False, headers={"Retry-After": "99999999"})
    with ScriptedReceiver(SECRET, step) as rx:
        result = delivery_to(rx.url, spool).send_batch(3)
    assert result.retry_in == 3600  # an hour at most, as the firmware


def test_truncated_answer_keeps_the_batch(spool):
    step = Step(200, {"accepted": 3, "duplicates": 0, "rejected": []}, truncate=True)
    with ScriptedReceiver(SECRET, step) as rx:
        result = delivery_to(rx.url, spool).send_batch(3)
    assert result.retry_in is not None and spool.depth() == 5
    assert "send failed" in spool.get("last_error")


def test_timeout_keeps_the_batch(spool):
    step = Step(200, {"accepted": 3, "duplicates": 0, "rejected": []}, delay_s=1.5)
    with ScriptedReceiver(SECRET, step) as rx:
        result = delivery_to(rx.url, spool, timeout=(1.0, 0.5)).send_batch(3)
    assert result.retry_in is not None and spool.depth() == 5
    assert "Timeout" in spool.get("last_error")


def test_connection_refused_keeps_the_batch(spool):
    with ScriptedReceiver(SECRET) as rx:
        url = rx.url
    result = delivery_to(url, spool).send_batch(3)
    assert result.retry_in is not None and spool.depth() == 5
    assert "ConnectionError" in spool.get("last_error")


def test_backoff_grows_with_jitter_and_resets():
    backoff = Backoff(base_s=5, cap_s=900, rng=random.Random(3))
    delays = [backoff.failed() for _ in range(10)]
    for n, delay in enumerate(delays):
        base = min(900, 5 * 2**n)
        assert base / 2 <= delay <= base
    assert len(set(delays)) == len(delays)
    backoff.succeeded()
    assert backoff.failed() <= 5


def test_retry_after_forms():
    now = email.utils.parsedate_to_datetime("Fri, 15 Jan 2027 08:00:00 GMT").timestamp()
    assert parse_retry_after("30", now) == 30
    assert parse_retry_after("Fri, 15 Jan 2027 08:00:30 GMT", now) == 30
    assert parse_retry_after("Fri, 15 Jan 2027 07:00:00 GMT", now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_stale_timestamp_sets_the_clock_and_retries(spool):
    server_time = int(time.time()) + 3600  # our clock is an hour slow
    stale = Step(401, {"error": "stale_timestamp", "message": "clock", "server_time": server_time})
    before = [i.ts for i in spool.peek(5)]
    with ScriptedReceiver(SECRET, stale, clock_offset=3600) as rx:
        delivery = delivery_to(rx.url, spool)
        first = delivery.send_batch(3)
        second = delivery.send_batch(3)
    assert first.retry_in is None and first.sent == 0  # corrected: retry at once
    assert second.sent == 3
    assert abs(spool.get("clock_offset") - 3600) <= 2
    # Nothing was stored by the refused request, so every unsent reading moved with the clock.
    assert [r["ts"] for r in rx.requests[1]["readings"]] == [ts + spool.get("clock_offset") for ts in before[:3]]
    assert abs(rx.requests[1]["_timestamp"] - server_time) <= 2


def test_a_reading_that_may_be_stored_keeps_its_ts(spool):
    server_time = int(time.time()) + 3600
    before = [i.ts for i in spool.peek(5)]
    script = [
        Step(502, b"bad gateway", signed=False),  # may or may not have reached the store
        Step(401, {"error": "stale_timestamp", "message": "clock", "server_time": server_time}),
    ]
    with ScriptedReceiver(SECRET, *script, clock_offset=3600) as rx:
        delivery = delivery_to(rx.url, spool)
        delivery.send_batch(2)
        delivery.send_batch(2)
        delivery.send_batch(5)
    offset = spool.get("clock_offset")
    assert [r["ts"] for r in rx.requests[2]["readings"]] == before[:2] + [ts + offset for ts in before[2:]]


def test_seq_conflict_renumbers_and_retries(spool):
    conflict = Step(409, {"error": "seq_conflict", "message": "counter restarted", "next_seq": 500, "conflicts": [0]})
    with ScriptedReceiver(SECRET, conflict) as rx:
        delivery = delivery_to(rx.url, spool)
        assert delivery.send_batch(3).retry_in is None
        assert delivery.send_batch(3).sent == 3
    assert [r["seq"] for r in rx.requests[1]["readings"]] == [500, 501, 502]
    assert [r["t"] for r in rx.requests[1]["readings"]] == [r["t"] for r in rx.requests[0]["readings"]]
    assert [i.seq for i in spool.peek(5)] == [503, 504]
    assert spool.append(int(time.time()), 200, 500) == 505
    assert spool.get("dropped") == 0


def test_a_receiver_that_keeps_answering_409_gets_the_backoff(spool):
    conflict = Step(409, {"error": "seq_conflict", "message": "again", "next_seq": 500})
    with ScriptedReceiver(SECRET, conflict, conflict, conflict) as rx:
        delivery = delivery_to(rx.url, spool)
        results = [delivery.send_batch(3) for _ in range(3)]
    assert [r.retry_in is None for r in results] == [True, True, False]
    assert spool.depth() == 5


def test_signed_other_4xx_is_poison(spool):
    bad = Step(400, {"error": "invalid_body", "message": "readings[0].t must be a number"})
    with ScriptedReceiver(SECRET, bad) as rx:
        result = delivery_to(rx.url, spool).send_batch(3)
    assert result.retry_in is None
    assert [i.seq for i in spool.peek(5)] == [3, 4]
    assert spool.get("dropped") == spool.get("drop_poison") == 3
    assert "400 invalid_body: readings[0].t must be a number" in spool.get("last_error")
    with ScriptedReceiver(SECRET) as rx:
        delivery_to(rx.url, spool).send_batch(3)
    assert rx.requests[0]["status"]["dropped"] == rx.requests[0]["status"]["drop_poison"] == 3


def test_signed_2xx_server_time_sets_a_far_off_clock(spool):
    far = int(time.time()) - 7200
    step = Step(200, {"accepted": 2, "duplicates": 0, "rejected": [], "server_time": far})
    with ScriptedReceiver(SECRET, step) as rx:
        delivery_to(rx.url, spool).send_batch(2)
    assert abs(spool.get("clock_offset") + 7200) <= 2


def test_unsigned_server_time_never_moves_the_clock(spool):
    step = Step(401, {"error": "stale_timestamp", "server_time": 1}, signed=False)
    with ScriptedReceiver(SECRET, step) as rx:
        delivery_to(rx.url, spool).send_batch(2)
    assert spool.get("clock_offset") is None
