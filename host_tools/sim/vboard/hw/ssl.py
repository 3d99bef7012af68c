# Virtual `ssl`: the ssl module's API (micropython-lib python-stdlib/ssl/ssl.py) over the
# real `tls` (extmod/modtls_mbedtls.c), with one difference the chip makes: the ESP32
# port's mbedTLS checks a certificate's dates against the RTC (ports/esp32/boards/
# sdkconfig.base: CONFIG_MBEDTLS_HAVE_TIME_DATE=y; main.c: mbedtls_platform_set_time),
# while the Unix port's reads the host's clock. So here a verified handshake fails as the
# chip's does while the board's RTC is outside the trusted certificate's validity (after a
# power loss it reads 2000-01-01). Only the trusted (tls_ca) certificate's dates are
# compared: the server's own start later still, so this is the gentler of the two checks.
import tls
import _board
from tls import CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED, PROTOCOL_TLS_CLIENT, PROTOCOL_TLS_SERVER  # noqa: F401

MBEDTLS_ERR_X509_CERT_VERIFY_FAILED = -0x2700


def _tlv(der, i):
    # (start of the value, its end) of the DER element at i
    n = der[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(der[i : i + k], "big")
        i += k
    return i, i + n


def _when(text):
    # UTCTime YYMMDDHHMMSS or GeneralizedTime YYYYMMDDHHMMSS (the Z cut off), Unix seconds
    import machine

    if len(text) == 12:
        text = ("20" if int(text[:2]) < 50 else "19") + text
    y, mo, d, h, mi, s = (int(text[i : i + w]) for i, w in ((0, 4), (4, 2), (6, 2), (8, 2), (10, 2), (12, 2)))
    return machine._utc_seconds(y, mo, d) + h * 3600 + mi * 60 + s


def validity(der):
    """(not_before, not_after) of a DER certificate, Unix seconds."""
    i = _tlv(der, 0)[0]  # Certificate
    i = _tlv(der, i)[0]  # TBSCertificate
    if der[i] == 0xA0:  # [0] version
        i = _tlv(der, i)[1]
    for _ in range(3):  # serialNumber, signature, issuer
        i = _tlv(der, i)[1]
    i = _tlv(der, i)[0]  # Validity
    start, end = _tlv(der, i)
    after = _tlv(der, end)
    return _when(bytes(der[start:end]).decode()[:-1]), _when(bytes(der[after[0] : after[1]]).decode()[:-1])


class SSLContext:
    def __init__(self, *args):
        self._context = tls.SSLContext(*args)
        self._context.verify_mode = CERT_NONE
        self._valid = None

    @property
    def verify_mode(self):
        return self._context.verify_mode

    @verify_mode.setter
    def verify_mode(self, val):
        self._context.verify_mode = val

    def load_cert_chain(self, certfile, keyfile):
        self._context.load_cert_chain(certfile, keyfile)

    def load_verify_locations(self, cafile=None, cadata=None):
        if cafile:
            with open(cafile, "rb") as f:
                cadata = f.read()
        self._valid = validity(cadata)
        self._context.load_verify_locations(cadata)

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, server_hostname=None):
        if self._valid and self._context.verify_mode == CERT_REQUIRED:
            now = _board.rtc_ms() // 1000
            if not self._valid[0] <= now <= self._valid[1]:
                raise OSError(
                    MBEDTLS_ERR_X509_CERT_VERIFY_FAILED,
                    "X509 - Certificate verification failed, e.g. CRL, CA or signature check failed",
                )
        # mbedTLS reads and writes through the stream protocol, which only a real socket
        # has: the virtual socket's own (its counters, a dripping answer) are bypassed.
        return self._context.wrap_socket(
            getattr(sock, "_s", sock),
            server_side=server_side,
            do_handshake_on_connect=do_handshake_on_connect,
            server_hostname=server_hostname,
        )
