"""Helpers shared by the verb modules: where the local data lives, and flag checks."""

import os
from pathlib import Path

from host_tools.errors import UsageError


def data_dir() -> Path:
    return Path(os.environ.get("DATA_DIR") or ".dhtlink")


def tcp_port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise UsageError(f"--port must be a TCP port number from 0 to 65535, got {value!r}")
    return int(value)


def default_port() -> str:
    return os.environ.get("PORT") or "8080"
