"""Hostile requests and what the receiver must answer, shared by the Lambda and `dhtlink serve` tests.

Each case is one request. `where` says which receivers it applies to: "both" (the Lambda
handlers behind API Gateway, and the local endpoint), or "http" for HTTP framing that API
Gateway settles before a Lambda function sees the request. Every answer must be the
protocol's JSON error with the expected status and code, in our words (no Python text),
or, for a sound request carrying an impossible reading, a 200 refusing that reading; none
of these requests may store a reading.
"""

import base64
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from cloud import signing

DEVICE = "hostile-01"
SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
READ_TOKEN = "hostile-read-token-0123456789abcdef"
PYTHON_TEXT = ("Traceback", "invalid literal", "Error(", "Exception", "overflow", "recursion", "<html")


@dataclass
class Case:
    name: str
    status: int
    error: str
    method: str = "POST"
    path: str = "/data"
    query: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    raw: bytes | None = None  # the request's exact bytes, for framing cases
    where: str = "both"
    closes: bool = False  # the answer must close the connection (nothing after it is read)

    @property
    def target(self) -> str:
        return self.path + ("?" + urlencode(self.query) if self.query else "")


def cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def _reading(seq: int, now: int) -> dict[str, object]:
    return {"seq": seq, "ts": now - 30, "t": 20.5, "h": 40.0}


def _signed(name: str, status: int, error: str, body: bytes, timestamp: str | int | None = None, **kw: object) -> Case:
    stamp = str(int(time.time())) if timestamp is None else str(timestamp)
    headers = {
        "Content-Type": "application/json",
        "X-Device-Id": DEVICE,
        "X-Timestamp": stamp,
        "X-Signature": signing.sign(SECRET, DEVICE, stamp, "POST", "/data", body),
    }
    return Case(name, status, error, headers=headers, body=body, **kw)


def _batch(readings: list[dict[str, object]], **extra: object) -> bytes:
    return json.dumps({"device_id": DEVICE, "readings": readings, **extra}).encode()


def _read(name: str, path: str, query: dict[str, str], status: int = 400, error: str = "bad_query") -> Case:
    return Case(name, status, error, "GET", path, query, {"Authorization": f"Bearer {READ_TOKEN}"})


def _framed(name: str, status: int, error: str, head: str, body: bytes = b"", closes: bool = False) -> Case:
    raw = head.encode("utf-8").replace(b"\n", b"\r\n") + body
    return Case(name, status, error, raw=raw, where="http", closes=closes)


def _smuggling(name: str, transfer_encoding: str) -> Case:
    """Content-Length and Transfer-Encoding together (RFC 9112 §6.1): a proxy trusting
    Content-Length forwards the whole thing as one POST; a server following
    Transfer-Encoding would read the GET after the last chunk as a second request."""
    smuggled = b"GET /devices HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    head = f"POST /data HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {len(body)}\n"
    return _framed(name, 400, "bad_request", head + transfer_encoding + "\n", body, closes=True)


def cases() -> list[Case]:
    now = int(time.time())
    one = [_reading(1, now)]
    deep = b'{"device_id":"' + DEVICE.encode() + b'","readings":[{"seq":1,"ts":1,"t":1,"h":1}],"status":'
    deep += b'{"x":' * 5000 + b"1" + b"}" * 5000 + b"}"
    smuggled = b"GET /devices HTTP/1.1\r\nHost: x\r\n\r\n"
    chunk = f"{len(smuggled):x}\r\n".encode() + smuggled + b"\r\n0\r\n\r\n"
    # An escaped quote thousands of times and no closing quote: a string scan that fails and
    # retries at every quote is quadratic (seconds of CPU holding every thread).
    quotes = _batch(one)[:-1] + b', "status": {"fw": "' + b'\\"' * 16_000
    return [
        _signed("fw of 16,000 escaped quotes, never closed", 400, "invalid_json", quotes),
        # Accepted as a request, refused as a reading: float() of it would overflow.
        _signed(
            "t a 400-digit integer",
            200,
            "t_out_of_range",
            _batch(one).replace(b'"t": 20.5', b'"t": ' + b"9" * 400),
        ),
        # -- the body and the auth headers ---------------------------------------------------
        _signed("status nested 5000 deep", 400, "invalid_json", deep),
        _signed("body not UTF-8", 400, "invalid_json", b'{"device_id": "\xff\xfe"}'),
        _signed("seq 2**53", 400, "invalid_body", _batch([{**_reading(0, now), "seq": 2**53}])),
        _signed("seq is a float", 400, "invalid_body", _batch([{**_reading(0, now), "seq": 1.5}])),
        _signed(
            "ts 1e999 (infinity)",
            400,
            "invalid_body",
            _batch(one).replace(b'"ts": ' + str(now - 30).encode(), b'"ts": 1e999'),
        ),
        _signed("no readings", 400, "bad_batch_size", _batch([])),
        _signed("zero-padded X-Timestamp", 401, "bad_auth_header", _batch(one), timestamp="0" + str(now)),
        _signed("signed X-Timestamp with a sign", 401, "bad_auth_header", _batch(one), timestamp="+" + str(now)),
        _signed("X-Timestamp 302 s behind", 401, "stale_timestamp", _batch(one), timestamp=now - 302),
        _signed("X-Timestamp 302 s ahead", 401, "stale_timestamp", _batch(one), timestamp=now + 302),
        # Inside the window on both sides: the request gets past the clock check to the body rule.
        _signed("X-Timestamp 298 s behind", 400, "bad_batch_size", _batch([]), timestamp=now - 298),
        _signed("X-Timestamp 298 s ahead", 400, "bad_batch_size", _batch([]), timestamp=now + 298),
        _signed("body for another device", 400, "device_mismatch", _batch(one).replace(DEVICE.encode(), b"other-1")),
        Case("no auth headers", 401, "missing_auth", headers={"Content-Type": "application/json"}, body=_batch(one)),
        Case("not JSON content type", 415, "unsupported_media_type", headers={"Content-Type": "text/plain"}),
        Case(
            "body over 32 KiB",
            413,
            "payload_too_large",
            headers={"Content-Type": "application/json"},
            body=b"x" * 40_000,
        ),
        # -- read queries --------------------------------------------------------------------
        _read("cursor [1e999, 1]", "/data", {"device_id": DEVICE, "cursor": cursor([1e999, 1])}),
        _read("cursor [10**23, 1]", "/data", {"device_id": DEVICE, "cursor": cursor([10**23, 1])}),
        _read("cursor of booleans", "/data", {"device_id": DEVICE, "cursor": cursor([True, False])}),
        _read("cursor not base64", "/data", {"device_id": DEVICE, "cursor": "%%%not-base64"}),
        _read(
            "cursor 5000 deep", "/data", {"device_id": DEVICE, "cursor": base64.urlsafe_b64encode(b"[" * 5000).decode()}
        ),
        _read("from as superscript two", "/data", {"device_id": DEVICE, "from": "\u00b2"}),
        _read("to past 2**40", "/data", {"device_id": DEVICE, "to": str(2**41)}),
        _read("from after to", "/data", {"device_id": DEVICE, "from": "200", "to": "100"}),
        _read("limit 0", "/data", {"device_id": DEVICE, "limit": "0"}),
        _read("limit -5", "/data", {"device_id": DEVICE, "limit": "-5"}),
        _read("unknown parameter", "/data", {"device_id": DEVICE, "form": "1"}),
        _read("no device_id", "/data/latest", {}),
        _read("devices cursor forged", "/devices", {"cursor": cursor({"after": "x' OR 1=1 --"})}),
        _read("devices limit 10**6", "/devices", {"limit": str(10**6)}),
        Case("read without a token", 401, "unauthorized", "GET", "/devices"),
        # The dashboard's files need no token: anyone can send these.
        Case("static name of 256 characters", 404, "not_found", "GET", "/static/" + "a" * 256),
        # -- HTTP framing and routing: API Gateway's business in AWS ---------------------------
        Case("unknown route", 404, "not_found", "GET", "/admin", where="http"),
        Case("unknown method on /data", 405, "method_not_allowed", "BREW", "/data", where="http"),
        Case("DELETE /devices", 405, "method_not_allowed", "DELETE", "/devices", where="http"),
        _framed(
            "two Content-Lengths",
            400,
            "bad_request",
            "POST /data HTTP/1.1\nHost: x\nContent-Length: 2\nContent-Length: 3\n\n",
            b"{}x",
        ),
        _framed(
            "Content-Length superscript two",
            400,
            "bad_request",
            "POST /data HTTP/1.1\nHost: x\nContent-Length: \u00b2\n\n",
            b"{}",
        ),
        _framed("Content-Length negative", 400, "bad_request", "POST /data HTTP/1.1\nHost: x\nContent-Length: -1\n\n"),
        _framed(
            "Transfer-Encoding gzip",
            501,
            "not_implemented",
            "POST /data HTTP/1.1\nHost: x\nTransfer-Encoding: gzip\n\n",
        ),
        _framed(
            "bad chunk size",
            400,
            "bad_request",
            "POST /data HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n",
            b"zz\r\nhello\r\n0\r\n\r\n",
        ),
        # The smuggled GET is the chunk's content, the POST's body: one answer, to the POST.
        _framed(
            "request smuggled in a chunk",
            415,
            "unsupported_media_type",
            "POST /data HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n",
            chunk,
        ),
        _framed("request line garbage", 400, "bad_request", "HELLO\n\n"),
        _smuggling("Content-Length with Transfer-Encoding chunked", "Transfer-Encoding: chunked"),
        _smuggling("Content-Length with Transfer-Encoding CHUNKED", "Transfer-Encoding: CHUNKED"),
        _smuggling("Content-Length with Transfer-Encoding tab-chunked", "Transfer-Encoding:\tchunked"),
        _smuggling("Content-Length with Transfer-Encoding folded", "Transfer-Encoding:\n chunked"),
        # Exactly the limit and never ended: the server has read every byte when it refuses, so
        # its close cannot turn into a reset that discards the answer.
        Case(
            "header block of 16 KiB",
            431,
            "headers_too_large",
            raw=b"GET / HTTP/1.1\r\nX: ".ljust(16384, b"a"),
            where="http",
        ),
    ]


def case(name: str) -> Case:
    """One case, built now: the signed ones carry the current time."""
    (found,) = [c for c in cases() if c.name == name]
    return found


def parse_answers(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Every HTTP answer in `data` (the bytes a connection sent until it closed)."""
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        size = int(headers.get("content-length", "0"))
        answers.append((status, headers, rest[:size]))
        data = rest[size:]
    return answers


def check_answer(case: Case, status: int, content_type: str, body: bytes) -> None:
    assert status == case.status, f"{case.name}: HTTP {status} {body[:200]!r}"
    assert content_type.startswith("application/json"), f"{case.name}: {content_type}"
    answer = json.loads(body)
    if status == 200:  # the request was sound, its one reading refused
        assert answer["accepted"] == 0 and [r["error"] for r in answer["rejected"]] == [case.error], answer
        return
    assert answer["error"] == case.error, f"{case.name}: {answer}"
    assert isinstance(answer["message"], str) and answer["message"], case.name
    assert not any(text.lower() in answer["message"].lower() for text in PYTHON_TEXT), f"{case.name}: {answer}"
