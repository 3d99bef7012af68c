"""The dashboard as a person in Berlin sees it (issue 26), on a month of data with an outage,
a device silent since yesterday, one never seen and one dropping readings now: at desktop
and phone size, in en-GB and de-DE. Each test names the defect it holds fixed."""

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from tests.dashboard.conftest import PHONE, launch
from tests.dashboard.month import OUTAGE_H

pytestmark = [pytest.mark.browser, pytest.mark.slow]
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def browse(playwright, month):
    contexts = []

    def open_page(path="#/", **options):
        context = launch(playwright, **options)
        contexts.append(context)
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors
        page.goto(month.url + "/")
        page.fill("#token", month.read_token)
        page.click("#sign-in-form button")
        page.wait_for_selector("#fleet-table tbody tr")
        if path != "#/":
            page.goto(month.url + "/" + path)
        return page

    yield open_page
    for context in contexts:
        context.close()


def charts_drawn(page):
    page.wait_for_function("() => window.dhtlink.charts.t && window.dhtlink.charts.h")


# Read together: a reload (the 30 s refresh, a zone switch) moves the range's end on, and
# the line above the chart is written in the same step as the series it describes.
SERIES_AND_INFO = "[window.dhtlink.series, document.querySelector('#series-info').textContent]"


def hh_mm(ts, zone):
    return datetime.fromtimestamp(ts, zone).strftime("%H:%M")


def test_times_name_their_zone_follow_the_locale_and_switch_to_utc(browse):
    """Defect 1: times in two zones on one screen, unnamed, US dates, 24 h clock beside '4pm' axes."""
    page = browse("#/device/greenhouse-01", locale="de-DE")
    charts_drawn(page)
    series, info = page.evaluate(SERIES_AND_INFO)
    assert hh_mm(series["to"], BERLIN) in info and hh_mm(series["to"], UTC) not in info
    assert "MEZ" in info and "Dez." in info, info  # the zone named; a German date
    assert re.search(r"updated \d\d:\d\d:\d\d MEZ", page.inner_text("#updated"))
    tiles = page.inner_text("#tiles")
    assert "MEZ" in tiles and re.search(r"\d+,\d °C", tiles), tiles  # German decimals
    readout = page.inner_text("#readout")
    assert readout.startswith("Newest: ") and "MEZ" in readout
    hour = series["to"] - series["to"] % 3600
    labels = page.evaluate(
        f"(() => {{ const u = window.dhtlink.charts.t; return u.axes[0].values(u, [{hour}], 0, 50, 3600); }})()"
    )
    assert labels[0].split("\n")[0] == hh_mm(hour, BERLIN), labels  # the axes' zone, 24-hour like the header
    assert not re.search(r"am|pm", " ".join(labels), re.I)
    page.select_option("#zone", "utc")
    page.wait_for_function("() => document.querySelector('#series-info').textContent.includes('UTC')")
    series, info = page.evaluate(SERIES_AND_INFO)
    assert hh_mm(series["to"], UTC) in info and "MEZ" not in info
    assert "Time (UTC)" == page.evaluate("window.dhtlink.charts.t.axes[0].label")
    t = page.evaluate("window.dhtlink.series")["t"]
    page.select_option("#unit", "F")
    page.wait_for_function("() => document.querySelector('#chart-t .u-title').textContent.includes('°F')")
    assert "°F" in page.inner_text("#tiles")
    newest = [v for v in t if v is not None][-1]
    assert f"{newest * 1.8 + 32:.1f}".replace(".", ",") in page.evaluate(
        "window.dhtlink.charts.t.data[1].map(v => v === null ? '' : v.toFixed(1).replace('.', ',')).join(' ')"
    )
    assert not page.errors


def test_phone_fleet_keeps_last_seen_and_stale_in_view_and_a_finger_zooms(browse, month):
    """Defect 2: no touch zoom, 'double-click' advice on a phone, Last seen and stale off-screen."""
    page = browse(viewport=PHONE, touch=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    header = page.locator("th[data-sort=last_seen]").bounding_box()
    assert header["x"] + header["width"] <= PHONE["width"]
    badge = page.locator("tr[data-device=cellar-02] .badge.stale")
    assert badge.inner_text() == "Stale"
    box = badge.bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"], "the stale key is on screen, in words"
    page.goto(month.url + "/#/device/greenhouse-01")
    charts_drawn(page)
    how = page.inner_text("#how")
    assert "finger" in how and "double-click" not in how
    assert page.evaluate("window.dhtlink.charts.t.width") <= PHONE["width"]
    before = page.evaluate("[window.dhtlink.series.from, window.dhtlink.series.to]")
    page.locator("#chart-t").scroll_into_view_if_needed()
    over = page.locator("#chart-t .u-over").bounding_box()
    y = over["y"] + over["height"] / 2
    cdp = page.context.new_cdp_session(page)

    def touch(kind, x):
        points = [] if kind == "touchEnd" else [{"x": x, "y": y}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", over["x"] + over["width"] * 0.3)
    for step in range(1, 6):
        touch("touchMove", over["x"] + over["width"] * (0.3 + 0.08 * step))
    touch("touchEnd", 0)
    page.wait_for_function(f"() => window.dhtlink.series.from > {before[0]} + 600")
    after = page.evaluate("[window.dhtlink.series.from, window.dhtlink.series.to]")
    assert before[0] < after[0] < after[1] < before[1]
    assert f"from={after[0]}" in page.url
    charts_drawn(page)
    page.locator("#chart-t").scroll_into_view_if_needed()
    over = page.locator("#chart-t .u-over").bounding_box()
    page.touchscreen.tap(over["x"] + over["width"] * 0.5, over["y"] + over["height"] / 2)
    page.wait_for_function("() => window.dhtlink.pinned !== null")
    tapped = page.inner_text("#readout")
    assert not tapped.startswith("Newest") and "°C" in tapped and "%" in tapped
    pinned = page.evaluate("window.dhtlink.pinned")
    assert datetime.fromtimestamp(pinned, BERLIN).strftime("%H:%M") in tapped, "the values of the tapped moment"
    assert after[0] < pinned < after[1]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert not page.errors


def test_empty_unknown_and_loading_states_are_words(browse, month):
    """Defects 3 and 4: blank frames and '0 points'; the page not leading with the reading and staleness."""
    page = browse("#/device/cellar-02")
    empty = page.locator("#chart-empty")
    empty.wait_for(state="visible")
    assert "No readings between" in empty.inner_text() and "newest reading is from" in empty.inner_text()
    assert page.locator("#chart-t").is_hidden() and page.locator("#chart-h").is_hidden()
    assert "0 points" not in page.inner_text("main")
    assert page.inner_text("#device-badge").startswith("Stale: silent for")
    tiles = page.inner_text("#tiles")
    assert "Temperature" in tiles and "stale · 30 h ago" in tiles, tiles
    page.goto(month.url + "/#/device/attic-04")
    page.wait_for_function("() => document.querySelector('#chart-empty').textContent.includes('never sent a reading')")
    assert page.inner_text("#device-badge") == "Never seen" and "Temperature" not in page.inner_text("#tiles")
    page.goto(month.url + "/#/device/greenhose-01")
    page.wait_for_function("() => document.querySelector('#chart-empty').textContent.includes('is registered')")
    assert "No device “greenhose-01” is registered" in page.inner_text("#chart-empty")
    assert page.locator("#chart-tools").is_hidden()
    page.goto(month.url + "/#/device/greenhouse-01")
    charts_drawn(page)
    held = []
    page.route("**/data/series*", lambda route: held.append(route))
    page.click("[data-range='604800']")
    page.wait_for_function("() => document.querySelector('#loading').textContent === 'Loading…'")
    for route in held:
        route.continue_()
    page.unroute("**/data/series*")
    page.wait_for_function("() => document.querySelector('#loading').textContent === ''")
    assert not page.errors


def test_counters_are_recent_with_lifetime_on_hover_and_headers_sort_by_keyboard(browse, month):
    """Defects 5 and 6: lifetime counters in red, drops without a cause, heap in the table,
    headers only sortable by mouse, never-seen devices sorted last."""
    page = browse()
    heads = page.inner_text("#fleet-table thead")
    assert "Heap" not in heads
    porch = page.locator("tr[data-device=porch-03] td")
    errors, dropped = porch.nth(6), porch.nth(7)
    assert errors.inner_text() == "1" and "3 since the board's counter started" in errors.get_attribute("title")
    assert dropped.inner_text() == "7" and "spool full 5, no clock 2" in dropped.get_attribute("title")
    calm = page.locator("tr[data-device=greenhouse-01] td").nth(6)
    assert calm.inner_text() == "0" and "bad" not in calm.get_attribute("class")
    assert "2 since" in calm.get_attribute("title")
    name = page.inner_text("tr[data-device=greenhouse-01] td:first-child")
    assert "Greenhouse north" in name and "greenhouse-01 · Greenhouse" in name
    page.focus("th[data-sort=last_seen] button")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('th[data-sort=last_seen]').getAttribute('aria-sort') === 'descending'"
    )
    page.wait_for_function("() => document.querySelector('#fleet-table tbody tr').dataset.device === 'porch-03'")
    page.focus("th[data-sort=last_seen] button")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#fleet-table tbody tr').dataset.device === 'attic-04'")
    assert page.locator("#fleet-table tbody tr").nth(1).get_attribute("data-device") == "cellar-02"
    page.select_option("#status", "problems")
    page.wait_for_function("() => document.querySelectorAll('#fleet-table tbody tr').length === 3")
    shown = page.locator("#fleet-table tbody tr")
    assert sorted(shown.nth(i).get_attribute("data-device") for i in range(3)) == ["attic-04", "cellar-02", "porch-03"]
    page.goto(month.url + "/#/device/porch-03")
    page.wait_for_function("() => document.querySelector('#health').textContent.includes('dropped')")
    health = page.inner_text("#health")
    assert "7 readings dropped by the board: spool full 5, no clock 2" in health
    assert "1 sensor errors (lifetime 3)" in health
    assert not page.errors


def test_outages_show_values_keep_under_refresh_the_url_holds_the_view_and_devices_compare(browse, month):
    """Defect 6 and the additions: a 6-hour outage a 1-2 px break, '--' and 2 decimals in the
    legend, refresh wiping the value under the pointer, view state lost; compare devices."""
    page = browse("#/device/greenhouse-01?range=2592000")
    charts_drawn(page)
    assert f"{OUTAGE_H} h from" in page.inner_text("#gaps")
    shaded = page.evaluate(
        """(() => {
          const u = window.dhtlink.charts.t, s = window.dhtlink.series;
          const nulls = s.ts.filter((x, i) => s.n[i] === null && i > 0 && i < s.ts.length - 1);
          const x = Math.round(u.valToPos(nulls[0], 'x', true));
          const column = (at) => { const d = u.ctx.getImageData(at, u.bbox.top, 1, u.bbox.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n / (d.length / 4); };
          return [column(x), column(x - 40)];
        })()"""
    )
    assert shaded[0] > 0.9 and shaded[1] < 0.5, shaded  # the outage is a shaded band, not a hairline
    readout = page.inner_text("#readout")
    assert readout.startswith("Newest: ") and "--" not in readout and "–" not in readout
    assert re.search(r"Temperature -?\d+\.\d °C \(min -?\d+\.\d °C, max -?\d+\.\d °C\)", readout), readout
    over = page.locator("#chart-t .u-over").bounding_box()
    page.mouse.move(over["x"] + over["width"] * 0.6, over["y"] + over["height"] / 2)
    pointed = page.inner_text("#readout")
    assert not pointed.startswith("Newest") and "°C" in pointed
    page.evaluate("window.dhtlink.series.seen = true; window.dhtlink.refresh()")
    page.wait_for_function("() => !window.dhtlink.series.seen && window.dhtlink.charts.t")
    assert page.inner_text("#readout") == pointed, "an auto-refresh keeps the value under a still pointer"
    page.mouse.move(over["x"] + over["width"] * 0.3, over["y"] + over["height"] / 2)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] * 0.5, over["y"] + over["height"] / 2, steps=5)
    page.mouse.up()
    page.wait_for_function("() => window.dhtlink.series.to - window.dhtlink.series.from < 20 * 86400")
    zoomed = page.evaluate("[window.dhtlink.series.from, window.dhtlink.series.to]")
    assert f"from={zoomed[0]}&to={zoomed[1]}" in page.url
    page.reload()
    charts_drawn(page)
    assert page.evaluate("[window.dhtlink.series.from, window.dhtlink.series.to]") == zoomed
    page.fill("#compare-id", "nobody-here")
    page.click("#compare button")
    page.wait_for_function("() => document.querySelector('#device-error').textContent.includes('No device')")
    for other in ("porch-03", "cellar-02", "attic-04"):
        page.fill("#compare-id", other)
        page.click("#compare button")
        page.wait_for_function(f"() => location.hash.includes('{other}')")
        charts_drawn(page)
    page.wait_for_function("() => window.dhtlink.charts.t.series.length === 5")
    assert page.locator("#compare").is_hidden(), "four devices at most"
    assert page.locator("#compared button").count() == 3
    assert "porch-03" in page.inner_text("#readout")
    page.click("#compared button >> nth=0")
    page.wait_for_function("() => window.dhtlink.charts.t && window.dhtlink.charts.t.series.length === 4")
    assert not page.errors


def test_alerts_page_and_dark_mode(browse, month):
    """The alerts view the issue asked for, and dark mode following the system."""
    page = browse("#/alerts", dark=True)
    page.wait_for_function("() => document.querySelector('#alerts-rules').textContent.includes('Greenhouse warm')")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(20, 23, 28)"
    opened = page.inner_text("#alerts-open")
    assert "cellar-02" in opened and "Silent device" in opened and "silent for 3 h" in opened
    recent = page.inner_text("#alerts-recent")
    assert "failed" in recent and "webhook: HTTP 503" in recent and "CET" in recent
    rules = page.inner_text("#alerts-rules")
    assert "webhook" in rules and "email" in rules and "greenhouse-01: t above 17.5" in rules
    page.click("#alerts-open a")
    page.wait_for_function("() => location.hash === '#/device/cellar-02'")
    assert not page.errors
