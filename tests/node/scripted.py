"""A loopback receiver that answers from a script, signing its answers with
cloud.signing.sign_answer as a v1.1 receiver does (or not, or wrongly, as a proxy,
a captive portal or a forger would). It records every request it gets."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cloud.signing import sign_answer, verify


class Step:
    def __init__(
        self,
        status: int,
        body: dict | bytes,
        signed: bool | str = True,
        headers: dict | None = None,
        truncate: bool = False,
        delay_s: float = 0,
    ) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.signed = signed  # True, False, or "other-request": signed, but for another request
        self.headers = headers or {}
        self.truncate = truncate
        self.delay_s = delay_s


class ScriptedReceiver:
    """Each request gets the next step; a step may be a function of the request body.
    With the script used up, every request is acknowledged with the receiver's time
    (the wall clock plus `clock_offset`)."""

    def __init__(self, secret: str, *script, clock_offset: int = 0) -> None:
        self.secret = secret
        self.clock_offset = clock_offset
        self.script = list(script)
        self.requests: list[dict] = []
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request_sig = self.headers["X-Signature"]
                if not verify(
                    receiver.secret, self.headers["X-Device-Id"], self.headers["X-Timestamp"], "POST", self.path,
                    body, request_sig,
                ):  # fmt: skip
                    receiver.bad_signatures += 1
                received = json.loads(body)
                received["_timestamp"] = int(self.headers["X-Timestamp"])
                receiver.requests.append(received)
                step = receiver.script.pop(0) if receiver.script else receiver.ack
                if callable(step):
                    step = step(received)
                time.sleep(step.delay_s)
                self.send_response(step.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(step.body) + (50 if step.truncate else 0)))
                for name, value in step.headers.items():
                    self.send_header(name, value)
                if step.signed:
                    signed_for = request_sig if step.signed is True else "v1=" + "0" * 64
                    self.send_header("X-Signature", sign_answer(receiver.secret, signed_for, step.status, step.body))
                self.end_headers()
                self.wfile.write(step.body)
                if step.truncate:
                    self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/data"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def ack(self, received: dict) -> Step:
        n = len(received["readings"])
        server_time = int(time.time()) + self.clock_offset
        return Step(200, {"accepted": n, "duplicates": 0, "rejected": [], "server_time": server_time})

    def __enter__(self) -> "ScriptedReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
