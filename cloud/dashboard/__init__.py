"""The web dashboard: GET / and GET /static/<file>, the same answers from `dhtlink serve`
and from the stack's dashboard function. The page holds no data and no secret; it asks the
read routes with the read token the user types in (kept in the tab's sessionStorage only).

Files are gzipped once per process when the client accepts it (API Gateway's HTTP API does
not compress). Their URLs carry a hash of their content, so a browser may keep them for a
year while the page itself is always fetched afresh.
"""

import base64
import gzip
import hashlib
import mimetypes
import re
from functools import cache
from pathlib import Path
from typing import Any

from cloud.responses import error

STATIC = Path(__file__).resolve().parent / "static"
TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".txt": "text/plain"}
# The page talks to its own origin only and runs no inline script: a stray value in the data
# (a device's status is free-form) can never become code.
SECURITY = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
ASSET = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$")


@cache
def _names() -> frozenset[str]:
    """The files under static/, listed once: a request names one of these or gets a 404
    without touching the file system (a 256-character name failed there with a 500), and
    the cache below holds at most these, whatever names clients send."""
    found = (path.relative_to(STATIC).as_posix() for path in STATIC.rglob("*") if path.is_file())
    return frozenset(name for name in found if ASSET.fullmatch(name) and ".." not in name)


def _asset(name: str) -> tuple[bytes, bytes, str] | None:
    """(raw, gzipped, content hash) of a file under static/, or None."""
    return _load(name) if name in _names() else None


@cache
def _load(name: str) -> tuple[bytes, bytes, str]:
    raw = (STATIC / name).read_bytes()
    if name == "index.html":
        raw = re.sub(rb"\{\{([^}]+)\}\}", lambda m: _versioned(m.group(1).decode()).encode(), raw)
    return raw, gzip.compress(raw, 9, mtime=0), hashlib.sha256(raw).hexdigest()[:16]


def _versioned(name: str) -> str:
    asset = _asset(name)
    if asset is None:
        raise FileNotFoundError(f"index.html names static/{name}, which does not exist")
    return f"static/{name}?v={asset[2]}"


def _content_type(name: str) -> str:
    suffix = Path(name).suffix
    kind = TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return kind + ("; charset=utf-8" if kind.startswith("text/") else "")


def is_dashboard_path(path: str) -> bool:
    return path == "/" or path.startswith("/static/")


def handle(event: dict[str, Any]) -> dict[str, Any]:
    path = event.get("rawPath") or "/"
    method = (event.get("requestContext") or {}).get("http", {}).get("method", "GET")
    if method != "GET":
        refused = error(405, "method_not_allowed", f"{path} answers GET only")
        refused["headers"]["allow"] = "GET"
        return refused
    name = "index.html" if path.endswith("/") and "/static/" not in path else path.partition("/static/")[2]
    asset = _asset(name)
    if asset is None:
        return error(404, "not_found", f"no dashboard file {path}")
    raw, packed, digest = asset
    headers = {"content-type": _content_type(name), "etag": f'"{digest}"', "vary": "accept-encoding", **SECURITY}
    headers["cache-control"] = "no-cache" if name == "index.html" else "public, max-age=31536000, immutable"
    request_headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    if request_headers.get("if-none-match") == f'"{digest}"':
        return {"statusCode": 304, "headers": headers, "body": ""}
    if "gzip" in request_headers.get("accept-encoding", ""):
        headers["content-encoding"] = "gzip"
        body = packed
    else:
        body = raw
    return {"statusCode": 200, "headers": headers, "body": base64.b64encode(body).decode(), "isBase64Encoded": True}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event)
