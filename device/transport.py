# One signed POST of a batch (protocol v1.1) over a raw socket, and the request body.
# Explicit connect and read timeouts (shorter than the watchdog), TLS for https. The
# answer is read whole by Content-Length into the request's own buffer (no large block
# is allocated after the spool was read) and its signature checked before anyone may
# act on it: a truncated answer is an error, an unsigned one is never taken for an ack.
import json
import socket
import signing

TIMEOUT_S = 5
HEADER_MAX = 128  # bytes read per header line: readline(n) allocates n, and our longest is 80
RETRY_AFTER_MAX = 3600  # s: what a Retry-After may ask for at most


def split_url(url):
    scheme, _, rest = url.partition("://")
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    tls = scheme == "https"
    return host, int(port) if port else (443 if tls else 80), "/" + path, tls


def _readline(s):
    line = s.readline(HEADER_MAX)
    if line.endswith(b"\n"):
        return line
    rest = line
    while len(rest) == HEADER_MAX:
        # Longer than any header the receiver sends (a portal's cookie): keep its head.
        rest = s.readline(HEADER_MAX)
        if rest.endswith(b"\n"):
            return line
    raise OSError("connection closed mid-response")


def _tls(s, host, ca):
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(cadata=ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE  # no tls_ca configured: encrypted, not authenticated
    return ctx.wrap_socket(s, server_hostname=host)


def connect(url, timeout, ca):
    """A socket connected to url's host (TLS for https), and the host and path to ask for."""
    host, port, path, tls = split_url(url)
    addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
    s = socket.socket()
    try:
        s.settimeout(timeout)
        s.connect(addr)
        if tls:
            s = _tls(s, host, ca)
    except Exception:
        s.close()
        raise
    return s, host, path


def post(url, device_id, secret, timestamp, body, buf, timeout=TIMEOUT_S, ca=None):
    """One signed POST of body; returns (status, verified, answer, retry_after), or
    raises OSError on any network failure or truncated answer. verified: the answer's
    X-Signature signs its status and body as the answer to this very request; answer:
    its JSON object if verified, else {} (nothing of an unverified answer is read);
    retry_after: seconds a Retry-After header asked for (capped), or None.
    buf receives the answer's body (body may be a view into it: it has been sent by
    then); an answer longer than buf is not read, and unverified.
    ca: DER bytes of the certificate an https server must chain to (None: not checked)."""
    s, host, path = connect(url, timeout, ca)
    try:
        sig = signing.sign(secret, device_id, timestamp, "POST", path, body)
        s.write(
            b"POST %s HTTP/1.0\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nX-Device-Id: %s\r\nX-Timestamp: %d\r\n"
            b"X-Signature: %s\r\nConnection: close\r\n\r\n"
            % (path.encode(), host.encode(), len(body), device_id.encode(), timestamp, sig.encode())
        )
        s.write(body)
        status_line = _readline(s).split(None, 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
            raise OSError("not an HTTP response")
        status = int(status_line[1])
        length = -1
        answer_sig = retry_after = None
        while True:
            line = _readline(s)
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
            elif name == b"x-signature":
                answer_sig = value.strip()
            elif name == b"retry-after" and value.strip().isdigit():
                retry_after = min(int(value.strip()), RETRY_AFTER_MAX)  # an HTTP-date is ignored
        if length < 0 or length > len(buf):
            # Not our receiver's answer (it always sends a length, and a short body).
            return status, False, {}, retry_after
        view = memoryview(buf)
        got = 0
        while got < length:
            n = s.readinto(view[got:length])
            if not n:
                raise OSError("response truncated")
            got += n
        if not signing.verify_answer(secret, sig, status, view[:length], answer_sig):
            return status, False, {}, retry_after
        try:
            answer = json.loads(view[:length])
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
