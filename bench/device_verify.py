"""What verifying a signed answer (protocol v1.1) costs the firmware per send: CPU time
and heap, under the real MicroPython Unix port with the firmware compiled as deployed.

CPU: the host CPU time (user + system, from the kernel's accounting of the child
process, so other load on the machine does not inflate it) of a MicroPython process
verifying the same answer N times, minus that of the same process doing everything but
the verification; divided by N. Heap: gc.mem_alloc() before and after one verification
with the collector off, i.e. every byte it allocates (an upper bound on its peak).
As a cross-check, the wall time of the loop inside MicroPython (time.ticks_us, best of
3, same subtraction), which load on the machine can only inflate.
Answers: the receiver's 200 for a batch of 20, and its 200 for a batch of 100 with every
reading rejected (the longest answer a send can get).

    .venv/bin/python bench/device_verify.py [--n 20000] [--json]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud import signing  # noqa: E402
from host_tools.models.battery import ESP32_SLOWDOWN  # noqa: E402
from host_tools.serial.firmware import compiled_dir, sources  # noqa: E402
from host_tools.sim.vboard.board import MICROPYTHON  # noqa: E402

SECRET = "ab" * 32
REQUEST_SIGNATURE = "v1=" + "5e" * 32


def answers() -> dict[str, bytes]:
    small = {"accepted": 20, "duplicates": 0, "rejected": [], "server_time": 1795390001}
    rejected = [{"seq": 4000000000 + i, "error": "ts_out_of_range"} for i in range(100)]
    large = {"accepted": 0, "duplicates": 0, "rejected": rejected, "server_time": 1795390001}
    return {
        "200, batch of 20": json.dumps(small, separators=(",", ":")).encode(),
        "200, batch of 100 all rejected": json.dumps(large, separators=(",", ":")).encode(),
    }


SCRIPT = """
import sys, gc, json
sys.path.insert(0, {firmware!r})
import signing
body = bytearray({body!r})
view = memoryview(body)
sig = {sig!r}.encode()
ok = signing.verify_answer({secret!r}, {req!r}, 200, view, sig)
gc.collect()
gc.disable()
before = gc.mem_alloc()
signing.verify_answer({secret!r}, {req!r}, 200, view, sig)
heap = gc.mem_alloc() - before
gc.enable()
import time
start = time.ticks_us()
for _ in range({n}):
    if {verify}:
        signing.verify_answer({secret!r}, {req!r}, 200, view, sig)
    else:
        len(view)
print(json.dumps([ok, heap, time.ticks_diff(time.ticks_us(), start)]))
"""


def _child_cpu(script: Path) -> tuple[float, list]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([*MICROPYTHON, "-X", "heapsize=64k", str(script)], capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, body: bytes, n: int, tmp: Path) -> dict:
    firmware = str(compiled_dir(sources()))
    sig = signing.sign_answer(SECRET, REQUEST_SIGNATURE, 200, body)
    runs = {}
    for verify in (True, False):
        script = tmp / f"verify-{verify}.py"
        script.write_text(
            SCRIPT.format(
                firmware=firmware, body=body, sig=sig, secret=SECRET, req=REQUEST_SIGNATURE, n=n, verify=verify
            )
        )
        # Best of 3: the least disturbed run of each.
        results = [_child_cpu(script) for _ in range(3)]
        runs[verify] = (min(cpu for cpu, _ in results), results[0][1], min(out[2] for _, out in results))
    ok, heap, _ = runs[True][1]
    if not ok:
        raise SystemExit(f"{name}: the firmware did not verify the receiver's signature")
    ms = (runs[True][0] - runs[False][0]) / n * 1000
    wall_ms = (runs[True][2] - runs[False][2]) / n / 1000
    return {
        "answer": name,
        "body_bytes": len(body),
        "cpu_ms_host": round(ms, 4),
        "wall_ms_host": round(wall_ms, 4),
        "heap_bytes": heap,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000, help="verifications per run (default 20000)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        rows = [measure(name, body, args.n, Path(tmp)) for name, body in answers().items()]
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"rows": rows, "loadavg": load}))
        return 0
    print(f"verifying one answer under MicroPython (64 KiB heap, compiled firmware; load {load[0]:.2f})")
    print(f"(ESP32 column: host CPU x {ESP32_SLOWDOWN}, the speed ratio bench/device_cycle.py assumes)")
    print(f"{'answer':<32} {'bytes':>6} {'host CPU ms':>12} {'host wall ms':>13} {'ESP32 ms, est.':>15} {'heap B':>7}")
    for r in rows:
        esp = r["cpu_ms_host"] * ESP32_SLOWDOWN
        print(
            f"{r['answer']:<32} {r['body_bytes']:>6} {r['cpu_ms_host']:>12.3f} {r['wall_ms_host']:>13.3f}"
            f" {esp:>15.1f} {r['heap_bytes']:>7}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
