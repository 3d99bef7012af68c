"""Heap of the sending wake that receives remote settings, beside the same wake without
them: the smallest MicroPython heap in which the real firmware completes it (bisection,
1 KiB steps, as bench/device_heap.py), for a full batch of 20 and of 100. The settings
are checked and stored after the send's buffer is freed, so the two should be equal.

    .venv/bin/python bench/device_settings_heap.py
"""

import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from device_heap import _completes, board_and_endpoint, smallest_heap_kib  # noqa: E402

from cloud import observability  # noqa: E402

DEVICE = "settings-heap-bench"
OFFER = {"interval_s": 300, "batch_size": 30, "sensor.type": "DHT11", "sensor.pin": 15, "max_batch_delay_s": 3600}


def measure(batch_size: int, tmp: Path) -> tuple[int | None, int | None]:
    with board_and_endpoint(tmp, batch_size, DEVICE) as (board, endpoint):
        for _ in range(batch_size):  # the power-on wake reports; then one short of a batch
            board.boot()
        shutil.copytree(board.dir, tmp / "snap")
        plain = smallest_heap_kib(tmp / "snap", tmp / "work")
        endpoint.store.set_desired(DEVICE, OFFER)
        offered = smallest_heap_kib(tmp / "snap", tmp / "work")
        # The bisection's last try may have run out of memory: run the wake once more at the
        # budget found, to check it stores the settings there.
        assert offered and _completes(tmp / "snap", tmp / "work", offered)
        assert (tmp / "work" / "settings.json").exists(), "the measured wake stored the settings"
        shutil.rmtree(tmp / "snap")
    return plain, offered


def main() -> int:
    observability.set_output(io.StringIO())
    print(f"smallest firmware heap for the sending wake (KiB; budget 64), load {os.getloadavg()[0]:.1f}")
    print(f"{'batch':>6} {'no settings':>12} {'settings offered':>17}")
    with tempfile.TemporaryDirectory(prefix="bench-settings-heap-") as tmp:
        for batch in (20, 100):
            plain, offered = measure(batch, Path(tmp))
            print(f"{batch:>6} {plain or '-':>12} {offered or '-':>17}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
