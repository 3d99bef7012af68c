import pytest

from tests.homeassistant.broker import Mosquitto


@pytest.fixture
def broker(tmp_path):
    """mosquitto on a free loopback port, stopped after the test."""
    with Mosquitto(tmp_path) as running:
        yield running
