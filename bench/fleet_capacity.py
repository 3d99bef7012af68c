"""The largest fleet this machine could run at 60 s intervals in real time.

    .venv/bin/python bench/fleet_capacity.py [--devices 8] [--hours 1]

A virtual board's wake is one MicroPython process; its sleep costs nothing. So the fleet a
machine sustains in real time is the number of wakes it completes per second (all cores
busy, the local endpoint answering in the same process) times the 60 s interval. Runs a
bounded fleet twice and reports the slower of the two.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host_tools.bench import run_bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--hours", type=float, default=1)
    args = parser.parse_args()
    rates = []
    for _ in range(2):
        with tempfile.TemporaryDirectory() as scratch:
            started = time.monotonic()
            report = run_bench(args.devices, args.hours, 60, seed=1, data_dir=Path(scratch), show_progress=False)
            elapsed = time.monotonic() - started
        if report.lost or report.duplicates_stored:
            raise SystemExit(f"delivery failed under load: lost {report.lost}, twice {report.duplicates_stored}")
        rates.append(report.produced / elapsed)
    rate = min(rates)
    print(f"machine: {os.cpu_count()} cores; fleet {args.devices} boards x {args.hours:g} h per run")
    print(f"wakes per second (slower of 2 runs): {rate:.1f}")
    print(f"largest fleet at 60 s intervals in real time: about {int(rate * 60)} boards")


if __name__ == "__main__":
    main()
