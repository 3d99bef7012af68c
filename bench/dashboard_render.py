"""How long the dashboard takes to draw 30 days of one-minute readings, and what it transfers.

A SQLite store gets 30 days of readings a minute apart for one device (43,200 readings,
stored and summarised batch by batch as ingest does), plus a few other devices so the
fleet page has something to show. `dhtlink serve`'s endpoint serves it; Debian's headless
chromium, driven by Playwright, signs in, opens the device and switches to 30 days.

Prints: time from the click to both charts drawn (median of --runs), the series answer's
size, the items the store read for it, every byte the browser received for the whole
visit (page, scripts, API answers; headers included), compressed as sent, the 30-day CSV
download (one request) and the page's own size compressed as served.
The browser is a person in Berlin with en-GB (tests/dashboard/conftest.py).
With --screenshots DIR it also writes the README's pictures (desktop and phone).

    .venv/bin/python bench/dashboard_render.py [--runs 5] [--screenshots docs/img] [--json]
"""

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud import observability, series  # noqa: E402
from cloud.local import LocalEndpoint  # noqa: E402
from cloud.protocol import Reading  # noqa: E402
from cloud.stores.base import Delivery  # noqa: E402
from host_tools import registry  # noqa: E402
from tests.dashboard.conftest import launch  # noqa: E402

DEVICE = "greenhouse-01"
MINUTES = 30 * 1440


def fill(data_dir: Path, now: int) -> None:
    store = registry.local_store(data_dir)
    rng = random.Random(1)
    start = now - MINUTES * 60
    fleet = {DEVICE: MINUTES, "cellar": 600, "attic": 300, "garage-door": 120, "shed": 0}
    for index, (device_id, count) in enumerate(fleet.items()):
        registry.add_device(store, device_id)
        t, h, seq = 18.0 + index, 50.0, 0
        readings = []
        for minute in range(MINUTES - count, MINUTES):
            if device_id == DEVICE and 20000 <= minute < 20300:
                continue  # a five-hour outage, drawn as a gap
            t = min(35.0, max(5.0, t + rng.gauss(0, 0.08) + 0.02 * (((minute // 60) % 24) < 12) - 0.01))
            h = min(95.0, max(20.0, h + rng.gauss(0, 0.15)))
            readings.append(Reading(seq, start + minute * 60, round(t, 1), round(h, 1)))
            seq += 1
        for first in range(0, len(readings), 20):
            batch = readings[first : first + 20]
            device = store.get_device(device_id)
            stored = store.put_readings(device_id, batch, batch[-1].ts, batch[-1].ts + 400 * 86400)
            status = {"fw": "0.2.0", "rssi": -50 - 7 * index, "heap_free": 41000 - 900 * index, "boot": 3}
            status.update({"sensor_errors": index // 2, "dropped": 0})
            store.record_delivery(device, Delivery(batch[-1].ts, status, stored))
            store.update_rollups(device_id, batch, batch[-1].ts + 400 * 86400)
    # "garage-door" stopped reporting two hours ago: a stale row. "attic" drops readings now.
    store.record_delivery(store.get_device("garage-door"), Delivery(now - 7200, None, []))
    attic = store.get_device("attic")
    status = {**attic["last_status"], "dropped": 4, "drop_full": 3, "drop_clock": 1, "sensor_errors": 3}
    store.record_delivery(attic, Delivery(now - 60, status, []))
    store.set_labels(DEVICE, {"name": "Greenhouse north", "room": "Greenhouse"})
    store.set_labels("cellar", {"name": "Wine cellar", "room": "Basement"})


def one_visit(playwright, endpoint: LocalEndpoint, screenshots: Path | None) -> dict:
    context = launch(playwright, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    received = []
    asked_for = []
    page.on("requestfinished", lambda request: received.append((request.url, request.sizes())))
    page.on("request", lambda request: asked_for.append(request.url))
    page.goto(endpoint.url + "/")
    page.fill("#token", endpoint.read_token)
    page.click("#sign-in-form button")
    page.wait_for_selector("#fleet-table tbody tr")
    if screenshots:
        page.screenshot(path=str(screenshots / "dashboard-fleet.png"))
    page.click(f"a[href='#/device/{DEVICE}']")
    page.wait_for_function("() => window.dhtlink.charts.h")
    started = time.perf_counter()
    page.click("[data-range='2592000']")
    page.wait_for_function("() => window.dhtlink.series.step === 3600 && window.dhtlink.charts.h", polling="raf")
    draw_s = time.perf_counter() - started
    points = page.evaluate("window.dhtlink.charts.t.data[0].length")
    if screenshots:
        page.screenshot(path=str(screenshots / "dashboard-device.png"), full_page=True)
    total = sum(s["responseBodySize"] + s["responseHeadersSize"] for _, s in received)
    series_bytes = [s["responseBodySize"] for url, s in received if "/data/series" in url][-1]
    asked = len(asked_for)
    started = time.perf_counter()
    with page.expect_download() as download:
        page.click("#csv")
    rows = download.value.path().read_text().count("\n") - 1
    csv_s = time.perf_counter() - started
    csv_requests = len([url for url in asked_for[asked:] if "/data" in url])
    context.close()
    return {
        "draw_ms": draw_s * 1000,
        "bytes": total,
        "series_bytes": series_bytes,
        "points": points,
        "csv_ms": csv_s * 1000,
        "csv_rows": rows,
        "csv_requests": csv_requests,
    }


def phone_screenshots(playwright, endpoint: LocalEndpoint, screenshots: Path) -> None:
    context = launch(playwright, viewport={"width": 390, "height": 844}, touch=True)
    page = context.new_page()
    page.goto(endpoint.url + "/")
    page.fill("#token", endpoint.read_token)
    page.click("#sign-in-form button")
    page.wait_for_selector("#fleet-table tbody tr")
    page.screenshot(path=str(screenshots / "dashboard-fleet-phone.png"))
    page.goto(f"{endpoint.url}/#/device/{DEVICE}?range=604800")
    page.wait_for_function("() => window.dhtlink.charts.h")
    page.screenshot(path=str(screenshots / "dashboard-device-phone.png"), full_page=True)
    context.close()


def page_bytes(endpoint: LocalEndpoint) -> int:
    """The page and its files, gzip as served: the dashboard's size budget (40 KB)."""
    import re

    import requests

    gz = {"Accept-Encoding": "gzip"}
    page = requests.get(endpoint.url + "/", headers=gz, timeout=10)
    total = int(page.headers["content-length"])
    for name in re.findall(r'(?:src|href)="(static/[^"]+)"', page.text):
        total += int(
            requests.get(f"{endpoint.url}/{name}", headers=gz, stream=True, timeout=10).headers["content-length"]
        )
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--screenshots", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    now = int(time.time())
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        fill(Path(tmp), now)
        fill_s = time.perf_counter() - started

        class Counting:
            items = 0

            def __getattr__(self, name):
                return getattr(store, name)

            def query_readings(self, *a, **k):
                items, cursor = store.query_readings(*a, **k)
                Counting.items += len(items)
                return items, cursor

            def query_rollups(self, *a, **k):
                items = store.query_rollups(*a, **k)
                Counting.items += len(items)
                return items

        store = registry.local_store(Path(tmp))
        series.series(Counting(), DEVICE, now - 30 * 86400, now, 1000)
        observability.set_output(io.StringIO())  # the endpoint's request log is not the bench's output
        with LocalEndpoint(tmp) as endpoint, sync_playwright() as playwright:
            if args.screenshots:
                args.screenshots.mkdir(parents=True, exist_ok=True)
            visits = [one_visit(playwright, endpoint, args.screenshots if i == 0 else None) for i in range(args.runs)]
            if args.screenshots:
                phone_screenshots(playwright, endpoint, args.screenshots)
            served = page_bytes(endpoint)
    result = {
        "readings": MINUTES - 300,
        "fill_s": round(fill_s, 1),
        "store_items_read_for_30_days": Counting.items,
        "points_drawn": visits[0]["points"],
        "draw_ms_median": round(statistics.median(v["draw_ms"] for v in visits), 1),
        "draw_ms_runs": [round(v["draw_ms"], 1) for v in visits],
        "series_answer_bytes": visits[0]["series_bytes"],
        "visit_bytes_median": int(statistics.median(v["bytes"] for v in visits)),
        "csv_ms_median": round(statistics.median(v["csv_ms"] for v in visits), 1),
        "csv_rows": visits[0]["csv_rows"],
        "csv_requests": visits[0]["csv_requests"],
        "page_gzip_bytes": served,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"dashboard, 30 days of 1-minute readings ({result['readings']} readings), headless chromium")
        print(f"  store items read for the 30-day series  {result['store_items_read_for_30_days']}")
        print(f"  points drawn per chart                  {result['points_drawn']}")
        print(
            f"  click '30 days' -> both charts drawn    {result['draw_ms_median']} ms median {result['draw_ms_runs']}"
        )
        print(f"  series answer                           {result['series_answer_bytes']} bytes")
        print(f"  whole visit received (page+scripts+API) {result['visit_bytes_median']} bytes")
        print(
            f"  30-day CSV download                     {result['csv_ms_median']} ms median, "
            f"{result['csv_rows']} rows in {result['csv_requests']} request(s)"
        )
        print(f"  page + scripts, gzip as served          {result['page_gzip_bytes']} bytes")
        print(f"  load average                            {result['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
