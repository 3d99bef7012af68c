"""Every board command against a virtual board on a pseudo-terminal."""

import json
import time

import pytest

from host_tools.cli import main
from host_tools.serial import firmware
from host_tools.serial.board import Board
from tests.cli.conftest import start_vboard


def flash(port, capsys):
    assert main(["flash", "--port", port]) == 0
    return capsys.readouterr().out


def test_upload_matches_device_and_a_second_upload_sends_nothing(vboard, capsys):
    files = firmware.build()
    assert f"{len(files)} sent" in flash(vboard.port, capsys)
    for name, content in files.items():
        assert (vboard.dir / name).read_bytes() == content, name
    assert (vboard.dir / "app.mpy").exists() and not (vboard.dir / "app.py").exists()
    assert f"0 sent, {len(files)} unchanged" in flash(vboard.port, capsys)


def test_upload_removes_only_stale_app_files(vboard, capsys):
    flash(vboard.port, capsys)
    manifest = json.loads((vboard.dir / ".dhtlink-manifest").read_text())
    (vboard.dir / "old_module.mpy").write_bytes(b"M")
    (vboard.dir / ".dhtlink-manifest").write_text(json.dumps([*manifest, "old_module.mpy"]))
    (vboard.dir / "config.json").write_text("{}")
    (vboard.dir / "notes.txt").write_text("mine")
    assert "1 removed" in flash(vboard.port, capsys)
    assert not (vboard.dir / "old_module.mpy").exists()
    assert (vboard.dir / "config.json").read_text() == "{}" and (vboard.dir / "notes.txt").exists()


def test_flash_abandons_an_over_the_air_update_under_way(vboard, capsys):
    flash(vboard.port, capsys)
    # The flash's soft reset boots main.py, which would act on the files below, and a board
    # without Wi-Fi stays in it (Improv): stop it at the REPL first.
    with Board(vboard.port, say=None) as board:
        board.leave_at_repl()
    app = (vboard.dir / "app.mpy").read_bytes()
    # Mid-switch: half the release in place, the app it replaces in ota.old/, the rest staged.
    (vboard.dir / "ota.old").mkdir()
    (vboard.dir / "ota.old" / "spool.mpy").write_bytes((vboard.dir / "spool.mpy").read_bytes())
    (vboard.dir / "ota.new").mkdir()
    (vboard.dir / "ota.new" / "app.mpy").write_bytes(b"M\x06 the release's app")
    (vboard.dir / "spool.mpy").write_bytes(b"M\x06 the release's spool")
    (vboard.dir / "ota.state").write_text(json.dumps({"phase": "install", "v": "0.2.0", "sha": "ab" * 32}))
    out = flash(vboard.port, capsys)
    assert "1 sent" in out and "update was under way (release 0.2.0, install): abandoned" in out
    assert not (vboard.dir / "ota.state").exists()
    assert not (vboard.dir / "ota.new").exists() and not (vboard.dir / "ota.old").exists()
    assert (vboard.dir / "app.mpy").read_bytes() == app
    assert (vboard.dir / "spool.mpy").read_bytes() == firmware.build()["spool.mpy"]
    assert main(["status", "--port", vboard.port]) == 0  # again: the flash's own reboot ends first
    assert "abandoned" not in flash(vboard.port, capsys), "nothing under way the second time"


def provision(port, endpoint_url, password_file, device_id="porch-1", *extra):
    return main(
        [
            "provision",
            "-p",
            port,
            "--device",
            device_id,
            "--wifi-ssid",
            "home",
            "--wifi-password-file",
            str(password_file),
            "--endpoint",
            endpoint_url,
            *extra,
        ]
    )


@pytest.mark.slow
def test_provisioned_board_posts_signed_readings_and_reports(vboard, endpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))  # register in the endpoint's own store
    password = tmp_path / "wifi"
    password.write_text("correct horse\n")
    flash(vboard.port, capsys)
    # Each command below catches the board in a wake. The app's wake after a hand-back can be
    # over before the next command opens the port (pyserial's open drops what it printed), and
    # then only the next wake can be caught: 10 s away, not the default 60 s, which left a
    # loaded machine's slower boot outside the catch's 75 s.
    assert provision(vboard.port, endpoint.url, password, "porch-1", "--interval", "10s") == 0
    out = capsys.readouterr().out
    secret = endpoint.store.get_device("porch-1")["secret"]
    assert secret not in out and "correct horse" not in out
    assert "a command reaches it at its next wake, up to 10 s away" in out
    config = json.loads((vboard.dir / "config.json").read_text())
    assert config["secret"] == secret and config["wifi"] == [{"ssid": "home", "password": "correct horse"}]
    assert not (vboard.dir / "config.json.part").exists()

    assert main(["reset", "--port", vboard.port]) == 0
    deadline = time.monotonic() + 20
    while not endpoint.store.latest_reading("porch-1") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert endpoint.store.latest_reading("porch-1"), "the board's signed POST was accepted and stored"

    assert main(["logs", "--port", vboard.port]) == 0
    assert "sent 1 readings" in capsys.readouterr().out
    assert main(["status", "--port", vboard.port, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["app"]["device_id"] == "porch-1" and status["app"]["safe_mode"] is False
    assert secret not in json.dumps(status) and "correct horse" not in json.dumps(status)

    # Re-running keeps the identity; --rotate changes it.
    assert provision(vboard.port, endpoint.url, password) == 0
    assert json.loads((vboard.dir / "config.json").read_text())["secret"] == secret
    assert provision(vboard.port, endpoint.url, password, "porch-1", "--rotate") == 0
    assert json.loads((vboard.dir / "config.json").read_text())["secret"] != secret


def test_safe_mode_on_and_off(vboard, capsys):
    flash(vboard.port, capsys)
    assert main(["safe-mode", "on", "--port", vboard.port]) == 0
    assert (vboard.dir / "SAFE").exists()
    time.sleep(1)
    assert main(["status", "--port", vboard.port, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["app"]["safe_mode"] is True
    assert main(["safe-mode", "off", "--port", vboard.port]) == 0
    assert not (vboard.dir / "SAFE").exists()


def test_status_of_a_board_without_the_app(vboard, capsys):
    assert main(["status", "--port", vboard.port]) == 0
    out = capsys.readouterr().out
    assert "app          not installed" in out
    # MicroPython's own version, not sys.version's "3.4.0" (the language level it implements)
    assert out.startswith("MicroPython  1.") and "3.4.0" not in out


def test_ctrl_c_mid_flash_says_what_the_board_holds_and_status_never_shows_a_whole_app(vboard, capsys, monkeypatch):
    from host_tools.serial import flash as flash_module
    from host_tools.serial.board import Board

    flash(vboard.port, capsys)
    (vboard.dir / "app.mpy").write_bytes(b"stale")  # two files to send again
    (vboard.dir / "spool.mpy").write_bytes(b"stale")
    sent = []
    original = Board.write_file

    def interrupted_after_one_file(self, path, data, progress=None):
        if path.endswith(".mpy"):
            if sent:
                raise KeyboardInterrupt
            sent.append(path)
        original(self, path, data, progress)

    monkeypatch.setattr(Board, "write_file", interrupted_after_one_file)
    assert main(["flash", "-p", vboard.port]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "interrupted after 1 of 2 changed files" in err and "`dhtlink flash` again" in err
    monkeypatch.setattr(Board, "write_file", original)

    assert main(["status", "-p", vboard.port, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["app"] is None and "a `dhtlink flash` did not finish" in status["app_incomplete"]
    assert main(["status", "-p", vboard.port]) == 0
    assert "app          INCOMPLETE" in capsys.readouterr().out

    assert "1 sent" in flash(vboard.port, capsys)
    assert main(["status", "-p", vboard.port, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["app_incomplete"] is None and status["app"]["fw"]
    assert flash_module.PENDING not in [p.name for p in vboard.dir.iterdir()]


def test_a_board_lost_mid_command_is_one_line(vboard, capsys, monkeypatch):
    from mpremote.transport import TransportError

    def taken_over(board, device_dir=None):
        raise TransportError("could not enter raw repl")

    monkeypatch.setattr("host_tools.cli.flash.upload_app", taken_over)
    assert main(["flash", "-p", vboard.port]) == 1
    one_line_error(capsys, "the board stopped answering", "another program", "reset button")


def test_provision_on_a_board_without_the_app_says_to_flash_first(vboard, endpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))
    password = tmp_path / "wifi"
    password.write_text("correct horse\n")
    assert provision(vboard.port, endpoint.url, password) == 0
    out = capsys.readouterr().out
    assert f"no app on the board yet: `dhtlink flash -p {vboard.port}`" in out and "dhtlink reset" not in out


# -- bad input: one clear line, a non-zero exit, nothing half-written on the board --------


def one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


def test_no_board(monkeypatch, capsys):
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [])
    assert main(["flash"]) == 2
    one_line_error(capsys, "no ESP32 board found", "--port")


def test_two_boards(monkeypatch, capsys):
    class Info:
        def __init__(self, device, vid, pid):
            self.device, self.vid, self.pid, self.description = device, vid, pid, "USB serial"

    monkeypatch.setattr(
        "serial.tools.list_ports.comports",
        lambda: [Info("/dev/ttyUSB0", 0x10C4, 0xEA60), Info("/dev/ttyACM0", 0x303A, 0x1001)],
    )
    assert main(["status"]) == 2
    one_line_error(capsys, "2 boards attached", "/dev/ttyUSB0 (CP210x)", "/dev/ttyACM0", "--port")


def test_wrong_port(capsys):
    assert main(["status", "--port", "/dev/ttyUSB99"]) == 2
    one_line_error(capsys, "no serial port /dev/ttyUSB99")


def test_busy_board_that_ignores_ctrl_c(tmp_path, capsys):
    directory = tmp_path / "busy"
    directory.mkdir()
    # A program that swallows KeyboardInterrupt: Ctrl-C cannot stop it, on a real board or here.
    (directory / "main.py").write_text(
        "while True:\n    try:\n        while True:\n            pass\n    except KeyboardInterrupt:\n        pass\n"
    )
    process, board = start_vboard(directory)
    time.sleep(1)  # let main.py reach its loop: an earlier Ctrl-C would stop it at start-up
    try:
        assert main(["flash", "--port", board.port]) == 1
        one_line_error(capsys, "does not answer", "--firmware")
        assert sorted(p.name for p in directory.iterdir()) == [".vboard", "main.py"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_busy_board_that_answers_ctrl_c_is_interrupted(tmp_path, capsys):
    directory = tmp_path / "looping"
    directory.mkdir()
    (directory / "main.py").write_text("while True:\n    pass\n")
    process, board = start_vboard(directory)
    try:
        assert main(["status", "--port", board.port]) == 0
        assert "not installed" in capsys.readouterr().out
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_missing_wifi_password(vboard, endpoint, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    status = main(
        [
            "provision",
            "--port",
            vboard.port,
            "--device-id",
            "d1",
            "--wifi-ssid",
            "home",
            "--endpoint",
            endpoint.url + "/data",
        ]
    )
    assert status == 2
    one_line_error(capsys, "no Wi-Fi password", "--wifi-password-file")
    assert not (vboard.dir / "config.json").exists()


def test_invalid_device_id(vboard, endpoint, tmp_path, capsys):
    password = tmp_path / "pw"
    password.write_text("x")
    assert provision(vboard.port, endpoint.url, password, "bad id!") == 2
    one_line_error(capsys, "--device", "1-64 characters")
    assert not (vboard.dir / "config.json").exists()


def test_unreachable_endpoint(vboard, tmp_path, capsys):
    password = tmp_path / "pw"
    password.write_text("x")
    assert provision(vboard.port, "http://127.0.0.1:9", password) == 1
    one_line_error(capsys, "does not answer", "nothing was written")
    assert not (vboard.dir / "config.json").exists()


def test_endpoint_must_be_an_http_url(vboard, endpoint, tmp_path, capsys):
    password = tmp_path / "pw"
    password.write_text("x")
    status = main(
        [
            "provision",
            "-p",
            vboard.port,
            "--device",
            "d1",
            "--wifi-ssid",
            "home",
            "--wifi-password-file",
            str(password),
            "--endpoint",
            "127.0.0.1:8080",
        ]
    )
    assert status == 2
    one_line_error(capsys, "--endpoint must be the receiver's http:// or https:// base URL")
    assert not (vboard.dir / "config.json").exists()


@pytest.mark.parametrize("typed", ["http://10.0.0.2:8080", "http://10.0.0.2:8080/", "http://10.0.0.2:8080/data"])
def test_the_board_posts_to_the_base_url_plus_data_however_it_was_typed(typed):
    from host_tools.serial.provision import ingest_url

    assert ingest_url(typed) == "http://10.0.0.2:8080/data"
