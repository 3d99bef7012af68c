"""Every log line a Lambda invocation writes carries its request id; a crash is a logged JSON 500."""

import io
import json
from types import SimpleNamespace

from cloud import observability
from cloud.observability import lambda_handler, log, metrics


def _lines(call):
    out = io.StringIO()
    observability.set_output(out)
    try:
        result = call()
    finally:
        observability.set_output(None)
    return result, [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_line_of_an_invocation_names_its_request():
    @lambda_handler
    def handler(event, context):
        log("INFO", "one")
        metrics("POST /data", Accepted=1)
        log("WARNING", "two", request_id_like="not this")
        return {"statusCode": 200, "headers": {}, "body": "{}"}

    result, lines = _lines(lambda: handler({}, SimpleNamespace(aws_request_id="req-42")))
    assert result["statusCode"] == 200 and len(lines) == 3
    assert all(line["request_id"] == "req-42" for line in lines)
    _, after = _lines(lambda: log("INFO", "outside"))
    assert "request_id" not in after[0]


def test_an_exception_is_a_json_500_and_an_error_line_with_the_request_id():
    @lambda_handler
    def handler(event, context):
        raise KeyError("secret-looking detail")

    event = {"requestContext": {"routeKey": "GET /devices"}}
    result, lines = _lines(lambda: handler(event, SimpleNamespace(aws_request_id="req-7")))
    body = json.loads(result["body"])
    assert result["statusCode"] == 500 and body["error"] == "internal_error" and "req-7" in body["message"]
    assert "secret-looking" not in result["body"]
    (line,) = lines
    assert line["level"] == "ERROR" and line["request_id"] == "req-7" and line["route"] == "GET /devices"
