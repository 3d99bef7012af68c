"""The dashboard in headless Chromium against `dhtlink serve`'s endpoint holding a bench run.

Run alone with `pytest -m browser`.
"""

import csv
import io
import json
import re
import time
from datetime import UTC, datetime

import pytest
import requests

from cloud.local import LocalEndpoint
from cloud.local.files import STORE_FILE
from cloud.stores.base import Delivery
from cloud.stores.sqlite import SQLiteStore
from tests.dashboard.conftest import launch

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def stored(data_dir, device_id):
    store = SQLiteStore(data_dir / STORE_FILE)
    items, cursor = store.query_readings(device_id, limit=1000)
    assert cursor is None
    return sorted(items, key=lambda r: (r["ts"], r["seq"]))


def bearer(endpoint):
    return {"Authorization": f"Bearer {endpoint.read_token}"}


def sign_in(page, endpoint, token):
    page.goto(endpoint.url + "/")
    page.fill("#token", token)
    page.click("#sign-in-form button")


@pytest.fixture
def page(playwright, served, tmp_path):
    context = launch(playwright)
    page = context.new_page()
    urls = []
    page.on("request", lambda request: urls.append(request.url))
    page.requested = urls
    yield page
    page.screenshot(path=str(tmp_path / "last.png"), full_page=True)
    context.close()


def test_a_wrong_token_shows_an_error_and_is_not_kept(page, served):
    sign_in(page, served, "not-the-token")
    error = page.locator("#sign-in-error")
    error.wait_for(state="visible")
    assert "refused" in error.inner_text() and "401" in error.inner_text()
    assert page.evaluate("sessionStorage.length") == 0
    assert page.locator("#fleet").is_hidden()


def test_fleet_lists_the_bench_devices_and_the_token_stays_out_of_urls_and_logs(page, served, bench_data):
    sign_in(page, served, served.read_token)
    page.wait_for_selector("#fleet-table tbody tr")
    rows = page.locator("#fleet-table tbody tr")
    assert [rows.nth(i).get_attribute("data-device") for i in range(rows.count())] == ["bench-01", "bench-02"]
    first = rows.nth(0).locator("td")
    cells = [first.nth(i).inner_text() for i in range(first.count())]
    api = requests.get(f"{served.url}/devices", headers=bearer(served), timeout=10).json()
    device = api["devices"][0]
    assert cells[2] == f"{device['last_reading']['t']:.1f} °C" and cells[3] == f"{device['last_reading']['h']:.1f} %"
    assert "ago" in cells[1] and cells[5] == device["last_status"]["fw"]
    assert cells[4] == f"{device['last_status']['rssi']} dBm"
    assert cells[6] == str(device["recent"]["sensor_errors"]) and cells[7] == str(device["recent"]["dropped"])
    assert all(served.read_token not in url for url in page.requested)
    assert served.read_token not in served.log_text()
    page.click("#sign-out")
    page.locator("#sign-in").wait_for(state="visible")
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    assert page.locator("#sign-in").is_visible(), "after sign-out a reload asks again"


def test_the_chart_draws_the_stored_readings_and_the_csv_matches_the_store(page, served, bench_data, tmp_path):
    readings = stored(bench_data, "bench-01")
    sign_in(page, served, served.read_token)
    page.wait_for_selector("#fleet-table tbody tr")
    page.click("a[href='#/device/bench-01']")
    page.wait_for_function("() => window.dhtlink.series && window.dhtlink.charts.t")
    # The 24-hour view: 5-minute means of the same readings, as the API gives them.
    day = page.evaluate("window.dhtlink.series")
    api = requests.get(
        f"{served.url}/data/series",
        params={"device_id": "bench-01", "from": day["from"], "to": day["to"], "points": 1000},
        headers=bearer(served),
        timeout=10,
    ).json()
    drawn = page.evaluate("[window.dhtlink.charts.t.data, window.dhtlink.charts.h.data]")
    assert drawn[0] == [api["ts"], api["t"], api["t_min"], api["t_max"]]
    assert drawn[1] == [api["ts"], api["h"], api["h_min"], api["h_max"]]
    assert sum(n for n in api["n"] if n) == len(readings)
    # A custom range of a few hours: the readings themselves, every one drawn.
    start, end = readings[0]["ts"] - 600, readings[-1]["ts"] + 600
    local = "new Date({} * 1000 - new Date({} * 1000).getTimezoneOffset() * 60000).toISOString().slice(0, 16)"
    page.fill("#from", page.evaluate(local.format(start, start)))
    page.fill("#to", page.evaluate(local.format(end + 60, end + 60)))
    page.click("#custom-range button")
    page.wait_for_function("() => window.dhtlink.series.step === 0")
    xs, ts_drawn = page.evaluate("[window.dhtlink.charts.t.data[0], window.dhtlink.charts.t.data[1]]")
    points = [(x, t) for x, t in zip(xs, ts_drawn, strict=True) if t is not None]
    assert points == [(r["ts"], r["t"]) for r in readings]
    hs = page.evaluate("window.dhtlink.charts.h.data[1]")
    assert [h for h in hs if h is not None] == [r["h"] for r in readings]
    page.screenshot(path=str(tmp_path / "device.png"))
    asked = len(page.requested)
    with page.expect_download() as download:
        page.click("#csv")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text())))
    csv_requests = [url for url in page.requested[asked:] if "/data" in url]
    assert len(csv_requests) == 1 and "/data/csv?" in csv_requests[0], "the CSV is one request"
    # Dragging across the chart zooms in: a narrower range, fetched anew.
    box = page.locator("#chart-t .u-over").bounding_box()
    before = page.evaluate("() => [window.dhtlink.series.from, window.dhtlink.series.to]")
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    page.wait_for_function(f"() => window.dhtlink.series.from > {before[0]} + 60")
    after = page.evaluate("() => [window.dhtlink.series.from, window.dhtlink.series.to]")
    assert before[0] < after[0] < after[1] < before[1]
    page.locator("#chart-t .u-over").dblclick()
    page.wait_for_function("() => window.dhtlink.series.to - window.dhtlink.series.from === 86400")
    assert download.value.suggested_filename.startswith("bench-01_")
    assert [
        (r["time_utc"], int(r["unix_s"]), int(r["seq"]), float(r["temperature_c"]), float(r["humidity_pct"]))
        for r in rows
    ] == [
        (datetime.fromtimestamp(r["ts"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), r["ts"], r["seq"], r["t"], r["h"])
        for r in readings
    ]


def test_phone_width_has_no_sideways_page_scroll(playwright, served):
    context = launch(playwright, viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        sign_in(page, served, served.read_token)
        page.wait_for_selector("#fleet-table tbody tr")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.click("a[href='#/device/bench-02']")
        page.wait_for_function("() => window.dhtlink.charts.h")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.evaluate("window.dhtlink.charts.t.width") <= 390
    finally:
        context.close()


def test_static_files_are_compressed_pinned_and_within_budget(served):
    page = requests.get(served.url + "/", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert page.headers["content-encoding"] == "gzip" and "script-src 'self'" in page.headers["content-security-policy"]
    names = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    # Nothing from elsewhere: the page's own files, in-page links, and the favicon inline.
    assert all(name.startswith(("static/", "#", "data:image/svg+xml,")) for name in names), names
    assert any(name.startswith("data:image/svg+xml,") for name in re.findall(r'rel="icon" href="([^"]*)"', page.text))
    total = int(page.headers["content-length"])
    for name in names:
        if name.startswith("static/"):
            asset = requests.get(f"{served.url}/{name}", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10)
            assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
            total += int(asset.headers["content-length"])
    assert total < 40 * 1024, f"page and scripts are {total} bytes compressed"
    assert json.loads(requests.get(served.url + "/static/../read-token", timeout=10).text)["error"] == "not_found"


def test_a_fleet_of_thousands_is_paged_sorted_and_filtered_by_the_server(playwright, tmp_path):
    with LocalEndpoint(tmp_path / "big", read_token="big-fleet-token") as endpoint:
        store = endpoint.store
        db = store._connect()
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO devices (device_id, secret, created_at) VALUES (?, ?, 1)",
            [(f"node-{i:04d}", "ab" * 32) for i in range(1500)],
        )
        db.execute("COMMIT")
        now = int(time.time())
        for i in range(1500):
            if i != 42:  # node-0042 has never been seen
                store.record_delivery(store.get_device(f"node-{i:04d}"), Delivery(now - i, {"rssi": -60}, []))
        context = launch(playwright)
        try:
            page = context.new_page()
            asked = []
            page.on("request", lambda request: asked.append(request.url))
            sign_in(page, endpoint, "big-fleet-token")
            page.wait_for_selector("#fleet-table tbody tr")
            rows = page.locator("#fleet-table tbody tr")
            assert rows.count() == 50 and page.inner_text("#page-info") == "devices 1–50"
            page.click("#next")
            page.wait_for_function("() => document.querySelector('#page-info').textContent.startsWith('devices 51')")
            assert rows.first.get_attribute("data-device") == "node-0050"
            page.click("#prev")
            page.wait_for_function("() => document.querySelector('#page-info').textContent.startsWith('devices 1–')")
            assert rows.first.get_attribute("data-device") == "node-0000"
            page.click("th[data-sort=last_seen] button")  # newest first
            page.wait_for_function(
                "() => document.querySelector('#fleet-table tbody tr').dataset.device === 'node-0000'"
            )
            assert page.locator("th[data-sort=last_seen]").get_attribute("aria-sort") == "descending"
            page.click("th[data-sort=last_seen] button")  # oldest first: never seen leads
            page.wait_for_function(
                "() => document.querySelector('#fleet-table tbody tr').dataset.device === 'node-0042'"
            )
            assert rows.nth(1).get_attribute("data-device") == "node-1499"
            page.select_option("#status", "stale")
            page.wait_for_function("() => document.querySelectorAll('#fleet-table tbody tr').length === 1")
            assert "sort=last_seen" in page.url and "status=stale" in page.url
            devices = [url for url in asked if "/devices?" in url]
            assert devices and all(
                re.search(r"limit=(\d+)", url) and int(re.search(r"limit=(\d+)", url)[1]) <= 100 for url in devices
            )
            assert len(devices) < 10, "a page at a time, never the whole fleet"
        finally:
            context.close()
