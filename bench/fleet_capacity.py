"""The largest fleet this machine could run at 60 s intervals in real time, for each way
of starting a wake, side by side in one run.

    .venv/bin/python bench/fleet_capacity.py [--devices 8] [--hours 1] [--rounds 2]

A virtual board's wake is one MicroPython process; its sleep costs nothing. So the fleet a
machine sustains in real time is the number of wakes it completes per second (all cores
busy, the local endpoint answering in the same process) times the 60 s interval. The same
fleet runs once per launcher per round, launchers interleaved so that a change in the
machine's load falls on all of them; the slower round of each is reported:
  wrapper  the `micropython` command's way: CPython with site, then the extension
  direct   launch.py: CPython isolated and without site, the OS sandbox, then the extension
  fork     the default: one fork server forks every wake, sandboxed
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host_tools.sim.fleet import run_bench  # noqa: E402
from host_tools.sim.vboard import board as vboard  # noqa: E402

LAUNCHERS = ("wrapper", "direct", "fork")
FIGURES = ("produced", "stored", "requests_per_reading", "bytes_per_reading")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--hours", type=float, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {name: [] for name in LAUNCHERS}
    figures: dict[str, tuple] = {}
    for _ in range(args.rounds):
        for name in LAUNCHERS:
            vboard.launcher = name
            with tempfile.TemporaryDirectory() as scratch:
                started = time.monotonic()
                report = run_bench(args.devices, args.hours, 60, seed=1, data_dir=Path(scratch), show_progress=False)
                elapsed = time.monotonic() - started
            if report.lost or report.duplicates_stored:
                raise SystemExit(f"{name}: delivery failed: lost {report.lost}, twice {report.duplicates_stored}")
            rates[name].append(report.produced / elapsed)
            figures[name] = tuple(getattr(report, key) for key in FIGURES)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"fleet {args.devices} boards x {args.hours:g} h per run, {args.rounds} rounds, launchers interleaved")
    base = min(rates["wrapper"])
    for name in LAUNCHERS:
        rate = min(rates[name])
        print(
            f"{name:<8} wakes per second (slower of {args.rounds}): {rate:6.1f}  ({rate / base:.1f}x wrapper)  "
            f"largest fleet at 60 s: about {int(rate * 60)} boards"
        )
    same = len(set(figures.values())) == 1
    print(f"delivery figures {dict(zip(FIGURES, figures['fork'], strict=True))}: {'identical' if same else 'DIFFER'}")
    if not same:
        raise SystemExit(f"launchers gave different figures: {figures}")


if __name__ == "__main__":
    main()
