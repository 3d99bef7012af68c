"""A real webhook receiver on 127.0.0.1: it verifies each POST's signature as a user's
receiver would, and answers from a script of status codes (or hangs, to time out)."""

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloud.alerts.notify import verify_signature


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Script:
    statuses: list[int] = field(default_factory=list)  # answered in turn; then `then`
    then: int = 204
    hang_s: float = 0.0  # > 0: wait this long before answering (a dead receiver)
    gate: threading.Event | None = None  # answer only once the test sets it (a receiver held busy)


class WebhookReceiver:
    def __init__(self, secret: str = "", script: Script | None = None) -> None:
        self.secret = secret
        self.script = script or Script()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = dict(self.headers.items())
                with receiver.lock:
                    receiver.received.append(
                        Received(
                            time.time(), self.path, headers, body, verify_signature(receiver.secret, headers, body)
                        )
                    )
                    status = receiver.script.statuses.pop(0) if receiver.script.statuses else receiver.script.then
                if receiver.script.hang_s:
                    time.sleep(receiver.script.hang_s)
                if receiver.script.gate is not None:
                    receiver.script.gate.wait()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/dhtlink?team=greenhouse"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def documents(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r.document for r in self.received]
