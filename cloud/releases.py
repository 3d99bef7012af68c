"""GET /ota/VERSION/NAME: the files of a published release (docs/ota.md), by HTTP Range so
a board downloads them in pieces that fit its heap and its awake time. Unauthenticated
on purpose: a release is the open firmware, and a board trusts a file only if its SHA-256
is in the manifest whose digest its receiver signed in an answer for that board."""

import base64
import re
from pathlib import Path
from typing import Any

ROUTE = re.compile(r"/ota/([0-9A-Za-z][0-9A-Za-z.+_-]{0,31})/([0-9A-Za-z_]{1,32}\.mpy|manifest\.json)")
RANGE = re.compile(r"bytes=(\d+)-(\d*)")


def answer(releases: Path, path: str, range_header: str | None) -> dict[str, Any]:
    """The answer to GET path, as a Lambda proxy response (binary body in base64)."""
    status, headers, body = _answer(releases, path, range_header)
    return {
        "statusCode": status,
        "headers": headers,
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def _answer(releases: Path, path: str, range_header: str | None) -> tuple[int, dict[str, str], bytes]:
    match = ROUTE.fullmatch(path)
    file = releases / match.group(1) / match.group(2) if match else None
    if file is None or not file.is_file():
        return 404, {"Content-Type": "application/json"}, b'{"error":"not_found","message":"no such release file"}'
    data = file.read_bytes()
    headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
    wanted = RANGE.fullmatch(range_header.strip()) if range_header else None
    if range_header and not wanted:
        return 416, {**headers, "Content-Range": f"bytes */{len(data)}"}, b""
    if not wanted:
        return 200, headers, data
    start = int(wanted.group(1))
    end = min(int(wanted.group(2)) if wanted.group(2) else len(data) - 1, len(data) - 1)
    if start > end:
        return 416, {**headers, "Content-Range": f"bytes */{len(data)}"}, b""
    return 206, {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}, data[start : end + 1]
