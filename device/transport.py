# Signed POST of a batch (protocol v1) over a raw socket: explicit connect and read
# timeouts (shorter than the watchdog), TLS for https, and the response read whole
# or reported as an error, so a truncated answer is never taken for an ack.
import json
import socket
import signing

TIMEOUT_S = 5


class Response:
    def __init__(self, status, body):
        self.status = status
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return {}


def split_url(url):
    scheme, _, rest = url.partition("://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    tls = scheme == "https"
    return host, int(port) if port else (443 if tls else 80), "/" + path, tls


def _readline(s):
    line = s.readline()
    if not line.endswith(b"\n"):
        raise OSError("connection closed mid-response")
    return line


def _tls(s, host, ca):
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(cadata=ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE  # no tls_ca configured: encrypted, not authenticated
    return ctx.wrap_socket(s, server_hostname=host)


def post(url, device_id, secret, timestamp, body, timeout=TIMEOUT_S, ca=None):
    """One signed POST; returns a Response or raises OSError on any network failure.
    ca: DER bytes of the certificate an https server must chain to (None: not checked)."""
    host, port, path, tls = split_url(url)
    addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
    s = socket.socket()
    try:
        s.settimeout(timeout)
        s.connect(addr)
        if tls:
            s = _tls(s, host, ca)
        sig = signing.sign(secret, device_id, timestamp, "POST", path, body)
        s.write(
            b"POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nX-Device-Id: %s\r\nX-Timestamp: %d\r\n"
            b"X-Signature: %s\r\nConnection: close\r\n\r\n"
            % (path.encode(), host.encode(), len(body), device_id.encode(), timestamp, sig.encode())
        )
        s.write(body)
        status_line = _readline(s).split(None, 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
            raise OSError("not an HTTP response")
        status = int(status_line[1])
        length = -1
        while True:
            line = _readline(s)
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length < 0:
            raise OSError("response without Content-Length")
        data = b""
        while len(data) < length:
            chunk = s.read(length - len(data))
            if not chunk:
                raise OSError("response truncated")
            data += chunk
        return Response(status, data)
    finally:
        s.close()


def _dec(v):
    return "%s%d.%d" % ("-" if v < 0 else "", abs(v) // 10, abs(v) % 10)


# Longest reading: ,{"seq":4294967295,"ts":4294967295,"t":-40.0,"h":100.0} is 55 bytes.
READING_MAX = 60
ENVELOPE_MAX = 512  # device id, status and the JSON around the readings


def _put(buf, n, data):
    end = n + len(data)
    buf[n:end] = data
    return end


def encode(device_id, items, status, buf):
    """The request body as a memoryview into buf: compact JSON written in place, so a
    batch of 100 needs no large block once the spool's records have fragmented the heap."""
    n = _put(buf, 0, b'{"device_id":"')
    n = _put(buf, n, device_id.encode())
    n = _put(buf, n, b'","readings":[')
    for i, (seq, ts, t10, h10) in enumerate(items):
        n = _put(
            buf,
            n,
            b'%s{"seq":%d,"ts":%d,"t":%s,"h":%s}'
            % (b"," if i else b"", seq, ts, _dec(t10).encode(), _dec(h10).encode()),
        )
    n = _put(buf, n, b'],"status":')
    n = _put(buf, n, json.dumps(status).encode())
    n = _put(buf, n, b"}")
    return memoryview(buf)[:n]


MAX_BACKOFF_S = 3600


def backoff_due(rtc, now):
    return now >= rtc.get("tx_next", 0)


def _fail(rtc, now, interval_s):
    # Exponential backoff with full jitter in [base/2, base], capped at an hour.
    import random

    fails = rtc.get("tx_fails", 0) + 1
    rtc["tx_fails"] = fails
    base = min(MAX_BACKOFF_S, interval_s * (1 << min(fails - 1, 10)))
    rtc["tx_next"] = now + base // 2 + random.getrandbits(16) % (base // 2 + 1)


def deliver(cfg, spool, clock, rtc, status, log, deadline_ms):
    """Send the spool oldest first until it is empty, the clock is unset, the deadline
    passes, or the receiver fails. Returns the number of requests made."""
    import time

    requests = 0
    stale_retry = True
    # Allocated before the spool is read, while the heap still has a large free block.
    buf = bytearray(cfg["batch_size"] * READING_MAX + ENVELOPE_MAX)
    ca = None
    if cfg.get("tls_ca"):
        with open(cfg["tls_ca"], "rb") as f:
            ca = f.read()
    while spool.depth() and time.ticks_diff(deadline_ms, time.ticks_ms()) > 1000:
        items = spool.peek(cfg["batch_size"])
        if not items:
            if clock.valid() or not stale_retry:
                break
            # Readings wait for the clock and NTP failed: a signed request with no readings
            # is answered 401 stale_timestamp with the server's time, before its body is read.
            items = ()
        status["dropped"] = spool.dropped
        body = encode(cfg["device_id"], items, status, buf)
        timeout = min(TIMEOUT_S, time.ticks_diff(deadline_ms, time.ticks_ms()) // 1000)
        requests += 1
        try:
            resp = post(cfg["endpoint"], cfg["device_id"], cfg["secret"], clock.unix(), body, timeout, ca)
        except (OSError, ValueError) as e:
            log.warn("send failed, %d readings kept: %s" % (len(items), e))
            _fail(rtc, clock.unix(), cfg["interval_s"])
            rtc["last_error"] = "send: %s" % e
            return requests
        answer = resp.json()
        server_time = answer.get("server_time")
        if not items:
            if resp.status == 401 and answer.get("error") == "stale_timestamp" and isinstance(server_time, int):
                log.info("clock set from the receiver")
                clock.set_unix(server_time, spool)
            stale_retry = False
        elif 200 <= resp.status < 300:
            spool.ack(len(items))
            log.info("sent %d readings, seq %d-%d" % (len(items), items[0][0], items[-1][0]))
            rtc["tx_fails"] = 0
            rtc["tx_next"] = 0
            for r in answer.get("rejected", ()):
                log.warn("reading %s rejected by the receiver: %s" % (r.get("seq"), r.get("error")))
            if isinstance(server_time, int) and abs(server_time - clock.unix()) > 60:
                clock.set_unix(server_time, spool)
        elif resp.status == 401 and answer.get("error") == "stale_timestamp" and isinstance(server_time, int):
            log.warn("clock off by %d s: set from the receiver" % (server_time - clock.unix()))
            clock.set_unix(server_time, spool)
            if not stale_retry:
                return requests
            stale_retry = False
        elif resp.status == 401:
            # Not a property of the batch: the secret or registry is wrong. Keep the
            # readings (they are signed again on every try) until it is re-provisioned.
            log.error("receiver refused the device signature: re-provision this board")
            rtc["last_error"] = "401 %s" % answer.get("error")
            _fail(rtc, clock.unix(), cfg["interval_s"])
            return requests
        elif 400 <= resp.status < 500:
            spool.drop(len(items))
            rtc["last_error"] = "%d %s" % (resp.status, answer.get("error"))
            log.error(
                "batch of %d dropped, receiver said %d %s: %s"
                % (len(items), resp.status, answer.get("error"), answer.get("message"))
            )
        else:
            log.warn("receiver answered %d, %d readings kept" % (resp.status, len(items)))
            rtc["last_error"] = "receiver %d" % resp.status
            _fail(rtc, clock.unix(), cfg["interval_s"])
            return requests
    return requests
