"""Fixtures shared by every suite."""

import os
from pathlib import Path

import pytest

from cloud.local import LocalEndpoint

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DHTLINK_SHARED", REPO.parent / "shared"))


@pytest.fixture
def endpoint(tmp_path):
    """A running local endpoint (SQLite in tmp_path) with `add_device(id) -> secret`."""
    with LocalEndpoint(tmp_path / "endpoint", read_token="test-read-token") as ep:
        yield ep
