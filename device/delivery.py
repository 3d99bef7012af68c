# Delivery policy: send the spool in signed batches and react to each answer by the
# reaction table of protocol v1.1 (docs/protocol.md). The board trusts nothing it cannot
# verify: only an answer signed for this very request may remove readings or move the
# clock; anything else keeps the batch and backs off.
import transport

MAX_BACKOFF_S = 3600
# The spool keeps a seq in 32 bits; the receiver's next_seq stays below this (2**32,
# docs/protocol.md "Seq conflicts"). A next_seq past it cannot be stored: keep the batch.
SEQ_CEILING = 4294967296
SKIPPED = "seq.skip"

# What an answer asks the board to do.
KEEP = 0  # keep the batch, back off, retry later
ACK = 1  # delivered: remove from the spool
CLOCK = 2  # the request's timestamp was stale: set the clock, retry now
RENUMBER = 3  # the receiver holds other readings under these seqs: renumber, retry now
POISON = 4  # the receiver will never take this batch: drop it, count it

# Remote settings and a release offered in the last signed 2xx answer of a deliver()
# (docs/protocol.md, docs/ota.md), for the app to act on once the send's buffer is freed;
# answered: whether any answer of this deliver() verified (a release on trial commits).
offered = None
release = None
answered = False
soon = None  # this wake sends early so that a release offered may download (remote.py)


def reaction(status, verified, answer):
    """The reaction table. answer: the answer's JSON object ({} if unverified)."""
    if not verified:
        # A captive portal's page, a gateway's own 403/404/413/429/5xx, a proxy, a
        # forgery, a replayed answer, or a 401 unauthorized (never signed).
        return KEEP
    error = answer.get("error")
    if 200 <= status < 300:
        return ACK
    if status == 401:
        stale = error == "stale_timestamp" and isinstance(answer.get("server_time"), int)
        return CLOCK if stale else KEEP
    if status == 409 and error == "seq_conflict":
        next_seq = answer.get("next_seq")
        return RENUMBER if isinstance(next_seq, int) and 0 <= next_seq < SEQ_CEILING else KEEP
    if 400 <= status < 500:
        return POISON
    return KEEP  # 5xx, or a signed status the protocol does not use


def _fail(rtc, now, interval_s, retry_after):
    # Exponential backoff with full jitter in [base/2, base], capped at an hour; never
    # sooner than a Retry-After (the transport caps that at an hour too), which gets a
    # jitter of up to a quarter on top so a throttled fleet does not return at once.
    import random

    fails = rtc.get("tx_fails", 0) + 1
    rtc["tx_fails"] = fails
    base = min(MAX_BACKOFF_S, interval_s * (1 << min(fails - 1, 10)))
    wait = base // 2 + random.getrandbits(16) % (base // 2 + 1)
    if retry_after is not None:
        wait = max(wait, retry_after + random.getrandbits(16) % (retry_after // 4 + 1))
    rtc["tx_next"] = now + wait


def _skipped(n):
    # Seqs the counter jumped over in renumberings, all told: the board took next_seq minus
    # these readings (diag.py reports it for `dhtlink sim`). In a file, not RTC memory: a
    # power cut must not make a board seem to have taken readings it never did.
    try:
        with open(SKIPPED) as f:
            n += int(f.read())
    except (OSError, ValueError):
        pass
    with open(SKIPPED, "w") as f:
        f.write(str(n))


def _counters(status, spool, rtc):
    status["dropped"] = spool.dropped
    status.update(spool.drops)
    status["unverified"] = rtc.get("unverified", 0)


def deliver(cfg, spool, clock, rtc, status, log, deadline_ms, buf):
    """Send the spool oldest first until it is empty, the clock is unset, the deadline
    passes, or an answer says to wait. Returns the number of requests made.
    buf: transport.buffer_size(cfg["batch_size"]) bytes, for the request body, then the answer."""
    import time

    global offered, release, answered, soon
    offered = release = None
    answered = False
    soon = rtc.pop("ota_soon", None)  # a wake that sends ends the request, whatever it gets
    requests = 0
    stale_retry = renumber_retry = True
    ca = None
    if cfg.get("tls_ca"):
        with open(cfg["tls_ca"], "rb") as f:
            ca = f.read()
    while spool.depth() and time.ticks_diff(deadline_ms, time.ticks_ms()) > 1000:
        # After a power loss, until NTP or the receiver sets the clock, the RTC reads 2000
        # and mbedTLS (which checks certificate dates on the ESP32) refuses every server:
        # with tls_ca the first request is then a clock probe, no readings in it, over TLS
        # that does not check the certificate; only its answer's signed server_time is
        # used (docs/firmware.md, "TLS after a power loss").
        probe = ca and not clock.valid() and stale_retry
        items = () if probe else spool.peek(cfg["batch_size"])
        if not items and not probe:
            if clock.valid() or not stale_retry:
                break
            # Readings wait for the clock and NTP failed: a signed request with no readings
            # is answered 401 stale_timestamp with the server's time, before its body is read.
            items = ()
        _counters(status, spool, rtc)
        body = transport.encode(cfg["device_id"], items, status, buf)
        # The batch is in buf now: free its records (5 KB at batch 100) before the send
        # and before the next batch is read.
        n = len(items)
        first, last = (items[0][0], items[-1][0]) if n else (0, 0)
        items = None
        timeout = min(transport.TIMEOUT_S, time.ticks_diff(deadline_ms, time.ticks_ms()) // 1000)
        requests += 1
        try:
            code, verified, answer, retry_after = transport.post(
                cfg["endpoint"],
                cfg["device_id"],
                cfg["secret"],
                clock.unix(),
                body,
                buf,
                timeout,
                None if probe else ca,
                deadline_ms,
                rtc,
            )
        except (OSError, ValueError) as e:
            rtc.pop("dns", None)  # the host's address is looked up again next time
            log.warn("send failed, %d readings kept: %s" % (n, e))
            rtc["last_error"] = "send: %s" % e
            _fail(rtc, clock.unix(), cfg["interval_s"], None)
            return requests
        act = reaction(code, verified, answer)
        if not verified:
            rtc["unverified"] = rtc.get("unverified", 0) + 1
            rtc.pop("dns", None)  # perhaps someone else's server now: look the name up again
        else:
            answered = True
        if act == CLOCK:
            server_time = answer["server_time"]
            log.warn("clock off by %d s: set from the receiver" % (server_time - clock.unix()))
            clock.set_unix(server_time, spool)
            if not stale_retry:
                return requests
            stale_retry = False
        elif not n:
            stale_retry = False  # the clock probe got no usable time: wait for NTP
        elif act == ACK:
            spool.ack(n)
            log.info("sent %d readings, seq %d-%d" % (n, first, last))
            rtc["tx_fails"] = 0
            rtc["tx_next"] = 0
            if "settings" in answer:
                offered = answer["settings"]
            if "ota" in answer:
                release = answer["ota"]
            for r in answer.get("rejected", ()):
                log.warn("reading %s rejected by the receiver: %s" % (r.get("seq"), r.get("error")))
            server_time = answer.get("server_time")
            if isinstance(server_time, int) and abs(server_time - clock.unix()) > 60:
                clock.set_unix(server_time, spool)
        elif act == RENUMBER and renumber_retry:
            renumber_retry = False
            log.warn(
                "receiver holds other readings under seqs in %d-%d: renumbering from %d"
                % (first, last, answer["next_seq"])
            )
            conflicts = answer.get("conflicts")
            ok = isinstance(conflicts, list) and conflicts and all(isinstance(c, int) for c in conflicts)
            before = spool.next_seq
            spool.renumber(answer["next_seq"], min(conflicts) if ok else 0)
            _skipped(spool.next_seq - before)
        elif act == POISON:
            spool.drop(n, spool.POISON)
            rtc["last_error"] = "%d %s" % (code, answer.get("error"))
            log.error(
                "batch of %d dropped, receiver said %d %s: %s" % (n, code, answer.get("error"), answer.get("message"))
            )
        else:
            if verified:
                why = "receiver %d %s" % (code, answer.get("error"))
            else:
                # 401: the receiver does not know this board or its secret.
                why = "answer %d not signed for this request%s" % (code, ": re-provision?" if code == 401 else "")
            log.warn("%s, %d readings kept" % (why, n))
            rtc["last_error"] = why
            _fail(rtc, clock.unix(), cfg["interval_s"], retry_after)
            return requests
    return requests
