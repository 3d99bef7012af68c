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

from host_tools import device_settings
from host_tools.common import (
    DATA_PATH,
    base_url,
)
from host_tools.errors import CommandError, UsageError
from host_tools.serial.board import BoardFiles
from host_tools.serial.files import CONFIG, SETTINGS, SPOOL_STATE


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


def ingest_url(endpoint: str, option: str = "--endpoint") -> str:
    """The URL the board POSTs to: the receiver's base URL + /data (config.json's endpoint)."""
    return base_url(endpoint, option) + DATA_PATH


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
) -> tuple[str, str, int | None]:
    """(secret, what happened, the highest seq the registry has seen from it): the registered
    secret, new, kept or rotated, once the endpoint has answered a signed probe with it. A
    device registered here is removed again when the probe fails, and a secret is rotated
    only after the old one passed it: a failed run leaves the registry as it was. device_id
    is already checked by run()."""
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
        return secret, "registered", None
    probe(endpoint, device_id, existing["secret"])
    max_seq = existing.get("max_seq")
    if rotate:
        return registry.rotate_secret(store, device_id), "rotated its secret", max_seq
    return existing["secret"], "kept its registered identity", max_seq


# The root API Gateway's certificates chain to (Amazon Trust Services; its RSA 2048 M0x
# intermediates are signed by it): what `provision --aws` has the board check by default.
AWS_ROOT_CA = "Amazon Root CA 1"
CA_FILE = "ca.der"  # on the board, named by config.json's tls_ca


def bundled_ca(label: str) -> bytes:
    """A root certificate (DER) from certifi's bundle, by its label."""
    import ssl

    import certifi

    text = Path(certifi.where()).read_text()
    marker = f'# Label: "{label}"\n'
    if marker not in text:
        raise CommandError(f"certifi {certifi.__version__} has no {label!r} certificate; pass --tls-ca FILE")
    block = text.split(marker, 1)[1]
    pem = block[block.index("-----BEGIN CERTIFICATE-----") : block.index("-----END CERTIFICATE-----") + 25]
    return ssl.PEM_cert_to_DER_cert(pem)


def tls_ca(endpoint: str, aws: bool, given: str | None) -> bytes | None:
    """The CA certificate (DER) the board is to check its https endpoint against: --tls-ca
    FILE (PEM or DER), none for --tls-ca none or an http endpoint, else for --aws the root
    API Gateway chains to. None with no --aws and no --tls-ca: the board keeps what it has."""
    import ssl

    if given == "none" or (given is None and not aws):
        return None
    if not endpoint.startswith("https://"):
        if given is not None:
            raise UsageError("--tls-ca goes with an https:// endpoint")
        return None
    if given is None:
        return bundled_ca(AWS_ROOT_CA)
    try:
        data = Path(given).read_bytes()
    except OSError as error:
        raise UsageError(f"--tls-ca: cannot read {given}: {error.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            return ssl.PEM_cert_to_DER_cert(data.decode("ascii", "replace"))
        except ValueError:
            pass
    elif data[:1] == b"\x30":
        return data
    raise UsageError(f"--tls-ca: {given} is not a PEM or DER certificate")


def build_config(
    old: dict[str, Any] | None,
    device_id: str,
    secret: str,
    wifi: list[dict[str, str]],
    endpoint: str,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The board's config.json: the board's own (old) with what this run was told to change,
    so a setting made by hand or by an earlier run (sensor type, pin, interval...) stays."""
    config = dict(old or {})
    config.update({"device_id": device_id, "secret": secret, "wifi": wifi, "endpoint": endpoint})
    return device_settings.apply(config, settings)


def read_board_config(board: BoardFiles) -> dict[str, Any] | None:
    """The board's config.json as a dict, or None when it has none; a damaged one is not
    silently replaced by defaults."""
    raw = board.read_file(CONFIG)
    if raw is None:
        return None
    try:
        config = json.loads(raw)
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise _not_written(
            "the board's config.json is not a JSON object, so the settings it holds cannot be kept; "
            "fix it at the REPL or remove it (`dhtlink repl`) and provision again"
        )
    return config


def start_seq_after(board: BoardFiles, max_seq: int | None) -> int | None:
    """Make the board's next seq one past the highest the registry has seen, so a board whose
    flash was erased does not send seqs the receiver already holds (each would be a 409 and a
    renumbering). Only ever raised, never lowered. The spool state is replaced the way the
    spool itself does it (temporary file, then rename), so a cut leaves the old state or the
    new one; unsent readings in the spool keep their seqs (the spool moves next_seq past
    them on load, and a conflict among them is renumbered after the receiver's 409).
    Returns the new next_seq, or None when nothing changed."""
    if max_seq is None:
        return None
    raw = board.read_file(SPOOL_STATE)
    try:
        state = json.loads(raw) if raw is not None else {}
    except ValueError:
        state = {}
    if not isinstance(state, dict) or not isinstance(state.get("next_seq", 0), int):
        state = {}
    if state.get("next_seq", 0) > max_seq:
        return None
    state.setdefault("gen", 0)
    state.setdefault("head", 0)
    state.setdefault("dropped", 0)
    state["next_seq"] = max_seq + 1
    board.write_file(SPOOL_STATE, json.dumps(state).encode())
    return max_seq + 1


def write_config(board: BoardFiles, config: dict[str, Any]) -> None:
    data = json.dumps(config).encode()
    board.write_file(CONFIG, data)
    if board.sha256(CONFIG) != hashlib.sha256(data).hexdigest():
        raise CommandError("config.json on the board does not read back as written")


def hand_back_to_usb(
    board: BoardFiles, device_id: str, aws: bool, stack: str, settings: dict[str, Any], data_dir: Path | None = None
) -> list[str]:
    """Settings given to provision win over the same keys desired remotely (`dhtlink devices
    set`): they are removed from the registry's desired settings (a new version), and the
    board gets that version's settings.json now, so it neither runs the old remote value at
    its next boot nor waits for the receiver's answer to agree. Returns the keys handed back."""
    from host_tools.cli.devices import open_store

    store = open_store(aws, stack, data_dir)
    row = store.get_device(device_id) or {}
    clash = sorted(key for key in settings if key in (row.get("desired") or {}))
    if not clash:
        return []
    version, desired = store.set_desired(device_id, dict.fromkeys(clash))
    board.write_file(SETTINGS, json.dumps({"v": version, **desired}).encode())
    return clash
