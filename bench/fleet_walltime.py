"""Wall time of `make bench`'s default job: 5 boards x 1 simulated day at 60 s.

    .venv/bin/python bench/fleet_walltime.py [--devices 5] [--hours 24]

Prints the wall time, the wakes per second the machine sustained, and the report's
delivery figures (which must show nothing lost or stored twice).
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host_tools.sim.fleet import run_bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=5)
    parser.add_argument("--hours", type=float, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        report = run_bench(args.devices, args.hours, 60, seed=1, data_dir=Path(scratch), show_progress=False)
    wakes = sum(d["produced"] for d in report.per_device.values())
    print(f"fleet: {args.devices} boards x {args.hours:g} h at 60 s")
    print(f"wall time:        {report.wall_s:.1f} s")
    print(f"wakes per second: {wakes / report.wall_s:.1f}")
    print(
        f"produced {report.produced}, stored {report.stored}, lost {report.lost}, "
        f"stored twice {report.duplicates_stored}, requests/reading {report.requests_per_reading}"
    )


if __name__ == "__main__":
    main()
