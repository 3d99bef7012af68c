# One DNS lookup (an A record over UDP) that gives up at the wake's deadline. The ESP32's
# socket.getaddrinfo is lwIP's lwip_getaddrinfo (ports/esp32/modsocket.c), which blocks
# until lwIP's own retries give up and takes no timeout, so a slow resolver would keep the
# board awake past its cap and towards the watchdog. Loaded only when a name is looked up.
import os
import socket
import struct
import time


def address(host, deadline):
    """host's IPv4 address, asked of the resolver DHCP gave (a number is its own address);
    on a port without Wi-Fi (the Unix port) host itself, for its getaddrinfo."""
    if all(c in "0123456789." for c in host):
        return host
    try:
        import network
    except ImportError:
        return host
    return resolve(host, network.WLAN(network.STA_IF).ifconfig()[3], deadline)


def resolve(host, server, deadline):
    """host's IPv4 address as a string, asked of the DNS server (an IPv4 string) until the
    deadline (ticks_ms); OSError if none answers by then or the name has no address."""
    query = bytearray(os.urandom(2) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")
    for label in host.split("."):
        query.append(len(label))
        query.extend(label.encode())
    query.extend(b"\x00\x00\x01\x00\x01")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        to = socket.getaddrinfo(server, 53)[0][-1]
        while True:
            left = time.ticks_diff(deadline, time.ticks_ms())
            if left <= 0:
                raise OSError("DNS: no answer for %s in time" % host)
            s.settimeout(min(left, 1000) / 1000)
            s.sendto(query, to)
            try:
                msg = s.recv(512)
            except OSError:
                continue  # lost or slow: ask again, as lwIP does
            if msg[:2] == query[:2]:
                return _address(msg, len(query), host)
    finally:
        s.close()


def _address(msg, i, host):
    if msg[3] & 0x0F:
        raise OSError("DNS: %s not found (rcode %d)" % (host, msg[3] & 0x0F))
    for _ in range(struct.unpack(">H", msg[6:8])[0]):
        while msg[i] and msg[i] < 0xC0:  # the name: labels, or a pointer to one
            i += msg[i] + 1
        i += 2 if msg[i] >= 0xC0 else 1
        kind, cls, _ttl, size = struct.unpack(">HHIH", msg[i : i + 10])
        i += 10
        if kind == 1 and cls == 1 and size == 4:
            return "%d.%d.%d.%d" % (msg[i], msg[i + 1], msg[i + 2], msg[i + 3])
        i += size
    raise OSError("DNS: no address for %s" % host)
