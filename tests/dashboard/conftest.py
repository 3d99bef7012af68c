"""A real browser (Debian's chromium, driven by Playwright) against a real endpoint."""

import io
import tempfile
from pathlib import Path

import pytest

from cloud import observability
from cloud.local import LocalEndpoint

CHROMIUM = Path("/usr/bin/chromium")
# Nothing reaches out: no first-run pages, component or sync downloads, no GPU process.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def launch(playwright, viewport=None, locale="en-GB", zone="Europe/Berlin", touch=False, dark=False):
    """A fresh profile each time: no token or cache carried over from another run. A person
    in Berlin by default (a non-UTC zone, a non-US locale), so a page that assumed UTC or
    US dates would show it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's package")
    profile = tempfile.mkdtemp(prefix="dhtlink-chromium-")
    return playwright.chromium.launch_persistent_context(
        profile,
        executable_path=str(CHROMIUM),
        headless=True,
        args=[*CHROMIUM_ARGS, f"--lang={locale}"],
        viewport=viewport or DESKTOP,
        locale=locale,
        timezone_id=zone,
        has_touch=touch,
        is_mobile=touch,
        color_scheme="dark" if dark else "light",
        accept_downloads=True,
    )


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory):
    """What `dhtlink bench` leaves: two virtual boards, two hours of readings a minute apart."""
    from host_tools.sim.fleet import run_bench

    report = run_bench(2, 2, 60, 7, False, tmp_path_factory.mktemp("bench"))
    assert report.stored > 200 and not report.lost
    return Path(report.data_dir) / "endpoint"


@pytest.fixture(scope="module")
def served(bench_data):
    log = io.StringIO()
    observability.set_output(log)
    with LocalEndpoint(bench_data) as endpoint:
        endpoint.log_text = log.getvalue
        yield endpoint
    observability.set_output(None)


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    """A month in a store (tests/dashboard/month.py), served like `dhtlink serve`."""
    import time

    from tests.dashboard.month import build

    data_dir = tmp_path_factory.mktemp("month")
    build(data_dir, int(time.time())).close()
    observability.set_output(io.StringIO())
    with LocalEndpoint(data_dir, read_token="month-token") as endpoint:
        yield endpoint
    observability.set_output(None)
