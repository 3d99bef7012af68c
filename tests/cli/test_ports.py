from host_tools.cli import main


class Info:
    def __init__(self, device, vid, pid, description="USB serial"):
        self.device, self.vid, self.pid, self.description = device, vid, pid, description


def test_lists_only_boards_with_their_chips(monkeypatch, capsys):
    monkeypatch.setattr(
        "serial.tools.list_ports.comports",
        lambda: [
            Info("/dev/ttyUSB0", 0x1A86, 0x55D4),
            Info("/dev/ttyS0", None, None),
            Info("/dev/ttyACM0", 0x303A, 0x1001),
            Info("/dev/ttyACM1", 0x2341, 0x0043, "Arduino Uno"),
        ],
    )
    assert main(["ports", "--no-probe"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["/dev/ttyUSB0", "/dev/ttyACM0"]
    assert "1A86:55D4" in lines[0] and "CH9102" in lines[0] and "native USB" in lines[1]


def test_probe_reports_micropython_on_a_virtual_board(vboard, monkeypatch, capsys):
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [Info(vboard.port, 0x10C4, 0xEA60)])
    assert main(["ports"]) == 0
    out = capsys.readouterr().out
    assert "MicroPython 1." in out and "3.4.0" not in out


def test_each_board_is_probed_once(monkeypatch, capsys):
    # A board that answers the first probe and not a second one (it rebooted meanwhile)
    # made `"MicroPython " + probe(...)` add None to a string.
    answers = iter(["1.23.0", None])
    calls = []
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [Info("/dev/ttyUSB0", 0x10C4, 0xEA60)])
    monkeypatch.setattr("host_tools.serial.board.probe", lambda port: calls.append(port) or next(answers))
    assert main(["ports"]) == 0
    assert calls == ["/dev/ttyUSB0"] and "MicroPython 1.23.0" in capsys.readouterr().out


def test_port_from_the_environment(vboard, monkeypatch, capsys):
    monkeypatch.setenv("DHTLINK_PORT", vboard.port)
    assert main(["status"]) == 0
    assert "MicroPython" in capsys.readouterr().out


def test_repl_hands_the_terminal_to_mpremote_without_a_reset(vboard, monkeypatch, capsys):
    """The board is caught and left at its friendly REPL for mpremote's `resume repl`; a
    board that was idle at its REPL (no app here) is left there, with the way back said."""
    import subprocess
    import sys

    calls = []

    def fake_run(argv, check):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr("host_tools.cli.repl.subprocess.run", fake_run)
    assert main(["repl", "--port", vboard.port]) == 0
    assert calls == [[sys.executable, "-m", "mpremote", "connect", vboard.port, "resume", "repl"]]
    assert "left at the REPL" in capsys.readouterr().out
