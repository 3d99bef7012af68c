# Virtual `socket`: the real one, except that nothing leaves a board whose Wi-Fi
# is down, and every byte sent is counted for the bench's wire figures. Addresses are the
# ESP32 port's (ports/esp32/modsocket.c): getaddrinfo gives ("a.b.c.d", port) and is
# lwIP's lwip_getaddrinfo, which blocks, without a timeout, for as long as the network's
# resolver takes ("dns_ms" of the scenario) and fails while it does not answer
# ("dns_fail" ranges). UDP to the access point's resolver (192.168.4.1:53) reaches a fake
# DNS server answering from the scenario's "hosts" after "dns_ms" of board time.
# "firewalled_ports": TCP ports whose connects a firewall between board and receiver drops.
import usocket
import _board

from usocket import AF_INET, SOCK_STREAM, SOCK_DGRAM, SOL_SOCKET, SO_REUSEADDR  # noqa: F401

RESOLVER = ("192.168.4.1", 53)
ETIMEDOUT = 110
EAI_FAIL = -202  # what lwip_getaddrinfo's failure becomes (modsocket.c: negative)
HOSTS = {"localhost": "127.0.0.1", "pool.ntp.org": "192.0.2.123"}  # the resolver's default answers


def _numeric(host):
    return all(c in "0123456789." for c in host)


def _lookup(host):
    # The resolver's answer for host, or None: after dns_ms of board time.
    hosts = _board.scenario.get("hosts", HOSTS)
    if _board.state.get("wifi") != "up" or _board.in_ranges("dns_fail"):
        return None
    return hosts.get(host)


def getaddrinfo(host, port, af=0, kind=0, proto=0, flags=0):
    if not _numeric(host):
        import machine

        wait = _board.scenario.get("dns_ms", 40)
        machine._check_wdt(wait)  # a blocking C call: only the watchdog ends it
        _board.advance(wait)
        ip = _lookup(host)
        if ip is None:
            raise OSError(EAI_FAIL)
        host = ip
    return [(AF_INET, kind or SOCK_STREAM, proto, "", (host, port))]


def _real(addr):
    if isinstance(addr, tuple):
        return usocket.getaddrinfo(addr[0], addr[1])[0][-1]
    return addr


def _dns_answer(query, ip):
    # The query's id and question back, with one A record (a pointer to the question's name).
    flags = b"\x81\x80" if ip else b"\x81\x83"
    answer = bytes(query[:2]) + flags + b"\x00\x01" + (b"\x00\x01" if ip else b"\x00\x00") + b"\x00\x00\x00\x00"
    answer += bytes(query[12:])
    if ip:
        answer += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes(int(p) for p in ip.split("."))
    return answer


class _UDP:
    # A datagram socket: only the access point's resolver is modelled.
    def __init__(self):
        self._timeout = None
        self._pending = None

    def settimeout(self, t):
        self._timeout = t

    def sendto(self, data, addr):
        if _board.state.get("wifi") != "up":
            raise OSError(113, "EHOSTUNREACH: Wi-Fi is not connected")
        _count("bytes_out", len(data))
        if tuple(addr) == RESOLVER:
            name, i = [], 12
            while data[i]:
                name.append(bytes(data[i + 1 : i + 1 + data[i]]).decode())
                i += data[i] + 1
            hosts = _board.scenario.get("hosts", HOSTS)
            # No answer while the resolver is out; a name it does not know: NXDOMAIN. The
            # answer arrives dns_ms after the first query (a repeated one is the same query).
            if not _board.in_ranges("dns_fail") and self._pending is None:
                ready = _board.now_ms() + _board.scenario.get("dns_ms", 40)
                self._pending = (_dns_answer(data, hosts.get(".".join(name))), ready)
        return len(data)

    def recv(self, n):
        import machine

        limit = int(self._timeout * 1000) if self._timeout is not None else None
        wait = self._pending[1] - _board.now_ms() if self._pending else None
        if wait is None or (limit is not None and wait > limit):
            machine._check_wdt(limit or 0)
            _board.advance(limit or 0)
            raise OSError(ETIMEDOUT)
        machine._check_wdt(max(0, wait))
        _board.advance(max(0, wait))
        answer, self._pending = self._pending[0], None
        _count("bytes_in", len(answer))
        return answer[:n]

    def close(self):
        pass


def _count(key, n):
    # Called for every read: it must not allocate (setdefault's {} would, each time), as
    # the chip's C socket layer does not touch the firmware's heap.
    net = _board.state.get("net")
    if net is None:
        net = _board.state["net"] = {}
    net[key] = net.get(key, 0) + n


def socket(af=AF_INET, kind=SOCK_STREAM, proto=0):
    return _UDP() if kind == SOCK_DGRAM else _TCP(af, kind, proto)


def _drip(timeout):
    # "answer_drip_ms": the answer arrives a byte at a time, this far apart in board time.
    # On the ESP32 a read waits up to the socket's timeout in 100 ms polls (modsocket.c,
    # _socket_settimeout) and readline reads a byte per call (mp_stream_unbuffered_readline).
    import machine

    wait = _board.scenario["answer_drip_ms"]
    limit = timeout * 1000 if timeout is not None else None
    if limit is not None and wait > limit:
        machine._check_wdt(int(limit))
        _board.advance(int(limit))
        raise OSError(ETIMEDOUT)
    machine._check_wdt(wait)
    _board.advance(wait)


class _TCP:
    def __init__(self, af=AF_INET, kind=SOCK_STREAM, proto=0):
        self._s = usocket.socket(af, kind, proto)
        self._timeout = None

    def connect(self, addr):
        if _board.state.get("wifi") != "up":
            raise OSError(113, "EHOSTUNREACH: Wi-Fi is not connected")
        _count("connects", 1)
        if isinstance(addr, tuple) and addr[1] in _board.scenario.get("firewalled_ports", ()):
            # A firewall on the receiver's host that drops the board's packets: lwIP's connect
            # gives up after its SYN retries, with no answer (ETIMEDOUT).
            self._drop(ETIMEDOUT)
        self._s.connect(_real(addr))

    def _drop(self, code):
        import machine

        wait = 1000 if self._timeout is None else int(self._timeout * 1000)
        machine._check_wdt(wait)
        _board.advance(wait)
        raise OSError(code)

    def write(self, data):
        _count("bytes_out", len(data))
        return self._s.write(data)

    send = write

    def sendall(self, data):
        self.write(data)

    def read(self, n=-1):
        if "answer_drip_ms" in _board.scenario and n != 0:
            _drip(self._timeout)
            n = 1
        data = self._s.read(n) if n >= 0 else self._s.read()
        _count("bytes_in", len(data or b""))
        return data

    def readline(self, limit=-1):
        if "answer_drip_ms" in _board.scenario:
            line = b""
            while limit < 0 or len(line) < limit:
                byte = self.read(1)
                line += byte or b""
                if not byte or byte == b"\n":
                    break
            return line
        data = self._s.readline(limit) if limit >= 0 else self._s.readline()
        _count("bytes_in", len(data or b""))
        return data

    def readinto(self, buf):
        if "answer_drip_ms" in _board.scenario and len(buf):
            _drip(self._timeout)
            buf = memoryview(buf)[:1]
        n = self._s.readinto(buf)
        _count("bytes_in", n or 0)
        return n

    def recv(self, n):
        return self.read(n)

    def settimeout(self, t):
        self._timeout = t
        self._s.settimeout(t)

    def setsockopt(self, *args):
        self._s.setsockopt(*args)

    def close(self):
        self._s.close()
        _board.save()
