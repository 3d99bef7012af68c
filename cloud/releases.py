"""GET /ota/VERSION/NAME: the files of a published release (docs/ota.md), by HTTP Range so
a board downloads them in pieces that fit its heap and its awake time.

Unauthenticated on purpose: a release is the open firmware, and a board trusts a file only
if its SHA-256 is in the manifest whose digest its receiver signed in an answer for that
board. The same answer is made from a folder (the local endpoint: DATA_DIR/releases) and
from S3 (the deployed stack: the ReleasesBucket, key releases/VERSION/NAME).
"""

import base64
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud.observability import lambda_handler, log

PREFIX = "releases"  # the folder under DATA_DIR, and the key prefix in the bucket
MANIFEST = "manifest.json"
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}")  # fits status.fw (32 characters)
FILE_NAME = re.compile(r"[0-9A-Za-z_]{1,32}\.mpy|manifest\.json")
ROUTE = re.compile(r"/ota/([^/]+)/([^/]+)")
RANGE = re.compile(r"bytes=(\d+)-(\d*)")

Reader = Callable[[str, str], bytes | None]  # (version, name) -> the file, or None when there is none


def directory_reader(root: Path) -> Reader:
    """Release files under root/VERSION/NAME (the local endpoint's DATA_DIR/releases)."""

    def read(version: str, name: str) -> bytes | None:
        path = root / version / name
        return path.read_bytes() if path.is_file() else None

    return read


def s3_reader(bucket: str, client: Any = None) -> Reader:
    """Release files in the bucket under releases/VERSION/NAME. A published release never
    changes (`dhtlink ota publish` refuses), so a file read once is kept for the life of
    the execution environment: a fleet's hundreds of range requests cost one S3 GET per
    file per warm function, not one each. Bounded by a release's size (a few tens of KB)."""
    if client is None:
        import boto3

        client = boto3.client("s3")
    cache: dict[tuple[str, str], bytes] = {}

    def read(version: str, name: str) -> bytes | None:
        key = (version, name)
        if key not in cache:
            from botocore.exceptions import ClientError

            try:
                data = client.get_object(Bucket=bucket, Key=f"{PREFIX}/{version}/{name}")["Body"].read()
            except ClientError as error:
                # The role may read releases/* but not list the bucket (nobody learns which
                # releases exist by asking for names), so S3 answers a missing key AccessDenied.
                if error.response["Error"]["Code"] in ("NoSuchKey", "AccessDenied"):
                    return None
                raise
            if len(cache) >= 64:  # more than two releases' files: keep the newest only
                cache.clear()
            cache[key] = data
        return cache[key]

    return read


def answer(read: Reader, path: str, range_header: str | None) -> dict[str, Any]:
    """The answer to GET path, as a Lambda proxy response (binary body in base64)."""
    status, headers, body = _answer(read, path, range_header)
    return {
        "statusCode": status,
        "headers": headers,
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def _answer(read: Reader, path: str, range_header: str | None) -> tuple[int, dict[str, str], bytes]:
    match = ROUTE.fullmatch(path)
    valid = match is not None and VERSION.fullmatch(match.group(1)) and FILE_NAME.fullmatch(match.group(2))
    data = read(match.group(1), match.group(2)) if match and valid else None
    if data is None:
        return 404, {"Content-Type": "application/json"}, b'{"error":"not_found","message":"no such release file"}'
    headers = {
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "Cache-Control": "public, max-age=31536000, immutable",  # a published release never changes
    }
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


_reader: Reader | None = None


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _reader
    if _reader is None:
        _reader = s3_reader(os.environ["RELEASES_BUCKET"])
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    response = answer(_reader, event.get("rawPath") or "", headers.get("range"))
    log("INFO", "release file", path=event.get("rawPath"), range=headers.get("range"), status=response["statusCode"])
    return response
