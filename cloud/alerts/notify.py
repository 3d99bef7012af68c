"""Notifications: a signed webhook POST and an e-mail through an SNS topic.

Webhook: POST of a small JSON document (`payload`) with
  X-Dhtlink-Timestamp: Unix seconds of the attempt
  X-Dhtlink-Signature: v1=<hex HMAC-SHA256(key, timestamp + "." + body)>
where key is the rule's webhook secret as ASCII text (what `dhtlink alerts add` printed).
A receiver recomputes it over the raw body, compares in constant time and refuses old
timestamps (`verify_signature`). 2xx is delivered; 429, 5xx, a timeout or a connection
error are retried with exponential backoff; any other answer is final.

The URL and the secret are never logged and never put in an error: a delivery's record
says the status code or the kind of failure, not where it went.
"""

import hashlib
import hmac
import http.client
import json
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from cloud.alerts.rules import Rule
from cloud.observability import log

SIGNATURE_HEADER = "X-Dhtlink-Signature"
TIMESTAMP_HEADER = "X-Dhtlink-Timestamp"
USER_AGENT = "dhtlink-alerts/1"
MAX_SKEW_S = 300


def payload(event: dict[str, Any]) -> bytes:
    """The webhook body: the event, plus `text` (Slack, Mattermost) and `content` (Discord)."""
    document = {
        "type": f"alert.{event['type']}",
        **{key: event[key] for key in ("event_id", "rule_id", "name", "rule", "device_id", "at", "value")},
        "text": event["text"],
        "content": event["text"],
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
    """What a receiver does (and the tests' receiver does): constant-time check, fresh timestamp."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not timestamp.isdigit() or abs((time.time() if now is None else now) - int(timestamp)) > MAX_SKEW_S:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body).encode(), given.encode())


def _failure(error: BaseException) -> str:
    """A failure described without the URL: class and errno text only."""
    if isinstance(error, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(error, ssl.SSLError):
        return "tls error"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return type(error).__name__


class Notifier:
    """Sends one event as its rule asks; records how the delivery went on the rule and event."""

    def __init__(
        self,
        store: Any,
        topic_arn: str | None = None,
        sns: Any = None,
        attempts: int = 3,
        backoff_s: float = 1.0,
        timeout_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.topic_arn = topic_arn
        self._sns = sns
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.sleep = sleep

    def deliver(self, rule: Rule, event: dict[str, Any]) -> dict[str, Any]:
        delivery: dict[str, Any] = {"at": int(time.time()), "event_id": event["event_id"]}
        if rule.webhook:
            secret = self.store.get_alert_secret(rule.rule_id)
            delivery["webhook"] = self.post(secret, event) if secret else {"ok": False, "error": "no webhook stored"}
        if rule.email:
            delivery["email"] = self.email(rule, event)
        delivery["ok"] = all(delivery[c]["ok"] for c in ("webhook", "email") if c in delivery)
        log(
            "INFO" if delivery["ok"] else "WARNING",
            "alert delivery",
            rule_id=rule.rule_id,
            device_id=event["device_id"],
            type=event["type"],
            webhook=delivery.get("webhook"),
            email=delivery.get("email"),
        )
        try:
            self.store.record_alert_delivery(rule.rule_id, event["event_id"], delivery)
        except Exception as error:  # the notification went out; only its record is missing
            log("ERROR", "alert delivery not recorded", rule_id=rule.rule_id, error=type(error).__name__)
        return delivery

    def post(self, secret: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
        body = payload(event)
        url = urllib.parse.urlsplit(secret["webhook_url"])
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        result: dict[str, Any] = {"ok": False}
        for attempt in range(1, self.attempts + 1):
            result["attempts"] = attempt
            wait = self.backoff_s * 2 ** (attempt - 1)
            try:
                status, retry_after = self._post_once(url, target, secret["webhook_secret"], body)
            except (OSError, http.client.HTTPException, ValueError) as error:  # ValueError: a name IDNA refuses
                result.update(status=None, error=_failure(error))
            else:
                result.update(status=status)
                result.pop("error", None)
                if 200 <= status < 300:
                    result["ok"] = True
                    return result
                if status != 429 and status < 500:
                    return result  # the receiver refuses this document: sending it again changes nothing
                wait = max(wait, min(retry_after or 0, 30))
            if attempt < self.attempts:
                self.sleep(wait)
        return result

    def _post_once(self, url: urllib.parse.SplitResult, target: str, key: str, body: bytes) -> tuple[int, int]:
        connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(url.hostname or "", url.port, timeout=self.timeout_s)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(key, timestamp, body),
        }
        if url.username:  # basic auth given in the URL (ntfy and friends)
            import base64

            userinfo = f"{urllib.parse.unquote(url.username)}:{urllib.parse.unquote(url.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(userinfo.encode()).decode()
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            response.read(4096)
            retry_after = response.getheader("Retry-After", "")
            return response.status, int(retry_after) if retry_after.isdigit() else 0
        finally:
            connection.close()

    def email(self, rule: Rule, event: dict[str, Any]) -> dict[str, Any]:
        if not self.topic_arn:
            return {"ok": False, "error": "no SNS topic configured (ALERTS_TOPIC_ARN)"}
        subject = f"dhtlink {event['type']}: {event['device_id']} {rule.name or rule.describe()}"
        subject = subject.encode("ascii", "replace").decode()[:100]  # SNS: ASCII, at most 100
        message = event["text"] + "\n\n" + json.dumps(event, indent=2, ensure_ascii=False)
        try:
            if self._sns is None:
                import boto3

                self._sns = boto3.client("sns")
            answer = self._sns.publish(
                TopicArn=self.topic_arn,
                Subject=subject,
                Message=message,
                MessageAttributes={
                    "rule_id": {"DataType": "String", "StringValue": rule.rule_id},
                    "device_id": {"DataType": "String", "StringValue": event["device_id"]},
                    "type": {"DataType": "String", "StringValue": event["type"]},
                },
            )
        except Exception as error:  # botocore's errors share no useful base: record the kind
            code = getattr(error, "response", {}).get("Error", {}).get("Code")
            return {"ok": False, "error": code or type(error).__name__}
        return {"ok": True, "message_id": answer["MessageId"]}
