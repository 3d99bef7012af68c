"""Runs the Lambda handlers on a laptop or a Raspberry Pi, behind waitress.

Each HTTP request becomes the payload-2.0 event API Gateway's HTTP API would send and
goes to the same handle() functions the Lambda entry points call; the handler's status,
headers and body bytes go back unchanged (a signed answer's signature covers the body).

Why waitress (compared on this machine, docs/deploy.md "Local endpoint"): its event
loop buffers a whole request before a worker thread sees it, so a slow or idle client
costs a socket, never a thread; it decodes chunked bodies and refuses a malformed or
repeated Content-Length; it has no dependencies. What it lacks is added here, small:
- a deadline for receiving a whole request once its first byte arrived (waitress only
  has an inactivity timeout, which a client dripping one byte at a time never trips),
  answered 408;
- an orderly refusal at the connection cap (a JSON 503 with Retry-After, then close),
  where waitress would stop accepting and leave clients hanging in the listen backlog,
  and a cap per client address below it, so one client cannot fill the whole cap;
- a refusal of requests carrying both Content-Length and Transfer-Encoding;
- the protocol's JSON error body for the errors waitress answers itself.
"""

import base64
import json
import logging
import os
import resource
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask

from cloud import dashboard, ingest, protocol, read_api, releases
from cloud.local import files as data_files
from cloud.local import routes
from cloud.observability import log, request_context
from cloud.responses import error
from cloud.stores.base import Store

Clock = Callable[[str | None], float]
DEFAULT_RETENTION_S = 400 * 86400
# A board's request is one small POST; 10 s to receive it is generous on any LAN.
READ_TIMEOUT_S = 10
# Boards post and sleep; a dashboard polls. An idle keep-alive connection beyond this is closed.
IDLE_TIMEOUT_S = 30
# Room for a few thousand boards holding keep-alive connections, within the file limit.
CONNECTION_CAP = 4000
# Connections one client address may hold: room for hundreds of boards behind one NAT, and
# a client holding thousands of idle sockets no longer takes every board's place.
CLIENT_CONNECTION_CAP = 500
# Files the process needs besides its connections: SQLite (db, WAL, shm), logs, poll, trigger.
SPARE_FILES = 64
RETRY_AFTER_S = 5
MAX_HEADER_BYTES = 16 * 1024
ACCEPT_BATCH = 64
ERROR_CODES = {
    400: "bad_request",
    408: "request_timeout",
    413: "payload_too_large",
    431: "headers_too_large",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
}


def wall_clock(_device_id: str | None) -> float:
    return time.time()


def _raw_answer(status: int, message: str, **extra: Any) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, for the event loop to send itself."""
    body = json.dumps({"error": ERROR_CODES[status], "message": message, **extra}, separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
    )
    if status == 503:
        head += f"Retry-After: {RETRY_AFTER_S}\r\n"
    return head.encode() + b"\r\n" + body


def to_event(
    method: str, path: str, query: str, headers: dict[str, str], body: bytes, source_ip: str, request_id: str
) -> dict[str, Any]:
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
        "headers": headers,
        "queryStringParameters": params or None,
        "body": text,
        "isBase64Encoded": encoded,
        "requestContext": {
            "requestId": request_id,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip},
            "timeEpoch": int(time.time() * 1000),
        },
    }


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """Request headers as API Gateway passes them: lower-case names."""
    out = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            out[key.replace("_", "-").lower()] = environ[key]
    return out


class _JsonErrorTask(ErrorTask):
    """Waitress's own answers (bad framing, oversize, bad headers) in the protocol's JSON."""

    def execute(self) -> None:
        problem = self.request.error
        if problem.code == 413 and self.request.content_length:
            message = protocol.oversize(int(self.request.content_length)).message
        elif problem.code == 413:  # chunked: the length is known only as "too much so far"
            message = f"body is over {2 * protocol.MAX_BODY} bytes; the limit is {protocol.MAX_BODY}"
        else:
            message = f"{problem.reason}: {problem.body}"
        body = json.dumps(
            {"error": ERROR_CODES.get(problem.code, "bad_request"), "message": message}, separators=(",", ":")
        ).encode()
        self.status = f"{problem.code} {problem.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Parser(HTTPRequestParser):
    """Waitress's parser, refusing a request that carries both Content-Length and
    Transfer-Encoding (RFC 9112 §6.1): waitress would follow Transfer-Encoding and keep the
    connection open, so behind a proxy that trusts Content-Length the rest of the body
    would be read here as a second, smuggled request. The refusal closes the connection."""

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if "CONTENT_LENGTH" in self.headers and (self.chunked or "TRANSFER_ENCODING" in self.headers):
            raise ParsingError("Content-Length and Transfer-Encoding both given; send one of them")


class _Channel(HTTPChannel):
    error_task_class = _JsonErrorTask
    parser_class = _Parser
    reading_since: float | None = None  # when the request now being received sent its first byte
    counted = False  # in the server's per-client count
    server: "_Server"

    def del_channel(self, map: Any = None) -> None:
        super().del_channel(map)
        if self.counted:  # closed from a worker thread and the loop both, at times
            self.counted = False
            self.server.count_client(self.addr[0], -1)

    def received(self, data: bytes) -> bool:
        if self.request is None and data and self.reading_since is None:
            self.reading_since = time.monotonic()
        done = super().received(data)
        if self.request is None:
            self.reading_since = None
        return done


class _Server(TcpWSGIServer):
    channel_class = _Channel
    read_timeout_s: float = READ_TIMEOUT_S
    client_cap: int = CLIENT_CONNECTION_CAP
    next_channel_cleanup: float = 0  # waitress's, declared here for the override below

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._clients: dict[str, int] = {}  # open connections per client address
        self._clients_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def count_client(self, address: str, step: int) -> None:
        with self._clients_lock:
            held = self._clients.get(address, 0) + step
            if held > 0:
                self._clients[address] = held
            else:
                self._clients.pop(address, None)

    def client_connections(self, address: str) -> int:
        with self._clients_lock:
            return self._clients.get(address, 0)

    def readable(self) -> bool:
        # Keep accepting at the cap: handle_accept refuses in words instead of the backlog hanging.
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        return self.accepting

    def handle_accept(self) -> None:
        # Waitress accepts one connection per turn of its loop, and a turn visits every open
        # connection: a burst of thousands then delays everyone quadratically. Take a batch.
        for _ in range(ACCEPT_BATCH):
            try:
                accepted = self.accept()
            except OSError:
                return
            if accepted is None:
                return  # nobody else waiting
            conn, addr = accepted
            address = self.fix_addr(addr)
            if self.client_connections(address[0]) >= self.client_cap:
                refusal = _raw_answer(
                    503, f"this address holds {self.client_cap} open connections already; close some or retry later"
                )
            elif len(self.active_channels) < self.adj.connection_limit:
                try:
                    self.set_socket_options(conn)  # TCP_NODELAY
                except OSError:
                    conn.close()  # closed by the client before we got to it
                    continue
                channel = self.channel_class(self, conn, address, self.adj, map=self._map)
                self.count_client(address[0], 1)
                channel.counted = True
                continue
            else:
                refusal = _raw_answer(503, "too many open connections; retry later")
            try:
                conn.send(refusal)
            except OSError:
                pass  # the client is gone already
            finally:
                conn.close()

    def handle_error(self) -> None:
        # wasyncore's default closes the dispatcher that raised: for the listening socket that
        # would end the endpoint's accepting for good (and close the loop's trigger).
        log("ERROR", "local endpoint: unexpected error in the server loop", trace=traceback.format_exc(limit=-6))

    def maintenance(self, now: float) -> None:
        # Waitress's own maintenance iterates active_channels while worker threads may close
        # channels (a failed write): a copy, and the idle timeout done here with it.
        idle_cutoff = now - self.adj.channel_timeout
        cutoff = time.monotonic() - self.read_timeout_s
        for channel in list(self.active_channels.values()):
            if not channel.requests and channel.last_activity < idle_cutoff:
                channel.will_close = True
            since = getattr(channel, "reading_since", None)
            if since is not None and since < cutoff and not channel.will_close and not channel.close_when_flushed:
                channel.write_soon(
                    _raw_answer(408, f"the request was not received within {self.read_timeout_s:g} s; send it whole")
                )
                channel.close_when_flushed = True
                channel.reading_since = None


def raise_file_limit(wanted: int) -> int:
    """Raise the soft open-file limit towards `wanted` (never above the hard limit); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        soft = ceiling
    return soft


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
        connection_cap: int = CONNECTION_CAP,
        read_timeout_s: float = READ_TIMEOUT_S,
        idle_timeout_s: int = IDLE_TIMEOUT_S,
        threads: int = 6,
        client_cap: int = CLIENT_CONNECTION_CAP,
    ) -> None:
        self.data_dir = Path(data_dir)
        self._releases = releases.directory_reader(self.data_dir / releases.PREFIX)
        self.store = store or data_files.local_store(self.data_dir)
        self.read_token = data_files.read_token(self.data_dir, read_token)
        self._read_token_sha256 = protocol.token_sha256(self.read_token)
        self.clock = clock or wall_clock
        self.retention_s = retention_s
        self._totals: dict[str, int] = {}
        self._totals_lock = threading.Lock()
        # Waitress warns on every queued request ("Task queue depth is N"): under load that is a
        # line per request on the user's terminal, and the bench's figures say it better.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        files = raise_file_limit(connection_cap + SPARE_FILES)
        # A cap the file limit cannot hold would fail accept() (EMFILE) instead of refusing in words.
        self.connection_cap = max(1, min(connection_cap, files - SPARE_FILES))
        self._server = _Server(
            self._app,
            host=host,
            port=port,
            threads=threads,
            connection_limit=self.connection_cap,
            channel_timeout=idle_timeout_s,
            cleanup_interval=1,
            max_request_header_size=MAX_HEADER_BYTES,
            # Twice the protocol's limit: a body up to this is read whole and answered 413 by the
            # handler, in words. Past it waitress answers at once and closes with the rest unread,
            # which the client's kernel may turn into a reset before the answer is read.
            max_request_body_size=2 * protocol.MAX_BODY,
            asyncore_use_poll=True,  # select() cannot watch descriptors above 1023
            backlog=2048,
            ident="dhtlink",
            expose_tracebacks=False,
            clear_untrusted_proxy_headers=False,
        )
        self._server.read_timeout_s = read_timeout_s
        self._server.client_cap = client_cap
        self.host, self.port = str(self._server.effective_host), int(self._server.effective_port)
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def totals(self) -> dict[str, int]:
        """Answers so far: per status code, and accepted/duplicates/rejected readings."""
        with self._totals_lock:
            return dict(self._totals)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def add_device(self, device_id: str) -> str:
        """Register a device in this endpoint's store; returns its new secret (tests, benches)."""
        secret = protocol.new_secret()
        self.store.add_device(device_id, secret, int(time.time()))
        return secret

    # -- requests -----------------------------------------------------------
    def _count(self, response: dict[str, Any]) -> None:
        """Totals of what the receiver answered, for the bench report."""
        status = response["statusCode"]
        with self._totals_lock:
            self._totals[str(status)] = self._totals.get(str(status), 0) + 1
            if status == 200:
                answer = json.loads(response["body"])
                for key in ("accepted", "duplicates"):
                    self._totals[key] = self._totals.get(key, 0) + answer[key]
                self._totals["rejected"] = self._totals.get("rejected", 0) + len(answer["rejected"])

    def _route(self, event: dict[str, Any], method: str, path: str) -> dict[str, Any]:
        handler = routes.handler(method, path)
        if handler == routes.INGEST:
            response = ingest.handle(
                event, self.store, self.clock(event["headers"].get("x-device-id")), self.retention_s
            )
            self._count(response)
            return response
        if handler == routes.READ:
            return read_api.handle(event, self.store, self._read_token_sha256)
        if handler == routes.RELEASES:
            return releases.answer(self._releases, path, event["headers"].get("range"))
        if handler == routes.DASHBOARD:
            return dashboard.handle(event)
        allowed = ", ".join(routes.methods(path))
        if allowed:
            response = error(405, "method_not_allowed", f"{path} answers {allowed} only")
            response["headers"]["allow"] = allowed
            return response
        return error(404, "not_found", f"no route {method} {path}")

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request_id = uuid.uuid4().hex
        method = environ.get("REQUEST_METHOD", "")
        path = environ.get("PATH_INFO", "")
        with request_context(request_id):
            try:
                body = environ["wsgi.input"].read()
                event = to_event(
                    method,
                    path,
                    environ.get("QUERY_STRING", ""),
                    _headers(environ),
                    body,
                    environ.get("REMOTE_ADDR", ""),
                    request_id,
                )
                response = self._route(event, method, path)
            except Exception as failure:
                log(
                    "ERROR",
                    "unhandled exception",
                    route=f"{method} {path}",
                    device_id=environ.get("HTTP_X_DEVICE_ID"),
                    exception=repr(failure),
                    trace=traceback.format_exc(limit=-8),
                )
                response = error(
                    500, "internal_error", f"the receiver failed on this request; its log names request {request_id}"
                )
        raw = response["body"]
        payload = base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()
        headers = [(name, value) for name, value in response.get("headers", {}).items()]
        headers.append(("Content-Length", str(len(payload))))
        status = response["statusCode"]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [payload]

    # -- life cycle ---------------------------------------------------------
    def start(self) -> "LocalEndpoint":
        self._thread = threading.Thread(target=self._server.run, name="local-endpoint", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        log(
            "INFO",
            "local endpoint listening",
            url=self.url,
            data_dir=str(self.data_dir),
            connection_cap=self.connection_cap,
            pid=os.getpid(),
        )
        self._server.run()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        woken = False
        if self._thread and self._thread.is_alive():
            # Closing every channel empties the loop's map, which ends run(); done in the loop's thread.
            try:
                self._server.trigger.pull_trigger(lambda: wasyncore.close_all(self._server._map))
                woken = True
            except OSError as failure:
                # Seen rarely under a loaded test run (EBADF: the trigger's pipe already closed,
                # cause not found): close from here instead, so stopping never fails.
                log("WARNING", "local endpoint: could not wake the server loop to stop it", error=repr(failure))
        if woken and self._thread:
            self._thread.join(timeout=5)
        else:
            wasyncore.close_all(self._server._map, ignore_all=True)
            if self._thread:
                self._thread.join(timeout=5)
        self._server.task_dispatcher.shutdown()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> "LocalEndpoint":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
