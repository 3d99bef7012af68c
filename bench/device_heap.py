"""The smallest MicroPython heap the real firmware needs for one wake: the true
high-water mark, found by running the same wake again and again on copies of a board
with a smaller or larger `-X heapsize` until it just completes (bisection, 1 KiB steps).

For each batch size it measures a buffering wake and the sending wake that posts a full
batch, against a real local endpoint sharing the board's clock. The virtual hardware's
own heap is added on top of every budget, as on a chip where it is built in.

    .venv/bin/python bench/device_heap.py [--json]
"""

import argparse
import io
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud import observability  # noqa: E402
from cloud.local import LocalEndpoint  # noqa: E402
from host_tools.sim.run import board_config  # noqa: E402
from host_tools.sim.vboard import VirtualBoard  # noqa: E402

DEVICE = "heap-bench"
BATCH_SIZES = (1, 10, 20, 25, 30, 50, 100)
LOW_KIB, HIGH_KIB = 16, 160


ATTEMPTS = 3


def _completes(snapshot: Path, work: Path, kib: int) -> bool:
    """Whether the wake completes in `kib`: only a MemoryError says it does not fit. Any
    other end (a watchdog or other reset) says nothing about the heap, so the same wake
    runs again from the same snapshot."""
    for _ in range(ATTEMPTS):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(snapshot, work)
        result = VirtualBoard(work, heap=f"{kib}k").boot()
        if "MemoryError" in result.output:
            return False
        if result.status == "deepsleep":
            return True
    raise SystemExit(f"the wake at {kib} KiB ended {ATTEMPTS} times neither asleep nor out of memory:\n{result.output}")


def smallest_heap_kib(snapshot: Path, work: Path) -> int | None:
    """Smallest budget in KiB with which the next wake of `snapshot` completes."""
    if not _completes(snapshot, work, HIGH_KIB):
        return None
    low, high = LOW_KIB - 1, HIGH_KIB  # low fails (or is untested below the floor), high completes
    while high - low > 1:
        mid = (low + high) // 2
        if _completes(snapshot, work, mid):
            high = mid
        else:
            low = mid
    return high


@contextmanager
def board_and_endpoint(tmp: Path, batch_size: int, device: str = DEVICE) -> Iterator[tuple[VirtualBoard, Any]]:
    """A board provisioned against a local endpoint that shares its clock; partial batches
    wait a day, so a wake sends only a full batch (or at power-on)."""
    board = VirtualBoard(tmp / f"board-{batch_size}", heap=f"{HIGH_KIB}k")
    with LocalEndpoint(tmp / f"endpoint-{batch_size}", clock=lambda _d: board.now()) as endpoint:
        secret = endpoint.add_device(device)
        config = board_config(
            device, secret, endpoint.url + "/data", 60, batch_size=batch_size, max_batch_delay_s=86400
        )
        board.install(config, {"seed": 3})
        yield board, endpoint


def measure(batch_size: int, tmp: Path) -> dict[str, int | None]:
    with board_and_endpoint(tmp, batch_size) as (board, _endpoint):
        board.boot()  # the power-on wake, which reports at once
        buffering = None
        if batch_size > 1:
            shutil.copytree(board.dir, tmp / "snap")
            buffering = smallest_heap_kib(tmp / "snap", tmp / "work")
            shutil.rmtree(tmp / "snap")
        for _ in range(batch_size - 1):  # fill the spool to one short of a batch
            board.boot()
        shutil.copytree(board.dir, tmp / "snap")
        sending = smallest_heap_kib(tmp / "snap", tmp / "work")
        shutil.rmtree(tmp / "snap")
    return {"batch_size": batch_size, "buffering_kib": buffering, "sending_kib": sending}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    observability.set_output(io.StringIO())
    with tempfile.TemporaryDirectory(prefix="bench-heap-") as tmp:
        rows = [measure(b, Path(tmp)) for b in BATCH_SIZES]
    if args.json:
        print(json.dumps(rows))
        return 0
    print("smallest firmware heap for one wake (KiB; budget 64)")
    print(f"{'batch':>6} {'buffering':>10} {'sending':>8}")
    for row in rows:
        print(f"{row['batch_size']:>6} {row['buffering_kib'] or '-':>10} {row['sending_kib'] or '-':>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
