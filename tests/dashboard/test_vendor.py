"""The dashboard's files as the handler serves them, and the vendored chart library."""

import base64
import gzip
import hashlib
import re
import zipfile

from cloud import dashboard
from host_tools.cli.deploy import build_artifact

VENDOR = dashboard.STATIC / "vendor"


def get(path, **headers):
    return dashboard.handle({"rawPath": path, "headers": headers, "requestContext": {"http": {"method": "GET"}}})


def body(response):
    raw = base64.b64decode(response["body"])
    return gzip.decompress(raw) if response["headers"].get("content-encoding") == "gzip" else raw


def test_the_vendored_files_are_the_pinned_release():
    listed = dict(re.findall(r"\| (uPlot\.[a-z.]+) \| ([0-9a-f]{64}) \|", (VENDOR / "README.md").read_text()))
    assert set(listed) == {"uPlot.iife.min.js", "uPlot.min.css"}
    for name, digest in listed.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert (VENDOR / "uPlot.iife.min.js").read_text().startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    assert "MIT License" in (VENDOR / "uPlot.LICENSE").read_text()


def test_the_page_names_its_files_by_content_hash_and_they_cache():
    page = get("/", **{"accept-encoding": "gzip, br"})
    assert page["statusCode"] == 200 and page["headers"]["cache-control"] == "no-cache"
    html = body(page).decode()
    urls = re.findall(r'(?:src|href)="(static/[^"]+)"', html)
    assert len(urls) == 4 and "{{" not in html
    for url in urls:
        path, _, version = url.partition("?v=")
        asset = get("/" + path)
        assert asset["statusCode"] == 200 and "content-encoding" not in asset["headers"]
        assert hashlib.sha256(body(asset)).hexdigest()[:16] == version
        assert asset["headers"]["cache-control"] == "public, max-age=31536000, immutable"
        assert get("/" + path, **{"if-none-match": f'"{version}"'})["statusCode"] == 304
    assert get("/prod/")["statusCode"] == 200, "behind a named stage too"


def test_only_dashboard_files_are_served():
    for path in ("/static/../__init__.py", "/static/vendor/../../rollups.py", "/static/nope.js", "/static/"):
        assert get(path)["statusCode"] == 404, path
    post = dashboard.handle({"rawPath": "/", "requestContext": {"http": {"method": "POST"}}})
    assert post["statusCode"] == 405


def test_the_lambda_artifact_carries_the_dashboard(tmp_path):
    with zipfile.ZipFile(build_artifact(tmp_path)) as zf:
        names = set(zf.namelist())
    assert {"cloud/dashboard/__init__.py", "cloud/dashboard/static/index.html"} <= names
    assert "cloud/dashboard/static/app.js" in names
    assert "cloud/dashboard/static/vendor/uPlot.iife.min.js" in names
    assert not any(name.startswith("cloud/local/") for name in names)
