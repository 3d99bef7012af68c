# Persistent FIFO of unsent readings on flash.
#
# Data: spool.<gen>, fixed 16-byte records appended one per reading:
#   seq u32 | ts u32 | t i16 (0.1 C) | h u16 (0.1 %RH) | epoch u8 | flags u8 | crc u16
# A record is only ever appended, so a power cut mid-append can tear at most the
# record being written; its CRC (or a short tail) shows it and it is ignored.
# State: spool.state, JSON replaced atomically (write temp, rename): the generation,
# the head offset (first unacknowledged record), counters and clock offsets.
# Compaction and renumbering write the unacked tail into spool.<gen+1> before the state
# names it, so a crash at any point leaves one complete generation.
import os
import json
import struct
import binascii

REC = 16
_FMT = "<IIhHBB"
UNSYNCED = 1  # ts is the device's raw clock, not yet Unix time


def _crc(b):
    return binascii.crc32(b) & 0xFFFF


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class Spool:
    # Why readings were dropped (status keys; `dropped` is their sum): the spool was
    # full, the clock epoch's offset can never be known or the record is damaged, or
    # the receiver refused the batch in a signed answer (poison).
    FULL, CLOCK, POISON = "drop_full", "drop_clock", "drop_poison"

    def __init__(self, max_items=5000, prefix="spool"):
        self.max_items = max_items
        self.prefix = prefix
        self.gen = 0
        self.head = 0
        self.next_seq = 0
        self.dropped = 0
        self.drops = {self.FULL: 0, self.CLOCK: 0, self.POISON: 0}
        self.offsets = {}
        self.epoch = 0
        # Clock epochs whose power-on ended before any clock (the designed "no clock" case),
        # and readings dropped "no clock" for any other reason (an offset forgotten after
        # 4 newer epochs): the bench's report tells the two apart.
        self.clockless = []
        self.forgotten = 0
        self._load()

    # -- persistence --------------------------------------------------------
    def _data(self, gen=None):
        return "%s.%d" % (self.prefix, self.gen if gen is None else gen)

    def _load(self):
        try:
            with open(self.prefix + ".state") as f:
                s = json.loads(f.read())
            self.gen = s["gen"]
            self.head = s["head"]
            self.next_seq = s["next_seq"]
            self.dropped = s["dropped"]
            for k in self.drops:
                self.drops[k] = s.get(k, 0)
            self.epoch = s.get("epoch", 0)
            self.offsets = s.get("offsets", {})
            self.clockless = s.get("clockless", [])
            self.forgotten = s.get("forgotten", 0)
        except (OSError, ValueError, KeyError):
            pass  # first boot, or a state file lost before its first write
        self.end = self._valid_end()
        if self.end >= self.head + REC:
            self.next_seq = max(self.next_seq, self._record_seq(self.end - REC) + 1)
        # A removed older generation, or a next one never switched to, left behind by a
        # crash mid-compaction or mid-renumbering.
        for g in (self.gen - 1, self.gen - 2, self.gen + 1):
            if g >= 0 and _exists(self._data(g)):
                os.remove(self._data(g))

    def _save(self):
        s = {
            "gen": self.gen,
            "head": self.head,
            "next_seq": self.next_seq,
            "dropped": self.dropped,
            "epoch": self.epoch,
            "offsets": self.offsets,
        }
        # Only once there is something to say: the state is rewritten at every ack.
        if self.clockless:
            s["clockless"] = self.clockless
        if self.forgotten:
            s["forgotten"] = self.forgotten
        s.update(self.drops)
        tmp = self.prefix + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps(s))
        os.rename(tmp, self.prefix + ".state")

    def _size(self):
        try:
            return os.stat(self._data())[6]
        except OSError:
            return 0

    def _valid_end(self):
        size = self._size()
        end = size - size % REC
        if self.head > end:
            self.head = end
        # Only the last record can be torn: records are append-only.
        if end > self.head:
            with open(self._data(), "rb") as f:
                f.seek(end - REC)
                if not self._ok(f.read(REC)):
                    end -= REC
        if end != size:
            self._rewrite(self.head, end)  # re-align so later appends stay whole
            end = self.end
        return end

    def _ok(self, rec):
        return len(rec) == REC and struct.unpack("<H", rec[14:])[0] == _crc(rec[:14])

    def _record_seq(self, off):
        with open(self._data(), "rb") as f:
            f.seek(off)
            return struct.unpack("<I", f.read(4))[0]

    def _rewrite(self, start, end, first=None, since=0):
        # Copy records [start, end) into the next generation, then switch to it. With
        # first: renumber the valid records whose seq is >= since first, first + 1, ...
        # on the way (a damaged one keeps its bad CRC, so it is still never sent).
        new = self.gen + 1
        seq = first
        chunk = bytearray(32 * REC)
        view = memoryview(chunk)
        with open(self._data(new), "wb") as out:
            if end > start:
                with open(self._data(), "rb") as f:
                    f.seek(start)
                    left = end - start
                    while left:
                        got = f.readinto(view[: min(left, len(chunk))])
                        if not got:
                            break
                        left -= got
                        for off in range(0, got if first is not None else 0, REC):
                            if self._ok(view[off : off + REC]) and struct.unpack_from("<I", chunk, off)[0] >= since:
                                struct.pack_into("<I", chunk, off, seq)
                                struct.pack_into("<H", chunk, off + 14, _crc(view[off : off + 14]))
                                seq += 1
                        out.write(view[:got])
        if first is not None and seq != first:
            self.next_seq = seq
        # The state names the new generation in one rename: before it the old one is
        # whole and in force, after it the new one.
        old = self._data()
        self.gen = new
        self.head = 0
        self.end = end - start
        self._save()
        try:
            os.remove(old)
        except OSError:
            pass

    # -- the queue ----------------------------------------------------------
    def depth(self):
        return (self.end - self.head) // REC

    def append(self, ts, t10, h10, synced):
        """Store one reading; returns its seq. t10/h10 are tenths."""
        if self.depth() >= self.max_items:
            # Full: drop the oldest 1 % at once, so the head pointer (and compaction)
            # is written once per hundred readings rather than on every append.
            self.drop(max(1, self.max_items // 100), self.FULL)
        seq = self.next_seq
        rec = struct.pack(_FMT, seq, ts, t10, h10, self.epoch & 0xFF, 0 if synced else UNSYNCED)
        rec += struct.pack("<H", _crc(rec))
        with open(self._data(), "ab") as f:
            f.write(rec)
        self.next_seq = seq + 1
        self.end += REC
        return seq

    def peek(self, n):
        """Up to n oldest readings as (seq, unix_ts, t10, h10).

        The readings returned are consecutive, so ack(len(items)) removes exactly them.
        A reading taken before the clock was set is held back until an offset for its
        clock epoch is known; one from an older epoch whose offset can never be known
        (power lost before the clock was set), or a damaged record, is dropped and counted."""
        while True:
            if self.end <= self.head:
                return []
            # A record at a time into one buffer, and a list sized up front: a batch of 100
            # needs no 1.6 KB block whole (beside the send buffer the heap has none left at
            # 64 KiB, only smaller holes), and leaves no per-record buffers or list growth.
            count = min(n, self.depth())
            out = [None] * count
            buf = bytearray(REC)
            k = skip = 0
            with open(self._data(), "rb") as f:
                f.seek(self.head)
                for _ in range(count):
                    got = f.readinto(buf)
                    if not got:
                        break
                    rec = buf if got == REC else buf[:got]
                    item = self._resolve(rec)
                    if item is False:
                        break
                    if item is None:
                        if k:
                            break
                        skip += 1
                        if self._ok(rec) and rec[12] not in self.clockless:
                            self.forgotten += 1
                        continue
                    out[k] = item
                    k += 1
            del out[k:]
            if not skip:
                return out
            self.drop(skip, self.CLOCK)

    def _resolve(self, rec):
        # (seq, ts, t10, h10); None: can never be sent; False: wait for the clock.
        if not self._ok(rec):
            return None
        seq, ts, t10, h10, epoch, flags = struct.unpack(_FMT, rec[:14])
        if flags & UNSYNCED:
            shift = self.offsets.get(str(epoch))
            if shift is None:
                return False if epoch == self.epoch & 0xFF else None
            ts += shift
        return (seq, ts, t10, h10)

    def ack(self, n):
        """The first n readings (as returned by peek) were delivered."""
        self._advance(n)

    def drop(self, n, cause):
        """The first n readings can never be delivered: count them as dropped, by cause
        (FULL, CLOCK or POISON)."""
        n = min(n, self.depth())
        self.dropped += n
        self.drops[cause] += n
        self._advance(n)

    def renumber(self, first, since=0):
        """Give the unsent readings whose seq is >= since (the lowest conflict) the seqs
        first, first + 1, ... in order, and move next_seq past them: the receiver holds
        other readings under their seqs (409 seq_conflict, after the flash was erased).
        Those below since keep theirs: they may be re-sends the receiver already stored
        under them. Only seq changes: ts, values, clock
        epoch and flags are kept, so each reading's ts stays the one it was first sent
        with. Atomic: the renumbered records go into the next generation, which the
        state names in one rename, so a power cut at any point leaves either the old
        numbering or the new one, whole, and every reading exactly once."""
        self._rewrite(self.head, self.end, first, since)

    def _advance(self, n):
        self.head = min(self.end, self.head + n * REC)
        if self.head == self.end:
            self._rewrite(self.end, self.end)
        elif self.head >= 4096 and self.head * 2 >= self.end:
            self._rewrite(self.head, self.end)
        else:
            self._save()

    def new_clock_epoch(self):
        """The device clock restarted (power loss): readings now carry a new epoch."""
        if str(self.epoch & 0xFF) not in self.offsets:
            self.clockless = (self.clockless + [self.epoch & 0xFF])[-8:]
        self.epoch = (self.epoch + 1) & 0xFF
        self.offsets.pop(str(self.epoch), None)
        self._save()

    def set_clock_offset(self, offset):
        """The clock was set: raw ts of this epoch + offset = Unix ts. The first offset
        known for an epoch stays: a reading converted with it may have been sent, and a
        re-send must be byte-for-byte the first send."""
        key = str(self.epoch & 0xFF)
        if key in self.offsets:
            return
        self.offsets[key] = offset
        if len(self.offsets) > 4:
            # Keep the 4 newest epochs: by how far each is behind this one (epochs count
            # mod 256), never by the dict's order, which in MicroPython is the hash order
            # of a dict rebuilt from JSON at every boot.
            for k in sorted(self.offsets, key=lambda k: (self.epoch - int(k)) & 0xFF)[4:]:
                self.offsets.pop(k)
        self._save()
