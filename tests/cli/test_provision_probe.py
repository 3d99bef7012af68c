"""`dhtlink provision` accepts only an endpoint that answers like our receiver: a probe
signed with the device's identity must get an answer signed for that probe. Over real HTTP
on loopback, against the real local endpoint and impostors."""

import json
import socket
import threading
import time

import pytest
import requests

from cloud import signing
from host_tools.cli import main
from host_tools.common import data_dir
from host_tools.errors import CommandError
from host_tools.registry import local_store
from host_tools.serial.provision import probe
from tests.cli.impostors import CAPTIVE_PORTAL, Impostor, fixed

DEVICE = "attic-3"


def refused(url, secret=None, **kwargs):
    with pytest.raises(CommandError) as raised:
        probe(url, DEVICE, secret or "aa" * 32, **kwargs)
    message = str(raised.value)
    assert "\n" not in message and "nothing was written to the board" in message
    assert (secret or "aa" * 32) not in message
    return message


def test_our_receiver_passes_and_stores_nothing(endpoint):
    secret = endpoint.add_device(DEVICE)
    probe(endpoint.url + "/data", DEVICE, secret)
    assert endpoint.store.query_readings(DEVICE)[0] == []
    assert endpoint.store.get_device(DEVICE)["last_seen"] is None


def test_wrong_path_on_our_receiver(endpoint):
    secret = endpoint.add_device(DEVICE)
    message = refused(endpoint.url + "/api/data", secret)
    assert "answered 404 without a signature: wrong path? boards POST to <base>/data" in message


@pytest.mark.parametrize("registered", [False, True], ids=["unknown device", "other secret"])
def test_a_receiver_that_does_not_know_this_secret(endpoint, registered):
    if registered:
        endpoint.add_device(DEVICE)
    message = refused(endpoint.url + "/data", "bb" * 32)
    assert "401 unauthorized: that receiver does not know this device's secret" in message
    assert "--aws" in message and "DATA_DIR" in message


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (fixed(200, CAPTIVE_PORTAL, Content_Type="text/html"), "200 (text/html) without a signature: a captive portal"),
        (
            fixed(
                200, b'{"accepted":20,"duplicates":0,"rejected":[],"server_time":1}', Content_Type="application/json"
            ),
            "a captive portal or a proxy, not a dhtlink receiver",
        ),
        (fixed(404, b"<h1>Not Found</h1>", Content_Type="text/html"), "404 without a signature: wrong path?"),
        (fixed(403, b'{"message":"Forbidden"}'), "403 without a signature: wrong path?"),
        (fixed(302, b"", Location="http://portal.example/login"), "redirect to http://portal.example/login"),
        (fixed(429, b'{"message":"Too Many Requests"}'), "busy; try again"),
        (fixed(502, b'{"message":"Internal Server Error"}'), "is failing; see its logs"),
        (fixed(413, b'{"message":"Request Entity Too Large"}'), "not a dhtlink receiver"),
        (
            fixed(400, b'{"error":"bad_batch_size","message":"readings must hold 1 to 100 items, got 0"}'),
            "older than protocol v1.1",
        ),
    ],
    ids=["captive portal", "forged ack", "404 page", "gateway 403", "redirect", "429", "502", "413", "pre-v1.1"],
)
def test_impostors(answer, expected):
    with Impostor(answer) as impostor:
        assert expected in refused(impostor.url + "/data")


def test_an_answer_signed_for_another_request_is_refused(endpoint):
    """A replay: a genuine signed answer from our receiver, to an earlier request."""
    secret = endpoint.add_device(DEVICE)
    body = json.dumps({"device_id": DEVICE, "readings": []}).encode()
    earlier = signing.signed_headers(secret, DEVICE, int(time.time()) - 10, "/data", body)
    recorded = requests.post(endpoint.url + "/data", data=body, headers=earlier, timeout=5)
    assert recorded.headers["X-Signature"]
    replay = fixed(recorded.status_code, recorded.content, X_Signature=recorded.headers["X-Signature"])
    with Impostor(replay) as impostor:
        message = refused(impostor.url + "/data", secret)
    assert "with a signature that does not verify" in message


def test_nothing_listening():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    assert "does not answer: start it" in refused(f"http://127.0.0.1:{port}/data")


def test_an_endpoint_that_never_answers():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        accepted = []
        threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
        port = listener.getsockname()[1]
        assert "did not answer within 0.5 s" in refused(f"http://127.0.0.1:{port}/data", timeout=0.5)


def provision(port, endpoint_url, tmp_path, *extra):
    password = tmp_path / "wifi"
    password.write_text("hunter2hunter2\n")
    return main(
        [
            "provision",
            "--port",
            port,
            "--device-id",
            DEVICE,
            "--wifi-ssid",
            "home",
            "--wifi-password-file",
            str(password),
            "--endpoint",
            endpoint_url + "/data",
            *extra,
        ]
    )


def test_provision_refuses_a_captive_portal_and_leaves_no_trace(vboard, tmp_path, capsys):
    with Impostor(fixed(200, CAPTIVE_PORTAL, Content_Type="text/html")) as portal:
        assert provision(vboard.port, portal.url, tmp_path) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "captive portal" in err and "hunter2" not in err
    assert not (vboard.dir / "config.json").exists()
    assert local_store(data_dir()).get_device(DEVICE) is None, "the device registered for the probe is removed again"


def test_provision_against_a_receiver_with_another_registry_keeps_the_secret(vboard, endpoint, tmp_path, capsys):
    store = local_store(data_dir())  # this command's registry, not the endpoint's
    store.add_device(DEVICE, "cc" * 32, 1)
    assert provision(vboard.port, endpoint.url, tmp_path, "--rotate") == 1
    err = capsys.readouterr().err
    assert "does not know this device's secret" in err and "cc" * 32 not in err
    assert store.get_device(DEVICE)["secret"] == "cc" * 32, "no rotation unless the old secret passed the probe"
    assert not (vboard.dir / "config.json").exists()


def test_provision_against_our_receiver(vboard, endpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))  # register in the endpoint's own store
    assert provision(vboard.port, endpoint.url, tmp_path) == 0
    secret = endpoint.store.get_device(DEVICE)["secret"]
    assert json.loads((vboard.dir / "config.json").read_text())["secret"] == secret
    assert secret not in capsys.readouterr().out
