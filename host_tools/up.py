"""`dhtlink up`: from an ESP32 on USB to its readings on the dashboard, in one command.

The phases, each skipped when the board already has what it brings, so a re-run never
wipes a working board:
1. detect: MicroPython's REPL answers (or our app, caught with Ctrl-C), else the ROM
   bootloader (esptool), else nothing (the one-line fixes below);
2. flash: no MicroPython: erase (MicroPython's first boot loops on a filesystem it did not
   make) and write the pinned official ESP32_GENERIC image, or --firmware FILE;
3. upload the app (only the files that changed) and register the device: config.json gets
   its identity and endpoint, Wi-Fi left empty;
4. Wi-Fi over Improv (device/improv.py): the board's own scan, one network chosen, its
   password asked for (never taken from the command line), the board joins and keeps it;
5. reach: the board's first reading arrives at the endpoint, checked in the store;
6. the dashboard URL for the device.
"""

import errno
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools.common import lan_address
from host_tools.errors import CommandError, UsageError

# The official MicroPython build for a classic ESP32 (4 MB flash), pinned. Its publisher
# gives no checksum to pin against: a download is taken over HTTPS, checked to be an ESP32
# image by its header and esptool's own checksum (image-info), and its SHA-256 is kept
# beside it in the cache, so later runs use exactly the bytes checked the first time.
FIRMWARE_NAME = "ESP32_GENERIC-20250809-v1.26.0.bin"
FIRMWARE_URL = "https://micropython.org/resources/firmware/" + FIRMWARE_NAME
READING_WAIT_S = 90.0  # the app's first wake sends at once: Wi-Fi, a clock, one POST

NO_DOWNLOAD_MODE = (
    "nothing answers on {port}: neither MicroPython nor the ESP32's ROM bootloader. Hold the board's BOOT "
    "button, press and release EN (RESET), release BOOT, and run `dhtlink up` again within a few seconds"
)
PERMISSION = (
    "no permission to open {port}: add yourself to the group that owns it (`sudo usermod -aG dialout $USER`, "
    "`uucp` on Arch), then log out and in again"
)
BRLTTY = (
    "no serial port appeared, and brltty (a Braille display driver) is installed: it takes CH340/CP210x USB "
    "serial chips for itself. Remove it (`sudo apt remove brltty`) and plug the board in again"
)
NO_BOARD = (
    "no ESP32 board found on USB: plug one in with a data cable (a charge-only cable powers the board but "
    "shows no serial port), or pass -p PORT; `dhtlink vboard` gives a virtual one"
)
UNREACHED = (
    "the board joined {ssid} but nothing reached {endpoint} within {wait:.0f} s. A board on Wi-Fi must reach "
    "this address: for `dhtlink serve` on this computer, serve with --host 0.0.0.0 and let TCP port {port} "
    "through the firewall (e.g. `sudo ufw allow {port}/tcp`); a 5 GHz-only network or a guest network that "
    "isolates clients stops it too. `dhtlink logs -p {serial}` shows what the board saw"
)


@dataclass
class Phase:
    name: str
    seconds: float
    what: str


@dataclass
class Outcome:
    device_id: str
    endpoint: str
    dashboard: str
    ssid: str | None
    phases: list[Phase] = field(default_factory=list)


@dataclass
class Choices:
    """What `up` asks a person, as functions: a prompt at a terminal, fixed answers in a script."""

    network: Callable[[list[Any]], str]
    password: Callable[[str], str]
    attempts: int = 1  # a person typing a password gets another go; a password file does not


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dhtlink" / "firmware"


def pinned_firmware(say: Callable[[str], Any], cache: Path | None = None) -> Path:
    """The pinned MicroPython image, from the user cache or downloaded into it."""
    from host_tools.serial import firmware_image

    cache = cache or cache_dir()
    path = cache / FIRMWARE_NAME
    recorded = path.with_name(path.name + ".sha256")
    if path.exists() and recorded.exists():
        if hashlib.sha256(path.read_bytes()).hexdigest() == recorded.read_text().strip():
            return path
        say(f"{path}: changed since it was downloaded; downloading it again")
    cache.mkdir(parents=True, exist_ok=True)
    say(f"downloading MicroPython ({FIRMWARE_NAME}) into {cache}")
    part = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(FIRMWARE_URL, timeout=60) as answer, part.open("wb") as out:  # noqa: S310 - a pinned https URL
            shutil.copyfileobj(answer, out)
    except OSError as error:
        raise CommandError(
            f"cannot download {FIRMWARE_URL} ({error}); download it by other means and pass --firmware FILE"
        ) from None
    digest = hashlib.sha256(part.read_bytes()).hexdigest()
    try:
        firmware_image.inspect(part)
    except UsageError:
        part.unlink()
        raise CommandError(
            f"what {FIRMWARE_URL} sent is not an ESP32 image (a captive portal's page?); download it by other "
            "means and pass --firmware FILE"
        ) from None
    part.rename(path)
    recorded.write_text(digest + "\n")
    say(f"  SHA-256 {digest} (kept: later runs use exactly these bytes)")
    return path


def chosen_port(port: str | None) -> str:
    """--port, $DHTLINK_PORT or the one board attached, with the fixes for a missing one."""
    from host_tools.serial.ports import choose

    try:
        return choose(port)
    except UsageError as error:
        if port is None and "no ESP32 board found" in str(error):
            raise UsageError(BRLTTY if brltty_present() else NO_BOARD) from None
        raise


def brltty_present() -> bool:
    return any(Path(p).exists() for p in ("/usr/bin/brltty", "/bin/brltty", "/usr/lib/udev/rules.d/85-brltty.rules"))


def open_error(port: str, error: OSError) -> CommandError:
    if error.errno in (errno.EACCES, errno.EPERM):
        return CommandError(PERMISSION.format(port=port))
    if error.errno == errno.EBUSY:
        return CommandError(f"{port} is busy: another program (a serial monitor, a REPL) holds it; close it")
    return CommandError(f"cannot open {port}: {error.strerror or error}")


def check_openable(port: str) -> None:
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as error:
        raise open_error(port, error) from None
    os.close(fd)


def rom_flash_header(port: str) -> bytes | None:
    """The first bytes of the flash where a classic ESP32's bootloader image starts (0x1000),
    read through the ROM bootloader (esptool resets the chip into it through DTR/RTS where
    the USB bridge has them, and resets it back into its firmware after); None when the ROM
    does not answer."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "header.bin"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "esptool",
                "--port",
                port,
                "--baud",
                "115200",
                "read-flash",
                "0x1000",
                "16",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return out.read_bytes() if done.returncode == 0 and out.exists() else None


def dashboard_url(endpoint: str, device_id: str) -> str:
    from host_tools.common import base_url

    return f"{base_url(endpoint)}/#/device/{device_id}"


def default_device_id(board: Any) -> str:
    """dht- and the last six hex digits of the chip's id (its Wi-Fi MAC on an ESP32)."""
    return "dht-" + str(board.eval("__import__('machine').unique_id().hex()"))[-6:]


def local_endpoint(data_dir: Path, address: tuple[str, int], say: Callable[[str], Any]) -> str:
    """The local endpoint boards reach, on this computer's LAN address (or the HOST of
    --listen HOST:PORT): the one already listening on the port, or `dhtlink serve --listen
    HOST:PORT` started in the background."""
    host, port = address
    # No LAN address: only a board on this computer (a virtual one) can reach it, on loopback.
    url = f"http://{(lan_address() or '127.0.0.1') if host == '0.0.0.0' else host}:{port}"
    with socket.socket() as attempt:
        attempt.settimeout(1)
        if attempt.connect_ex(("127.0.0.1", port)) == 0:
            say(f"using the local endpoint already listening on port {port}")
            return url
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "serve.log").open("a")
    subprocess.Popen(
        [
            sys.executable,
            "-m",
            "host_tools.cli",
            "serve",
            "--listen",
            f"{host}:{port}",
            "--data-dir",
            str(data_dir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # outlives this command: the board keeps sending to it
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as attempt:
            if attempt.connect_ex(("127.0.0.1", port)) == 0:
                say(f"started `dhtlink serve` on port {port} (log {data_dir / 'serve.log'}); it keeps running")
                return url
        time.sleep(0.2)
    raise CommandError(f"`dhtlink serve` did not start on port {port}: see {data_dir / 'serve.log'}")


def wait_for_reading(store: Any, device_id: str, since: float, wait_s: float) -> dict[str, Any] | None:
    """The device's newest reading once one stored after `since` (Unix s) is there, or None."""
    deadline = time.monotonic() + wait_s
    while True:
        row = store.get_device(device_id) or {}
        latest = store.latest_reading(device_id)
        if latest and (row.get("last_seen") or 0) >= since - 1:
            return latest
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.5)


def improv_wifi(serial: Any, choices: Choices, say: Callable[[str], Any]) -> tuple[str, str | None]:
    """Give a listening board its network; (ssid, the dashboard URL it answered with)."""
    from host_tools.serial.improv import UNABLE_TO_CONNECT, Improv, ImprovError

    client = Improv(serial)
    if client.listen(30) is None and client.current_state(5) is None:
        raise CommandError("the board did not start Improv Wi-Fi: is this dhtlink's app? `dhtlink logs` shows why")
    networks = client.scan()
    if not networks:
        raise CommandError(
            "the board sees no Wi-Fi network: an ESP32 has 2.4 GHz only; bring it closer to the access point"
        )
    for attempt in range(choices.attempts):
        ssid = choices.network(networks)
        password = choices.password(ssid)
        say(f"joining {ssid} ...")
        try:
            return ssid, client.provision(ssid, password)
        except ImprovError as error:
            if error.code != UNABLE_TO_CONNECT:
                raise
            if attempt == choices.attempts - 1:
                raise CommandError(
                    f"the board could not join {ssid}: wrong Wi-Fi password (it is case-sensitive), or the network "
                    "is out of reach; run `dhtlink up` again"
                ) from None
            say(f"the board could not join {ssid}: wrong password? try again")
    raise AssertionError("unreachable")


def aws_base_url(stack: str) -> str:
    """The deployed stack's ApiUrl (its CloudFormation output)."""
    try:
        import boto3

        described = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    except Exception as error:  # botocore's credential, region and missing-stack errors share no useful base
        raise CommandError(f"cannot read the stack {stack!r} from AWS: {error}; `dhtlink deploy` creates it") from None
    for output in described.get("Outputs", []):
        if output["OutputKey"] == "ApiUrl":
            return str(output["OutputValue"])
    raise CommandError(f"the stack {stack!r} has no ApiUrl output: redeploy it with `dhtlink deploy`")


@dataclass
class Request:
    """What `dhtlink up` was asked: each None is found (port, endpoint, device id) or fetched (firmware)."""

    port: str | None = None
    endpoint: str | None = None
    aws: bool = False
    stack: str = "dhtlink"
    data_dir: Path | None = None
    firmware: Path | None = None
    device: str | None = None
    serve_address: tuple[str, int] = ("0.0.0.0", 8080)  # every address: boards on the LAN reach it
    board_wait_s: float = 10.0
    reading_wait_s: float = READING_WAIT_S


class Clock:
    """The phases' wall times, as `up` prints them and docs/performance.md records them."""

    def __init__(self) -> None:
        self.phases: list[Phase] = []
        self.last = time.monotonic()

    def mark(self, name: str, what: str) -> None:
        now = time.monotonic()
        self.phases.append(Phase(name, now - self.last, what))
        self.last = now


def catch(port: str, wait_s: float, say: Callable[[str], Any] | None) -> Any:
    """The board at its raw REPL (host_tools.serial.board.Board), or None if MicroPython did
    not answer within wait_s."""
    from host_tools.serial.board import Board

    try:
        return Board(port, wait_s=wait_s, say=say)
    except CommandError as error:
        if str(error).startswith("cannot open"):
            raise  # held by another program: not a board that is silent
        return None


def detect(port: str, request: Request, clock: Clock, say: Callable[[str], Any]) -> Any:
    """The board caught at its REPL, MicroPython written first if it had none. MicroPython
    that answers at once is used; otherwise the ROM bootloader says what the flash holds:
    nothing (a blank chip), or a firmware image, which after esptool's reset is given a few
    seconds to answer as MicroPython before it is taken for another firmware and replaced.
    A board that neither MicroPython nor the ROM answers for may be asleep between readings:
    it gets the whole --wait to wake."""
    board = catch(port, 3, None)
    if board is not None:
        clock.mark("detect", "MicroPython answers")
        return board
    header = rom_flash_header(port)
    if header is None:
        board = catch(port, request.board_wait_s, say)
        if board is None:
            raise CommandError(NO_DOWNLOAD_MODE.format(port=port))
        clock.mark("detect", "MicroPython answers after its sleep")
        return board
    if header[:1] == b"\xe9":
        board = catch(port, 10, None)
        if board is not None:
            clock.mark("detect", "MicroPython answers after a reset")
            return board
        what = "another firmware, not MicroPython: replacing it"
    else:
        what = "the ROM bootloader: no MicroPython yet"
    clock.mark("detect", what)
    flash_micropython(port, request, clock, say)
    board = catch(port, request.board_wait_s, say)
    if board is None:
        raise CommandError(
            f"MicroPython was written to the board on {port} but does not answer: press its reset button"
        )
    return board


def flash_micropython(port: str, request: Request, clock: Clock, say: Callable[[str], Any]) -> None:
    from host_tools.serial import firmware_image
    from host_tools.serial.flash import wait_for_repl, write_micropython

    image = firmware_image.inspect(request.firmware or pinned_firmware(say))
    say(f"erasing the flash and writing {image.path.name} ({image.chip}) at {image.offset:#x}")
    write_micropython(port, image, erase=True)
    wait_for_repl(port, timeout_s=30)
    clock.mark("flash", f"{image.path.name}, {image.path.stat().st_size} bytes")


def receiver(request: Request, say: Callable[[str], Any]) -> str:
    """The URL the board POSTs to (base + /data)."""
    from host_tools.common import data_dir
    from host_tools.serial.provision import ingest_url

    if request.endpoint is not None:
        return ingest_url(request.endpoint)
    if request.aws:
        return ingest_url(aws_base_url(request.stack), "the stack's ApiUrl")
    return ingest_url(local_endpoint(data_dir(request.data_dir), request.serve_address, say))


def up(request: Request, choices: Choices, say: Callable[[str], Any]) -> Outcome:
    """Take the board on request.port from wherever it is to its first reading stored."""
    from host_tools.common import checked_device
    from host_tools.serial.flash import upload_app
    from host_tools.serial.provision import (
        CA_FILE,
        build_config,
        identity,
        read_board_config,
        start_seq_after,
        tls_ca,
        write_config,
    )

    if request.device is not None:
        checked_device(request.device)
    clock = Clock()
    port = chosen_port(request.port)
    check_openable(port)
    endpoint = receiver(request, say)
    board = detect(port, request, clock, say)
    with board:
        old = read_board_config(board) or {}
        uploaded = upload_app(board)
        clock.mark("upload", f"{len(uploaded.sent)} app files sent, {len(uploaded.unchanged)} unchanged")
        device_id = request.device or old.get("device_id") or default_device_id(board)
        secret, what, max_seq = identity(device_id, request.aws, request.stack, False, endpoint, request.data_dir)
        # The network belongs to the place, not to the identity: a re-run keeps it.
        wifi = old.get("wifi") or []
        config = build_config(old, device_id, secret, wifi, endpoint, {})
        ca = tls_ca(endpoint, request.aws, None)
        if ca is not None:
            board.write_file(CA_FILE, ca)
            config["tls_ca"] = CA_FILE
        write_config(board, config)
        start_seq_after(board, max_seq)
        clock.mark("register", f"{device_id}: {what}")
        since = time.time()
        board.soft_reset()  # the app starts with this config: at once to Improv without Wi-Fi
        url = None
        if wifi:
            ssid = wifi[0]["ssid"]
        else:
            ssid, url = improv_wifi(board.transport.serial, choices, say)
            clock.mark("wifi", f"joined {ssid} over Improv Wi-Fi")
    store = _store(request)
    if wait_for_reading(store, device_id, since, request.reading_wait_s) is None:
        from urllib.parse import urlsplit

        parts = urlsplit(endpoint)
        raise CommandError(
            UNREACHED.format(
                ssid=ssid, endpoint=endpoint, wait=request.reading_wait_s, port=parts.port or 443, serial=port
            )
        )
    clock.mark("reach", "the board's first reading is stored")
    dashboard = url or dashboard_url(endpoint, device_id)
    return Outcome(device_id, endpoint, dashboard, ssid, clock.phases)


def _store(request: Request) -> Any:
    from host_tools.cli.devices import open_store

    return open_store(request.aws, request.stack, request.data_dir)
