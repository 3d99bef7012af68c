"""A DynamoDB-compatible server for one run: moto in server mode (`moto_server`, installed
with the dev extras), on 127.0.0.1 at a free port, stopped when the run ends.

The handlers then talk to DynamoDB over real HTTP, as a Lambda does, and the bench judges
what the tables hold through the same API."""

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from host_tools.errors import CommandError

START_TIMEOUT_S = 30
# Any keys do for an emulator; explicit ones keep boto3 away from the user's real account.
LOCAL_SESSION = {"region_name": "us-east-1", "aws_access_key_id": "local", "aws_secret_access_key": "local"}


def moto_server_command() -> str:
    beside = Path(sys.executable).parent / "moto_server"
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if not found:
        raise CommandError("moto_server is not installed: `make venv` installs it (moto[server] in the dev extras)")
    return found


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

    def client(self, pool: int = 64) -> Any:
        from cloud.stores.dynamodb import client

        return client(self.url, pool=pool, **LOCAL_SESSION)

    def start(self) -> "MotoServer":
        log = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                [moto_server_command(), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        finally:
            if self.log_file:
                log.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                raise CommandError(f"moto_server exited at start (status {self._process.returncode})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise CommandError(f"moto_server did not listen on {self.url} within {START_TIMEOUT_S} s") from None
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
