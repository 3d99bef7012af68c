"""The vectors under tests/ are the design's vectors: a change to the protocol reaches both."""

import json

import pytest

from tests.conftest import SHARED, VECTORS_FILE


def test_the_projects_copy_of_the_signing_vectors_matches_the_design():
    design = SHARED / "signing-vectors.json"
    if not design.exists():
        pytest.skip(f"no design copy at {design} (a user's clone has none): the project's copy is used alone")
    assert json.loads(VECTORS_FILE.read_text()) == json.loads(design.read_text())


def test_the_copy_holds_request_and_answer_vectors():
    vectors = json.loads(VECTORS_FILE.read_text())
    assert vectors["vectors"] and vectors["ack_vectors"]
