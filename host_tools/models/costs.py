"""AWS cost of one device per month, from list prices.

Prices: us-east-1 public list prices as of 2025-06 (AWS pricing pages for API Gateway,
Lambda, DynamoDB, CloudWatch). Free tiers are ignored: the figure is what a device
costs once an account is past them. Check the pricing pages before budgeting.
"""

from dataclasses import asdict, dataclass

# List prices as of 2025-06, us-east-1, in USD, from the AWS pricing pages named per line.
PRICES_AS_OF = "2025-06, us-east-1, list prices, free tier ignored"
HTTP_API_PER_MILLION = 1.00  # "Amazon API Gateway pricing": HTTP APIs, first 300 M requests/month
LAMBDA_PER_MILLION = 0.20  # "AWS Lambda pricing": requests
LAMBDA_ARM_GB_SECOND = 0.0000133334  # "AWS Lambda pricing": duration, Arm, first 7.5 B GB-s/month
DYNAMODB_WRITE_PER_MILLION = 0.625  # "Amazon DynamoDB pricing", on-demand: write request units (since 2024-11)
DYNAMODB_READ_PER_MILLION = 0.125  # "Amazon DynamoDB pricing", on-demand: read request units (since 2024-11)
DYNAMODB_STORAGE_GB_MONTH = 0.25  # "Amazon DynamoDB pricing": Standard table class storage, after 25 GB free
DYNAMODB_PITR_GB_MONTH = 0.20  # "Amazon DynamoDB pricing": continuous backups (PITR)
LOGS_INGEST_PER_GB = 0.50  # "Amazon CloudWatch pricing": Logs, standard ingestion
LOGS_STORE_GB_MONTH = 0.03  # "Amazon CloudWatch pricing": Logs, archived storage
S3_GET_PER_THOUSAND = 0.0004  # "Amazon S3 pricing": S3 Standard, GET requests
TRANSFER_OUT_PER_GB = 0.09  # "Amazon EC2 pricing", data transfer out to the internet, first 10 TB/month
SECONDS_PER_MONTH = 30 * 86400

# What one request costs the backend, from the handler's design (docs/performance.md):
# TransactWriteItems: 2 WRU per item up to 1 KB, plus 1 WRU for the by_time LSI entry.
WRITE_UNITS_PER_READING = 3
# UpdateItem of the device row (last_seen, status, health), plus 1 WRU for its all_devices GSI copy.
WRITE_UNITS_PER_REQUEST = 2
READ_UNITS_PER_REQUEST = 1  # consistent GetItem of the device row (< 4 KB)
# DynamoDB bills ~110 B of attributes + 100 B overhead per item, twice (table + LSI, ALL projection).
BYTES_PER_STORED_READING = 420
LOG_BYTES_PER_REQUEST = 700  # one JSON log line + one EMF record + Lambda's START/END/REPORT lines


@dataclass(frozen=True)
class DeviceMonthCost:
    readings: float
    requests: float
    api_gateway: float
    lambda_requests: float
    lambda_compute: float
    dynamodb_writes: float
    dynamodb_reads: float
    dynamodb_storage: float
    logs: float
    total: float
    prices_as_of: str = PRICES_AS_OF

    def as_dict(self) -> dict[str, float | str]:
        return asdict(self)


def cost_per_device_month(
    reading_interval_s: float,
    readings_per_request: float,
    lambda_ms: float = 20.0,
    memory_mb: int = 256,
    retention_days: int = 400,
) -> DeviceMonthCost:
    """Monthly cost of one device sending a reading every `reading_interval_s` seconds in
    requests of `readings_per_request` readings (the batch size; pass the measured readings
    per request to include retries). `lambda_ms` is the billed duration of one request,
    `retention_days` how long readings are kept (steady-state storage). Returns the
    breakdown in USD per month; `.as_dict()` gives it as a dict."""
    if reading_interval_s <= 0 or readings_per_request <= 0:
        raise ValueError("reading_interval_s and readings_per_request must be positive")
    readings = SECONDS_PER_MONTH / reading_interval_s
    requests = readings / readings_per_request
    millions = requests / 1e6
    billed_ms = max(1.0, round(lambda_ms))
    gb_seconds = requests * billed_ms / 1000 * memory_mb / 1024
    # Steady state of a long-running device: retention_days of readings kept.
    stored_gb = readings / 30 * retention_days * BYTES_PER_STORED_READING / 1e9
    parts = {
        "api_gateway": millions * HTTP_API_PER_MILLION,
        "lambda_requests": millions * LAMBDA_PER_MILLION,
        "lambda_compute": gb_seconds * LAMBDA_ARM_GB_SECOND,
        "dynamodb_writes": (readings * WRITE_UNITS_PER_READING + requests * WRITE_UNITS_PER_REQUEST)
        / 1e6
        * DYNAMODB_WRITE_PER_MILLION,
        "dynamodb_reads": requests * READ_UNITS_PER_REQUEST / 1e6 * DYNAMODB_READ_PER_MILLION,
        # PITR is billed on the table size on top of storage.
        "dynamodb_storage": stored_gb * (DYNAMODB_STORAGE_GB_MONTH + DYNAMODB_PITR_GB_MONTH),
        "logs": requests * LOG_BYTES_PER_REQUEST / 1e9 * (LOGS_INGEST_PER_GB + LOGS_STORE_GB_MONTH),
    }
    # mypy cannot tell that parts' keys are all float fields (prices_as_of, the one str, is not among them)
    return DeviceMonthCost(readings=readings, requests=requests, total=sum(parts.values()), **parts)  # type: ignore[arg-type]


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
