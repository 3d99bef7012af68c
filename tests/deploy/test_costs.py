import pytest

from host_tools.models import costs


def test_one_reading_a_minute_in_batches_of_20_by_hand():
    # 30 days x 1440 readings = 43,200 readings in 2,160 requests.
    month = costs.cost_per_device_month(60, 20, lambda_ms=20, memory_mb=256, retention_days=400)
    expected = {
        "api_gateway": 2160 * 1.00 / 1e6,
        "lambda_requests": 2160 * 0.20 / 1e6,
        "lambda_compute": 2160 * 0.020 * 0.25 * 0.0000133334,  # 10.8 GB-s on arm64
        "dynamodb_writes": (43200 * 3 + 2160 * 2) * 0.625 / 1e6,  # 133,920 WRU
        "dynamodb_reads": 2160 * 0.125 / 1e6,
        "dynamodb_storage": 1440 * 400 * 420 / 1e9 * (0.25 + 0.20),  # 0.242 GB kept, PITR on top
        "logs": 2160 * 700 / 1e9 * (0.50 + 0.03),
    }
    breakdown = month.as_dict()
    for part, usd in expected.items():
        assert breakdown[part] == pytest.approx(usd), part
    assert month.total == pytest.approx(sum(expected.values()))
    assert month.total == pytest.approx(0.1964, abs=0.0005)
    assert "us-east-1" in month.prices_as_of


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
