"""Alert rules: what they say, and their validation (docs/alerts.md).

A rule is stored as a plain JSON object. Every field is checked here, once, and a bad
one raises `InvalidRule` naming it, so the CLI can point at the flag and a store never
holds a rule the evaluator cannot run. A webhook's URL and signing secret are not part
of the rule: they are kept apart (`RuleSecret`) and never leave the store by a read.
"""

import ipaddress
import math
import re
import secrets
import urllib.parse
from dataclasses import asdict, dataclass
from typing import Any

from cloud.protocol import DEVICE_ID, H_RANGE, T_RANGE

ALL_DEVICES = "*"
VALUE_KINDS = ("above", "below")
KINDS = (*VALUE_KINDS, "stale", "rising")
VALUE_METRICS = {"t": T_RANGE, "h": H_RANGE}
# Counters a board reports (status.sensor_errors, status.dropped) or the server derives
# (gaps: seqs missing from the stored span, the read API's health.missing).
COUNTERS = ("sensor_errors", "dropped", "gaps")
DEFAULT_HYSTERESIS = {"t": 1.0, "h": 3.0}  # °C; %RH (a DHT22 is good to about ±2-5 %RH)
DEFAULT_RISING_WINDOW_S = 3600
MAX_DURATION_S = 30 * 86400
HISTORY_S = 30 * 86400  # how long alert history is kept
MIN_STALE_S = 60
RULE_ID = re.compile(r"[a-z0-9]{8}")
MAX_NAME = 80
MAX_URL = 2048
HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class InvalidRule(ValueError):
    """A rule field that cannot be accepted; `field` is the rule key (and CLI flag) at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Rule:
    rule_id: str
    device: str  # a device id, or "*" for every device
    kind: str  # above | below | stale | rising
    metric: str | None  # t | h for above/below; a counter for rising; None for stale
    threshold: float | None  # the value for above/below; the minimum rise for rising
    for_s: int  # above/below: how long the condition must hold; stale: silence; rising: window
    hysteresis: float  # above/below: how far back past the threshold before it clears
    webhook: bool
    email: bool
    name: str
    created_at: int

    def applies_to(self, device_id: str) -> bool:
        return self.device in (ALL_DEVICES, device_id)

    def describe(self) -> str:
        """One line for a person: 'greenhouse-01: t above 30 for 10m'."""
        return f"{'any device' if self.device == ALL_DEVICES else self.device}: {self.condition()}"

    def condition(self) -> str:
        if self.kind in VALUE_KINDS:
            what = f"{self.metric} {self.kind} {_number(self.threshold)}"
            if self.for_s:
                what += f" for {format_duration(self.for_s)}"
        elif self.kind == "stale":
            what = f"no delivery for {format_duration(self.for_s)}"
        else:
            what = f"{self.metric} rising by {_number(self.threshold)} within {format_duration(self.for_s)}"
        return what

    def as_item(self) -> dict[str, Any]:
        return asdict(self)

    def public(self) -> dict[str, Any]:
        """As a read route shows it: the rule, whether it has a webhook, never where it points."""
        return {**asdict(self), "description": self.describe()}


@dataclass(frozen=True)
class RuleSecret:
    webhook_url: str
    webhook_secret: str  # 64 hex characters: the HMAC-SHA256 key a receiver verifies with


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def format_duration(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= UNITS[unit] and seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"


def parse_duration(field: str, text: Any) -> int:
    """'10m', '90s', '2h', '1d' or a bare number of seconds -> seconds."""
    if isinstance(text, bool):
        raise InvalidRule(field, "must be a duration like 10m, 2h or 1d")
    if isinstance(text, int):
        seconds = text
    else:
        match = re.fullmatch(r"\s*([0-9]{1,7})\s*([smhd]?)\s*", str(text))
        if not match:
            raise InvalidRule(field, f"must be a duration like 90s, 10m, 2h or 1d, got {text!r}")
        seconds = int(match.group(1)) * UNITS[match.group(2) or "s"]
    if not 0 <= seconds <= MAX_DURATION_S:
        raise InvalidRule(field, f"must be from 0 to {format_duration(MAX_DURATION_S)}, got {seconds}s")
    return seconds


def _number_field(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRule(field, "must be a number")
    try:
        number = float(value)
    except ValueError:
        raise InvalidRule(field, f"must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidRule(field, "must be a finite number")
    return number


def check_webhook_url(url: Any, field: str = "webhook") -> str:
    """https://, or plain http:// to a loopback address (a receiver on this machine)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise InvalidRule(field, f"must be a URL of at most {MAX_URL} characters")
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise InvalidRule(field, "must be an https:// URL (e.g. https://hooks.example.com/...)")
    if not _is_host(host):
        raise InvalidRule(field, "must name a real host, e.g. https://hooks.example.com/... (not a placeholder)")
    if parts.scheme == "http" and not _is_loopback(host):
        raise InvalidRule(field, "must use https:// (plain http:// only to a loopback address such as 127.0.0.1)")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise InvalidRule(field, "has a port that is not a number from 1 to 65535") from None
    return url


def _is_host(host: str) -> bool:
    """An IP address, or a DNS name whose labels are letters, digits and inner hyphens."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(HOST_LABEL.fullmatch(label) for label in labels)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_rule_id() -> str:
    return secrets.token_hex(4)


def new_webhook_secret() -> str:
    return secrets.token_hex(32)


def parse_rule(spec: dict[str, Any], rule_id: str | None = None, created_at: int = 0) -> Rule:
    """A rule from the fields a user gives (the CLI's flags, without the dashes):

    device (id or "*"), and one of: metric + above|below [+ for, hysteresis];
    stale (a duration); metric (a counter) + rising [+ for]. Plus webhook (bool: a
    webhook URL is given), email (bool), name.
    """
    known = {"device", "metric", "above", "below", "for", "hysteresis", "stale", "rising", "webhook", "email", "name"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise InvalidRule(unknown[0], f"is not a rule field (known: {', '.join(sorted(known))})")
    device = spec.get("device")
    if not isinstance(device, str) or not (device == ALL_DEVICES or DEVICE_ID.fullmatch(device)):
        raise InvalidRule("device", 'must be a device id (1-64 of A-Z a-z 0-9 _ -) or "*" for every device')
    chosen = [kind for kind in ("above", "below", "stale", "rising") if spec.get(kind) not in (None, False)]
    if len(chosen) != 1:
        raise InvalidRule(
            "above" if not chosen else chosen[1],
            "give exactly one condition: above or below (with metric t or h), stale, or rising (with a counter metric)",
        )
    kind = chosen[0]
    metric = spec.get("metric")
    threshold: float | None = None
    hysteresis = 0.0
    if kind in VALUE_KINDS:
        if metric not in VALUE_METRICS:
            raise InvalidRule("metric", f"must be t (°C) or h (%RH) for {kind}, got {metric!r}")
        low, high = VALUE_METRICS[metric]
        threshold = _number_field(kind, spec[kind])
        if not low <= threshold <= high:
            raise InvalidRule(kind, f"must be within the sensor's range {low:g} to {high:g} for {metric}")
        for_s = parse_duration("for", spec.get("for", 0))
        raw = spec.get("hysteresis")
        hysteresis = DEFAULT_HYSTERESIS[metric] if raw is None else _number_field("hysteresis", raw)
        if not 0 < hysteresis <= high - low:
            raise InvalidRule("hysteresis", f"must be above 0 and at most {high - low:g}")
    elif kind == "stale":
        if metric is not None:
            raise InvalidRule("metric", "does not apply to a stale rule")
        if spec.get("for") is not None:
            raise InvalidRule("for", "does not apply to a stale rule: stale takes the silence itself, e.g. stale=30m")
        for_s = parse_duration("stale", spec["stale"])
        if for_s < MIN_STALE_S:
            raise InvalidRule("stale", f"must be at least {format_duration(MIN_STALE_S)}")
    else:
        if metric not in COUNTERS:
            raise InvalidRule("metric", f"must be one of {', '.join(COUNTERS)} for rising, got {metric!r}")
        rising = spec["rising"]
        threshold = 1.0 if rising is True else _number_field("rising", rising)
        if threshold < 1 or threshold != int(threshold):
            raise InvalidRule("rising", "must be a whole number of at least 1 (the rise that opens the alert)")
        for_s = parse_duration("for", spec.get("for") or DEFAULT_RISING_WINDOW_S)
        if for_s < MIN_STALE_S:
            raise InvalidRule("for", f"must be at least {format_duration(MIN_STALE_S)} for a rising rule")
    if kind not in VALUE_KINDS and spec.get("hysteresis") is not None:
        raise InvalidRule("hysteresis", "applies to above/below rules only")
    name = spec.get("name") or ""
    if not isinstance(name, str) or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise InvalidRule("name", f"must be text of at most {MAX_NAME} printable characters")
    for flag in ("webhook", "email"):
        if not isinstance(spec.get(flag, False), bool):
            raise InvalidRule(flag, "must be true or false")
    if not spec.get("webhook") and not spec.get("email"):
        raise InvalidRule("webhook", "a rule needs somewhere to notify: a webhook URL, e-mail, or both")
    rule_id = rule_id or new_rule_id()
    if not RULE_ID.fullmatch(rule_id):
        raise InvalidRule("rule_id", "must be 8 characters of a-z 0-9")
    return Rule(
        rule_id=rule_id,
        device=device,
        kind=kind,
        metric=metric,
        threshold=threshold,
        for_s=for_s,
        hysteresis=hysteresis,
        webhook=bool(spec.get("webhook")),
        email=bool(spec.get("email")),
        name=name,
        created_at=created_at,
    )


def rule_from_item(item: dict[str, Any]) -> Rule:
    """A stored rule (already validated when it was added)."""
    return Rule(**{key: item[key] for key in Rule.__dataclass_fields__})


class NoSuchRule(LookupError):
    pass
