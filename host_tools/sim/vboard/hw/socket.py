# Virtual `socket`: the real one, except that nothing leaves a board whose Wi-Fi
# is down, and every byte sent is counted for the bench's wire figures.
import usocket
import _board

from usocket import getaddrinfo, AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR  # noqa: F401


def _count(key, n):
    net = _board.state.setdefault("net", {})
    net[key] = net.get(key, 0) + n


class socket:
    def __init__(self, af=AF_INET, kind=SOCK_STREAM, proto=0):
        self._s = usocket.socket(af, kind, proto)

    def connect(self, addr):
        if _board.state.get("wifi") != "up":
            raise OSError(113, "EHOSTUNREACH: Wi-Fi is not connected")
        _count("connects", 1)
        self._s.connect(addr)

    def write(self, data):
        _count("bytes_out", len(data))
        return self._s.write(data)

    send = write

    def sendall(self, data):
        self.write(data)

    def read(self, n=-1):
        data = self._s.read(n) if n >= 0 else self._s.read()
        _count("bytes_in", len(data or b""))
        return data

    def readline(self, limit=-1):
        data = self._s.readline(limit) if limit >= 0 else self._s.readline()
        _count("bytes_in", len(data or b""))
        return data

    def readinto(self, buf):
        n = self._s.readinto(buf)
        _count("bytes_in", n or 0)
        return n

    def recv(self, n):
        return self.read(n)

    def settimeout(self, t):
        self._s.settimeout(t)

    def setsockopt(self, *args):
        self._s.setsockopt(*args)

    def close(self):
        self._s.close()
        _board.save()
