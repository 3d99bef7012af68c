"""One virtual board: a directory that is its flash, and a runner that boots it.

Each boot is one MicroPython process, as each wake from deep sleep is a fresh boot on
the chip. The process ends with the exit status of machine.deepsleep (75), reset (76)
or a watchdog reset (77); a power cut is a SIGKILL from here, after which the RTC
memory is gone and the RTC restarts at 2000-01-01.
"""

import atexit
import json
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools.serial import firmware

FIRMWARE = firmware.DEVICE
HW = Path(__file__).resolve().parent / "hw"

EXIT_DEEPSLEEP, EXIT_RESET, EXIT_WDT, EXIT_SOFT_RESET = 75, 76, 77, 78
# machine.reset_cause() values of the ESP32 port (ports/esp32/modmachine.c).
PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
RTC_AT_POWER_ON_MS = 946684800 * 1000  # the ESP32 RTC restarts at 2000-01-01

LAUNCH = Path(__file__).resolve().parent / "launch.py"
# The interpreter itself, without the `micropython` command's wrapper script (launch.py).
MICROPYTHON = [sys.executable, "-I", "-S", str(LAUNCH), sysconfig.get_paths()["purelib"], "--"]
# The `micropython` command's way, kept to measure against (bench/fleet_capacity.py).
WRAPPER = [sys.executable, "-c", "import sys, micropython_unix; sys.exit(micropython_unix.main())"]
EX_SANDBOX = 70


def sandbox_available() -> bool:
    """Whether this host lets a board run in its own user and mount namespace."""
    global _sandbox
    if _sandbox is None:
        with tempfile.TemporaryDirectory() as scratch:
            done = subprocess.run(
                [*MICROPYTHON[:-1], "--sandbox", scratch, "--", "-c", "print(1)"],
                capture_output=True,
                text=True,
                check=False,
                cwd=scratch,
                env=_env(),
            )
        _sandbox = done.returncode == 0 and done.stdout.strip() == "1"
        if not _sandbox:
            why = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no reason given"]
            print(
                f"virtual board: no OS sandbox on this host ({why[0]}); boards are confined by MicroPython "
                "alone (docs/virtual-board.md)",
                file=sys.stderr,
            )
    return _sandbox


_sandbox: bool | None = None
# How boot() starts a wake: "fork" (forked by one fork server, the default), "direct" (a
# process of its own through launch.py) or "wrapper" (the micropython command's way);
# the last two are kept to measure against (bench/fleet_capacity.py).
launcher = "fork"
sandboxed: bool | None = None  # None: wherever the host allows it


class _Wake:
    def __init__(self) -> None:
        self.pid = 0
        self.status: int | None = None
        self.event = threading.Event()


class ForkServer:
    """launch.py --fork-server: one process that forks every wake of this host process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [*MICROPYTHON[:-1], "--fork-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env()
        )
        self.lock = threading.Lock()
        self.wakes: dict[int, _Wake] = {}
        self.next_id = 0
        threading.Thread(target=self._read, name="vboard-fork-server", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            number, kind, value = line.split()
            with self.lock:
                wake = self.wakes[int(number)]
                if kind == b"pid":
                    wake.pid = int(value)
                else:
                    wake.status = int(value)
                    del self.wakes[int(number)]
            wake.event.set()

    def close(self) -> None:
        """End the server once its wakes have ended (it reaps them)."""
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait()

    def start(self, argv: list[str], directory: Path, output: Path, sandbox: bool) -> _Wake:
        wake = _Wake()
        with self.lock:
            self.next_id += 1
            self.wakes[self.next_id] = wake
            request = {
                "id": self.next_id,
                "argv": argv,
                "env": _env(),
                "dir": str(directory.resolve()),
                "output": str(output),
                "sandbox": sandbox,
                "ro": [str(_hw_dir())],
            }
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        wake.event.wait()  # the pid
        wake.event.clear()
        if wake.status is not None:
            wake.event.set()
        return wake


_fork_server: ForkServer | None = None
_fork_lock = threading.Lock()


def fork_server() -> ForkServer:
    global _fork_server
    with _fork_lock:
        if _fork_server is None or _fork_server.process.poll() is not None:
            _fork_server = ForkServer()
            atexit.register(_fork_server.close)
        return _fork_server


@dataclass
class BootResult:
    status: str  # "deepsleep", "reset", "watchdog", "power_cut", "halted" (back at the REPL), "crashed"
    exit_code: int
    output: str


def parse_heap(heap: str) -> int:
    """'64k' -> 65536; the budget the firmware gets, as on a board."""
    text = heap.strip().lower()
    scale = {"k": 1024, "m": 1024 * 1024}.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in "km" else text
    if not number.isdigit() or int(number) * scale < 16 * 1024:
        raise ValueError(f"heap must be a size like 64k (at least 16k), got {heap!r}")
    return int(number) * scale


_shim_bytes: int | None = None


def shim_heap_bytes() -> int:
    """Heap the chip's start-up and the virtual hardware modules take: built into the
    chip's firmware on a real board, so the virtual board adds it on top of the
    firmware's budget."""
    global _shim_bytes
    if _shim_bytes is None:
        start = _CHIP_CODE.format(mode="code")
        code = f"import gc; gc.collect(); a = gc.mem_alloc()\n{start}gc.collect(); print(gc.mem_alloc() - a)"
        with tempfile.TemporaryDirectory() as scratch:
            done = subprocess.run(
                [*MICROPYTHON, "-c", code], env=_env(), capture_output=True, text=True, check=True, cwd=scratch
            )
        _shim_bytes = int(done.stdout.split()[-1])
    return _shim_bytes


_CHIP_CODE = "import _chip\n_chip.start({mode!r})\n"


def _hw_dir() -> Path:
    # Compiled, as the real modules are built into the firmware and cost no compile spike.
    return firmware.compiled_dir(sorted(HW.glob("*.py")))


def _env() -> dict[str, str]:
    # Nothing of the host's environment: a board has none, and it may hold secrets.
    return {"MICROPYPATH": f"{_hw_dir()}:.frozen", "HOME": "/", "LANG": "C.UTF-8"}


def _use_sandbox() -> bool:
    return sandboxed if sandboxed is not None else sandbox_available()


def interpreter_args(heap_flag: str, mode: str, code: str = "") -> list[str]:
    """MicroPython's arguments for one boot: the chip's start-up (_chip.start(mode)), then `code`."""
    return ["-X", heap_flag, "-c", _CHIP_CODE.format(mode=mode) + code]


def command(directory: Path, heap_flag: str, mode: str, code: str = "") -> list[str]:
    """The process of one boot, started on its own (launch.py, in the sandbox)."""
    if launcher == "wrapper":
        head = WRAPPER
    elif _use_sandbox():
        head = [*MICROPYTHON[:-1], "--sandbox", str(Path(directory).resolve()), "--ro", str(_hw_dir()), "--"]
    else:
        head = MICROPYTHON
    return [*head, *interpreter_args(heap_flag, mode, code)]


def _virtual_ms(state: dict[str, Any]) -> int:
    if "virtual_ms" in state:
        return int(state["virtual_ms"])
    return int(time.time() * 1000) + int(state.get("skew_ms", 0))


class VirtualBoard:
    def __init__(self, directory: str | Path, heap: str = "64k", firmware: Path = FIRMWARE) -> None:
        self.dir = Path(directory)
        self.budget = parse_heap(heap)
        self.firmware = firmware
        self.state_dir = self.dir / ".vboard"

    def _heap_flag(self) -> str:
        return f"heapsize={self.budget + shim_heap_bytes()}"

    # -- setup ----------------------------------------------------------------
    def install(
        self,
        config: dict[str, Any],
        scenario: dict[str, Any] | None = None,
        start: float | None = None,
        compressed: bool = False,
    ) -> None:
        """Copy the firmware and config.json onto the board, and power it on at `start` (Unix s;
        default the scenario's "start", else now). Compressed boards keep real dates."""
        if start is None and scenario and scenario.get("start") is not None:
            start = float(scenario["start"])
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        for name, content in firmware.build(self.firmware).items():
            (self.dir / name).write_bytes(content)
        (self.dir / "config.json").write_text(json.dumps(config))
        (self.dir / "config.json").chmod(0o600)
        (self.state_dir / "scenario.json").write_text(json.dumps(scenario or {}))
        start_ms = int((start if start is not None else time.time()) * 1000)
        state: dict[str, Any] = {"start_ms": start_ms, "unique_id": config.get("device_id", "vboard")[:12]}
        # Whether the chip loads its ssl module (hw/_chip.py): only for an https endpoint.
        state["tls"] = str(config.get("endpoint", "")).startswith("https://")
        if compressed:
            state.update(compressed=True, skew_ms=0)
        else:
            state["virtual_ms"] = start_ms
        self._write_state(state)
        self._power_on(state)

    def _read_state(self) -> dict[str, Any]:
        try:
            return json.loads((self.state_dir / "state.json").read_text())
        except (OSError, ValueError):
            return {}

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_dir / "state.host.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_dir / "state.json")

    def press_reset(self) -> None:
        """A person presses the EN (reset) button: on a classic ESP32 the chip reports
        ESP_RST_POWERON (ESP-IDF: "For ESP32, ESP_RST_EXT is never returned"), so
        modmachine.c's PWRON_RESET, and the RTC restarts. RTC user memory is RTC_NOINIT
        (machine_rtc.c) and may keep its bytes: kept here, the harder case for firmware."""
        state = self._read_state()
        memory = self.state_dir / "rtc_memory.bin"
        kept = memory.read_bytes() if memory.exists() else None
        self._power_on(state)
        if kept is not None:
            memory.write_bytes(kept)

    def cut_power(self) -> None:
        """The power goes while the chip sleeps or restarts between boots: RTC memory and
        the RTC are lost, and the next boot reads PWRON_RESET."""
        self._power_on(self._read_state())

    def soft_reboot(self) -> None:
        """Ctrl-D at the REPL: the next boot reads SOFT_RESET (modmachine.c's is_soft_reset)."""
        state = self._read_state()
        state["reset_cause"] = SOFT_RESET
        self._write_state(state)

    def _power_on(self, state: dict[str, Any]) -> None:
        state["reset_cause"] = PWRON_RESET
        epoch_ms = int(time.time() * 1000) if state.get("compressed") else _virtual_ms(state)
        state["rtc_offset_ms"] = RTC_AT_POWER_ON_MS - epoch_ms
        state.pop("wifi", None)
        (self.state_dir / "rtc_memory.bin").unlink(missing_ok=True)
        self._write_state(state)

    # -- clocks and counters --------------------------------------------------
    def now(self) -> float:
        """True time in the board's world (Unix s): the clock a receiver beside it should use."""
        return _virtual_ms(self._read_state()) / 1000

    def net(self) -> dict[str, int]:
        return self._read_state().get("net", {})

    # -- running --------------------------------------------------------------
    def run(self, code: str, timeout: float = 30) -> str:
        """Run MicroPython code on the board (as at the REPL) and return its output."""
        done = subprocess.run(
            command(self.dir, self._heap_flag(), "code", code),
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode == EX_SANDBOX:
            raise RuntimeError(done.stderr.strip())
        if done.returncode not in (0, EXIT_DEEPSLEEP, EXIT_RESET):
            raise RuntimeError(f"board code failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def report(self) -> dict[str, Any]:
        """app.report() from the board; heap_hw is the firmware's own high-water mark."""
        lines = [line for line in self.run("import app; app.report()").splitlines() if line.startswith("{")]
        report = json.loads(lines[-1])
        report["heap_hw"] = max(0, report.get("heap_hw", 0) - shim_heap_bytes())
        return report

    def _watchdog_expired(self) -> bool:
        """A watchdog the firmware armed and has not fed within its timeout, while awake."""
        state = self._read_state()
        if "wdt" not in state:
            return False
        timeout_ms, _fed, fed_real_ms = state["wdt"]
        return time.time() * 1000 - fed_real_ms > timeout_ms

    def boot(self, power_cut_after: float | None = None, timeout: float = 60) -> BootResult:
        """Boot once (main.py) and return how the boot ended."""
        state = self._read_state()
        state.pop("wdt", None)  # the watchdog is off until this boot's firmware arms it
        self._write_state(state)
        result = self._boot(power_cut_after, timeout)
        if power_cut_after is not None and result.status in ("deepsleep", "reset", "watchdog"):
            # The wake ended before the cut came: the power goes while the chip sleeps or
            # restarts, which costs it the same (RTC memory, the RTC).
            self.cut_power()
            return BootResult("power_cut", -9, result.output)
        return result

    def _boot(self, power_cut_after: float | None, timeout: float) -> BootResult:
        if launcher == "fork":
            return self._boot_forked(power_cut_after, timeout)
        process = subprocess.Popen(
            command(self.dir, self._heap_flag(), "main"),
            stdin=subprocess.DEVNULL,  # the REPL that follows a main.py that returns ends at once
            cwd=self.dir,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        limit = time.monotonic() + (power_cut_after if power_cut_after is not None else timeout)
        hung = False
        while True:
            try:
                output, _ = process.communicate(timeout=max(0.0, min(0.2, limit - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                hung = self._watchdog_expired()
                if not hung and time.monotonic() < limit:
                    continue
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            return self._killed(hung, power_cut_after, timeout, output)
        return self._ended(process.returncode, output)

    def _boot_forked(self, power_cut_after: float | None, timeout: float) -> BootResult:
        console = self.state_dir / "console.txt"
        wake = fork_server().start(interpreter_args(self._heap_flag(), "main"), self.dir, console, _use_sandbox())
        limit = time.monotonic() + (power_cut_after if power_cut_after is not None else timeout)
        hung = False
        while not wake.event.wait(max(0.0, min(0.2, limit - time.monotonic()))):
            hung = self._watchdog_expired()
            if hung or time.monotonic() >= limit:
                try:
                    os.killpg(wake.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass  # it ended meanwhile
                wake.event.wait()
                break
        output = console.read_text(errors="replace")
        if wake.status == -signal.SIGKILL and (hung or time.monotonic() >= limit):
            return self._killed(hung, power_cut_after, timeout, output)
        assert wake.status is not None
        return self._ended(wake.status, output)

    def _killed(self, hung: bool, power_cut_after: float | None, timeout: float, output: str) -> BootResult:
        # A hang the watchdog catches resets the chip; RTC memory keeps what was last saved.
        if hung:
            self.mark_reset(EXIT_WDT)
            return BootResult("watchdog", EXIT_WDT, output)
        if power_cut_after is None:
            raise RuntimeError(f"board did not sleep within {timeout} s:\n{output}")
        self._power_on(self._read_state())
        return BootResult("power_cut", -9, output)

    def _ended(self, code: int, output: str) -> BootResult:
        if code == EX_SANDBOX:
            raise RuntimeError(output.strip())
        status = self.mark_reset(code)
        if status is None:
            status = "halted" if code == 0 and "Traceback (most recent call last)" not in output else "crashed"
        return BootResult(status, code, output)

    def mark_reset(self, exit_code: int) -> str | None:
        """Record the reset cause the next boot reads; returns how the process ended."""
        causes = {
            EXIT_DEEPSLEEP: (DEEPSLEEP_RESET, "deepsleep"),
            # machine.reset() (ESP_RST_SW), and the crash that ends in it, as a panic
            # (ESP_RST_PANIC) would: HARD_RESET in modmachine.c.
            EXIT_RESET: (HARD_RESET, "reset"),
            EXIT_WDT: (WDT_RESET, "watchdog"),
            EXIT_SOFT_RESET: (SOFT_RESET, "reset"),
        }
        if exit_code not in causes:
            return None
        state = self._read_state()
        state["reset_cause"] = causes[exit_code][0]
        self._write_state(state)
        return causes[exit_code][1]

    def wake_real_s(self) -> float:
        """Host time the last wake took, from the hardware's start to its end (not the
        interpreter's start, nor virtual sleeps): the bench's CPU time of a wake."""
        try:
            return int((self.state_dir / "wake_real_us").read_text()) / 1e6
        except (OSError, ValueError):
            return 0.0

    def last_sleep_s(self) -> float:
        """How long the last machine.deepsleep asked to sleep."""
        return self._read_state().get("sleep_ms", 0) / 1000

    def power_on_blank(self) -> None:
        """A board as it is after flashing MicroPython: keep its files, power it on with a
        real-time clock (compressed mode) for tools and a receiver with a wall clock."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        scenario = self.state_dir / "scenario.json"
        if not scenario.exists():
            scenario.write_text("{}")
        state = self._read_state() or {
            "skew_ms": 0,
            "start_ms": int(time.time() * 1000),
            "unique_id": self.dir.name[:12],
        }
        state["compressed"] = True
        state["tls"] = "config"  # whatever endpoint a tool provisions later: read at each boot (hw/_chip.py)
        self._power_on(state)
