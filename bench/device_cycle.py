"""Device figures: the real firmware (device/) on the virtual board, posting over loopback
to a real local endpoint whose clock is the board's clock.

For batch sizes 1, 10, 20 and 50 it boots the board once per wake and measures, per wake:
the firmware's heap high-water mark (from its RTC memory, reset before each wake), the
bytes and connections on the wire (counted by the virtual socket module), the bytes the
firmware wrote to its flash (file-level: appends count their growth, rewritten or new
files their whole size), and the host time of the wake from the first hardware import to
deep sleep (the virtual machine module records it; virtual sleeps take no real time). Then it models an ESP32 wake:
CPU phases measured here (scaled by an assumed host/ESP32 speed ratio) plus radio and boot
phases from cited figures, each labelled.

    .venv/bin/python bench/device_cycle.py [--cycles-per-batch 6] [--json]
"""

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud import observability  # noqa: E402
from cloud.local import LocalEndpoint  # noqa: E402
from host_tools import battery  # noqa: E402
from host_tools.models.battery import CITED, ESP32_SLOWDOWN  # noqa: E402
from host_tools.sim.run import board_config  # noqa: E402
from host_tools.sim.vboard import VirtualBoard  # noqa: E402
from host_tools.sim.vboard import board as vboard  # noqa: E402

DEVICE = "bench-device"
BATCH_SIZES = (1, 10, 20, 50)
INTERVAL_S = 60


def _flash_files(directory: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for entry in os.scandir(directory):
        if entry.is_file() and entry.name != "config.json":
            st = entry.stat()
            out[entry.name] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def _bytes_written(before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]) -> int:
    written = 0
    for name, (ino, size, mtime) in after.items():
        old = before.get(name)
        if old is None or old[0] != ino or size < old[1] or (size == old[1] and mtime != old[2]):
            written += size  # new or rewritten file
        elif size > old[1]:
            written += size - old[1]  # append
    return written


def _rtc(board: VirtualBoard) -> dict[str, Any]:
    try:
        return json.loads((board.state_dir / "rtc_memory.bin").read_bytes() or b"{}")
    except (OSError, ValueError):
        return {}


def _reset_heap_mark(board: VirtualBoard) -> None:
    rtc = _rtc(board)
    if "heap_hw" in rtc:
        rtc.pop("heap_hw")
        (board.state_dir / "rtc_memory.bin").write_bytes(json.dumps(rtc).encode())


def run_series(batch_size: int, cycles: int, workdir: Path) -> dict[str, Any]:
    board = VirtualBoard(workdir / f"board-{batch_size}")
    with LocalEndpoint(workdir / f"endpoint-{batch_size}", clock=lambda _d: board.now()) as ep:
        secret = ep.add_device(DEVICE)
        config = board_config(
            DEVICE, secret, ep.url + "/data", INTERVAL_S, batch_size=batch_size, max_batch_delay_s=86400
        )
        board.install(config, {"seed": 3})
        wakes: list[dict[str, Any]] = []
        crashes: list[str] = []
        for _ in range(cycles):
            files, net = _flash_files(board.dir), dict(board.net())
            _reset_heap_mark(board)
            result = board.boot()
            if result.status != "deepsleep":
                # A crash, a watchdog reset: a finding, not a bench failure. Report it and go on
                # with the next wake, as the board itself does after a reset.
                errors = [line for line in result.output.splitlines() if "Error" in line] or [result.status]
                crashes.append(errors[0][:200])
                if result.status not in ("reset", "watchdog"):
                    break
                continue
            now = board.net()
            wakes.append(
                {
                    "requests": now.get("connects", 0) - net.get("connects", 0),
                    "sending": now.get("connects", 0) > net.get("connects", 0),
                    "heap": max(0, _rtc(board).get("heap_hw", 0) - vboard.shim_heap_bytes()),
                    "flash": _bytes_written(files, _flash_files(board.dir)),
                    "cpu_s": board.wake_real_s(),
                }
            )
        report = board.report()
        stored = len(ep.store.query_readings(DEVICE, limit=1000)[0])
    net = board.net()
    taken = report["next_seq"]
    acked = taken - report["spool_depth"] - report["dropped"]
    if stored != acked:
        raise SystemExit(f"batch {batch_size}: board counts {acked} acknowledged, store holds {stored}")
    steady = wakes[1:]  # the first wake is a power-on: it reports at once and settles the DHT
    sending = [w for w in steady if w["sending"]]
    buffering = [w for w in steady if not w["sending"]]
    if not steady:
        raise SystemExit(f"batch {batch_size}: no wake ended in deep sleep after the first; crashes: {crashes}")
    return {
        "batch_size": batch_size,
        "wakes": cycles,
        "readings_stored": stored,
        "requests": net.get("connects", 0),
        "requests_per_reading": net.get("connects", 0) / max(1, stored),
        # Without the power-on wake, which reports its one reading at once: one wake, one reading.
        "steady_requests_per_reading": sum(w["requests"] for w in steady) / len(steady),
        "crashed_wakes": len(crashes),
        "crash": crashes[0] if crashes else None,
        "bytes_out_per_reading": net.get("bytes_out", 0) / max(1, stored),
        "bytes_in_per_reading": net.get("bytes_in", 0) / max(1, stored),
        "flash_bytes_per_reading": sum(w["flash"] for w in steady) / len(steady),
        "flash_bytes_buffering_wake": statistics.median(w["flash"] for w in buffering) if buffering else None,
        "flash_bytes_sending_wake": statistics.median(w["flash"] for w in sending) if sending else None,
        "heap_hw_buffering": max((w["heap"] for w in buffering), default=None),
        "heap_hw_sending": max((w["heap"] for w in sending), default=None),
        "host_cpu_buffering_s": statistics.median(w["cpu_s"] for w in buffering) if buffering else None,
        "host_cpu_sending_s": statistics.median(w["cpu_s"] for w in sending) if sending else None,
    }


def awake_model(series: list[dict[str, Any]]) -> dict[str, Any]:
    """Modelled ESP32 awake time per wake, from the batch-20 series."""
    row = next(s for s in series if s["batch_size"] == 20)
    cpu_buffer = row["host_cpu_buffering_s"] * ESP32_SLOWDOWN
    cpu_send = row["host_cpu_sending_s"] * ESP32_SLOWDOWN
    model = battery.awake_model(cpu_buffer, cpu_send)
    buffering, sending = model.buffering_s, model.sending_s
    c = {k: v for k, (v, _) in CITED.items()}
    return {
        "cpu_buffering_s (measured x assumed slowdown)": round(cpu_buffer, 3),
        "cpu_sending_s (measured x assumed slowdown)": round(cpu_send, 3),
        "buffering_wake_s": round(buffering, 3),
        "sending_wake_http_cached_s": round(sending, 3),
        "sending_wake_http_no_cache_s": round(sending - c["wifi_cached_s"] + c["wifi_full_s"], 3),
        "sending_wake_https_cached_s": round(sending + c["tls_handshake_s"], 3),
        "average_wake_http_cached_s": round((19 * buffering + sending) / 20, 3),
    }


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles-per-batch", type=int, default=6, help="wakes per batch size, in batches (default 6)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.cycles_per_batch < 2:
        parser.error("--cycles-per-batch must be at least 2")
    observability.set_output(io.StringIO())  # the endpoint's request logs are not the figures
    with tempfile.TemporaryDirectory(prefix="bench-device-") as tmp:
        series = [run_series(b, max(30, b * args.cycles_per_batch) + 1, Path(tmp)) for b in BATCH_SIZES]
    model = awake_model(series)
    if args.json:
        print(json.dumps({"series": series, "awake_model": model, "cited": CITED, "esp32_slowdown": ESP32_SLOWDOWN}))
        return 0
    print(f"firmware heap budget 64 KiB; shim heap excluded ({vboard.shim_heap_bytes()} B)")
    head = (
        "batch",
        "wakes",
        "stored",
        "crashes",
        "req/rdg",
        "steady r/r",
        "out B/rdg",
        "in B/rdg",
        "flash B/rdg",
        "heap buf",
        "heap send",
        "cpu buf ms",
        "cpu send ms",
    )
    print(" ".join(f"{h:>11}" for h in head))
    for s in series:
        cells = (
            s["batch_size"], s["wakes"], s["readings_stored"], s["crashed_wakes"],
            f"{s['requests_per_reading']:.3f}", f"{s['steady_requests_per_reading']:.3f}",
            f"{s['bytes_out_per_reading']:.0f}", f"{s['bytes_in_per_reading']:.0f}",
            f"{s['flash_bytes_per_reading']:.0f}",
            s["heap_hw_buffering"], s["heap_hw_sending"],
            _ms(s["host_cpu_buffering_s"]), _ms(s["host_cpu_sending_s"]),
        )  # fmt: skip
        print(" ".join(f"{c!s:>11}" for c in cells))
    for s in series:
        if s["crash"]:
            print(f"batch {s['batch_size']}: {s['crashed_wakes']} wakes crashed, first: {s['crash']}")
    print(f"\nmodelled ESP32 wake at batch 20 (CPU measured here x {ESP32_SLOWDOWN}, assumed; the rest cited):")
    for key, value in model.items():
        print(f"  {key:<48} {value}")
    print("\ncited figures:")
    for key, (value, source) in CITED.items():
        print(f"  {key:<16} {value:>6} s  {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
