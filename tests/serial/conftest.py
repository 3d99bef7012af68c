"""The virtual-board fixtures the verbs' tests use."""

from tests.cli.conftest import isolated, vboard  # noqa: F401
