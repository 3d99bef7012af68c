"""Small HTTP servers on loopback that answer a board's POST the way things that are not a
dhtlink receiver do: a captive portal, a wrong path, a proxy, a replay."""

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (status, headers, body) for the request's (path, headers, body)
Answer = Callable[[str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]

CAPTIVE_PORTAL = b"<!doctype html><html><head><title>Hotel Wi-Fi</title></head><body>Log in</body></html>"


class Impostor:
    """`with Impostor(answer) as imp:` serves `answer` at imp.url."""

    def __init__(self, answer: Answer) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, headers, payload = answer(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "Impostor":
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def fixed(status: int, body: bytes, **headers: str) -> Answer:
    return lambda _path, _headers, _body: (status, {k.replace("_", "-"): v for k, v in headers.items()}, body)
