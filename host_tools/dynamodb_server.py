"""A DynamoDB-compatible server for one run: moto's server mode (the app `moto_server`
serves, installed with the dev extras) in a child process on 127.0.0.1 at a free port,
stopped when the run ends or its parent dies.

The handlers then talk to DynamoDB over real HTTP, as a Lambda does, and the bench judges
what the tables hold through the same API.

Two departures from `moto_server`, both about moto 5.2.5's TransactWriteItems, which
deep-copies every table it touches before it starts, to restore the copy if it fails:
- One request at a time. Under `moto_server`'s threads, concurrent transactions fail with a
  500 ("dictionary changed size during iteration", seen 2026-11-23), and a rollback would
  restore a copy taken before another writer's items. DynamoDB serializes transactions;
  so does this server. Our handlers still run concurrently: their races are the point.
- Rollback of the items a transaction touched, not of whole tables: the copy costs time in
  proportion to the table (a 20-reading write took 0.4 s at 1,000 items and 3 s at 1,500),
  which would make a bench measure the emulator, not the receiver. The outcome is the same:
  a cancelled transaction leaves every item as it was (the store contract suite runs on
  this server too, tests/cloud/test_moto_server_contract.py).

And one addition: TransactWriteItems' ClientRequestToken, which moto ignores. botocore
fills it in and sends the same token when it retries (after a read timeout, say). DynamoDB
answers a retry of a transaction that succeeded with success and applies nothing, and a
token used again with other items with IdempotentParameterMismatchException, for 10
minutes. Without it, a slow run retried a transaction that had landed, saw it cancelled,
and the bench judged the emulator's answer, not the receiver's."""

import importlib.util
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from host_tools.errors import CommandError

START_TIMEOUT_S = 30
TRANSACT_WRITE_TARGET = "DynamoDB_20120810.TransactWriteItems"
TOKEN_WINDOW_S = 600  # DynamoDB's idempotency window for ClientRequestToken
# Any keys do for an emulator; explicit ones keep boto3 away from the user's real account.
LOCAL_SESSION: dict[str, Any] = {
    "region_name": "us-east-1",
    "aws_access_key_id": "local",
    "aws_secret_access_key": "local",
}


def _require_moto_server() -> None:
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        raise CommandError("moto's server mode is not installed: `make venv` installs it (moto[server], dev extras)")


def _roll_back_touched_items_only() -> None:
    import copy

    import moto.dynamodb.models as models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class TablesUncopied:
        """moto's `copy` inside its DynamoDB backend: tables pass through uncopied."""

        @staticmethod
        def deepcopy(value: Any) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value)

    models.copy = TablesUncopied  # type: ignore[assignment]
    transact = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        before = []
        for entry in transact_items:
            op = next(iter(entry.values()))
            table = self.get_table(op["TableName"])
            key = op.get("Key") or op["Item"]
            hash_key = DynamoType(key[table.hash_key_attr])
            range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            before.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
        try:
            transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in before:
                table.delete_item(hash_key, range_key)
                if item is not None:
                    if range_key is None:
                        table.items[hash_key] = item
                    else:
                        table.items[hash_key][range_key] = item
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _idempotent_transactions(app: Any, clock: Any = time.monotonic) -> Any:
    """`app` answering TransactWriteItems by ClientRequestToken as DynamoDB does."""
    import io
    import json

    answered: dict[str, tuple[float, bytes, str, list[tuple[str, str]], bytes]] = {}

    def idempotent(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET") != TRANSACT_WRITE_TARGET:
            return list(app(environ, start_response))
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            request = json.loads(body)
            token = request.pop("ClientRequestToken", None)
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str):
            return list(app(environ, start_response))
        now = clock()
        for old in [key for key, (at, *_) in answered.items() if now - at > TOKEN_WINDOW_S]:
            del answered[old]
        items = json.dumps(request, sort_keys=True).encode()
        if token in answered:
            _, first_items, status, headers, answer = answered[token]
            if first_items != items:
                status, headers, answer = _mismatch()
            start_response(status, headers)
            return [answer]
        caught: list[Any] = []
        answer = b"".join(app(environ, lambda status, headers, *rest: caught.extend((status, headers))))
        status, headers = caught
        if status.startswith("200"):
            answered[token] = (now, items, status, list(headers), answer)
        start_response(status, headers)
        return [answer]

    return idempotent


def _mismatch() -> tuple[str, list[tuple[str, str]], bytes]:
    import json

    answer = json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#IdempotentParameterMismatchException",
            "message": "ClientRequestToken was used before with other items",
        }
    ).encode()
    headers = [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(answer)))]
    return "400 Bad Request", headers, answer


def serve(port: int) -> None:
    """The child: moto's server app, one request at a time, until stdin closes."""
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    _roll_back_touched_items_only()

    app = _idempotent_transactions(DomainDispatcherApplication(create_backend_app))
    lock = threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with lock:
            return list(app(environ, start_response))

    server = make_server("127.0.0.1", port, serialized, threaded=True, request_handler=MotoRequestHandler)

    def until_parent_goes() -> None:
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=until_parent_goes, daemon=True).start()
    server.serve_forever()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MotoServer:
    """`with MotoServer(log_file) as server:` then DynamoDB at server.url (server.client())."""

    def __init__(self, log_file: Path | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    def client(self, pool: int = 64, read_timeout: float | None = None) -> Any:
        """A client with the receiver's settings; a `read_timeout` for callers that judge
        outcomes, not time (this server is Python taking one request at a time)."""
        from cloud.stores.dynamodb_ingest import READ_TIMEOUT_S, client

        return client(self.url, pool=pool, read_timeout=read_timeout or READ_TIMEOUT_S, **LOCAL_SESSION)

    def start(self) -> "MotoServer":
        _require_moto_server()
        log = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "host_tools.dynamodb_server", str(self.port)],
                stdout=log,
                stderr=log,
                stdin=subprocess.PIPE,  # closed by stop(), or by the OS when this process dies
            )
        finally:
            if self.log_file:
                log.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                raise CommandError(f"the moto server exited at start (status {self._process.returncode})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise CommandError(f"the moto server did not listen on {self.url} in {START_TIMEOUT_S} s") from None
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.terminate()
                self._process.wait(timeout=5)

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
