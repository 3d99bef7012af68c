"""Structured JSON logs and CloudWatch Embedded Metric Format, stdlib only.

Powertools' Logger and Metrics cost ~36 ms of cold start here (DESIGN.md figures);
these two functions cover what the handlers need. Callers pass counts and ids only:
never a secret, a signature or a token.
"""

import contextlib
import contextvars
import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

NAMESPACE = "dhtlink"
_output: TextIO | None = None  # None: stdout, where Lambda hands lines to CloudWatch
# None: with the log lines (in Lambda both go to stdout, and CloudWatch tells them apart);
# the local endpoint keeps them out of its console, which shows log lines only.
_metrics_output: TextIO | None = None
# The request being served, on every log line: one request's lines can be found among many.
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


@contextlib.contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def lambda_handler(handler: Callable[[dict[str, Any], Any], dict[str, Any]]) -> Callable[[dict[str, Any], Any], Any]:
    """A Lambda entry point whose log lines carry the invocation's request id, and whose
    unexpected failure is a logged JSON 500 rather than API Gateway's bare one."""

    @functools.wraps(handler)
    def entry(event: dict[str, Any], context: Any) -> dict[str, Any]:
        request_id = getattr(context, "aws_request_id", None)
        with request_context(request_id):
            try:
                return handler(event, context)
            except Exception as failure:
                route = (event.get("requestContext") or {}).get("routeKey") or event.get("rawPath")
                log("ERROR", "unhandled exception", route=route, exception=repr(failure))
                body = {
                    "error": "internal_error",
                    "message": f"the receiver failed; its log names request {request_id}",
                }
                return {
                    "statusCode": 500,
                    "headers": {"content-type": "application/json"},
                    "body": json.dumps(body, separators=(",", ":")),
                }

    return entry


def set_output(stream: TextIO | None) -> None:
    """Send log and metric lines elsewhere (the bench keeps them in its data dir)."""
    global _output
    _output = stream


def set_metrics_output(stream: TextIO | None) -> None:
    """Send the metric (EMF) records to their own stream; None: with the log lines."""
    global _metrics_output
    _metrics_output = stream


def _emit(record: dict[str, Any], stream: TextIO | None = None) -> None:
    print(json.dumps(record, default=str), file=stream or _output or sys.stdout, flush=True)


def log(level: str, message: str, **fields: Any) -> None:
    record = {"level": level, "message": message, "timestamp": round(time.time(), 3)}
    request_id = _request_id.get()
    if request_id is not None:
        record["request_id"] = request_id
    _emit({**record, **fields})


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
        **({"request_id": _request_id.get()} if _request_id.get() else {}),
        **counts,
    }
    _emit(record, _metrics_output)
