# One signed POST of a batch (protocol v1.1) over a raw socket, and the request body.
# Explicit connect and read timeouts (shorter than the watchdog), TLS for https. The
# answer is read whole by Content-Length into the request's own buffer (no large block
# is allocated after the spool was read) and its signature checked before anyone may
# act on it: a truncated answer is an error, an unsigned one is never taken for an ack.
import json
import socket
import time
import signing

TIMEOUT_S = 5
RETRY_AFTER_MAX = 3600  # s: what a Retry-After may ask for at most


def split_url(url):
    scheme, _, rest = url.partition("://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    tls = scheme == "https"
    return host, int(port) if port else (443 if tls else 80), "/" + path, tls


def _tls(s, host, ca):
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(cadata=ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE  # no tls_ca configured: encrypted, not authenticated
    return ctx.wrap_socket(s, server_hostname=host)


def _left(deadline):
    left = time.ticks_diff(deadline, time.ticks_ms())
    if left <= 0:
        raise OSError("wake deadline passed")
    return left


def _address(host, deadline, cache):
    # The ESP32's getaddrinfo is lwIP's (ports/esp32/modsocket.c), which blocks until lwIP
    # gives up and takes no timeout: a name is looked up by dns.py under the deadline, and
    # its address kept in RTC memory (cache: the rtc dict) until a send through it fails.
    if all(c in "0123456789." for c in host):
        return host
    if cache is not None and cache.get("dns", ("",))[0] == host:
        return cache["dns"][1]
    import dns
    import sys

    ip = dns.address(host, deadline)
    del sys.modules["dns"]
    if cache is not None and ip != host:
        cache["dns"] = [host, ip]
    return ip


def connect(url, timeout, ca, deadline=None, cache=None):
    """A socket connected to url's host (TLS for https), and the host and path to ask for.
    deadline (ticks_ms): no step, the name's lookup included, waits past it."""
    return _open(url, timeout, ca, deadline, cache)[1:]


def _open(url, timeout, ca, deadline, cache):
    # (the TCP socket, the socket to talk through: TLS over it for https, host, path); the
    # TCP socket's timeout is the one a TLS socket's reads wait on (SSLSocket has none).
    host, port, path, tls = split_url(url)
    if deadline is None:
        deadline = time.ticks_add(time.ticks_ms(), timeout * 1000)
    ip = _address(host, deadline, cache)
    addr = socket.getaddrinfo(ip, port, 0, socket.SOCK_STREAM)[0][-1]  # a number: no lookup
    raw = s = socket.socket()
    try:
        s.settimeout(min(timeout * 1000, _left(deadline)) / 1000)
        s.connect(addr)
        if tls:
            s = _tls(s, host, ca)
    except Exception:
        s.close()
        raise
    return raw, s, host, path


def _recv(raw, s, one, deadline):
    # One byte into one (a bytearray(1)), waiting no later than the deadline (to the next
    # second). A stream's readinto waits until its whole buffer is full (py/stream.c),
    # each lwIP read up to the socket's timeout: an answer dripping in a byte at a time
    # would keep the board awake past any cap. Whole seconds, and one buffer: no float
    # and no view is allocated per byte.
    left = _left(deadline) // 1000 + 1
    if left < TIMEOUT_S:
        raw.settimeout(left)
    if not s.readinto(one):
        raise OSError("connection closed mid-response")
    return one[0]


def _head(raw, s, buf, deadline):
    # Status line and headers into buf: (status, length, signature, retry_after, start of
    # the body in buf), or None when they do not fit in buf.
    view = memoryview(buf)
    one = bytearray(1)
    have = line = 0
    status = None
    length = -1
    sig = retry_after = None
    raw.settimeout(TIMEOUT_S)
    while True:
        if have == len(buf):
            return None  # not our receiver's answer: its headers are short
        buf[have] = _recv(raw, s, one, deadline)
        have += 1
        if buf[have - 1] != 10:
            continue
        text = bytes(view[line:have]).strip()
        line = have
        if status is None:
            parts = text.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
                raise OSError("not an HTTP response")
            status = int(parts[1])
        elif not text:
            return status, length, sig, retry_after, have, one
        else:
            name, _, value = text.partition(b":")
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-length" and value.isdigit():
                length = int(value)
            elif name == b"x-signature":
                sig = value
            elif name == b"retry-after" and value.isdigit():
                retry_after = min(int(value), RETRY_AFTER_MAX)  # an HTTP-date is ignored


def post(url, device_id, secret, timestamp, body, buf, timeout=TIMEOUT_S, ca=None, deadline=None, cache=None):
    """One signed POST of body; returns (status, verified, answer, retry_after), or
    raises OSError on any network failure, truncated answer or passed deadline. verified:
    the answer's X-Signature signs its status and body as the answer to this very request;
    answer: its JSON object if verified, else {} (nothing of an unverified answer is read);
    retry_after: seconds a Retry-After header asked for (capped), or None.
    buf receives the answer (body may be a view into it: it has been sent by then); an
    answer longer than buf is not read, and unverified.
    ca: DER bytes of the certificate an https server must chain to (None: not checked).
    deadline (ticks_ms): nothing waits past it, the lookup of the host's name included;
    cache: a dict kept in RTC memory for the host's address."""
    if deadline is None:
        deadline = time.ticks_add(time.ticks_ms(), timeout * 1000)
    raw, s, host, path = _open(url, timeout, ca, deadline, cache)
    try:
        sig = signing.sign(secret, device_id, timestamp, "POST", path, body)
        s.write(
            b"POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nX-Device-Id: %s\r\nX-Timestamp: %d\r\n"
            b"X-Signature: %s\r\nConnection: close\r\n\r\n"
            % (path.encode(), host.encode(), len(body), device_id.encode(), timestamp, sig.encode())
        )
        s.write(body)
        head = _head(raw, s, buf, deadline)
        if head is None:
            return 0, False, {}, None
        status, length, answer_sig, retry_after, start, one = head
        if length < 0 or start + length > len(buf):
            # Not our receiver's answer (it always sends a length, and a short body).
            return status, False, {}, retry_after
        view = memoryview(buf)
        for at in range(start, start + length):
            buf[at] = _recv(raw, s, one, deadline)
        answer = view[start : start + length]
        if not signing.verify_answer(secret, sig, status, answer, answer_sig):
            return status, False, {}, retry_after
        try:
            answer = json.loads(answer)
        except ValueError:
            answer = None
        return status, True, answer if isinstance(answer, dict) else {}, retry_after
    finally:
        s.close()


def _dec(v):
    return "%s%d.%d" % ("-" if v < 0 else "", abs(v) // 10, abs(v) % 10)


# Longest reading: ,{"seq":4294967295,"ts":4294967295,"t":-40.0,"h":100.0} is 55 bytes.
READING_MAX = 60
ENVELOPE_MAX = 512  # device id, status and the JSON around the readings
ANSWER_MIN = 1024  # the receiver's longest error answer, with room to spare


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


def buffer_size(batch_size):
    """Bytes of the buffer a POST of batch_size readings needs: its body, then the answer."""
    return max(ANSWER_MIN, batch_size * READING_MAX + ENVELOPE_MAX)
