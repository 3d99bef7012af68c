"""What an over-the-air update of the whole app costs one board: bytes on the wire, HTTP
requests, wakes until it runs, flash used at the peak, the smallest heap in which the
downloading wake completes (bisection as bench/device_heap.py), and the wake's real
duration on the virtual board (loopback, so a floor: a real board adds Wi-Fi round trips).

    .venv/bin/python bench/ota_update.py [BATCH_SIZE]   (default 20)
"""

import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from device_heap import HIGH_KIB, smallest_heap_kib  # noqa: E402

from cloud import observability  # noqa: E402
from cloud.local import LocalEndpoint  # noqa: E402
from host_tools import ota  # noqa: E402
from host_tools.serial import firmware  # noqa: E402
from host_tools.sim.run import board_config  # noqa: E402
from host_tools.sim.vboard import VirtualBoard  # noqa: E402

DEVICE = "ota-bench"


def flash_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file() and ".vboard" not in p.parts)


def main() -> int:
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    observability.set_output(io.StringIO())
    with tempfile.TemporaryDirectory(prefix="bench-ota-") as tmp_name:
        tmp = Path(tmp_name)
        board = VirtualBoard(tmp / "board", heap=f"{HIGH_KIB}k")
        with LocalEndpoint(tmp / "endpoint", clock=lambda _d: board.now()) as endpoint:
            secret = endpoint.add_device(DEVICE)
            board.install(board_config(DEVICE, secret, endpoint.url + "/data", 60, batch_size=batch))
            board.boot()
            for _ in range(batch - 1):
                board.boot()  # one short of a batch: the next wake sends and gets the offer
            source = tmp / "src"
            shutil.copytree(firmware.DEVICE, source)
            app = source / "app.py"
            app.write_text(app.read_text().replace('FW = "0.1.0"', 'FW = "0.2.0"'))
            ota.publish(ota.LocalReleases(endpoint.data_dir), source)
            files = len(ota.release_files(source))
            offer = ota.target(ota.LocalReleases(endpoint.data_dir), "0.2.0")
            endpoint.store.set_ota_target(DEVICE, offer)
            base_flash = flash_bytes(board.dir)
            net0 = board.net()
            wakes, peak, real, heap = 0, base_flash, [], None
            while board.report()["fw"] != "0.2.0" and wakes < 40:
                downloading = heap is None and not (board.dir / "ota.dl").exists()
                if downloading:
                    shutil.rmtree(tmp / "snap", ignore_errors=True)
                    shutil.copytree(board.dir, tmp / "snap")
                started = time.monotonic()
                board.boot()
                real.append(time.monotonic() - started)
                wakes += 1
                peak = max(peak, flash_bytes(board.dir))
                if downloading and ((board.dir / "ota.dl").exists() or (board.dir / "ota.state").exists()):
                    # This wake got the offer and downloaded: its heap is the one to measure.
                    heap = smallest_heap_kib(tmp / "snap", tmp / "work")
                    download_ms = real[-1] * 1000
            net1 = board.net()
            # Every wake after an update (ota.last on the flash) must still fit a full batch's send:
            # partial batches wait a day, so the spool fills to one short of a batch.
            config = json.loads((board.dir / "config.json").read_text())
            (board.dir / "config.json").write_text(json.dumps({**config, "max_batch_delay_s": 86400}))
            for _ in range(2 * batch + 10):
                if board.report()["spool_depth"] == batch - 1 and not (board.dir / "ota.state").exists():
                    break
                board.boot()
            shutil.rmtree(tmp / "snap", ignore_errors=True)
            shutil.copytree(board.dir, tmp / "snap")
            after = smallest_heap_kib(tmp / "snap", tmp / "work")
    sent = {k: net1.get(k, 0) - net0.get(k, 0) for k in net1}
    print(f"OTA update of the whole app, one board (load {os.getloadavg()[0]:.1f})")
    print(f"  release: {offer['size']} bytes in {files} files")
    print(f"  wakes until the new app runs: {wakes}; the downloading wake took {download_ms:.0f} ms real")
    print(f"  network during the update (incl. the wakes' own sends): {sent}")
    print(f"  flash: {base_flash} bytes before, {peak} at the peak (+{peak - base_flash})")
    print(f"  smallest heap for the downloading wake (batch {batch}): {heap} KiB (budget 64)")
    print(f"  smallest heap for a full batch's send on the updated board: {after} KiB (budget 64)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
