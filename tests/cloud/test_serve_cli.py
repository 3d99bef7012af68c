"""`dhtlink serve` as a user runs it: prints where it listens, answers, stops on Ctrl-C."""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

DHTLINK = str(Path(sys.executable).parent / "dhtlink")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_prints_url_and_token_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data"), "LISTEN_PORT": str(port)}
    process = subprocess.Popen([DHTLINK, "serve"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        first = process.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first
        lines = [process.stdout.readline() for _ in range(3)]
        token = next(line.split()[2] for line in lines if "read token" in line)
        deadline = time.monotonic() + 10
        while True:
            try:
                answer = requests.get(
                    f"http://127.0.0.1:{port}/devices", headers={"Authorization": f"Bearer {token}"}, timeout=2
                )
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.json() == {"devices": [], "next_cursor": None}
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert any(f"http://127.0.0.1:{port}/ " in line for line in lines), "it names the dashboard's address"
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0 and "stopped" in out
    assert (tmp_path / "data" / "read-token").read_text().strip() == token


def test_port_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [DHTLINK, "serve", "--listen", str(port)],
            capture_output=True,
            text=True,
            timeout=20,
            env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path)},
            check=False,
        )
    assert done.returncode == 1 and "cannot listen" in done.stderr and done.stderr.count("\n") == 1


def test_the_console_shows_json_log_lines_and_the_metrics_go_to_their_file(tmp_path):
    import json

    from cloud import signing

    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data")}
    add = subprocess.run([DHTLINK, "devices", "add", "d1", "--json"], env=env, capture_output=True, text=True)
    secret = json.loads(add.stdout)["secret"]
    process = subprocess.Popen(
        [DHTLINK, "serve", "--listen", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        banner = []
        while not banner or "Ctrl-C stops it" not in banner[-1]:
            banner.append(process.stdout.readline())
            assert banner[-1], "serve ended before its banner did"
        assert any("metrics.jsonl" in line for line in banner)
        body = json.dumps({"device_id": "d1", "readings": [{"seq": 0, "ts": int(time.time()), "t": 20, "h": 50}]})
        headers = signing.signed_headers(secret, "d1", int(time.time()), "/data", body.encode())
        deadline = time.monotonic() + 10
        while True:
            try:
                answer = requests.post(f"http://127.0.0.1:{port}/data", data=body, headers=headers, timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=10)
    logged = [line for line in out.splitlines() if line.startswith("{")]
    assert logged and all("_aws" not in json.loads(line) for line in logged)
    metrics = [json.loads(line) for line in (tmp_path / "data" / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all("_aws" in record for record in metrics)


def test_listening_on_every_interface_tells_boards_the_lan_address(tmp_path):
    from host_tools.common import lan_address

    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data")}
    # Port 0: a port probed free on 127.0.0.1 can be taken on another interface before
    # serve binds every interface (CI saw "cannot listen" here once).
    process = subprocess.Popen(
        [DHTLINK, "serve", "--host", "0.0.0.0", "--listen", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        banner = [process.stdout.readline() for _ in range(3)]
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=10)
    boards = next((line for line in banner if "boards POST to" in line), None)
    assert boards is not None, "".join(banner) + rest
    assert "0.0.0.0" not in boards
    assert (lan_address() or "LAN-ADDRESS") in boards


def test_a_bad_data_dir_is_named_not_blamed_on_the_port(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for data_dir, says in ((a_file, "is a file, not a folder"), (a_file / "below", "Not a directory")):
        done = subprocess.run(
            [DHTLINK, "serve", "--data-dir", str(data_dir), "--listen", "0"],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert done.returncode == 1 and f"--data-dir {data_dir}" in done.stderr and says in done.stderr
        assert "listen" not in done.stderr and "Traceback" not in done.stderr


def test_the_old_port_option_still_works_with_a_warning(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [DHTLINK, "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path)},
        )
    assert "serve -p/--port is now --listen" in done.stderr and f"cannot listen on 127.0.0.1:{port}" in done.stderr
