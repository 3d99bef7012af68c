"""Structured JSON logs and CloudWatch Embedded Metric Format, stdlib only.

Powertools' Logger and Metrics cost ~36 ms of cold start here (DESIGN.md figures);
these two functions cover what the handlers need. Callers pass counts and ids only:
never a secret, a signature or a token.
"""

import json
import sys
import time
from typing import Any, TextIO

NAMESPACE = "dhtlink"
_output: TextIO | None = None  # None: stdout, where Lambda hands lines to CloudWatch


def set_output(stream: TextIO | None) -> None:
    """Send log and metric lines elsewhere (the bench keeps them in its data dir)."""
    global _output
    _output = stream


def _emit(record: dict[str, Any]) -> None:
    print(json.dumps(record, default=str), file=_output or sys.stdout, flush=True)


def log(level: str, message: str, **fields: Any) -> None:
    _emit({"level": level, "message": message, "timestamp": round(time.time(), 3), **fields})


def metrics(route: str, **counts: int) -> None:
    """One EMF record: CloudWatch turns it into metrics without an API call."""
    if not counts:
        return
    record = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["route"]],
                    "Metrics": [{"Name": name, "Unit": "Count"} for name in counts],
                }
            ],
        },
        "route": route,
        **counts,
    }
    _emit(record)
