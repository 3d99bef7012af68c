"""`dhtlink provision`: register a device and write its config.json onto the board.

Everything is checked before the board is touched, the endpoint included: it must answer a
probe signed with the device's identity with an answer signed by the receiver (protocol
v1.1), as a board will require of every answer. The file is written under a temporary
name, verified by hash, then renamed, so a cut cable never leaves a half config. The
secret and the Wi-Fi password are never printed.
"""

import getpass
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from host_tools.common import (
    DATA_PATH,
    base_url,
)
from host_tools.errors import CommandError, UsageError
from host_tools.serial.board import BoardFiles
from host_tools.serial.files import CONFIG


def wifi_password(path: Path | None) -> str:
    if path:
        try:
            password = path.read_text().rstrip("\r\n")
        except OSError as error:
            raise UsageError(f"--wifi-password-file {path}: {error.strerror}") from None
    elif os.environ.get("DHTLINK_WIFI_PASSWORD") is not None:
        password = os.environ["DHTLINK_WIFI_PASSWORD"]
    elif sys.stdin.isatty():
        password = getpass.getpass("Wi-Fi password (empty for an open network): ")
    else:
        raise UsageError(
            "no Wi-Fi password: pass --wifi-password-file FILE or set DHTLINK_WIFI_PASSWORD (empty for an open network)"
        )
    if len(password) > 63:
        raise UsageError("the Wi-Fi password is longer than WPA2's 63 characters")
    return password


def ingest_url(endpoint: str) -> str:
    """The URL the board POSTs to: the receiver's base URL + /data (config.json's endpoint)."""
    return base_url(endpoint) + DATA_PATH


def _not_written(message: str) -> CommandError:
    return CommandError(f"{message}; nothing was written to the board")


def probe(url: str, device_id: str, secret: str, timeout: float = 5.0) -> None:
    """Prove `url` is a dhtlink receiver that knows this device, as a board would: a signed
    POST with no readings. Our receiver checks the signature and the clock first, then
    answers this body with a 400 bad_batch_size signed with the device's secret (protocol
    v1.1), and stores nothing. A board acts only on signed answers, so an endpoint that
    cannot sign one would keep every reading on the board, unsent."""
    import requests

    from cloud import signing

    body = json.dumps({"device_id": device_id, "readings": []}).encode()
    headers = signing.signed_headers(secret, device_id, int(time.time()), urlsplit(url).path or "/", body)
    try:
        answer = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout:
        raise _not_written(
            f"the endpoint {url} did not answer within {timeout:g} s: is it running and reachable?"
        ) from None
    except requests.exceptions.SSLError:
        raise _not_written(
            f"the endpoint {url} failed the TLS handshake: check the URL's scheme and certificate"
        ) from None
    except requests.RequestException:
        raise _not_written(
            f"the endpoint {url} does not answer: start it (`make serve`, with --host 0.0.0.0 "
            "for a board on the LAN) or fix --endpoint"
        ) from None
    status, code = answer.status_code, _error_code(answer)
    answer_signature = answer.headers.get("X-Signature")
    if signing.verify_answer(secret, headers["X-Signature"], status, answer.content, answer_signature):
        if (status, code) in ((400, "bad_batch_size"), (401, "stale_timestamp")):
            return  # a clock this far off does not matter: the board takes server_time from a signed answer
        raise _not_written(f"the receiver at {url} answered the probe {status} {code}, not 400 bad_batch_size")
    seen = f"{url} answered {status}"
    if answer_signature:
        raise _not_written(
            f"{seen} with a signature that does not verify: something on the way changes answers, "
            "or it is not a dhtlink receiver"
        )
    if status == 401 and code == "unauthorized":
        raise _not_written(
            f"{seen} unauthorized: that receiver does not know this device's secret; register it in the "
            "receiver's registry (--aws and --stack for a deployed stack, the --data-dir or $DATA_DIR of "
            "`dhtlink serve` for the local endpoint)"
        )
    if code == "bad_batch_size":
        raise _not_written(
            f"{seen} unsigned: a dhtlink receiver older than protocol v1.1, which boards do not trust; "
            "update and redeploy it"
        )
    if 300 <= status < 400:
        raise _not_written(
            f"{seen}, a redirect to {answer.headers.get('Location', '?')[:120]}: boards do not follow redirects "
            "(a captive portal, or http to https?); give the final URL"
        )
    if 200 <= status < 300:
        raise _not_written(
            f"{seen} ({answer.headers.get('Content-Type', 'no content type')[:60]}) without a signature: "
            "a captive portal or a proxy, not a dhtlink receiver"
        )
    if status in (403, 404, 405):
        raise _not_written(
            f"{seen} without a signature: wrong path? boards POST to <base>/data (a deployed stack's "
            "ApiUrl + /data, or http://HOST:PORT/data for `dhtlink serve`)"
        )
    if status in (429, 503):
        raise _not_written(f"{seen} without a signature: the receiver or a gateway before it is busy; try again")
    if status >= 500:
        raise _not_written(f"{seen} without a signature: the receiver or a gateway before it is failing; see its logs")
    raise _not_written(f"{seen} without a signature: not a dhtlink receiver")


def _error_code(answer: Any) -> str:
    try:
        document = answer.json()
    except ValueError:
        return ""
    return str(document.get("error", "")) if isinstance(document, dict) else ""


def identity(
    device_id: str, aws: bool, stack: str, rotate: bool, endpoint: str, data_dir: Path | None = None
) -> tuple[str, str]:
    """(secret, what happened): the registered secret, new, kept or rotated, once the
    endpoint has answered a signed probe with it. A device registered here is removed again
    when the probe fails, and a secret is rotated only after the old one passed it: a failed
    run leaves the registry as it was. device_id is already checked by run()."""
    from host_tools import registry
    from host_tools.cli.devices import open_store

    store = open_store(aws, stack, data_dir)
    existing = store.get_device(device_id)
    if existing is None:
        secret = registry.add_device(store, device_id)
        try:
            probe(endpoint, device_id, secret)
        except CommandError:
            store.remove_device(device_id)
            raise
        return secret, "registered"
    probe(endpoint, device_id, existing["secret"])
    if rotate:
        return registry.rotate_secret(store, device_id), "rotated its secret"
    return existing["secret"], "kept its registered identity"


def build_config(device_id: str, secret: str, ssid: str, password: str, endpoint: str) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "secret": secret,
        "wifi": [{"ssid": ssid, "password": password}],
        "endpoint": endpoint,
    }


def write_config(board: BoardFiles, config: dict[str, Any]) -> None:
    data = json.dumps(config).encode()
    board.write_file(CONFIG, data)
    if board.sha256(CONFIG) != hashlib.sha256(data).hexdigest():
        raise CommandError("config.json on the board does not read back as written")
