"""Seq conflicts through the ingest handler, on every store: a board whose counter restarted
gets a signed 409 with next_seq, nothing of the batch is stored, and renumbering lands."""

import json

import pytest

from cloud import ingest, signing
from tests.cloud import helpers
from tests.cloud.helpers import DEVICE, SECRET, body_of, post_event, reading

RETENTION_S = 400 * 86400
NOW = 1_800_000_000  # fixed: a test never depends on when it was collected or how long the run took


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch):
    monkeypatch.setattr(helpers, "clock", lambda: NOW)


def send(store, readings, now=NOW):
    event = post_event(body_of(readings, status={"fw": "0.2.0", "boot": 2}), timestamp=now)
    response = ingest.handle(event, store, now, RETENTION_S)
    body = response["body"].encode()
    assert signing.verify_answer(
        SECRET, event["headers"]["x-signature"], response["statusCode"], body, response["headers"].get("X-Signature")
    ), "every answer to a verified request is signed"
    return response["statusCode"], json.loads(body)


def stored(store):
    return {i["seq"]: i for i in store.query_readings(DEVICE, limit=1000)[0]}


def test_a_restarted_counter_gets_a_signed_409_and_renumbering_lands(store):
    store.add_device(DEVICE, SECRET, NOW)
    old = [reading(seq, ts=NOW - 3000 + seq * 60) for seq in range(6)]
    assert send(store, old, NOW - 60)[0] == 200
    row_before, readings_before = store.get_device(DEVICE), stored(store)

    restarted = [reading(seq, ts=NOW - 120 + seq * 60, t=19.5) for seq in range(3)]  # flash erased: from 0 again
    code, answer = send(store, restarted)
    assert (code, answer) == (
        409,
        {
            "error": "seq_conflict",
            "message": "seq 0, 1, 2 already hold other readings: renumber from next_seq",
            "next_seq": 6,
            "conflicts": [0, 1, 2],
        },
    )
    assert stored(store) == readings_before
    assert store.get_device(DEVICE) == row_before, "a refused request leaves the device row as it was"

    renumbered = [{**r, "seq": answer["next_seq"] + i} for i, r in enumerate(restarted)]
    code, answer = send(store, renumbered)
    assert (code, answer["accepted"], answer["duplicates"]) == (200, 3, 0)
    after = stored(store)
    assert sorted(after) == list(range(9)) and all(after[s] == readings_before[s] for s in range(6))
    assert store.get_device(DEVICE)["max_seq"] == 8


def test_one_conflict_refuses_the_new_and_the_resent_readings_with_it(store):
    store.add_device(DEVICE, SECRET, NOW)
    first = [reading(seq, ts=NOW - 600 + seq) for seq in range(4)]
    send(store, first)
    mixed = [first[2], first[3], {**first[1], "h": 10.0}, reading(4, ts=NOW - 10), reading(5, ts=NOW - 5)]
    code, answer = send(store, mixed)
    assert (code, answer["conflicts"], answer["next_seq"]) == (409, [1], 4)
    assert sorted(stored(store)) == [0, 1, 2, 3]
    code, answer = send(store, [first[2], first[3], reading(4, ts=NOW - 10), reading(5, ts=NOW - 5)])
    assert (code, answer["accepted"], answer["duplicates"]) == (200, 2, 2), "an identical re-send stays a duplicate"


def test_a_resend_after_a_clock_correction_of_the_unsent_only_is_no_conflict(store):
    # The board never changes the ts of a reading once sent, so a re-send is byte for byte.
    store.add_device(DEVICE, SECRET, NOW)
    sent = [reading(seq, ts=NOW - 900 + seq, t=20.0 + seq / 10) for seq in range(3)]
    send(store, sent)
    code, answer = send(store, [*sent, reading(3, ts=NOW - 1)])
    assert (code, answer["accepted"], answer["duplicates"]) == (200, 1, 3)


def test_a_batch_of_only_implausible_readings_is_answered_without_a_write(store):
    store.add_device(DEVICE, SECRET, NOW)
    code, answer = send(store, [reading(0, t=99.0), reading(1, h=-5.0)])
    assert (code, answer["accepted"], len(answer["rejected"])) == (200, 0, 2)


def test_after_a_reading_at_the_top_seq_next_seq_is_one_the_receiver_takes(store):
    """The issue's case: a reading with seq 2**53 - 1 is stored; a conflict then named
    next_seq 2**53, which the receiver refuses (400): the board dropped the batch as poison.
    next_seq is one past the highest seq below 2**32, and the renumbered batch lands."""
    store.add_device(DEVICE, SECRET, NOW)
    assert send(store, [reading(seq, ts=NOW - 900 + seq) for seq in range(5)])[0] == 200
    assert send(store, [reading(2**53 - 1, ts=NOW - 800)])[0] == 200
    restarted = [reading(seq, ts=NOW - 60 + seq, t=19.5) for seq in range(3)]
    code, answer = send(store, restarted)
    assert (code, answer["next_seq"], answer["conflicts"]) == (409, 5, [0, 1, 2])
    renumbered = [{**r, "seq": answer["next_seq"] + i} for i, r in enumerate(restarted)]
    code, answer = send(store, renumbered)
    assert (code, answer["accepted"]) == (200, 3)


def test_only_seqs_at_or_above_the_ceiling_give_next_seq_0(store):
    store.add_device(DEVICE, SECRET, NOW)
    assert send(store, [reading(2**32 + 7, ts=NOW - 800)])[0] == 200
    code, answer = send(store, [reading(2**32 + 7, ts=NOW - 700, t=30.0)])
    assert (code, answer["next_seq"]) == (409, 0)
