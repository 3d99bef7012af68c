"""The template holds a million boards at fleets A and B (host_tools/models/capacity.py):
no designed limit below that, no index that a fleet's every batch writes under a hash key
of few values, and the figures the model reads are the template's own."""

import copy

import pytest

from cloud.stores.base import DEVICE_SHARDS
from host_tools.models import capacity, costs
from tests.deploy.test_deploy import TEMPLATE

STACK = capacity.Stack.from_template()
# Values each index hash key takes: fleet_shard is the device id's CRC-32 over the shards.
DISTINCT = {"fleet_shard": DEVICE_SHARDS, "device_id": 1_000_000}


@pytest.mark.parametrize("fleet", capacity.FLEETS, ids=lambda f: f.name)
def test_no_designed_limit_below_a_million_boards(fleet):
    at, which = capacity.first_to_give(STACK, fleet, "limit")
    assert at > 1_000_000, f"fleet {fleet.name}: {which} gives at {at:,} boards"


@pytest.mark.parametrize("fleet", capacity.FLEETS, ids=lambda f: f.name)
def test_every_figure_at_a_million_is_inside_its_ceiling_or_a_documented_quota(fleet):
    for load in capacity.loads(STACK, fleet, 1_000_000):
        if load.kind == "limit":
            assert load.share < 1, load
        elif load.share >= 1:
            # a quota the account raises on request: docs/deploy.md says which, and when
            text = (capacity.TEMPLATE.parents[1] / "docs" / "deploy.md").read_text()
            assert load.name.split(" (")[0] in text, f"{load.name} is not in docs/deploy.md's Growing section"


def test_no_index_of_few_hash_values_carries_what_every_batch_writes():
    assert capacity.low_cardinality_indexes_with_per_batch_attributes(STACK, DISTINCT) == []


def test_the_check_finds_the_constant_key_index_issue_24_replaced():
    old = copy.deepcopy(STACK.indexes)
    old.append(
        {
            "table": "DevicesTable",
            "IndexName": "all_devices",
            "KeySchema": [
                {"AttributeName": "kind", "KeyType": "HASH"},
                {"AttributeName": "device_id", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["last_seen", "received"]},
        }
    )
    stack = capacity.Stack(**{**STACK.__dict__, "indexes": old})
    assert capacity.low_cardinality_indexes_with_per_batch_attributes(stack, {**DISTINCT, "kind": 1}) == [
        "DevicesTable.all_devices (hash key kind)"
    ]


def test_the_old_route_throttle_would_give_first():
    """The template before issue 24 throttled every route at 100 requests/s."""
    throttled = capacity.Stack(**{**STACK.__dict__, "api_rate_limit": 100})
    at, which = capacity.first_to_give(throttled, capacity.FLEETS[1])
    assert which.startswith("API requests/s (route throttle") and 29_000 < at < 31_000


def test_the_model_reads_the_templates_figures():
    parameters = TEMPLATE["Parameters"]
    assert STACK.api_rate_limit == parameters["ApiRateLimit"]["Default"] >= 3_334, "1M boards of fleet B"
    summary = TEMPLATE["Resources"]["SummaryFunction"]["Properties"]
    assert STACK.summary_timeout_s == summary["Timeout"] and STACK.memory_mb["SummaryFunction"] == summary["MemorySize"]
    assert STACK.alert_schedule_runs == DEVICE_SHARDS


def test_alarm_metrics_are_what_the_cost_model_counts():
    metrics = 0
    for resource in TEMPLATE["Resources"].values():
        # The default stack's: an optional part (Home Assistant's two alarms) is not in the per-device figure.
        if resource["Type"] == "AWS::CloudWatch::Alarm" and "Condition" not in resource:
            listed = resource["Properties"].get("Metrics")
            metrics += sum(1 for m in listed if "MetricStat" in m) if listed else 1
    assert metrics == costs.ALARM_METRICS
