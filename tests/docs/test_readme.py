"""The README's commands, taken from the README itself, so it cannot drift from the tools.

Every `dhtlink` and `make` command in its code blocks and inline code parses with the real
CLI (make targets through `make -n`, which prints the dhtlink command they run). The slow
test then runs them in the README's order against a virtual board and a local endpoint;
the few that need hardware, AWS, a person at the keyboard or half a minute of fleet are
listed in NOT_RUN with the reason, and a test checks that list matches the README.
"""

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools import cli, ota
from tests.cli.conftest import UNCONFINED

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DHTLINK = str(Path(sys.executable).parent / "dhtlink")
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_-]*[A-Z]\b|\bT\b|/dev/pts/N|API-ID")

# Parsed, not run, and why.
NOT_RUN = {
    "make bench": "the whole fleet (tests/bench runs it)",
    "make test": "this suite",
    "make bench BENCH_ARGS=": "a longer fleet run with chaos (tests/bench runs chaos)",
    "make serve HOST=0.0.0.0": "listens on the LAN",
    "make flash FIRMWARE=": "esptool writes a real chip's flash",
    "dhtlink up": "a board on USB and a person choosing a network (tests/serial/test_dhtlink_up.py runs it on an "
    "emulated blank chip)",
    "make repl": "interactive: the terminal belongs to mpremote",
    "read -rs DHTLINK_SECRET": "a person pastes the secret; the test exports it",
    "dhtlink devices list --aws": "needs a deployed stack (tests/cloud/test_devices_aws.py runs it on moto)",
    "dhtlink logs --follow": "runs until Ctrl-C (tests/cli/test_logs.py drives it)",
    "dhtlink serve": "make serve above runs the same command",
    "dhtlink node": "reads a DHT on a Pi's GPIO (tests/node runs it on simulated pins)",
    "dhtlink alerts add": "a webhook receiver or an SNS topic (tests/cloud/test_alert_*.py run them)",
    "dhtlink alerts test RULE": "needs a rule's id (tests/cloud/test_alert_ingest.py runs it)",
    "dhtlink alerts remove RULE": "needs a rule's id (tests/cloud/test_alert_ingest.py runs it)",
    "dhtlink bench --ota": "a fleet run with chaos (tests/bench/test_bench_ota.py runs it)",
    "dhtlink provision --sensor": "re-provisions a board whose app is running; mpremote's raw paste to a "
    "cycling virtual board fails now and then on a loaded machine (tests/cli/test_provision_settings.py runs it)",
}


def commands() -> list[str]:
    """Each command in the README's code blocks and inline code, continuation lines joined,
    comments dropped, in the order the README gives them."""
    text = README.read_text()
    found = []
    for block in re.findall(r"^```\n(.*?)^```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(("dhtlink ", "make ", "mpremote ", "read ")):
                found.append(" ".join(line.split()))
    prose = "\n".join(line for line in text.splitlines() if not line.startswith("#"))  # not the headings
    inline = [" ".join(c.split()) for c in re.findall(r"`(dhtlink [^`]+)`", prose)]
    return found + [c for c in inline if c not in found and not names_a_verb(c)]


def names_a_verb(text: str) -> bool:
    """`dhtlink devices` in a sentence names the verb; its actions are the commands."""
    import argparse

    words = text.split()
    if len(words) != 2:
        return False
    verbs = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    verb = verbs.choices.get(words[1])
    return verb is not None and any(isinstance(a, argparse._SubParsersAction) and a.required for a in verb._actions)


def not_run(command: str) -> str | None:
    return next((why for start, why in NOT_RUN.items() if command.startswith(start)), None)


def variants(command: str, bare: bool = True) -> list[list[str]]:
    """The command's words, once without its [optional parts] (unless not bare) and once with
    those that hold no placeholder; `on|off` and `a|b` alternatives each once."""
    full = re.sub(r"\[([^]]*)\]", lambda m: "" if PLACEHOLDER.search(m.group(1)) else m.group(1), command)
    forms = [re.sub(r"\s*\[[^]]*\]", "", command), full] if bare else [full]
    out = []
    for form in dict.fromkeys(forms):
        words = shlex.split(form)
        choices = [i for i, w in enumerate(words) if re.fullmatch(r"\w+(\|\w+)+", w)]
        if choices:
            i = choices[0]
            out += [[*words[:i], option, *words[i + 1 :]] for option in words[i].split("|")]
        else:
            out.append(words)
    return out


def make_dry_run(words: list[str], env: dict[str, str] | None = None) -> list[list[str]]:
    """The dhtlink commands a make target runs, as make prints them."""
    printed = subprocess.run(
        ["make", "-s", "-n", "-C", str(REPO), *words[1:]], capture_output=True, text=True, env=env, check=True
    ).stdout.replace("\\\n", " ")
    return [shlex.split(line)[1:] for line in printed.splitlines() if line.startswith(".venv/bin/dhtlink ")]


def test_the_readme_has_commands_and_not_run_names_only_real_ones():
    found = commands()
    assert len(found) >= 20
    forms = [" ".join(words) for command in found for words in variants(command)]
    for start in NOT_RUN:
        assert any(f.startswith(start) for f in forms), f"NOT_RUN names {start!r}, which the README no longer has"


@pytest.mark.parametrize("command", commands())
def test_every_readme_command_parses(command):
    if command.startswith(("read ", "mpremote ")):
        return
    for words in variants(command):
        argvs = make_dry_run(words) if words[0] == "make" else [words[1:]]
        if words[0] == "make" and words[1] not in ("test", "lint", "test-fast"):
            assert argvs, f"`{' '.join(words)}` runs no dhtlink command"
        for argv in argvs:
            try:
                cli.build_parser().parse_args(argv)
            except SystemExit as exit_info:  # 2 with argparse's message if it does not parse
                assert exit_info.code == 0 and "--help" in argv, f"`{' '.join(words)}` does not parse"


# -- run them ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def started(argv: list[str], env: dict[str, str], cwd: Path, ready: str) -> tuple[subprocess.Popen, str]:
    """A long-running command, once it has printed a line holding `ready`."""
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if ready in line:
            return process, "".join(lines)
    process.kill()
    raise AssertionError(f"{argv} did not print {ready!r}: {''.join(lines)}")


@pytest.mark.slow
def test_the_readme_commands_run_against_a_virtual_board_and_a_local_endpoint(tmp_path):
    tcp_port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path / "data"),
        "PORT": str(tcp_port),  # make serve's port and the default query endpoint's
    }
    env.pop("DHTLINK_PORT", None)
    env.pop("READ_TOKEN", None)
    (tmp_path / "wifi.txt").write_text("correct horse battery\n")
    endpoint = f"http://127.0.0.1:{tcp_port}"
    background: list[subprocess.Popen] = []
    ran: list[str] = []

    def substitute(words: list[str]) -> list[str]:
        swaps = {
            "http://127.0.0.1:8080": endpoint,
            "http://192.168.1.20:8080": endpoint,
            "/dev/pts/N": env.get("DHTLINK_PORT", "/dev/pts/N"),
            "myboard/.vboard/tty": env.get("DHTLINK_PORT", "myboard/.vboard/tty"),
            "myboard": str(tmp_path / "myboard"),
            "ENDPOINT=http://192.168.1.20:8080": f"ENDPOINT={endpoint}",
            "0.2.0": ota.app_version(),  # the README's next release: here the one `ota publish` made
        }
        return [swaps.get(word, word) for word in words]

    def run(argv: list[str]) -> str:
        result = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
        return result.stdout

    try:
        # The board on the cable for the README's real-board commands; its `dhtlink vboard` section
        # then starts a fresh one, which the later commands use.
        process, first = started(
            [DHTLINK, "vboard", "--dir", str(tmp_path / "cable"), *UNCONFINED], env, tmp_path, "/tty"
        )
        background.append(process)
        env["DHTLINK_PORT"] = first.strip().splitlines()[0]
        for command in commands():
            for words in variants(command, bare=False):
                if not_run(" ".join(words)):
                    continue
                words = substitute(words)
                if words[:2] == ["make", "serve"]:
                    if "serve" in ran:
                        continue  # the README starts it again for the next section: one is running
                    ran.append("serve")
                    (argv,) = make_dry_run(words, env)
                    process, _ = started([DHTLINK, *argv], env, tmp_path, "Ctrl-C stops it")
                    background.append(process)
                elif words[:2] == ["dhtlink", "vboard"]:
                    process, first = started([DHTLINK, *words[1:], *UNCONFINED], env, tmp_path, "/tty")
                    background.append(process)
                    env["DHTLINK_PORT"] = first.strip().splitlines()[0]
                elif words[0] == "make":
                    # make's PORT is the serial port for board targets (the TCP port for serve)
                    board_env = {k: v for k, v in env.items() if k != "PORT"}
                    for argv in make_dry_run(words, board_env):
                        run([DHTLINK, *argv])
                    if words[1] == "provision":
                        # The README's next step with a board: it starts and sends (the queries below need it).
                        run([DHTLINK, "reset"])
                        wait_for_a_reading(env, endpoint)
                elif words[0] == "mpremote":
                    run([sys.executable, "-m", "mpremote", *substitute(words[1:])])
                else:
                    out = run([DHTLINK, *words[1:]])
                    secret = re.search(r"^secret: ([0-9a-f]{64})$", out, re.M)
                    if secret:  # what `read -rs DHTLINK_SECRET` would take from the person
                        env["DHTLINK_SECRET"] = secret.group(1)
                    if words[1:3] == ["devices", "remove"]:
                        run([DHTLINK, "devices", "add", words[3]])  # the board below is provisioned with it
                ran.append(" ".join(words))
    finally:
        for process in background:
            process.terminate()
            process.wait(timeout=10)
    assert any(c.startswith("dhtlink sim") for c in ran) and any(c.startswith("dhtlink query range") for c in ran)


def wait_for_a_reading(env: dict[str, str], endpoint: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = subprocess.run(
            [DHTLINK, "query", "latest", "--device", "greenhouse-01", "--endpoint", endpoint],
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode == 0:
            return
        time.sleep(1)
    raise AssertionError(f"the provisioned board stored nothing: {result.stderr}")
