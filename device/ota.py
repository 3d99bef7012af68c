# Over-the-air download (docs/ota.md): loaded only in a sending wake whose signed answer
# offered a release {"v": version, "sha": manifest SHA-256, "size": bytes}. The offer is
# signed with this board's secret, so the manifest is trusted only if its SHA-256 is the
# offered one, and each file only if its SHA-256 is the manifest's. Files come in ranges
# (HTTP Range) streamed through a 512-byte buffer into ota.new/NAME.part, within the wake's
# awake budget; the next wake resumes from the .part's size. A verified file is renamed to
# ota.new/NAME; once all are, ota.state says "ready" and updater.py switches at the next boot.
# Until then the download's progress is in ota.dl, which main.py does not look at.
import json
import os
import time
import hashlib
import binascii
import transport
import updater

CHUNK = 8192  # bytes per request: one TCP connection per range, HTTP/1.0
PIECE = 512  # bytes read at a time
MISMATCHES = 3  # downloads that fail their digest before a release is refused
FLASH_SPARE = 32768  # flash a download must leave free (the spool and the log keep growing)
HEADER_MAX = 128  # bytes read per header line: readline(n) allocates n, and our longest is 80


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _sha(path, buf):
    h = hashlib.sha256()
    view = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return binascii.hexlify(h.digest()).decode()


def _readline(s):
    # A header line of the release server's answer (the POST reads its own under the wake
    # deadline: transport._head).
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


def _get(url, start, end, out, buf, timeout, ca):
    # GET bytes start..end (inclusive) of url, appended to file out; returns bytes written.
    s, host, path = transport.connect(url, timeout, ca)
    try:
        s.write(
            b"GET %s HTTP/1.0\r\nHost: %s\r\nRange: bytes=%d-%d\r\n\r\n" % (path.encode(), host.encode(), start, end)
        )
        line = _readline(s).split(None, 2)
        if len(line) < 2 or line[1] != b"206":
            raise OSError("release download answered %s" % (line[1] if len(line) > 1 else b"nothing").decode())
        length = -1
        while True:
            h = _readline(s)
            if h in (b"\r\n", b"\n"):
                break
            name, _, value = h.partition(b":")
            if name.strip().lower() == b"content-length" and value.strip().isdigit():
                length = int(value.strip())
        if not 0 < length <= end - start + 1:
            raise OSError("release download: bad range length")
        view = memoryview(buf)
        got = 0
        while got < length:
            n = s.readinto(view[: min(PIECE, length - got)])
            if not n:
                raise OSError("release download truncated")
            out.write(view[:n])
            got += n
        return got
    finally:
        s.close()


def _refuse(s, why, log):
    # A release that breaks the rules, or does not match what the receiver signed
    # MISMATCHES times: tampered with, or a broken store. Nothing of it is kept; the same
    # offer is not downloaded again.
    updater._clear(updater.STAGE)
    log.error("release %s refused: %s" % (s.get("v"), why))
    updater.finish({"v": s.get("v"), "refused": s.get("sha"), "why": why})


def _mismatch(s, part, why, log):
    # A download that does not match its digest may have been damaged on the way (a proxy,
    # a flash error): fetched again from the start at the next wake, refused only when it
    # keeps failing, as a tampered release does.
    s["bad"] = s.get("bad", 0) + 1
    if s["bad"] >= MISMATCHES:
        _refuse(s, why, log)
        return
    os.remove(part)
    updater.save(s, updater.DOWNLOAD)
    log.warn("release %s: %s (attempt %d, fetched again)" % (s.get("v"), why, s["bad"]))


def step(offer, cfg, log, deadline):
    """Download what the wake's budget allows of the offered release."""
    if not isinstance(offer, dict):
        return
    v, sha, size = offer.get("v"), offer.get("sha"), offer.get("size")
    if not isinstance(v, str) or not isinstance(sha, str) or len(sha) != 64 or not isinstance(size, int):
        return
    last = updater.load(updater.LAST)
    if updater._exists(updater.STATE) or sha == last.get("refused") or v == last.get("failed"):
        return  # switching, on trial, or this release was refused or rolled back
    s = updater.load(updater.DOWNLOAD)
    if s.get("sha") != sha:
        updater._clear(updater.STAGE)
        s = {"phase": "download", "v": v, "sha": sha}
        st = os.statvfs("/")
        if st[0] * st[3] < size + FLASH_SPARE:
            # The staged release sits beside the app until the switch: it must fit, with room
            # left for the spool and the log, or readings would be lost to a full flash.
            _refuse(
                s,
                "not enough flash: %d bytes free, the release needs %d + %d" % (st[0] * st[3], size, FLASH_SPARE),
                log,
            )
            return
        try:
            os.mkdir(updater.STAGE)
        except OSError:
            pass
        updater.save(s, updater.DOWNLOAD)
        log.info("release %s offered (%d bytes): downloading" % (v, size))
    base = cfg["endpoint"]
    base = base[: base.rfind("/")] + "/ota/" + v + "/"
    ca = None
    if cfg.get("tls_ca"):
        with open(cfg["tls_ca"], "rb") as f:
            ca = f.read()
    buf = bytearray(PIECE)
    mpath = updater.STAGE + "/manifest.json"
    if _size(mpath) < 0:
        with open(mpath + ".part", "wb") as f:
            # Its size is unknown: ask for more than any manifest holds (the answer is shorter).
            _get(base + "manifest.json", 0, 4095, f, buf, transport.TIMEOUT_S, ca)
        if _sha(mpath + ".part", buf) != sha:
            _mismatch(s, mpath + ".part", "manifest does not match the signed digest", log)
            return
        os.rename(mpath + ".part", mpath)
    # Read a line at a time (the manifest has one file per line): the whole of it would need
    # one 1.6 KB block, which a fragmented heap after a send may not have.
    with open(mpath) as m:
        if json.loads(m.readline() + "]}").get("version") != v:
            _refuse(s, "manifest is for another version", log)
            return
        while True:
            line = m.readline()
            if not line.startswith("{"):
                break
            entry = json.loads(line.rstrip().rstrip(","))
            name, want = entry["name"], entry["size"]
            if "/" in name or not name.endswith(".mpy") or name in updater.OWN:
                _refuse(s, "manifest names a file a release may not hold: %s" % name, log)
                return
            final = updater.STAGE + "/" + name
            if _size(final) >= 0:
                continue
            part = final + ".part"
            have = max(0, _size(part))
            with open(part, "ab") as f:
                while have < want:
                    if time.ticks_diff(deadline, time.ticks_ms()) < 1500:
                        return  # the next wake resumes from here
                    have += _get(base + name, have, min(have + CHUNK, want) - 1, f, buf, transport.TIMEOUT_S, ca)
            if have > want or _sha(part, buf) != entry["sha256"]:
                _mismatch(s, part, "%s does not match the manifest" % name, log)
                return
            os.rename(part, final)
    s["phase"] = "ready"
    updater.save(s)  # ota.state: main.py switches at the next boot
    os.remove(updater.DOWNLOAD)
    log.info("release %s downloaded and verified: switching at the next boot" % v)
