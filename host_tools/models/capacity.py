"""What the deployed stack sustains as a fleet grows, from cloud/template.yaml and the
handlers' measured costs: requests/s, Lambda concurrency, DynamoDB writes/s per table, per
partition key and per index key, the scheduled jobs' time and memory, and what gives first.

Two fleets (issue 24): A, a reading a minute sent in batches of 20 (a request every 20
minutes); B, a reading every 5 minutes sent at once. `bench/aws_capacity.py` prints it;
tests/deploy/test_capacity.py holds the template to it. Limits are AWS's defaults, split
into the ones an account raises by a quota request ("quota") and the ones no request
raises ("limit": one partition key's throughput, a Lambda's timeout).
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.stores.base import DEVICE_SHARDS

TEMPLATE = Path(__file__).resolve().parents[2] / "cloud" / "template.yaml"
SIZES = (1_000, 100_000, 1_000_000)
VCPU_MB = 1769  # Lambda gives one full vCPU at 1,769 MB, a share in proportion below

# AWS defaults (Service Quotas; "quota" = raised on request, "limit" = not).
API_ACCOUNT_RPS = 10_000  # quota: API Gateway requests/s per account and region
LAMBDA_CONCURRENCY = 1_000  # quota: concurrent executions per region
TABLE_WRITE_UNITS = 40_000  # quota: on-demand write request units/s per table
TABLE_READ_UNITS = 40_000  # quota: on-demand read request units/s per table
PARTITION_WRITE_UNITS = 1_000  # limit: per partition (one key value; a GSI's key the same)
PARTITION_READ_UNITS = 3_000  # limit: per partition (strongly consistent units)
LAMBDA_MAX_TIMEOUT_S = 900  # limit

# Handler costs, measured (bench and date given; CPU on this 2-core host, one core = one vCPU).
INGEST_CPU_MS = 10.0  # warm POST /data of a 20-reading batch, botocore included (bench/cloud_warm.py)
INGEST_CALLS = 2  # GetItem, TransactWriteItems with the row's update in it (issue 23; docs/performance.md)
SUMMARY_CPU_MS = 34.0  # per device of a stream batch, 4 calls (bench/fleet_jobs.py, 2026-12-07)
SUMMARY_CALLS = 4  # hour Query + Put, day Query + Put
# per device and 2 rules, a shard's run (bench/fleet_jobs.py, 2026-12-07: 0.66 ms at 10k devices,
# 0.48 ms at 100k, warm; the larger figure, rounded up)
ALERT_JOB_CPU_MS = 0.7
ALERT_JOB_RSS_MB = 56.1  # peak RSS of a shard's run at 100k devices (53.3 MB at 10k; bench/fleet_jobs.py)
# Not measured: the alerts stream function's work a device (one Query of its states, rules
# read once a batch), modelled as one call of the summary function's per-call cost.
ALERT_STREAM_CPU_MS = SUMMARY_CPU_MS / SUMMARY_CALLS
ALERT_STREAM_CALLS = 1
DYNAMODB_CALL_MS = 7.0  # an in-region DynamoDB call's round trip, assumed

# Write and read units, from item sizes (DynamoDB: a write unit per 1 KB, a read unit per
# 4 KB strongly consistent, half that eventually consistent; transactions count double).
READING_WRITE_UNITS = 3  # TransactWriteItems put (2) + by_time LSI entry (1)
DEVICE_ROW_WRITE_UNITS = 2  # the row's update (< 1 KB) inside the readings' transaction: doubled
BY_ID_WRITE_UNITS = 1  # the row's projected attributes change: one index write
BY_LAST_SEEN_WRITE_UNITS = 2  # its sort key (seen_key) moves: a delete and a put
HOUR_ITEM_WRITE_UNITS = 2  # hour summary (~700 B) + its LSI copy
DAY_ITEM_WRITE_UNITS = 4  # day summary (~1.2 KB: 2 units) + its LSI copy
DEVICE_ROW_BYTES = 700  # a device row as the by_id index projects it
STATE_BYTES = 250  # a rising rule's state item


@dataclass(frozen=True)
class Fleet:
    name: str
    reading_interval_s: int
    batch: int

    @property
    def send_interval_s(self) -> int:
        return self.reading_interval_s * self.batch


FLEETS = (Fleet("A", 60, 20), Fleet("B", 300, 1))


def load_template(text: str) -> Any:
    """cloud/template.yaml with its !Ref, !GetAtt, !Sub ... read as plain values."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def tag(loader: Any, suffix: str, node: Any) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return {suffix: loader.construct_scalar(node)}
        if isinstance(node, yaml.SequenceNode):
            return {suffix: loader.construct_sequence(node, deep=True)}
        return {suffix: loader.construct_mapping(node, deep=True)}

    Loader.add_multi_constructor("!", tag)
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


@dataclass(frozen=True)
class Stack:
    """The figures of the template this model needs."""

    api_rate_limit: int
    api_burst_limit: int
    memory_mb: dict[str, int]
    timeout_s: dict[str, int]
    summary_batch: int
    summary_timeout_s: int
    alert_schedule_runs: int
    alert_schedule_period_s: int
    indexes: list[dict[str, Any]]

    @classmethod
    def from_template(cls, path: Path = TEMPLATE) -> "Stack":
        template = load_template(path.read_text())
        parameters, resources = template["Parameters"], template["Resources"]
        globals_ = template["Globals"]["Function"]
        memory, timeout = {}, {}
        for name, resource in resources.items():
            if resource["Type"] == "AWS::Serverless::Function":
                properties = resource["Properties"]
                memory[name] = int(properties.get("MemorySize", globals_["MemorySize"]))
                timeout[name] = int(properties.get("Timeout", globals_["Timeout"]))
        (summary_event,) = resources["SummaryFunction"]["Properties"]["Events"].values()
        schedules = list(resources["AlertsScheduleFunction"]["Properties"]["Events"].values())
        period = {schedule["Properties"]["Schedule"] for schedule in schedules}
        if period != {"rate(5 minutes)"}:
            raise ValueError(f"the model reads a 5-minute alert schedule, the template has {period}")
        return cls(
            api_rate_limit=int(parameters["ApiRateLimit"]["Default"]),
            api_burst_limit=int(parameters["ApiBurstLimit"]["Default"]),
            memory_mb=memory,
            timeout_s=timeout,
            summary_batch=int(summary_event["Properties"]["BatchSize"]),
            summary_timeout_s=timeout["SummaryFunction"],
            alert_schedule_runs=len(schedules),
            alert_schedule_period_s=300,
            indexes=[
                {"table": name, **index}
                for name, resource in resources.items()
                if resource["Type"] == "AWS::DynamoDB::Table"
                for index in resource["Properties"].get("GlobalSecondaryIndexes", [])
            ],
        )

    def duration_s(self, function: str, cpu_ms: float, calls: int) -> float:
        """A Lambda's duration for work of `cpu_ms` host CPU and `calls` DynamoDB calls."""
        share = min(1.0, self.memory_mb[function] / VCPU_MB)
        return (cpu_ms / share + calls * DYNAMODB_CALL_MS) / 1000

    def summary_batch_s(self) -> float:
        """The worst stream batch: every record from another device (fleet B)."""
        return self.summary_batch * self.duration_s("SummaryFunction", SUMMARY_CPU_MS, SUMMARY_CALLS)


@dataclass(frozen=True)
class Load:
    name: str
    value: float
    ceiling: float
    kind: str  # "quota" (raised on request) or "limit" (designed around)

    @property
    def share(self) -> float:
        return self.value / self.ceiling


def loads(stack: Stack, fleet: Fleet, boards: int) -> list[Load]:
    """Every figure the stack must hold for `boards` boards of `fleet`, beside its ceiling."""
    requests = boards / fleet.send_interval_s
    readings = boards / fleet.reading_interval_s
    ingest_s = stack.duration_s("IngestFunction", INGEST_CPU_MS, INGEST_CALLS)
    summary_s = stack.duration_s("SummaryFunction", SUMMARY_CPU_MS, SUMMARY_CALLS)
    alerts_stream_s = stack.duration_s("AlertsStreamFunction", ALERT_STREAM_CPU_MS, ALERT_STREAM_CALLS)
    # A stream batch holds a device's records of one request: summaries and value alerts run
    # once a request.
    concurrency = requests * (ingest_s + summary_s + alerts_stream_s)
    readings_writes = readings * READING_WRITE_UNITS + requests * (HOUR_ITEM_WRITE_UNITS + DAY_ITEM_WRITE_UNITS)
    device_writes = requests * (DEVICE_ROW_WRITE_UNITS + BY_ID_WRITE_UNITS + BY_LAST_SEEN_WRITE_UNITS)
    shard_devices = boards / stack.alert_schedule_runs
    alert_run_s = (
        shard_devices * ALERT_JOB_CPU_MS / 1000 / min(1.0, stack.memory_mb["AlertsScheduleFunction"] / VCPU_MB)
        + math.ceil(shard_devices / 500) * DYNAMODB_CALL_MS / 1000
    )
    # Each shard's run reads its states' partition ("state#<shard>") over the run, eventually
    # consistent; the alerts stream function reads a device's states a request.
    state_reads = shard_devices * STATE_BYTES / 4096 * 0.5 / max(alert_run_s, 1.0)
    state_reads += requests * 0.5 / DEVICE_SHARDS
    return [
        Load("API requests/s (route throttle ApiRateLimit)", requests, stack.api_rate_limit, "quota"),
        Load("API requests/s (account)", requests, API_ACCOUNT_RPS, "quota"),
        Load("Lambda concurrency (ingest + stream functions)", concurrency, LAMBDA_CONCURRENCY, "quota"),
        Load("readings table writes/s", readings_writes, TABLE_WRITE_UNITS, "quota"),
        Load("devices table writes/s (with its indexes)", device_writes, TABLE_WRITE_UNITS, "quota"),
        Load(
            "by_last_seen writes/s a partition key (fleet_shard)",
            requests * BY_LAST_SEEN_WRITE_UNITS / DEVICE_SHARDS,
            PARTITION_WRITE_UNITS,
            "limit",
        ),
        Load(
            "by_id writes/s a partition key (fleet_shard)",
            requests * BY_ID_WRITE_UNITS / DEVICE_SHARDS,
            PARTITION_WRITE_UNITS,
            "limit",
        ),
        Load(
            "readings write units at once on a device's partition key (one batch)",
            fleet.batch * READING_WRITE_UNITS,
            PARTITION_WRITE_UNITS,
            "limit",
        ),
        Load("alert states reads/s a partition key (state#<shard>)", state_reads, PARTITION_READ_UNITS, "limit"),
        Load("summary batch s (worst: a device a record)", stack.summary_batch_s(), stack.summary_timeout_s, "limit"),
        Load(
            "scheduled alert run s (one shard)",
            alert_run_s,
            min(stack.timeout_s["AlertsScheduleFunction"], stack.alert_schedule_period_s),
            "limit",
        ),
        Load("scheduled alert run MB", ALERT_JOB_RSS_MB, stack.memory_mb["AlertsScheduleFunction"], "limit"),
    ]


def first_to_give(stack: Stack, fleet: Fleet, kind: str | None = None, up_to: int = 10_000_000) -> tuple[int, str]:
    """The smallest fleet (doubling search, then bisection) at which a load of `kind` (or
    any) reaches its ceiling, and which; (up_to, "") if none below up_to."""

    def over(boards: int) -> str:
        for load in loads(stack, fleet, boards):
            if (kind is None or load.kind == kind) and load.share >= 1:
                return load.name
        return ""

    low, high = 1, 1
    while not over(high):
        if high >= up_to:
            return up_to, ""
        low, high = high, min(up_to, high * 2)
    while high - low > max(1, low // 1000):
        middle = (low + high) // 2
        low, high = (low, middle) if over(middle) else (middle, high)
    return high, over(high)


def low_cardinality_indexes_with_per_batch_attributes(stack: Stack, distinct: dict[str, int]) -> list[str]:
    """Indexes whose hash key takes fewer values than the fleet's per-batch writes need
    (writes/s at 1M boards of fleet B over the partition limit), yet carry an attribute every
    accepted batch rewrites: the write pattern that caps a fleet at one partition."""
    per_batch = {"last_seen", "seen_key", "last_status", "last_reading", "first_seq", "max_seq", "received"}
    busiest = max(1_000_000 / fleet.send_interval_s for fleet in FLEETS)
    needed = math.ceil(busiest * BY_LAST_SEEN_WRITE_UNITS / PARTITION_WRITE_UNITS)
    found = []
    for index in stack.indexes:
        keys = [key["AttributeName"] for key in index["KeySchema"]]
        projection = index["Projection"]
        carried = set(keys) | set(projection.get("NonKeyAttributes", []))
        if projection["ProjectionType"] == "ALL" or carried & per_batch:
            hash_key = keys[0]
            if distinct.get(hash_key, 1) < needed:
                found.append(f"{index['table']}.{index['IndexName']} (hash key {hash_key})")
    return found
