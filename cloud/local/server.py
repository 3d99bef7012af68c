"""Runs the Lambda handlers on a laptop.

Each HTTP request becomes the payload-2.0 event API Gateway's HTTP API would send and
goes to the same handle() functions the Lambda entry points call.
"""

import base64
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cloud import admin, ingest, protocol, read_api
from cloud.observability import log
from cloud.responses import error
from cloud.stores.base import Store

Clock = Callable[[str | None], float]
READ_ROUTES = ("/data/latest", "/data", "/devices")
DEFAULT_RETENTION_S = 400 * 86400


def wall_clock(_device_id: str | None) -> float:
    return time.time()


def to_event(method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str) -> dict[str, Any]:
    path, _, query = target.partition("?")
    try:
        text = body.decode("utf-8")
        encoded = False
    except UnicodeDecodeError:
        text = base64.b64encode(body).decode()
        encoded = True
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "queryStringParameters": params or None,
        "body": text,
        "isBase64Encoded": encoded,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip},
            "timeEpoch": int(time.time() * 1000),
        },
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, a keep-alive client's delayed
    # ACK holds the second one ~40 ms (bench/endpoint_load.py).
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one structured line per request comes from the handlers instead

    def _send(self, response: dict[str, Any]) -> None:
        payload = response["body"].encode()
        self.send_response(response["statusCode"])
        for name, value in response.get("headers", {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit():
            self._send(error(400, "bad_request", "Content-Length must be a number"))
            return None
        size = int(length)
        if size > protocol.MAX_BODY:
            # Not read: the handler's 413 answers without buffering an unbounded body.
            self.close_connection = True
            too_big = protocol.oversize(size)
            self._send(error(too_big.status, too_big.error, too_big.message))
            return None
        return self.rfile.read(size)

    def _event(self, body: bytes) -> dict[str, Any]:
        return to_event(self.command, self.path, dict(self.headers.items()), body, self.client_address[0])

    def do_POST(self) -> None:
        body = self._read_body()
        if body is None:
            return
        path = self.path.partition("?")[0]
        if path != "/data":
            if path in READ_ROUTES:
                self._send(error(405, "method_not_allowed", f"{path} answers GET only"))
            else:
                self._send(error(404, "not_found", f"no route POST {path}"))
            return
        srv = self.server
        response = ingest.handle(
            self._event(body), srv.store, srv.clock(self.headers.get("X-Device-Id")), srv.retention_s
        )
        srv.count(response)
        self._send(response)

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path not in READ_ROUTES:
            self._send(error(404, "not_found", f"no route GET {path}"))
            return
        self._send(read_api.handle(self._event(b""), self.server.store, self.server.read_token))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    store: Store
    clock: Clock
    read_token: str
    retention_s: int
    totals: dict[str, int]
    totals_lock: threading.Lock

    def count(self, response: dict[str, Any]) -> None:
        """Totals of what the receiver answered, for the bench report."""
        with self.totals_lock:
            self.totals[str(response["statusCode"])] = self.totals.get(str(response["statusCode"]), 0) + 1
            if response["statusCode"] == 200:
                answer = json.loads(response["body"])
                for key in ("accepted", "duplicates"):
                    self.totals[key] = self.totals.get(key, 0) + answer[key]
                self.totals["rejected"] = self.totals.get("rejected", 0) + len(answer["rejected"])


class LocalEndpoint:
    """The handlers on http://host:port; `with LocalEndpoint(dir) as ep:` serves in a thread."""

    def __init__(
        self,
        data_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        read_token: str | None = None,
        store: Store | None = None,
        clock: Clock | None = None,
        retention_s: int = DEFAULT_RETENTION_S,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.store = store or admin.local_store(self.data_dir)
        self.read_token = admin.read_token(self.data_dir, read_token)
        self._server = _Server((host, port), _Handler)
        self._server.store = self.store
        self._server.clock = clock or wall_clock
        self._server.read_token = self.read_token
        self._server.retention_s = retention_s
        self._server.totals = {}
        self._server.totals_lock = threading.Lock()
        self.host, self.port = self._server.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def totals(self) -> dict[str, int]:
        """Answers so far: per status code, and accepted/duplicates/rejected readings."""
        with self._server.totals_lock:
            return dict(self._server.totals)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add_device(self, device_id: str) -> str:
        return admin.add_device(self.store, device_id)

    def start(self) -> "LocalEndpoint":
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-endpoint", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        log("INFO", "local endpoint listening", url=self.url, data_dir=str(self.data_dir))
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> "LocalEndpoint":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
