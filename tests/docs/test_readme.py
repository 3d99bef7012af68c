"""The commands of README.md and docs/*.md, taken from the documents themselves, so they cannot
drift from the tools.

Every `dhtlink` and `make` command in their code blocks (and the README's inline code) parses
with the real CLI (make targets through `make -n`, which prints the dhtlink command they run).
The slow tests then run each document's commands in its order, on a scratch directory with a
local endpoint, a webhook receiver and a virtual board standing in for what the text assumes;
the few that need hardware, AWS, a person at the keyboard or half a minute of fleet are listed
in NOT_RUN with the reason (and the test that runs them), and a test checks that list names
only commands the documents have.
"""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools import cli, ota
from tests.cli.conftest import UNCONFINED
from tests.cloud.webhook_receiver import WebhookReceiver

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCUMENTS = [README, *sorted((REPO / "docs").glob("*.md"))]
DHTLINK = str(Path(sys.executable).parent / "dhtlink")
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_-]*[A-Z]\b|\bT\b|/dev/pts/N|API-ID")
SHELL = ("(umask ",)  # a shell line around a dhtlink command: run by bash, not parsed

# Parsed, not run, and why: each key starts the commands it stands for ("$" at its end: only itself).
NOT_RUN = {
    "make bench": "the whole fleet (tests/bench runs it)",
    "make test": "this suite",
    "make bench BENCH_ARGS=": "a longer fleet run with chaos (tests/bench runs chaos)",
    "make serve HOST=0.0.0.0": "listens on the LAN",
    "make flash FIRMWARE=": "esptool writes a real chip's flash",
    "dhtlink up": "a board on USB and a person choosing a network (tests/serial/test_dhtlink_up.py runs it on an "
    "emulated blank chip)",
    "make repl": "interactive: the terminal belongs to mpremote",
    "make deploy": "needs AWS (tests/deploy runs the deploy on moto)",
    "read -rs DHTLINK_SECRET": "a person pastes the secret; the test exports it",
    "dhtlink devices list --aws": "needs a deployed stack (tests/cloud/test_devices_aws.py runs it on moto)",
    "dhtlink devices add greenhouse-01 --aws": "needs a deployed stack (tests/cloud/test_devices_aws.py)",
    "dhtlink provision --device greenhouse-01 --aws": "a real board and a deployed stack (tests/cli, moto)",
    "dhtlink deploy": "needs AWS (tests/deploy/test_deploy.py runs it on moto)",
    "dhtlink query devices --endpoint https://": "a deployed stack (tests/bench/test_query.py runs query)",
    "dhtlink serve --aws": "a deployed stack (tests/cloud/test_serve_dynamodb.py runs serve over DynamoDB)",
    "dhtlink serve --store dynamodb": "a deployed stack or DynamoDB Local (tests/cloud/test_serve_dynamodb.py)",
    "dhtlink serve --host 0.0.0.0 --mqtt": "an MQTT broker on the LAN (tests/homeassistant runs mosquitto)",
    "dhtlink serve --mqtt": "an MQTT broker (tests/homeassistant/test_serve_mqtt.py runs mosquitto)",
    "dhtlink serve --data-dir .dhtlink/bench-": "a bench run's folder (tests/bench/test_bench.py prints it)",
    "dhtlink query latest --device bench-01 --endpoint http://127.0.0.1:8080 --data-dir .dhtlink/bench-": "the "
    "bench run's store above",
    "dhtlink bench": "a fleet run (tests/bench runs --endpoint, --store dynamodb, --ota and --chaos)",
    "dhtlink logs -f": "runs until Ctrl-C (tests/cli/test_logs.py drives it)",
    "dhtlink node$": "names the verb; docs/pi-node.md's commands run it",
    "dhtlink node --simulate$": "names the option; docs/pi-node.md runs it in full",
    "dhtlink serve --host ADDR": "placeholders: `make serve` above runs the same command",
    "dhtlink provision --sensor": "re-provisions a board whose app is running; mpremote's raw paste to a "
    "cycling virtual board fails now and then on a loaded machine (tests/cli/test_provision_settings.py runs it)",
}

# What a document's prose asks for before its first command, as commands.
BEFORE = {
    "alerts.md": [["dhtlink", "devices", "add", "greenhouse-01"]],
    "virtual-board.md": [["make", "serve"], ["dhtlink", "devices", "add", "bench-01"]],
}
# Commands that run until stopped: started, and running on once they print this.
LONG_RUNNING = {"dhtlink node --simulate": "sensor open", "dhtlink serve": "Ctrl-C stops it"}
# Commands that watch until Ctrl-C: run, then stopped as the person would once it watches.
WATCHING = {("dhtlink", "logs", "--follow"): "following", ("dhtlink", "logs", "-f"): "following"}


def commands(document: Path = README) -> list[str]:
    """Each command in a document's code blocks (and the README's inline code), continuation
    lines joined, comments dropped, in the order the document gives them."""
    text = document.read_text()
    found = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(("dhtlink ", "make ", "mpremote ", "read ", *SHELL)):
                found.append(" ".join(line.split()))
    if document != README:
        return found
    prose = "\n".join(line for line in text.splitlines() if not line.startswith("#"))  # not the headings
    inline = [" ".join(c.split()) for c in re.findall(r"`(dhtlink [^`]+)`", prose)]
    return found + [c for c in inline if c not in found and not names_a_verb(c)]


def every_command() -> list[tuple[str, str]]:
    return [(document.name, command) for document in DOCUMENTS for command in commands(document)]


def names_a_verb(text: str) -> bool:
    """`dhtlink devices` in a sentence names the verb; its actions are the commands."""
    import argparse

    words = text.split()
    if len(words) != 2:
        return False
    verbs = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    verb = verbs.choices.get(words[1])
    return verb is not None and any(isinstance(a, argparse._SubParsersAction) and a.required for a in verb._actions)


def stands_for(start: str, command: str) -> bool:
    return command == start[:-1] if start.endswith("$") else command.startswith(start)


def not_run(command: str) -> str | None:
    return next((why for start, why in NOT_RUN.items() if stands_for(start, command)), None)


def variants(command: str, bare: bool = True) -> list[list[str]]:
    """The command's words, once without its [optional parts] (unless not bare) and once with
    those that hold no placeholder; `on|off` and `a|b` alternatives each once."""
    command = command.removesuffix(" &")
    full = re.sub(r"\[([^]]*)\]", lambda m: "" if PLACEHOLDER.search(m.group(1)) else m.group(1), command)
    forms = [re.sub(r"\s*\[[^]]*\]", "", command), full] if bare else [full]
    out = []
    for form in dict.fromkeys(forms):
        words = shlex.split(form)
        choices = [i for i, w in enumerate(words) if re.fullmatch(r"[\w-]+(\|[\w-]+)+", w)]
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


def test_the_documents_have_commands_and_not_run_names_only_real_ones():
    assert len(commands()) >= 20
    forms = [" ".join(words) for _, command in every_command() for words in variants(command)]
    for start in NOT_RUN:
        assert any(stands_for(start, f) for f in forms), f"NOT_RUN names {start!r}, which no document has"


@pytest.mark.parametrize(("document", "command"), every_command())
def test_every_documented_command_parses(document, command):
    if command.startswith(("read ", "mpremote ", *SHELL)):
        return
    for words in variants(command):
        argvs = make_dry_run(words) if words[0] == "make" else [words[1:]]
        if words[0] == "make" and words[1] not in ("test", "lint", "test-fast"):
            assert argvs, f"`{' '.join(words)}` runs no dhtlink command"
        for argv in argvs:
            try:
                cli.build_parser().parse_args(argv)
            except SystemExit as exit_info:  # 2 with argparse's message if it does not parse
                assert exit_info.code == 0 and "--help" in argv, f"{document}: `{' '.join(words)}` does not parse"


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


class Session:
    """A newcomer's terminal: a scratch working directory, the environment the README sets
    up, what runs in the background, and what earlier commands printed that later ones use."""

    def __init__(self, tmp_path: Path, webhook: WebhookReceiver) -> None:
        self.cwd = tmp_path
        self.tcp_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.tcp_port}"
        self.env = {**os.environ, "DATA_DIR": str(tmp_path / ".dhtlink"), "LISTEN_PORT": str(self.tcp_port)}
        for name in ("DHTLINK_PORT", "READ_TOKEN", "PORT", "DHTLINK_SECRET"):
            self.env.pop(name, None)
        self.env["PATH"] = f"{Path(DHTLINK).parent}:{self.env['PATH']}"
        self.webhook = webhook
        self.background: list[subprocess.Popen] = []
        self.ran: list[str] = []
        self.rule_id = ""
        (tmp_path / "wifi.txt").write_text("correct horse battery\n")
        (tmp_path / "slack.url").write_text(webhook.url + "\n")

    def substitute(self, words: list[str]) -> list[str]:
        swaps = {
            "http://127.0.0.1:8080": self.endpoint,
            "http://192.168.1.20:8080": self.endpoint,
            "ENDPOINT=http://192.168.1.20:8080": f"ENDPOINT={self.endpoint}",
            "/dev/pts/N": self.env.get("DHTLINK_PORT", "/dev/pts/N"),
            "myboard/.vboard/tty": self.env.get("DHTLINK_PORT", "myboard/.vboard/tty"),
            "myboard": str(self.cwd / "myboard"),
            "0.2.0": ota.app_version(),  # the next release: here the one `ota publish` made
            "https://hooks.example.com/x": self.webhook.url,
            "https://hooks.example.com/...": self.webhook.url,
            "RULE": self.rule_id,
            "1f3a9c2e": self.rule_id,
        }
        return [swaps.get(word, word) for word in words]

    def run(self, argv: list[str]) -> str:
        result = subprocess.run(argv, env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
        assert "Traceback" not in result.stdout + result.stderr, f"{argv}: {result.stderr}"
        return result.stdout

    def start(self, argv: list[str], ready: str) -> str:
        process, first = started(argv, self.env, self.cwd, ready)
        self.background.append(process)
        return first

    def serve(self, argv: list[str]) -> None:
        if "serve" in self.ran:
            return  # a document starts it again for its next section: one is running
        self.ran.append("serve")
        self.start([DHTLINK, *argv], "Ctrl-C stops it")

    def vboard(self, argv: list[str]) -> None:
        first = self.start([DHTLINK, *argv, *UNCONFINED], "/tty")
        self.env["DHTLINK_PORT"] = first.strip().splitlines()[0]

    def watch(self, argv: list[str], ready: str) -> None:
        process, _ = started(argv, self.env, self.cwd, ready)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
        assert process.returncode == 0, f"{argv} on Ctrl-C: {out}"
        assert "Traceback" not in out, f"{argv} on Ctrl-C: {out}"

    def step(self, command: str, words: list[str]) -> None:
        words = self.substitute(words)
        long_running = next((ready for start, ready in LONG_RUNNING.items() if command.startswith(start)), None)
        watching = WATCHING.get(tuple(words))
        if watching:
            self.watch([DHTLINK, *words[1:]], watching)
        elif words[:2] == ["make", "serve"]:
            (argv,) = make_dry_run(words, self.env)
            self.serve(argv)
        elif words[:2] == ["dhtlink", "serve"] or (long_running and command.endswith(" &")):
            self.serve(words[1:])
        elif long_running:
            self.start([DHTLINK, *words[1:]], long_running)
        elif words[:2] == ["dhtlink", "vboard"]:
            self.vboard(words[1:])
        elif command.startswith(SHELL):
            self.run(["bash", "-c", command])
        elif words[0] == "make":
            # make's PORT is the serial port for board targets: here the virtual board's
            for argv in make_dry_run(words, {**self.env, "PORT": self.env.get("DHTLINK_PORT", "")}):
                self.run([DHTLINK, *argv])
            if words[1] == "provision":
                # The README's next step with a board: it starts and sends (the queries below need it).
                self.run([DHTLINK, "reset"])
                self.wait_for_a_reading()
        elif words[0] == "mpremote":
            self.run([sys.executable, "-m", "mpremote", *words[1:]])
        else:
            out = self.run([DHTLINK, *words[1:]])
            secret = re.search(r"^secret: ([0-9a-f]{64})$", out, re.M)
            if secret:  # what `read -rs DHTLINK_SECRET` would take from the person
                self.env["DHTLINK_SECRET"] = secret.group(1)
            rule = re.search(r"^added rule ([0-9a-f]+):", out, re.M)
            if rule and not self.rule_id:
                self.rule_id = rule.group(1)
            if words[1:3] == ["devices", "remove"]:
                self.run([DHTLINK, "devices", "add", words[3]])  # the board below is provisioned with it
        self.ran.append(" ".join(words))

    def wait_for_a_reading(self) -> None:
        deadline = time.monotonic() + 30
        argv = [DHTLINK, "query", "latest", "--device", "greenhouse-01", "--endpoint", self.endpoint]
        while time.monotonic() < deadline:
            result = subprocess.run(argv, env=self.env, cwd=self.cwd, capture_output=True, text=True)
            if result.returncode == 0:
                return
            time.sleep(1)
        raise AssertionError(f"the provisioned board stored nothing: {result.stderr}")

    def close(self) -> None:
        for process in self.background:
            process.terminate()
            process.wait(timeout=10)


def follow(document: Path, session: Session) -> None:
    for words in BEFORE.get(document.name, []):
        session.step(" ".join(words), words)
    for command in commands(document):
        for words in variants(command, bare=False):
            if not not_run(" ".join(words)) and not command.startswith("read "):
                session.step(command, words)


@pytest.mark.slow
def test_the_readme_commands_run_against_a_virtual_board_and_a_local_endpoint(tmp_path):
    with WebhookReceiver() as webhook:
        session = Session(tmp_path, webhook)
        try:
            # The board on the cable for the README's real-board commands; its `dhtlink vboard`
            # section then starts a fresh one, which the later commands use.
            session.vboard(["vboard", "--dir", str(tmp_path / "cable")])
            follow(README, session)
        finally:
            session.close()
    assert any(c.startswith("dhtlink sim") for c in session.ran)
    assert any(c.startswith("dhtlink query range") for c in session.ran)
    assert any(c.startswith("dhtlink alerts test") for c in session.ran) and webhook.received
    # The virtual boards' flash is their owner's only: config.json holds the secret and Wi-Fi password.
    assert (tmp_path / "myboard").stat().st_mode & 0o077 == 0
    assert (tmp_path / "cable" / "config.json").stat().st_mode & 0o077 == 0, "make provision wrote it"


@pytest.mark.slow
@pytest.mark.parametrize("document", [d for d in DOCUMENTS if d != README and commands(d)], ids=lambda d: d.name)
def test_the_docs_commands_run_in_their_order(tmp_path, document):
    with WebhookReceiver() as webhook:
        session = Session(tmp_path, webhook)
        try:
            follow(document, session)
        finally:
            session.close()
    assert session.ran or all(not_run(c) for c in commands(document))
