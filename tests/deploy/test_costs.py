import pytest

from host_tools.models import costs


def test_one_reading_a_minute_in_batches_of_20_by_hand():
    # 30 days x 1440 readings = 43,200 readings in 2,160 requests.
    month = costs.cost_per_device_month(60, 20, retention_days=400, boards=1000)
    # 3 write units a reading; a request: the device row, updated inside the readings'
    # transaction, and its two indexes (2 + 1 + 2), its hour and day summaries (2 + 4).
    assert month.dynamodb_writes == pytest.approx((43200 * 3 + 2160 * (5 + 6)) * 0.625 / 1e6)
    assert month.api_gateway == pytest.approx(2160 * 1.00 / 1e6)
    # ingest: 10 ms of CPU at 256 MB (a 256/1769 share of a vCPU) + 2 calls of 7 ms = 83 ms billed
    assert month.lambda_compute == pytest.approx(2160 * 0.083 * 0.25 * 0.0000133334)
    # storage grows: month m holds m months of readings; the first year's mean is 6.5 months
    monthly_bytes = 43200 * 420 + costs.SUMMARY_BYTES_PER_DAY * 30
    assert month.dynamodb_storage == pytest.approx(monthly_bytes * 6.5 / 1e9 * 0.45)
    assert month.storage_month_12 == pytest.approx(monthly_bytes * 12 / 1e9 * 0.45)
    parts = ("api_gateway", "lambda_requests", "lambda_compute", "stream_compute", "dynamodb_writes")
    parts += ("dynamodb_reads", "dynamodb_storage", "logs", "data_out", "shared")
    assert month.total == pytest.approx(sum(getattr(month, p) for p in parts))
    assert "us-east-1" in month.prices_as_of


def test_the_fleet_shares_the_fixed_costs():
    small, large = costs.cost_per_device_month(300, 1, boards=10), costs.cost_per_device_month(300, 1, boards=100_000)
    assert small.shared == pytest.approx(large.shared * 10_000)
    assert small.total > large.total


def test_storage_stops_growing_at_the_retention():
    kept_90 = costs.cost_per_device_month(60, 20, retention_days=90)
    monthly_bytes = 43200 * 420 + costs.SUMMARY_BYTES_PER_DAY * 30
    assert kept_90.storage_month_12 == pytest.approx(monthly_bytes * 3 / 1e9 * 0.45), "3 months kept, not 12"
    assert kept_90.dynamodb_storage < costs.cost_per_device_month(60, 20).dynamodb_storage


def test_batching_cuts_the_per_request_parts():
    single = costs.cost_per_device_month(60, 1)
    batched = costs.cost_per_device_month(60, 20)
    assert single.api_gateway == pytest.approx(20 * batched.api_gateway)
    assert single.dynamodb_storage == pytest.approx(batched.dynamodb_storage)


@pytest.mark.parametrize("interval, per_request", [(0, 20), (60, 0), (-1, 1)])
def test_non_positive_traffic_is_refused(interval, per_request):
    with pytest.raises(ValueError, match="must be positive"):
        costs.cost_per_device_month(interval, per_request)


def test_an_ota_update_costs_its_requests_and_its_bytes():
    from host_tools import ota

    manifest = {"files": [{"size": 8192}, {"size": 8193}, {"size": 10}]}
    assert ota.requests_per_board(manifest) == 1 + 1 + 2 + 1
    one = costs.ota_cost_per_board(15, 23_000)
    # 15 × ($1.00 + $0.20) per million, 15 × 30 ms × 1/8 GB of Arm, 15 S3 GETs, 23 KB out
    expected = 15e-6 * 1.20 + 15 * 0.03 * 0.125 * 0.0000133334 + 15 * 0.0000004 + 23_000 / 1e9 * 0.09
    assert one == pytest.approx(expected)
    assert costs.ota_cost_per_board(30, 46_000) == pytest.approx(2 * one)
