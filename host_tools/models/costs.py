"""AWS cost of one device per month, from list prices and the stack's measured work.

Every part the deployed stack bills (cloud/template.yaml): API Gateway, the ingest Lambda
(duration from its measured CPU, host_tools/models/capacity.py), the two stream functions
(summaries, value alerts) and the scheduled alert runs, DynamoDB writes (readings, the
device row and its two indexes, hour and day summaries) and reads (the registry read of
each request, the summaries' queries, the alert functions' reads, a dashboard), storage as
it grows over the first year (readings, summaries, point-in-time recovery), logs, data sent
back to the boards (TLS handshake included), and the fixed alarms and custom metrics shared
by the fleet. Free tiers are ignored: the figure is what a device costs once an account is
past them. Check the pricing pages before budgeting.
"""

from dataclasses import asdict, dataclass

from host_tools.models import capacity

# List prices, us-east-1, USD, checked 2026-12 against the AWS pricing pages named per line.
PRICES_AS_OF = "2026-12, us-east-1, list prices, free tier ignored"
HTTP_API_PER_MILLION = 1.00  # "Amazon API Gateway pricing": HTTP APIs, first 300 M requests/month
LAMBDA_PER_MILLION = 0.20  # "AWS Lambda pricing": requests
LAMBDA_ARM_GB_SECOND = 0.0000133334  # "AWS Lambda pricing": duration, Arm, first 7.5 B GB-s/month
DYNAMODB_WRITE_PER_MILLION = 0.625  # "Amazon DynamoDB pricing", on-demand: write request units (since 2024-11)
DYNAMODB_READ_PER_MILLION = 0.125  # "Amazon DynamoDB pricing", on-demand: read request units (since 2024-11)
DYNAMODB_STORAGE_GB_MONTH = 0.25  # "Amazon DynamoDB pricing": Standard table class storage, after 25 GB free
DYNAMODB_PITR_GB_MONTH = 0.20  # "Amazon DynamoDB pricing": continuous backups (PITR)
LOGS_INGEST_PER_GB = 0.50  # "Amazon CloudWatch pricing": Logs, standard ingestion
LOGS_STORE_GB_MONTH = 0.03  # "Amazon CloudWatch pricing": Logs, archived storage
ALARM_METRIC_MONTH = 0.10  # "Amazon CloudWatch pricing": standard-resolution alarm, per metric it reads
CUSTOM_METRIC_MONTH = 0.30  # "Amazon CloudWatch pricing": custom metrics, first 10,000
S3_GET_PER_THOUSAND = 0.0004  # "Amazon S3 pricing": S3 Standard, GET requests
TRANSFER_OUT_PER_GB = 0.09  # "Amazon EC2 pricing", data transfer out to the internet, first 10 TB/month
SECONDS_PER_MONTH = 30 * 86400

# What the stack does, from its design (docs/performance.md, host_tools/models/capacity.py).
READ_UNITS_PER_REQUEST = 1  # consistent GetItem of the device row (< 4 KB)
# Bytes billed per stored reading: ~110 B of attributes + 100 B overhead, twice (table + LSI).
BYTES_PER_STORED_READING = 420
# Summaries: an hour item (~700 B) each hour and a day item (~1.2 KB) each day, twice (LSI).
SUMMARY_BYTES_PER_DAY = 24 * (700 + 100) * 2 + (1200 + 100) * 2
# The summaries' strongly consistent queries: the hour's readings, the day's hour items.
HOUR_QUERY_BYTES_PER_READING = 150
DAY_QUERY_BYTES = 24 * 800
LOG_BYTES_PER_REQUEST = 700  # one JSON log line + one EMF record + Lambda's START/END/REPORT lines
LOG_BYTES_PER_STREAM_INVOCATION = 600
# Out to the board per request: the answer with its headers (~450 B) and, as every sending
# wake opens a new TLS session, the handshake's server side (certificate chain ~4.5 KB).
BYTES_OUT_PER_REQUEST = 450 + 4_600
STREAM_WINDOW_S = 5  # the alerts stream function's batching window (the summaries' is longer)
STREAM_BATCH = 100  # records an invocation takes at most (the summary function's BatchSize)
# Shared by the fleet, a month: alarm metrics and custom metrics the template and handlers
# make (tests/deploy/test_capacity.py counts them in the template), the 16 scheduled alert
# runs every 5 minutes, and one dashboard open 8 hours a day refreshing its fleet page
# (100 rows: 16 shard Queries of ~100 rows, ~140 read units) every 30 s.
ALARM_METRICS = 19
CUSTOM_METRICS = 9
SCHEDULED_RUNS = 16 * 12 * 24 * 30
DASHBOARD_PAGES = 8 * 120 * 30
DASHBOARD_PAGE_READ_UNITS = 140
DASHBOARD_PAGE_LAMBDA_S = 0.1


@dataclass(frozen=True)
class DeviceMonthCost:
    readings: float
    requests: float
    api_gateway: float
    lambda_requests: float
    lambda_compute: float
    stream_compute: float
    dynamodb_writes: float
    dynamodb_reads: float
    dynamodb_storage: float
    logs: float
    data_out: float
    shared: float  # the fleet's fixed costs (alarms, metrics, scheduled runs, a dashboard) a device
    total: float
    storage_month_12: float  # storage in the 12th month, after a year of growth
    prices_as_of: str = PRICES_AS_OF

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


@dataclass(frozen=True)
class FleetCost:
    boards: int
    per_device: float
    fleet_month: float
    breakdown: DeviceMonthCost


def _stored_gb(bytes_per_month: float, retention_days: int, month: int) -> float:
    return bytes_per_month * min(month, retention_days / 30) / 1e9


def cost_per_device_month(
    reading_interval_s: float,
    readings_per_request: float,
    retention_days: int = 400,
    boards: int = 1000,
) -> DeviceMonthCost:
    """Monthly cost of one device sending a reading every `reading_interval_s` seconds in
    requests of `readings_per_request` readings (pass the measured readings per request to
    include retries), in a fleet of `boards` (the fixed costs are shared), over the first
    year (storage grows month by month up to `retention_days`). USD; `.as_dict()` gives
    the breakdown."""
    if reading_interval_s <= 0 or readings_per_request <= 0 or boards <= 0:
        raise ValueError("reading_interval_s, readings_per_request and boards must be positive")
    stack = capacity.Stack.from_template()
    readings = SECONDS_PER_MONTH / reading_interval_s
    requests = readings / readings_per_request
    gb = 1 / 1024

    def gb_seconds(function: str, cpu_ms: float, calls: int) -> float:
        billed_ms = max(1, round(stack.duration_s(function, cpu_ms, calls) * 1000))
        return billed_ms / 1000 * stack.memory_mb[function] * gb

    ingest = requests * gb_seconds("IngestFunction", capacity.INGEST_CPU_MS, capacity.INGEST_CALLS)
    # Stream functions: the work is a request's; the invocations are shared by the requests
    # that arrive within a batching window, at least one a window.
    fleet_requests_per_s = boards * requests / SECONDS_PER_MONTH
    per_invocation = max(1.0, min(STREAM_BATCH, fleet_requests_per_s * STREAM_WINDOW_S))
    stream_invocations = 2 * requests / per_invocation
    stream = requests * (
        gb_seconds("SummaryFunction", capacity.SUMMARY_CPU_MS, capacity.SUMMARY_CALLS)
        + gb_seconds("AlertsStreamFunction", capacity.ALERT_STREAM_CPU_MS, capacity.ALERT_STREAM_CALLS)
    )
    scheduled_per_device = (
        SCHEDULED_RUNS / 16 * (capacity.ALERT_JOB_CPU_MS / 1000 * stack.memory_mb["AlertsScheduleFunction"] * gb)
    )
    summary_writes = capacity.HOUR_ITEM_WRITE_UNITS + capacity.DAY_ITEM_WRITE_UNITS
    write_units = readings * capacity.READING_WRITE_UNITS + requests * (
        capacity.DEVICE_ROW_WRITE_UNITS
        + capacity.BY_ID_WRITE_UNITS
        + capacity.BY_LAST_SEEN_WRITE_UNITS
        + summary_writes
    )
    readings_per_hour = 3600 / reading_interval_s
    summary_reads = max(1, -(-readings_per_hour * HOUR_QUERY_BYTES_PER_READING // 4096)) + -(-DAY_QUERY_BYTES // 4096)
    alert_stream_reads = 0.5  # the device's states, eventually consistent
    scheduled_reads = (
        SCHEDULED_RUNS / 16 * (capacity.DEVICE_ROW_BYTES / 4096 * 0.5 + 16 * capacity.STATE_BYTES / 4096 * 0.5)
    )
    read_units = requests * (READ_UNITS_PER_REQUEST + summary_reads + alert_stream_reads) + scheduled_reads
    bytes_per_month = readings * BYTES_PER_STORED_READING + SUMMARY_BYTES_PER_DAY * 30
    year_gb = sum(_stored_gb(bytes_per_month, retention_days, month) for month in range(1, 13)) / 12
    storage_price = DYNAMODB_STORAGE_GB_MONTH + DYNAMODB_PITR_GB_MONTH  # PITR is billed on the size on top
    shared_month = (
        ALARM_METRICS * ALARM_METRIC_MONTH
        + CUSTOM_METRICS * CUSTOM_METRIC_MONTH
        + SCHEDULED_RUNS
        * (LAMBDA_PER_MILLION / 1e6 + 0.1 * stack.memory_mb["AlertsScheduleFunction"] * gb * LAMBDA_ARM_GB_SECOND)
        + DASHBOARD_PAGES
        * (
            (HTTP_API_PER_MILLION + LAMBDA_PER_MILLION) / 1e6
            + DASHBOARD_PAGE_LAMBDA_S * stack.memory_mb["ReadFunction"] * gb * LAMBDA_ARM_GB_SECOND
            + DASHBOARD_PAGE_READ_UNITS * DYNAMODB_READ_PER_MILLION / 1e6
        )
    )
    parts = {
        "api_gateway": requests / 1e6 * HTTP_API_PER_MILLION,
        "lambda_requests": requests / 1e6 * LAMBDA_PER_MILLION,
        "lambda_compute": ingest * LAMBDA_ARM_GB_SECOND,
        "stream_compute": (stream + scheduled_per_device) * LAMBDA_ARM_GB_SECOND
        + stream_invocations / 1e6 * LAMBDA_PER_MILLION,
        "dynamodb_writes": write_units / 1e6 * DYNAMODB_WRITE_PER_MILLION,
        "dynamodb_reads": read_units / 1e6 * DYNAMODB_READ_PER_MILLION,
        "dynamodb_storage": year_gb * storage_price,
        "logs": (requests * LOG_BYTES_PER_REQUEST + stream_invocations * LOG_BYTES_PER_STREAM_INVOCATION)
        / 1e9
        * (LOGS_INGEST_PER_GB + LOGS_STORE_GB_MONTH),
        "data_out": requests * BYTES_OUT_PER_REQUEST / 1e9 * TRANSFER_OUT_PER_GB,
        "shared": shared_month / boards,
    }
    return DeviceMonthCost(
        readings=readings,
        requests=requests,
        total=sum(parts.values()),
        storage_month_12=_stored_gb(bytes_per_month, retention_days, 12) * storage_price,
        **parts,  # type: ignore[arg-type]  # mypy cannot tell these keys are the float fields
    )


def fleet_cost(reading_interval_s: float, readings_per_request: float, boards: int) -> FleetCost:
    month = cost_per_device_month(reading_interval_s, readings_per_request, boards=boards)
    return FleetCost(boards, month.total, month.total * boards, month)


def ota_cost_per_board(requests: int, bytes_out: int, lambda_ms: float = 30.0, memory_mb: int = 128) -> float:
    """USD for one board to fetch a release through the stack (docs/ota.md): `requests`
    GET /ota/... through API Gateway to the ReleasesFunction, `bytes_out` answered to the
    board. Counts one S3 GET per request, an upper bound: a warm function reads each file
    of a release from S3 once (cloud/releases.py)."""
    gb_seconds = requests * max(1.0, round(lambda_ms)) / 1000 * memory_mb / 1024
    return (
        requests / 1e6 * (HTTP_API_PER_MILLION + LAMBDA_PER_MILLION)
        + gb_seconds * LAMBDA_ARM_GB_SECOND
        + requests / 1000 * S3_GET_PER_THOUSAND
        + bytes_out / 1e9 * TRANSFER_OUT_PER_GB
    )
