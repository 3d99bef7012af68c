"""The smallest MicroPython heap the firmware's Improv Wi-Fi (device/improv.py) needs: a
whole provisioning session on the real module, compiled as deployed, with the app's
modules resident as they are when app.main() starts it, on the virtual
board's MicroPython with `-X heapsize` bisected in 1 KiB steps (the virtual hardware's
own heap added on top, as on a chip where it is built in).

The session, as a host sends it on the serial line: request current state, request device
info, scan (ACCESS_POINTS networks around the board), Wi-Fi settings with a wrong password
(refused), then the right one (joined and kept in config.json).

    .venv/bin/python bench/device_improv_heap.py [--json] [--access-points N]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host_tools.serial import firmware  # noqa: E402
from host_tools.serial.improv import rpc_packet  # noqa: E402
from host_tools.sim.vboard.board import _env, command, shim_heap_bytes  # noqa: E402

LOW_KIB, HIGH_KIB = 8, 96
PASSWORD = "correct horse battery staple"  # noqa: S105 - the bench's own access points' key
# What is resident when app.main() starts Improv: main.py's import of app (and its own
# imports), and config (needs_wifi).
CODE = "import app\nimport config\nimport improv\nimprov.Improv(app.FW).serve()\nprint('IMPROV-DONE')\n"


def session(ssid: str) -> bytes:
    def settings(password: str) -> bytes:
        name, key = ssid.encode(), password.encode()
        return bytes((len(name),)) + name + bytes((len(key),)) + key

    return b"".join(
        (
            rpc_packet(2),
            rpc_packet(3),
            rpc_packet(4),
            rpc_packet(1, settings("wrong")),
            rpc_packet(1, settings(PASSWORD)),
        )
    )


def prepare(directory: Path, access_points: int) -> bytes:
    (directory / ".vboard").mkdir(parents=True)
    for name, content in firmware.build().items():
        (directory / name).write_bytes(content)
    identity = {"device_id": "heap-bench", "secret": "ab" * 32, "endpoint": "http://127.0.0.1:8080/data", "wifi": []}
    (directory / "config.json").write_text(json.dumps(identity))
    aps = [
        {"ssid": f"network-{i:02d}-{'x' * 20}", "bssid": f"a0b1c2d3e4{i:02x}", "rssi": -40 - i, "password": PASSWORD}
        for i in range(access_points)
    ]
    (directory / ".vboard" / "scenario.json").write_text(json.dumps({"access_points": aps}))
    (directory / ".vboard" / "state.json").write_text(json.dumps({"compressed": True, "skew_ms": 0, "tls": False}))
    return session(aps[0]["ssid"])


def world_bytes(directory: Path) -> int:
    """Heap the virtual radio's scenario takes (its access points, parsed as the chip starts)
    beyond what shim_heap_bytes() counts: on a chip they live in the Wi-Fi driver, not the heap."""
    code = "import gc\ngc.collect()\nprint(gc.mem_alloc())\n"
    heap = f"heapsize={HIGH_KIB * 1024 + shim_heap_bytes()}"
    done = subprocess.run(
        command(directory, heap, "code", code), cwd=directory, env=_env(), capture_output=True, text=True, check=True
    )
    return max(0, int(done.stdout.split()[-1]) - shim_heap_bytes())


def completes(directory: Path, packets: bytes, kib: int, extra: int) -> bool:
    (directory / "config.json").write_text(
        json.dumps(
            {"device_id": "heap-bench", "secret": "ab" * 32, "endpoint": "http://127.0.0.1:8080/data", "wifi": []}
        )
    )
    heap = f"heapsize={kib * 1024 + shim_heap_bytes() + extra}"
    with tempfile.TemporaryFile() as stdin:
        stdin.write(packets)
        stdin.seek(0)
        done = subprocess.run(
            command(directory, heap, "code", CODE),
            stdin=stdin,
            cwd=directory,
            env=_env(),
            capture_output=True,
            timeout=60,
            check=False,
        )
    out = done.stdout + done.stderr
    if b"MemoryError" in out:
        return False
    if b"IMPROV-DONE" not in out or b"IMPROV\x01\x01\x01\x04" not in out:
        raise SystemExit(f"the session at {kib} KiB did not end provisioned:\n{out.decode(errors='replace')}")
    return True


def smallest_kib(directory: Path, packets: bytes) -> int:
    low, high = LOW_KIB - 1, HIGH_KIB
    extra = world_bytes(directory)
    if not completes(directory, packets, high, extra):
        raise SystemExit(f"the session does not complete in {HIGH_KIB} KiB")
    while high - low > 1:
        mid = (low + high) // 2
        if completes(directory, packets, mid, extra):
            high = mid
        else:
            low = mid
    return high


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--access-points", type=int, default=30, help="networks the board's scan finds (default 30)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        board = Path(scratch) / "board"
        packets = prepare(board, args.access_points)
        kib = smallest_kib(board, packets)
    if args.json:
        print(json.dumps({"access_points": args.access_points, "improv_kib": kib, "budget_kib": 64}))
    else:
        networks = args.access_points
        print(
            f"smallest firmware heap for a whole Improv session, {networks} networks in the scan: {kib} KiB (budget 64)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
