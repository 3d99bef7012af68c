"""Alert rules: validation names the field at fault; durations; webhook URLs."""

import pytest

from cloud.alerts.rules import InvalidRule, check_webhook_url, format_duration, parse_duration, parse_rule

VALUE = {"device": "greenhouse-01", "metric": "t", "above": 30, "for": "10m", "webhook": True}


def test_a_value_rule_with_defaults():
    rule = parse_rule(VALUE)
    assert (rule.kind, rule.metric, rule.threshold, rule.for_s, rule.hysteresis) == ("above", "t", 30.0, 600, 1.0)
    assert rule.describe() == "greenhouse-01: t above 30 for 10m"
    assert parse_rule({**VALUE, "metric": "h", "above": 80}).hysteresis == 3.0
    assert rule.applies_to("greenhouse-01") and not rule.applies_to("shed-02")
    assert parse_rule({**VALUE, "device": "*"}).applies_to("shed-02")


def test_stale_and_rising_rules():
    stale = parse_rule({"device": "*", "stale": "30m", "email": True})
    assert (stale.kind, stale.for_s, stale.metric) == ("stale", 1800, None)
    assert stale.describe() == "any device: no delivery for 30m"
    rising = parse_rule({"device": "*", "metric": "sensor_errors", "rising": True, "webhook": True})
    assert (rising.threshold, rising.for_s) == (1.0, 3600)
    assert parse_rule({"device": "*", "metric": "gaps", "rising": "5", "for": "2h", "email": True}).threshold == 5


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"device": "bad id!"}, "device", "device id"),
        ({"metric": "x"}, "metric", "t (°C) or h"),
        ({"above": "hot"}, "above", "number"),
        ({"above": 81}, "above", "-40 to 80"),
        ({"above": float("nan")}, "above", "finite"),
        ({"below": 5}, "below", "exactly one condition"),
        ({"for": "10 minutes"}, "for", "duration like"),
        ({"for": "31d"}, "for", "from 0 to 30d"),
        ({"hysteresis": 0}, "hysteresis", "above 0"),
        ({"webhook": False}, "webhook", "somewhere to notify"),
        ({"name": "x" * 81}, "name", "at most 80"),
        ({"colour": "red"}, "colour", "not a rule field"),
    ],
)
def test_bad_fields_are_named(change, field, words):
    with pytest.raises(InvalidRule) as caught:
        parse_rule({**VALUE, **change})
    assert caught.value.field == field and words in caught.value.message


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"device": "*", "stale": "30s", "email": True}, "stale"),
        ({"device": "*", "stale": "30m", "for": "5m", "email": True}, "for"),
        ({"device": "*", "stale": "30m", "metric": "t", "email": True}, "metric"),
        ({"device": "*", "metric": "t", "rising": True, "email": True}, "metric"),
        ({"device": "*", "metric": "dropped", "rising": 0.5, "email": True}, "rising"),
        ({"device": "*", "metric": "dropped", "rising": True, "hysteresis": 1, "email": True}, "hysteresis"),
        ({"device": "*", "email": True}, "above"),
    ],
)
def test_stale_and_rising_fields_are_checked(spec, field):
    with pytest.raises(InvalidRule) as caught:
        parse_rule(spec)
    assert caught.value.field == field


def test_durations():
    assert [parse_duration("for", text) for text in ("90", "90s", "10m", "2h", "1d", 45)] == [
        90,
        90,
        600,
        7200,
        86400,
        45,
    ]
    assert [format_duration(s) for s in (45, 600, 7200, 86400, 90)] == ["45s", "10m", "2h", "1d", "90s"]
    for bad in ("-1m", "1w", "", True):
        with pytest.raises(InvalidRule):
            parse_duration("for", bad)


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/x", "http://127.0.0.1:8000/hook", "http://localhost/x", "http://[::1]:9/x"],
)
def test_webhook_urls_accepted(url):
    assert check_webhook_url(url) == url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://hooks.example.com/x", "https://"),
        ("http://10.0.0.5/x", "loopback"),
        ("ftp://example.com/x", "https://"),
        ("https:///x", "https://"),
        ("https://example.com:99999/x", "port"),
        ("https://example.com/" + "x" * 2100, "2048"),
    ],
)
def test_webhook_urls_refused(url, words):
    with pytest.raises(InvalidRule) as caught:
        check_webhook_url(url)
    assert caught.value.field == "webhook" and words in caught.value.message
    assert url not in str(caught.value), "a webhook URL is a secret: never echoed in an error"
