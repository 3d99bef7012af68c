"""Improv Wi-Fi serial on an unprovisioned board (device/improv.py): the packets by hand,
the protocol's reference client (improv-wifi-serial-sdk under node), and the REPL beside it."""

import json
import time

import pytest
import serial

from host_tools.serial.board import Board, probe
from host_tools.serial.improv import Improv, ImprovError, rpc_packet
from tests.cli.conftest import start_vboard
from tests.improv.conftest import IDENTITY, PASSWORD, prepare, reference_client, stop, wait_listening


def read_packet(line: serial.Serial) -> bytes:
    got = b""
    while b"IMPROV" not in got or len(got) < got.index(b"IMPROV") + 9:
        chunk = line.read(64)
        assert chunk, f"no Improv packet, only {got!r}"
        got += chunk
    start = got.index(b"IMPROV")
    end = start + 10 + got[start + 8]
    while len(got) < end:
        got += line.read(end - len(got))
    return got[start:end]


def test_an_unprovisioned_board_answers_request_current_state_with_a_valid_state_packet(unprovisioned):
    wait_listening(unprovisioned.port)
    with serial.Serial(unprovisioned.port, 115200, timeout=5) as line:
        # Improv's packet for RPC 0x02 with no data, written out byte by byte.
        line.write(b"IMPROV\x01\x03\x02\x02\x00" + bytes([sum(b"IMPROV\x01\x03\x02\x02\x00") & 0xFF]) + b"\n")
        answer = read_packet(line)
    assert answer[:9] == b"IMPROV\x01\x01\x01", "version 1, type current state, one byte of data"
    assert answer[9] == 0x02, "state READY (authorized, awaiting credentials)"
    assert answer[10] == sum(answer[:10]) & 0xFF, "checksum: the low byte of the sum of every byte before it"


def test_the_reference_client_provisions_the_board(unprovisioned):
    wait_listening(unprovisioned.port)
    wrong = reference_client(unprovisioned, "home", "not the password")
    steps = {step["step"]: step for step in wrong}
    assert "failed" not in steps, wrong
    assert steps["initialize"]["state"] == 2
    info = steps["initialize"]["info"]
    assert (info["firmware"], info["version"], info["name"]) == ("dhtlink", "0.1.0", "porch-1")
    assert info["osName"] == "micropython"
    # The board's own scan: one entry per network (its strongest access point), security as seen.
    assert steps["scan"]["networks"] == [
        {"name": "cafe-guest", "rssi": -80, "secured": False},
        {"name": "home", "rssi": -48, "secured": True},
    ]
    assert steps["provision"] == {"step": "provision", "state": 2, "error": "UNABLE_TO_CONNECT"}
    assert json.loads((unprovisioned.dir / "config.json").read_text())["wifi"] == [], "nothing kept on a refusal"

    right = {step["step"]: step for step in reference_client(unprovisioned, "home", PASSWORD)}
    assert right["provision"] == {
        "step": "provision",
        "state": 4,
        "nextUrl": "http://127.0.0.1:8080/#/device/porch-1",
    }
    config = json.loads((unprovisioned.dir / "config.json").read_text())
    assert config["wifi"] == [{"ssid": "home", "password": PASSWORD}]
    assert {key: config[key] for key in ("device_id", "secret", "endpoint")} == {
        key: IDENTITY[key] for key in ("device_id", "secret", "endpoint")
    }


def test_our_client_gets_the_same_answers_and_bad_packets_get_errors(unprovisioned):
    wait_listening(unprovisioned.port)
    with serial.Serial(unprovisioned.port, 115200, timeout=0.1) as line:
        client = Improv(line)
        assert client.current_state() == 2
        assert [n.ssid for n in client.scan()] == ["home", "cafe-guest"], "strongest first"
        for bad, code in ((rpc_packet(0x7F), 2), (b"IMPROV\x01\x03\x01\x02\x00\x00\n", 1)):
            line.write(bad)
            first = next(client._packets(time.monotonic() + 5), None)
            assert first == (2, bytes([code])), f"error state {code} for {bad!r}"
        with pytest.raises(ImprovError) as refused:
            client.provision("nowhere", "x", timeout=60)
        assert refused.value.code == 3, "an SSID no access point has cannot be joined: unable to connect"


def test_ctrl_c_still_reaches_the_repl_and_the_board_listens_again_after(unprovisioned):
    wait_listening(unprovisioned.port)
    with Board(unprovisioned.port, wait_s=10, say=None) as board:
        assert board.was_running, "main.py was listening: Ctrl-C interrupted it"
        assert board.exec("print(6 * 7)").strip() == "42"
        board.soft_reset()
        with_board = Improv(board.transport.serial)
        assert with_board.listen(20) == 2, "after a soft reset the unprovisioned board listens again"
    assert probe(unprovisioned.port, wait_s=5) is not None


def test_a_board_with_no_config_at_all_listens_too_and_keeps_only_the_network(tmp_path):
    prepare(tmp_path / "bare", None)
    process, board = start_vboard(tmp_path / "bare")
    try:
        wait_listening(board.port)
        with serial.Serial(board.port, 115200, timeout=0.1) as line:
            client = Improv(line)
            assert client.info()["name"].startswith("dhtlink-"), "named after its chip id until it has a device id"
            assert client.provision("cafe-guest", "") is None, "no dashboard to send the user to yet"
        assert json.loads((board.dir / "config.json").read_text()) == {"wifi": [{"ssid": "cafe-guest", "password": ""}]}
    finally:
        stop(process)
