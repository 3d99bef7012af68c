"""The firmware on a virtual board that behaves as MicroPython's ESP32 port does
(docs/virtual-board.md, "What the board models"): each test here failed on the firmware
before issue 21 and names the port's behaviour it depends on."""

import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from host_tools.sim.vboard.board import HARD_RESET, parse_heap

from .conftest import DEVICE, assert_exactly_once

# Planted on the board's flash beside sensor.mpy (MicroPython imports the .py first): the
# app's first wake crashes the same way at every boot.
CRASH = 'raise RuntimeError("planted crash")\n'


def test_checksum_errors_are_retried_and_counted_not_a_crash(rig):
    # micropython-lib's dht.py raises a plain Exception("checksum error") on a bad frame.
    scenario = {"sensor_fail_rate": 0.3, "sensor_fault": "checksum", "seed": 4}
    rig.install(scenario, batch_size=2)
    summary = rig.run(30, scenario)
    assert summary.boots == {"deepsleep": 30}
    report = rig.board.report()
    assert report["sensor_retries"] > 5, report
    stored = assert_exactly_once(rig, summary)
    # Three tries per reading: at a 30 % fault rate nearly every reading is kept.
    assert len(stored) + summary.still_spooled >= 28


def test_a_repeatable_crash_ends_in_safe_mode_after_three_boots(rig):
    rig.install()
    (rig.board.dir / "sensor.py").write_text(CRASH)
    statuses = [rig.board.boot().status for _ in range(3)]
    # machine.reset() after a crash is ESP_RST_SW: the next boot reads HARD_RESET.
    assert rig.board._read_state()["reset_cause"] == HARD_RESET
    assert statuses == ["reset", "reset", "reset"]
    assert rig.board.boot().status == "halted"
    assert (rig.board.dir / "SAFE").exists()
    assert "crashed 3 boots in a row" in (rig.board.dir / "SAFE").read_text()


def test_pressing_reset_or_a_power_cut_gives_a_crashing_app_another_try(rig):
    rig.install()
    (rig.board.dir / "sensor.py").write_text(CRASH)
    assert [rig.board.boot().status for _ in range(2)] == ["reset", "reset"]
    rig.board.press_reset()  # EN: PWRON_RESET on a classic ESP32, RTC memory may survive
    assert [rig.board.boot().status for _ in range(3)] == ["reset", "reset", "reset"]
    assert not (rig.board.dir / "SAFE").exists()
    # Cut while the chip restarts after the third crash: a cut inside the next boot would
    # race its safe-mode check, which the fourth crashing boot rightly reaches.
    rig.board.cut_power()
    assert [rig.board.boot().status for _ in range(3)] == ["reset", "reset", "reset"]
    assert not (rig.board.dir / "SAFE").exists()
    assert rig.board.boot().status == "halted"


def test_clock_offsets_survive_forty_power_ons(rig):
    # No NTP: after each power-on the first wake's reading waits for the clock, which the
    # receiver's signed answer sets in the same wake. The spool keeps 4 offsets; before
    # issue 21 it trimmed them in dict order, which MicroPython's dict does not keep: from
    # the 7th power-on a new epoch's offset could be dropped at once, its reading blocked
    # the spool until the next power-on and was then dropped "no clock".
    cuts = [3 * n + 2 for n in range(40)]
    scenario = {"ntp": "fail", "power_cuts": cuts, "seed": 3}
    rig.install(scenario, batch_size=1)
    summary = rig.run(3 * 40 + 2, scenario)
    assert summary.power_cuts == 40
    assert summary.drops["drop_clock"] == 0, summary
    assert summary.still_spooled <= 1
    assert_exactly_once(rig, summary)


@pytest.mark.parametrize("pin", [24, 35], ids=["no such GPIO", "input-only"])
def test_a_remote_pin_the_chip_cannot_use_is_refused_and_reported(rig, pin):
    # Stored straight into the registry (the CLI refuses it too): the board must not rely
    # on that. Before issue 21 the board took GPIO 24, and its machine.Pin raised "invalid
    # pin" at every boot after (a crash loop); GPIO 35 timed out every read.
    rig.install(interval=60, batch_size=1)
    rig.run(1)
    version, _ = rig.endpoint.store.set_desired(DEVICE, {"sensor.pin": pin})
    summary = rig.run(6)
    assert summary.boots == {"deepsleep": 6}
    report = rig.board.report()
    assert report["cfg_refused"] == version and f"GPIO {pin}" in report["cfg_error"]
    assert report["config"]["sensor"]["pin"] == 4 and report["sensor_errors"] == 0
    assert not (rig.board.dir / "settings.json").exists()
    assert len(assert_exactly_once(rig, summary)) >= 6


def awake(board):
    """One wake: how it ended and how long the board was awake (board time, s)."""
    before = board.now()
    status = board.boot().status
    assert status == "deepsleep"
    return board.now() - before - board.last_sleep_s()


AWAKE_CAP_S = 8


def named(rig):
    # The receiver by name, as a deployed stack is: the firmware must look it up.
    return rig.endpoint.url.replace("127.0.0.1", "receiver.test")


def test_a_slow_resolver_never_keeps_the_board_awake_past_its_cap(rig):
    # lwip_getaddrinfo blocks until lwIP gives up (ports/esp32/modsocket.c): here 12 s.
    scenario = {"hosts": {"receiver.test": "127.0.0.1"}, "dns_ms": 12000}
    rig.install(scenario, url=named(rig), batch_size=1)
    times = [awake(rig.board) for _ in range(3)]
    assert max(times) <= AWAKE_CAP_S + 0.5, times
    assert rig.board.report()["spool_depth"] == 3  # kept for a better resolver


def test_the_receivers_address_is_looked_up_once_not_every_wake(rig):
    scenario = {"hosts": {"receiver.test": "127.0.0.1"}, "dns_ms": 2500}
    rig.install(scenario, url=named(rig), batch_size=1)
    first = awake(rig.board)
    later = [awake(rig.board) for _ in range(4)]
    assert first >= 2.5 and max(later) < 2.5, (first, later)
    assert len(rig.stored()) == 5


def test_an_answer_dripping_in_ends_at_the_wake_deadline_not_the_watchdog(rig):
    # A byte every 2 s: each read is within the 5 s socket timeout, the whole answer is not.
    scenario = {"answer_drip_ms": 2000}
    rig.install(scenario, batch_size=1)
    times = [awake(rig.board) for _ in range(3)]
    assert max(times) <= AWAKE_CAP_S + 2.5, times  # the deadline, plus the read under way


class TlsFront:
    """TLS in front of the local endpoint (plain HTTP), as API Gateway is in front of the
    Lambda: each connection's bytes relayed both ways."""

    def __init__(self, target: int, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = target
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()  # the board refused our certificate
            return
        upstream = socket.create_connection(("127.0.0.1", self.target))

        def pump(src, dst):
            try:
                while data := src.recv(4096):
                    dst.sendall(data)
            except OSError:
                pass
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

        threading.Thread(target=pump, args=(upstream, tls), daemon=True).start()
        pump(tls, upstream)

    def close(self) -> None:
        self.listener.close()


def certificate(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    key, cert, der = (tmp_path / f"{name}.{ext}" for ext in ("key", "pem", "der"))
    subj = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    new = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", *subj]
    subprocess.run([*new, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER", "-out", str(der)], check=True)
    return key, cert, der


@pytest.mark.parametrize("trusted", [True, False], ids=["its CA", "another CA"])
def test_tls_with_a_ca_delivers_after_a_power_loss_and_only_to_that_server(rig, tmp_path, trusted):
    # After a power-on the RTC reads 2000-01-01 and the ESP32's mbedTLS checks certificate
    # dates; NTP never answers, so the clock can only come from the receiver's signed answer.
    key, cert, der = certificate(tmp_path, "server")
    trusted_der = der if trusted else certificate(tmp_path, "other")[2]
    front = TlsFront(int(rig.endpoint.url.rsplit(":", 1)[1]), cert, key)
    # mbedTLS allocates from the ESP-IDF heap on the chip, from MicroPython's on the Unix port.
    rig.board.budget = parse_heap("160k")
    try:
        scenario = {"ntp": "fail"}
        rig.install(scenario, url=f"https://127.0.0.1:{front.port}", batch_size=1, tls_ca="ca.der")
        (rig.board.dir / "ca.der").write_bytes(trusted_der.read_bytes())
        summary = rig.run(4, scenario)
    finally:
        front.close()
    if trusted:
        assert summary.still_spooled == 0 and len(assert_exactly_once(rig, summary)) == 4
    else:
        # The clock was set from the signed answer; no reading went to a server that could
        # not prove the configured CA.
        assert rig.stored() == [] and summary.still_spooled == 4


def test_after_a_power_loss_a_real_scan_and_dhcp_still_connect(rig):
    # No access point in RTC memory after a power-on: a full scan, then association and
    # DHCP, 4.5 s together here. The Wi-Fi budget was 4 s: such a board never came online.
    scenario = {"scan_ms": 2500, "connect_ms": 2000, "power_cuts": [3]}
    rig.install(scenario, batch_size=1)
    summary = rig.run(8, scenario)
    assert summary.still_spooled == 0 and len(assert_exactly_once(rig, summary)) >= 7


def test_the_board_counts_from_2000_as_the_esp32_does(rig):
    rig.install()
    rig.run(2)
    out = rig.board.run("import time\nprint(time.gmtime(0)[0], time.time() < 1000000000)")
    assert out.split() == ["2000", "True"]
    # and the firmware still stores Unix times
    stored = rig.stored()
    assert stored and all(abs(r["ts"] - rig.board.now()) < 600 for r in stored)
