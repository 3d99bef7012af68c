"""What the deployed stack holds at 1k, 100k and 1M boards for fleets A and B, and what gives
first: host_tools/models/capacity.py over cloud/template.yaml and the handlers' measured
costs (the successor of a count of pages and partitions done by hand in issue 24).

    .venv/bin/python bench/aws_capacity.py [--json]
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from host_tools.models import capacity, costs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    stack = capacity.Stack.from_template()
    report: dict = {"fleets": {}}
    for fleet in capacity.FLEETS:
        sizes = {}
        for boards in capacity.SIZES:
            cost = costs.fleet_cost(fleet.reading_interval_s, fleet.batch, boards)
            sizes[boards] = {
                "loads": {
                    load.name: [round(load.value, 2), load.ceiling, load.kind]
                    for load in capacity.loads(stack, fleet, boards)
                },
                "usd_per_device_month": round(cost.per_device, 4),
            }
        limit_at, limit = capacity.first_to_give(stack, fleet, "limit")
        quota_at, quota = capacity.first_to_give(stack, fleet, "quota")
        report["fleets"][fleet.name] = {
            "reading_interval_s": fleet.reading_interval_s,
            "batch": fleet.batch,
            "sizes": sizes,
            "first_limit": [limit_at, limit],
            "first_quota": [quota_at, quota],
        }
    if args.json:
        print(json.dumps(report))
        return
    for name, fleet in report["fleets"].items():
        print(f"fleet {name}: a reading every {fleet['reading_interval_s']} s, {fleet['batch']} a request")
        for boards, figures in fleet["sizes"].items():
            print(f"  {boards:>9,} boards  ${figures['usd_per_device_month']:.4f} a device-month")
            for label, (value, ceiling, kind) in figures["loads"].items():
                flag = "  <-- over" if value >= ceiling else ""
                print(f"    {label:<68} {value:>12,.2f} of {ceiling:>9,} ({kind}){flag}")
        limit_at, limit = fleet["first_limit"]
        quota_at, quota = fleet["first_quota"]
        print(
            f"  first design limit: {limit or 'none'} at {limit_at:,} boards"
            if limit
            else "  no design limit below 10M boards"
        )
        print(f"  first quota to raise: {quota} at {quota_at:,} boards (docs/deploy.md, Growing)")


if __name__ == "__main__":
    main()
