"""Every protocol-v1 server rule: status, JSON error, and what the store holds after."""

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud import ingest, signing
from cloud.stores.sqlite import SQLiteStore
from tests.cloud import helpers
from tests.cloud.helpers import DEVICE, SECRET, body_of, post_event, reading

RETENTION_S = 400 * 86400
NOW = 1_800_000_000  # fixed: a test never depends on when it was collected or how long the run took


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch):
    monkeypatch.setattr(helpers, "clock", lambda: NOW)


@pytest.fixture
def db(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.add_device(DEVICE, SECRET, NOW)
    return store


def call(store, event, now=NOW):
    response = ingest.handle(event, store, now, RETENTION_S)
    return response["statusCode"], json.loads(response["body"])


def stored_seqs(store):
    return sorted(i["seq"] for i in store.query_readings(DEVICE, limit=1000)[0])


def good_body():
    return body_of([reading(1), reading(2)])


def without(name):
    return lambda: post_event(good_body(), headers={name: None})


CASES = [
    # (name, event builder, status, error)
    (
        "oversize body",
        lambda: post_event(body_of([reading(1)], status={"pad": "x" * 33_000})),
        413,
        "payload_too_large",
    ),
    (
        "wrong content type",
        lambda: post_event(good_body(), headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    ),
    ("missing device id", without("x-device-id"), 401, "missing_auth"),
    ("missing timestamp", without("x-timestamp"), 401, "missing_auth"),
    ("missing signature", without("x-signature"), 401, "missing_auth"),
    ("garbled device id", lambda: post_event(good_body(), headers={"x-device-id": "bad id!"}), 401, "bad_auth_header"),
    ("garbled timestamp", lambda: post_event(good_body(), headers={"x-timestamp": "12.5"}), 401, "bad_auth_header"),
    (
        "garbled signature",
        lambda: post_event(good_body(), headers={"x-signature": "sha256=abc"}),
        401,
        "bad_auth_header",
    ),
    ("bad signature", lambda: post_event(good_body(), secret="ff" * 32), 401, "unauthorized"),
    (
        "unknown device",
        lambda: post_event(body_of([reading(1)], device_id="ghost"), device_id="ghost"),
        401,
        "unauthorized",
    ),
    (
        "body changed after signing",
        lambda: {**post_event(good_body()), "body": body_of([reading(9)]).decode()},
        401,
        "unauthorized",
    ),
    (
        "signed for another path",
        lambda: {**post_event(good_body(), path="/prod/data"), "rawPath": "/data"},
        401,
        "unauthorized",
    ),
    ("skewed timestamp", lambda: post_event(good_body(), timestamp=NOW - 301), 401, "stale_timestamp"),
    ("future timestamp", lambda: post_event(good_body(), timestamp=NOW + 400), 401, "stale_timestamp"),
    ("invalid JSON", lambda: post_event(b'{"device_id": "greenhouse-01", "readings": ['), 400, "invalid_json"),
    ("not an object", lambda: post_event(b"[1, 2]"), 400, "invalid_body"),
    ("readings not a list", lambda: post_event(body_of({"seq": 1})), 400, "invalid_body"),
    ("seq as string", lambda: post_event(body_of([{**reading(1), "seq": "1"}])), 400, "invalid_body"),
    ("negative seq", lambda: post_event(body_of([{**reading(1), "seq": -1}])), 400, "invalid_body"),
    ("ts as float", lambda: post_event(body_of([{**reading(1), "ts": 1795389990.5}])), 400, "invalid_body"),
    ("t as bool", lambda: post_event(body_of([{**reading(1), "t": True}])), 400, "invalid_body"),
    ("missing h", lambda: post_event(body_of([{"seq": 1, "ts": NOW, "t": 1.0}])), 400, "invalid_body"),
    ("unknown reading key", lambda: post_event(body_of([{**reading(1), "p": 1013}])), 400, "invalid_body"),
    ("unknown top-level key", lambda: post_event(body_of([reading(1)], extra=1)), 400, "invalid_body"),
    ("status not an object", lambda: post_event(body_of([reading(1)], status=[1])), 400, "invalid_body"),
    ("zero readings", lambda: post_event(body_of([])), 400, "bad_batch_size"),
    ("101 readings", lambda: post_event(body_of([reading(i) for i in range(101)])), 400, "bad_batch_size"),
    (
        "body/header device mismatch",
        lambda: post_event(body_of([reading(1)], device_id="other")),
        400,
        "device_mismatch",
    ),
    (
        "same seq twice in one batch",
        lambda: post_event(body_of([reading(1), reading(1, t=22.0)])),
        400,
        "duplicate_seq",
    ),
]


@pytest.mark.parametrize(("name", "build", "status", "error"), CASES, ids=[c[0] for c in CASES])
def test_request_rules(db, name, build, status, error):
    code, answer = call(db, build())
    assert (code, answer["error"]) == (status, error)
    assert answer["message"]
    assert stored_seqs(db) == [], "a rejected request stores nothing"
    assert db.get_device(DEVICE)["last_seen"] is None


# Rules checked before the signature verified: their answers cannot be signed (no secret
# is known to be the sender's), so a device treats them like any unsigned answer.
UNSIGNED = {"payload_too_large", "unsupported_media_type", "missing_auth", "bad_auth_header", "unauthorized"}


@pytest.mark.parametrize(("name", "build", "status", "error"), CASES, ids=[c[0] for c in CASES])
def test_answers_are_signed_exactly_when_the_request_verified(db, name, build, status, error):
    event = build()
    response = ingest.handle(event, db, NOW, RETENTION_S)
    answer_signature = response["headers"].get("X-Signature")
    if error in UNSIGNED:
        assert answer_signature is None
    else:
        request_signature = event["headers"]["x-signature"]
        assert signing.verify_answer(SECRET, request_signature, status, response["body"].encode(), answer_signature)


def test_an_accepted_batch_is_signed_for_its_request_only(db):
    first, second = post_event(body_of([reading(1)])), post_event(body_of([reading(2)]))
    answers = [ingest.handle(event, db, NOW, RETENTION_S) for event in (first, second)]
    assert [a["statusCode"] for a in answers] == [200, 200]
    assert answers[0]["isBase64Encoded"] is False, "API Gateway must pass the signed body string as is"
    body, answer_signature = answers[0]["body"].encode(), answers[0]["headers"]["X-Signature"]
    assert signing.verify_answer(SECRET, first["headers"]["x-signature"], 200, body, answer_signature)
    assert not signing.verify_answer(SECRET, second["headers"]["x-signature"], 200, body, answer_signature), (
        "an answer replayed to another request does not verify"
    )


def test_unknown_device_and_bad_signature_look_the_same(db):
    _, bad_sig = call(db, post_event(good_body(), secret="ff" * 32))
    _, unknown = call(db, post_event(body_of([reading(1)], device_id="ghost"), device_id="ghost"))
    assert bad_sig == unknown


def test_stale_answer_carries_server_time(db):
    _, answer = call(db, post_event(good_body(), timestamp=NOW - 1000))
    assert answer["server_time"] == NOW


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"t": float("nan")}, "not_finite"),
        ({"h": float("inf")}, "not_finite"),
        ({"t": -40.1}, "t_out_of_range"),
        ({"t": 80.5}, "t_out_of_range"),
        ({"h": -0.1}, "h_out_of_range"),
        ({"h": 100.1}, "h_out_of_range"),
        ({"ts": NOW + 301}, "ts_in_future"),
        ({"ts": NOW - RETENTION_S - 1}, "ts_too_old"),
    ],
)
def test_implausible_readings_are_rejected_alone(db, bad, error):
    body = body_of([reading(1), {**reading(2), **bad}, reading(3)])
    code, answer = call(db, post_event(body))
    assert code == 200
    assert answer["accepted"] == 2 and answer["rejected"] == [{"seq": 2, "error": error}]
    assert stored_seqs(db) == [1, 3]


def test_edges_of_the_ranges_are_valid(db):
    body = body_of([reading(1, t=-40, h=0), reading(2, t=80, h=100), reading(3, ts=NOW + 300)])
    code, answer = call(db, post_event(body))
    assert (code, answer["accepted"], answer["rejected"]) == (200, 3, [])


def test_resend_is_a_duplicate_and_unknown_status_keys_are_fine(db):
    body = body_of([reading(1), reading(2)], status={"fw": "0.1.0", "boot": 3, "future_key": [1, 2]})
    assert call(db, post_event(body))[1]["accepted"] == 2
    code, answer = call(db, post_event(body))
    assert (code, answer["accepted"], answer["duplicates"]) == (200, 0, 2)
    assert stored_seqs(db) == [1, 2]
    row = db.get_device(DEVICE)
    assert row["last_seen"] == NOW and row["last_status"] == {"fw": "0.1.0", "boot": 3}


def test_v1_1_status_counters_are_kept(db):
    counters = {"dropped": 3, "drop_full": 1, "drop_clock": 0, "drop_poison": 2, "unverified": 4}
    status = {"fw": "0.2.0", **counters, "drop_other": 9}
    assert call(db, post_event(body_of([reading(1)], status=status)))[0] == 200
    assert db.get_device(DEVICE)["last_status"] == {"fw": "0.2.0", **counters}
    wrong_type = {**status, "unverified": "4"}  # ignored, as any known key of the wrong type: never a 400
    assert call(db, post_event(body_of([reading(2)], status=wrong_type)))[0] == 200
    assert "unverified" not in db.get_device(DEVICE)["last_status"]


def test_base64_body_is_decoded(db):
    event = post_event(good_body())
    event["body"] = base64.b64encode(good_body()).decode()
    event["isBase64Encoded"] = True
    assert call(db, event)[0] == 200


def test_signed_with_stage_path(db):
    code, _ = call(db, post_event(good_body(), path="/prod/data"))
    assert code == 200


header_values = st.one_of(st.none(), st.text(max_size=80), st.sampled_from([DEVICE, str(NOW), "v1=" + "0" * 64]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    device_id=header_values,
    timestamp=header_values,
    signature=header_values,
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/json; charset=utf-8"]),
)
def test_random_unsigned_requests_never_fail_or_store(db, body, device_id, timestamp, signature, content_type):
    event = {
        "rawPath": "/data",
        "headers": {
            k: v
            for k, v in {
                "x-device-id": device_id,
                "x-timestamp": timestamp,
                "x-signature": signature,
                "content-type": content_type,
            }.items()
            if v is not None
        },
        "body": body.decode("utf-8", "replace"),
        "requestContext": {"http": {"method": "POST"}},
    }
    code, answer = call(db, event)
    assert code < 500 and "error" in answer
    assert stored_seqs(db) == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(
        st.fixed_dictionaries(
            {
                "seq": st.integers(-2, 2**60),
                "ts": st.integers(0, 2**41),
                "t": st.floats(allow_nan=True),
                "h": st.one_of(st.floats(), st.integers(-(10**6), 10**6)),
            }
        ),
        max_size=5,
    )
)
def test_random_signed_bodies_never_fail(db, items):
    code, answer = call(db, post_event(body_of(items)))
    assert code in (200, 400, 409)  # 409: a seq an earlier example stored with other content
    if code == 200:
        assert answer["accepted"] + answer["duplicates"] + len(answer["rejected"]) == len(items)
