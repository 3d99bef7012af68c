"""The fleet page's store contract: GET /devices sorted by id or last seen, filtered to stale
devices or problems, a page at a time (cloud/stores/base.py states the definitions)."""

import time

import pytest

from cloud.stores.base import (
    RECENT_WINDOW_S,
    BadCursor,
    Delivery,
    NoSuchDevice,
    is_problem,
    is_stale,
    public_device,
    stale_after_s,
)


def seen(store, device_id, at, status=None):
    store.record_delivery(store.get_device(device_id), Delivery(at, status, []))


def every_page(store, limit, **query):
    ids, cursor = [], None
    while True:
        rows, cursor = store.page_devices(limit, cursor, **query)
        assert len(rows) <= limit
        ids += [row["device_id"] for row in rows]
        if cursor is None:
            return ids


def test_pages_by_id_cover_the_fleet_once_in_order(store):
    for i in (5, 1, 4, 2, 3, 0, 6):
        store.add_device(f"d{i}", "ab" * 32, 1)
    assert every_page(store, 3) == [f"d{i}" for i in range(7)]
    assert every_page(store, 3, sort="id", status="all") == [f"d{i}" for i in range(7)]
    assert every_page(store, 7) == [f"d{i}" for i in range(7)]


def test_last_seen_puts_never_seen_devices_first_and_the_reverse_is_exact(store):
    now = int(time.time())
    for name in ("a", "b", "c", "d", "e", "f"):
        store.add_device(name, "ab" * 32, 1)
    seen(store, "a", now - 50)
    seen(store, "c", now - 500)
    seen(store, "d", now - 50)  # a tie with a: device id decides
    seen(store, "f", now - 5)
    oldest_first = ["b", "e", "c", "a", "d", "f"]
    for limit in (1, 2, 4, 6, 100):
        assert every_page(store, limit, sort="last_seen") == oldest_first
        assert every_page(store, limit, sort="-last_seen") == oldest_first[::-1]


def test_a_cursor_of_another_sort_is_refused(store):
    now = int(time.time())
    for name in ("a", "b", "c"):
        store.add_device(name, "ab" * 32, 1)
        seen(store, name, now)
    _, by_seen = store.page_devices(1, sort="last_seen")
    _, by_id = store.page_devices(1)
    assert by_seen and by_id
    with pytest.raises(BadCursor):
        store.page_devices(1, by_seen, sort="id")
    with pytest.raises(BadCursor):
        store.page_devices(1, by_id, sort="-last_seen")
    with pytest.raises(BadCursor):
        store.page_devices(1, by_seen, sort="-last_seen")


def test_stale_is_three_missed_posts_by_the_devices_own_settings(store):
    now = int(time.time())
    assert stale_after_s(None) == 3600  # 20 readings a minute apart, a POST at least every 20 min
    for name in ("fresh", "quiet", "never", "slow"):
        store.add_device(name, "ab" * 32, 1)
    seen(store, "fresh", now - 60)
    seen(store, "quiet", now - 7200)
    # A POST every 7200 s (the batch delay comes before 20 readings 10 min apart): stale after 6 h.
    store.set_desired("slow", {"interval_s": 600, "max_batch_delay_s": 7200})
    seen(store, "slow", now - 7200)
    assert every_page(store, 2, status="stale") == ["never", "quiet"]
    assert every_page(store, 2, sort="-last_seen", status="stale") == ["quiet", "never"]
    rows = {row["device_id"]: public_device(row, now) for row in store.list_devices()}
    assert {name for name, row in rows.items() if row["stale"]} == {"never", "quiet"}
    assert rows["slow"]["stale_after_s"] == 21600 and rows["fresh"]["stale_after_s"] == 3600


def test_problems_are_stale_devices_and_errors_in_the_last_day(store):
    now = int(time.time())
    for name in ("fine", "erring", "healed", "never"):
        store.add_device(name, "ab" * 32, 1)
    seen(store, "fine", now - RECENT_WINDOW_S - 7200, {"sensor_errors": 4, "dropped": 0})
    seen(store, "fine", now - 60, {"sensor_errors": 4, "dropped": 0})  # no growth in a day: lifetime only
    seen(store, "erring", now - 120, {"sensor_errors": 4, "dropped": 0})
    seen(store, "erring", now - 60, {"sensor_errors": 4, "dropped": 2, "drop_full": 2})
    seen(store, "healed", now - RECENT_WINDOW_S - 7200, {"sensor_errors": 9})
    seen(store, "healed", now - 60, {"sensor_errors": 9})
    assert every_page(store, 1, status="problems") == ["erring", "never"]
    fine = public_device(store.get_device("fine"), now)
    assert not fine["problem"] and fine["recent"]["sensor_errors"] == 0 and fine["last_status"]["sensor_errors"] == 4
    erring = public_device(store.get_device("erring"), now)
    assert erring["recent"]["dropped"] == 2 and erring["recent"]["drop_full"] == 2
    assert erring["last_status"]["dropped"] == 2
    healed = public_device(store.get_device("healed"), now)
    assert (
        not healed["problem"] and healed["recent"]["sensor_errors"] == 0 and healed["last_status"]["sensor_errors"] == 9
    )


def test_a_counter_that_restarts_counts_whole_and_old_hours_fall_out(store):
    now = int(time.time())
    store.add_device("a", "ab" * 32, 1)
    seen(store, "a", now - RECENT_WINDOW_S - 7200, {"sensor_errors": 10})
    seen(store, "a", now - 600, {"sensor_errors": 12})  # +2
    seen(store, "a", now - 300, {"sensor_errors": 1})  # power cut: RTC counters restart, +1
    row = store.get_device("a")
    assert public_device(row, now)["recent"]["sensor_errors"] == 3
    assert is_problem(row, now) and not is_stale(row, now)
    assert public_device(row, now + RECENT_WINDOW_S + 3600)["recent"]["sensor_errors"] == 0


def test_names_and_rooms_are_set_cleared_and_kept_apart_from_the_rest(store):
    store.add_device("a", "ab" * 32, 1)
    store.set_desired("a", {"interval_s": 120})
    store.set_labels("a", {"name": "Greenhouse north", "room": "Greenhouse"})
    store.set_labels("a", {"room": "Shed"})
    row = public_device(store.get_device("a"))
    assert (row["name"], row["room"]) == ("Greenhouse north", "Shed")
    assert row["settings"]["desired"] == {"interval_s": 120} and store.get_device("a")["secret"] == "ab" * 32
    store.set_labels("a", {"name": ""})
    assert public_device(store.get_device("a"))["name"] == ""
    with pytest.raises(NoSuchDevice):
        store.set_labels("nobody", {"name": "x"})


def test_find_device_reads_one_row_with_its_labels_and_counters_or_none(store):
    # DynamoDB answers it from the by_id index (the read function may not GetItem the registry).
    now = int(time.time())
    store.add_device("d1", "ab" * 32, 1)
    store.add_device("d2", "ab" * 32, 1)
    store.set_labels("d1", {"name": "Kitchen", "room": "Ground floor"})
    seen(store, "d1", now - 10, {"sensor_errors": 2})
    row = store.find_device("d1")
    assert (row["device_id"], row["name"], row["room"]) == ("d1", "Kitchen", "Ground floor")
    assert row["last_seen"] == now - 10 and row["errors_at"] == now - 10 and is_problem(row, now)
    assert public_device(row, now)["recent"]["sensor_errors"] == 2
    assert store.find_device("d3") is None
