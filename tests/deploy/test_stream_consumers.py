"""The readings stream's consumers lose nothing silently: a failing device is reported as a
batch item failure (Lambda retries from it), what still fails goes to a queue, and alarms
watch errors, the queue and how far behind each consumer is."""

import pytest

from cloud import summaries
from cloud.alerts import stream
from tests.deploy.test_deploy import TEMPLATE, function_statements

RESOURCES = TEMPLATE["Resources"]
STREAM_FUNCTIONS = [
    name
    for name, resource in RESOURCES.items()
    if resource["Type"] == "AWS::Serverless::Function"
    and any(e["Type"] == "DynamoDB" for e in resource["Properties"].get("Events", {}).values())
]


def alarms_on(metric, dimension_value):
    return [
        r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("MetricName") == metric
        and dimension_value in [d["Value"] for d in r["Properties"].get("Dimensions", [])]
    ]


def test_both_consumers_are_found():
    assert sorted(STREAM_FUNCTIONS) == ["AlertsStreamFunction", "HomeAssistantFunction", "SummaryFunction"]


@pytest.mark.parametrize("function", STREAM_FUNCTIONS)
def test_failed_batches_are_reported_queued_and_alarmed(function):
    properties = RESOURCES[function]["Properties"]
    (event,) = [e["Properties"] for e in properties["Events"].values()]
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"GetAtt": "StreamFailuresQueue.Arn"},
    }
    assert event["MaximumRetryAttempts"] >= 1 and event["BisectBatchOnFunctionError"] is True
    sends = [s for s in function_statements(function) if s["Action"] == ["sqs:SendMessage"]]
    assert [s["Resource"] for s in sends] == [{"GetAtt": "StreamFailuresQueue.Arn"}]
    assert alarms_on("Errors", {"Ref": function}), "an error alarm"
    (age,) = alarms_on("IteratorAge", {"Ref": function})
    assert age["Statistic"] == "Maximum" and age["Threshold"] <= 600_000
    assert alarms_on("ApproximateNumberOfMessagesVisible", {"GetAtt": "StreamFailuresQueue.QueueName"})


def test_the_summary_batch_fits_its_timeout_by_the_measured_cost():
    """bench/fleet_jobs.py measured a 100-device batch (the worst: one record a device);
    host_tools/models/capacity.py turns it into a Lambda duration at the function's memory."""
    from host_tools.models import capacity

    stack = capacity.Stack.from_template()
    assert stack.summary_batch_s() * 3 <= stack.summary_timeout_s


class FailingFor:
    """A store whose summaries fail for one device (a throttled partition, say)."""

    def __init__(self, device_id):
        self.device_id = device_id
        self.done = []

    def summarise(self, device_id, timestamps, expires_at):
        if device_id == self.device_id:
            raise RuntimeError("throttled")
        self.done.append(device_id)


def record(device_id, sequence, ts=1_790_000_000):
    image = {"device_id": {"S": device_id}, "seq": {"N": "1"}, "ts": {"N": str(ts)}, "t": {"N": "20"}}
    image["h"] = {"N": "50"}
    return {"eventName": "INSERT", "dynamodb": {"SequenceNumber": sequence, "NewImage": image}}


def test_the_summary_function_reports_the_failing_devices_first_record():
    store = FailingFor("b")
    event = {"Records": [record("a", "100"), record("b", "101"), record("c", "102"), record("b", "103")]}
    assert summaries.handle(event, store) == {"batchItemFailures": [{"itemIdentifier": "101"}]}
    assert store.done == ["a", "c"], "the other devices are done (a retry redoes c: summaries are recomputed)"
    assert summaries.handle({"Records": [record("a", "99")]}, store) == {"batchItemFailures": []}


def test_sequence_numbers_compare_as_numbers():
    store = FailingFor("x")
    store.summarise = lambda device_id, *_: (_ for _ in ()).throw(RuntimeError("down"))
    event = {"Records": [record("z", "99"), record("y", "100")]}
    assert summaries.handle(event, store) == {"batchItemFailures": [{"itemIdentifier": "99"}]}


def test_the_alerts_stream_function_reports_the_failing_device(monkeypatch):
    evaluated = []

    class Evaluator:
        def rules(self):
            return ["one read of the rules a batch"]

        def on_stored(self, device_id, readings, now, rules):
            assert rules == ["one read of the rules a batch"]
            if device_id == "b":
                raise RuntimeError("throttled")
            evaluated.append(device_id)
            return 1

    monkeypatch.setattr(stream, "lambda_evaluator", Evaluator)
    event = {"Records": [record("a", "7"), record("b", "8"), record("c", "9")]}
    assert stream.handler(event, None) == {"transitions": 1, "batchItemFailures": [{"itemIdentifier": "8"}]}
    assert evaluated == ["a"]
