"""The local endpoint's data folder: the SQLite store and the read token, host side only
(the Lambda artifact leaves cloud/local/ out)."""

import secrets
from pathlib import Path

from cloud.stores.base import Store

STORE_FILE = "dhtlink.sqlite3"
TOKEN_FILE = "read-token"  # noqa: S105 - a file name, not a token


def local_store(data_dir: str | Path) -> Store:
    from cloud.stores.sqlite import SQLiteStore

    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)  # the store holds device secrets
    return SQLiteStore(path / STORE_FILE)


def read_token(data_dir: str | Path, environ_token: str | None = None) -> str:
    """The local endpoint's read token: READ_TOKEN if set, else one kept in DATA_DIR."""
    if environ_token:
        return environ_token
    path = Path(data_dir) / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token
