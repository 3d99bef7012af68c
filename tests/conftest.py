"""Fixtures shared by every suite."""

import io
import os
import signal
from pathlib import Path

import pytest

from cloud import observability
from cloud.local import LocalEndpoint

REPO = Path(__file__).resolve().parents[1]
# The project's own copy of the protocol's signing vectors (request and answer): a user's
# clone has no ../shared. tests/test_vectors_copy.py keeps it equal to the design's copy.
VECTORS_FILE = REPO / "tests" / "fixtures" / "signing-vectors.json"
SHARED = Path(os.environ.get("DHTLINK_SHARED", REPO.parent / "shared"))

# A suite started in the background by a non-interactive shell (`make test &`, a CI runner)
# inherits SIGINT ignored, and so would every `dhtlink serve` it starts: the tests that stop
# one as Ctrl-C does would wait for it forever. A handler here is reset to the default at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def endpoint(tmp_path):
    """A running local endpoint (SQLite in tmp_path) with `add_device(id) -> secret`.
    Its request logs go to `endpoint.log_lines()`, not the test's stdout."""
    log = io.StringIO()
    observability.set_output(log)
    with LocalEndpoint(tmp_path / "endpoint", read_token="test-read-token") as ep:
        ep.log_lines = lambda: log.getvalue().splitlines()
        yield ep
    observability.set_output(None)
