"""Signed POSTs of spooled batches (protocol v1.1) and the device reaction table.

Only an answer whose X-Signature verifies against this request may change what the
node holds or its clock (docs/protocol.md, "Signed answers"):

    no valid answer signature, 401 unauthorized, 5xx, timeout,
    connection error, truncated answer          -> keep, back off with jitter
                                                   (Retry-After honoured), count unverified
    signed 2xx                                  -> acknowledged: removed from the spool;
                                                   server_time may set the clock offset
    signed 401 stale_timestamp                  -> set the clock offset, retry
    signed 409 seq_conflict                     -> renumber the spool from next_seq, retry
    signed other 4xx                            -> poison: drop, count, log why
"""

import email.utils
import json
import logging
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from cloud import __version__
from cloud.signing import signed_headers, verify_answer
from host_tools.node.spool import Item, Spool

log = logging.getLogger("dhtlink.node")

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 15
CLOCK_TOLERANCE_S = 60  # a signed server_time further off than this sets the clock offset
RETRY_BASE_S = 5
MAX_BACKOFF_S = 900
RETRY_AFTER_MAX_S = 3600  # the most a Retry-After may ask for, as the firmware


@dataclass
class Answer:
    status: int
    body: bytes
    verified: bool
    retry_after: float | None

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class Backoff:
    """Exponential backoff with jitter in [base/2, base], as the firmware; a Retry-After
    is a floor (capped, since an unverified answer may carry any value)."""

    def __init__(
        self,
        base_s: float = RETRY_BASE_S,
        cap_s: float = MAX_BACKOFF_S,
        rng: random.Random | None = None,
        retry_after_cap_s: float = RETRY_AFTER_MAX_S,
    ):
        self.base_s = base_s
        self.cap_s = cap_s
        self.retry_after_cap_s = retry_after_cap_s
        self.rng = rng or random.Random()
        self.fails = 0

    def failed(self, retry_after: float | None = None) -> float:
        self.fails += 1
        base = min(self.cap_s, self.base_s * 2 ** min(self.fails - 1, 20))
        delay = base / 2 + self.rng.uniform(0, base / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_cap_s))
        return delay

    def succeeded(self) -> None:
        self.fails = 0


class Sender:
    """One signed POST to the receiver through a kept-alive requests session."""

    def __init__(
        self,
        endpoint: str,
        device_id: str,
        secret: str,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.path = urlsplit(endpoint).path or "/"
        self.device_id = device_id
        self.secret = secret
        self.session = requests.Session()
        self.bytes_sent = 0
        self.bytes_received = 0

    def post(self, body: bytes, timestamp: int, now: float) -> Answer:
        """The answer, verified or not; raises requests.RequestException when none came whole."""
        headers = signed_headers(self.secret, self.device_id, timestamp, self.path, body)
        # A redirect is an answer like any other (unsigned: kept); following one would hand
        # the signed request to whatever host a portal or proxy names.
        response = self.session.post(
            self.endpoint, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
        )
        content = response.content  # raises on a body shorter than its Content-Length
        # HTTP bytes both ways, as the bench counts them for the boards: start line,
        # headers (urllib3 adds Host to what requests prepared) and body.
        request = response.request
        self.bytes_sent += (
            len(f"{request.method} {request.path_url} HTTP/1.1\r\nHost: {urlsplit(self.endpoint).netloc}\r\n\r\n")
            + _header_bytes(request.headers)
            + len(body)
        )
        self.bytes_received += (
            len(f"HTTP/1.1 {response.status_code} {response.reason}\r\n\r\n")
            + _header_bytes(response.headers)
            + len(content)
        )
        verified = verify_answer(
            self.secret, headers["X-Signature"], response.status_code, content, response.headers.get("X-Signature")
        )
        return Answer(
            response.status_code, content, verified, parse_retry_after(response.headers.get("Retry-After"), now)
        )

    def close(self) -> None:
        self.session.close()


def _header_bytes(headers) -> int:
    return sum(len(name) + len(value) + 4 for name, value in headers.items())


def encode(device_id: str, items: list[Item], status: dict[str, Any]) -> bytes:
    readings = [{"seq": i.seq, "ts": i.ts, "t": i.t10 / 10, "h": i.h10 / 10} for i in items]
    return json.dumps({"device_id": device_id, "readings": readings, "status": status}, separators=(",", ":")).encode()


@dataclass
class Result:
    """What one request did. retry_in: None to carry on at once, else seconds to wait."""

    sent: int
    retry_in: float | None
    error: str | None = None


class Delivery:
    def __init__(self, spool: Spool, sender: Sender, clock, backoff: Backoff | None = None) -> None:
        self.spool = spool
        self.sender = sender
        self.clock = clock
        self.backoff = backoff or Backoff()
        self.corrections = 0  # corrective retries (clock, renumbering) since the last ack

    def now(self) -> int:
        return int(self.clock.wall()) + (self.spool.get("clock_offset") or 0)

    def status(self) -> dict[str, Any]:
        s = self.spool
        keys = ("boot", "sensor_errors", "dropped", "drop_full", "drop_poison", "unverified")
        return {"fw": f"dhtlink-node {__version__}", **{key: s.get(key) for key in keys}}

    def send_batch(self, batch_size: int) -> Result:
        items = self.spool.peek(batch_size)
        if not items:
            return Result(0, None)
        body = encode(self.sender.device_id, items, self.status())
        self.spool.mark_in_flight(items)
        self.spool.count("requests")
        try:
            answer = self.sender.post(body, self.now(), self.clock.wall())
        except requests.RequestException as error:
            self.spool.settle(items, stored=True)
            return self._keep(f"send failed, {len(items)} readings kept: {type(error).__name__}: {error}", None)
        if not answer.verified:
            self.spool.settle(items, stored=True)
            self.spool.count("unverified")
            return self._keep(
                f"answer {answer.status} without a valid signature (a proxy, portal or gateway?), "
                f"{len(items)} readings kept",
                answer.retry_after,
            )
        return self._judge(items, answer)

    def _keep(self, why: str, retry_after: float | None) -> Result:
        delay = self.backoff.failed(retry_after)
        log.warning("%s; retry in %.0f s", why, delay)
        self.spool.note(last_error=why, last_error_at=int(self.clock.wall()))
        return Result(0, delay, why)

    def _judge(self, items: list[Item], answer: Answer) -> Result:
        data = answer.json()
        error = data.get("error")
        server_time = data.get("server_time")
        server_time = server_time if isinstance(server_time, int) and not isinstance(server_time, bool) else None
        status = answer.status
        if 200 <= status < 300:
            self.spool.ack(items)
            rejected = data.get("rejected") if isinstance(data.get("rejected"), list) else []
            if rejected:
                self.spool.count("rejected", len(rejected))
                for r in rejected:
                    log.warning("reading %s rejected by the receiver: %s", r.get("seq"), r.get("error"))
            self.backoff.succeeded()
            self.corrections = 0
            what = f"sent {len(items)} readings, seq {items[0].seq}-{items[-1].seq}"
            log.info("%s (%s stored, %s duplicates)", what, data.get("accepted"), data.get("duplicates"))
            self.spool.note(last_send=what, last_send_at=int(self.clock.wall()))
            if server_time is not None and abs(server_time - self.now()) > CLOCK_TOLERANCE_S:
                self._set_clock(server_time)
            return Result(len(items), None)
        self.spool.settle(items, stored=status >= 500)
        if status == 401 and error == "stale_timestamp" and server_time is not None:
            self._set_clock(server_time)
            return self._retry("the receiver refused our timestamp again after a clock correction")
        if status == 409 and error == "seq_conflict" and _seq(data.get("next_seq")):
            first, last = self.spool.renumber_from(data["next_seq"])
            log.warning(
                "receiver holds other readings under our seqs (spool lost?): %d spooled readings renumbered %d-%d",
                last - first + 1,
                first,
                last,
            )
            return self._retry("the receiver still reports seq conflicts after renumbering")
        if status in (401, 409) or not 400 <= status < 500:
            # 401: the secret or registry is wrong, not the batch; 409 without a usable
            # next_seq; 5xx and anything unexpected: the receiver's trouble. Keep all.
            return self._keep(
                f"receiver answered {status} {error or ''}".rstrip() + f", {len(items)} readings kept",
                answer.retry_after,
            )
        self.spool.drop(items)
        why = (
            f"batch of {len(items)} (seq {items[0].seq}-{items[-1].seq}) dropped, receiver said {status} "
            f"{error}: {data.get('message')}"
        )
        log.error(why)
        self.spool.note(last_error=why, last_error_at=int(self.clock.wall()))
        return Result(0, None, why)

    def _retry(self, why_not: str) -> Result:
        # Corrected: retry at once, but a receiver that keeps asking gets the backoff.
        self.corrections += 1
        if self.corrections <= 2:
            return Result(0, None)
        self.corrections = 0
        return self._keep(why_not, None)

    def _set_clock(self, server_time: int) -> None:
        offset = server_time - int(self.clock.wall())
        moved = self.spool.correct_clock(offset)
        log.warning(
            "clock offset set to %+d s from the receiver's signed time; %d unsent readings moved", offset, moved
        )


def _seq(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32
