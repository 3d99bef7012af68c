import textwrap


def spool(max_items, body=""):
    """A snippet that opens the spool (as a boot does) and runs body."""
    return f"import spool, json\nsp = spool.Spool(max_items={max_items})\n" + textwrap.dedent(body)


def test_fifo_ack_and_seq_across_reboots(mpy):
    out = mpy.json(
        spool(
            100,
            """
        for i in range(10):
            sp.append(1795000000 + i, 200 + i, 500, True)
        first = sp.peek(4)
        sp.ack(4)
        print(json.dumps([first, sp.depth(), sp.next_seq]))
    """,
        )
    )
    assert out[0] == [[i, 1795000000 + i, 200 + i, 500] for i in range(4)]
    assert out[1:] == [6, 10]
    rebooted = mpy.json(
        spool(
            100,
            """
        sp.append(1795000100, 1, 1, True)
        print(json.dumps([sp.depth(), sp.next_seq, sp.peek(1)]))
    """,
        )
    )
    assert rebooted == [7, 11, [[4, 1795000004, 204, 500]]]


def test_seq_never_reused_after_everything_is_acked(mpy):
    mpy.run(
        spool(
            100,
            """
        for i in range(5):
            sp.append(1795000000 + i, 1, 1, True)
        sp.ack(5)
    """,
        )
    )
    assert mpy.json(spool(100, "print(json.dumps([sp.depth(), sp.next_seq]))")) == [0, 5]


def test_bound_drops_oldest_and_counts_it(mpy):
    out = mpy.json(
        spool(
            20,
            """
        for i in range(30):
            sp.append(1795000000 + i, 1, 1, True)
        print(json.dumps([sp.depth(), sp.dropped, sp.peek(1)[0][0]]))
    """,
        )
    )
    depth, dropped, oldest = out
    assert depth <= 20 and dropped == 30 - depth and oldest == dropped


def test_torn_last_record_loses_only_that_record(mpy):
    mpy.run(
        spool(
            100,
            """
        for i in range(8):
            sp.append(1795000000 + i, i, i, True)
    """,
        )
    )
    whole = (mpy.workdir / "spool.0").read_bytes()
    state = (mpy.workdir / "spool.state").read_bytes() if (mpy.workdir / "spool.state").exists() else None
    for cut in range(len(whole) - 16, len(whole)):
        # A fresh flash image torn at `cut`: the power failed while the last record was written.
        for path in mpy.workdir.iterdir():
            if path.name.startswith("spool"):
                path.unlink()
        (mpy.workdir / "spool.0").write_bytes(whole[:cut])
        if state is not None:
            (mpy.workdir / "spool.state").write_bytes(state)
        out = mpy.json(
            spool(
                100,
                """
            kept = [r[0] for r in sp.peek(100)]
            sp.append(1795000100, 9, 9, True)
            print(json.dumps([kept, [r[0] for r in sp.peek(100)]]))
        """,
            )
        )
        assert out == [list(range(7)), list(range(8))], f"cut at byte {cut}"


def test_corrupt_last_record_is_ignored_and_appends_continue(mpy):
    mpy.run(
        spool(
            100,
            """
        for i in range(3):
            sp.append(1795000000 + i, i, i, True)
    """,
        )
    )
    data = mpy.workdir / "spool.0"
    raw = bytearray(data.read_bytes())
    raw[-3] ^= 0xFF
    data.write_bytes(bytes(raw))
    out = mpy.json(
        spool(
            100,
            """
        sp.append(1795000009, 9, 9, True)
        print(json.dumps([r[0] for r in sp.peek(10)]))
    """,
        )
    )
    assert out == [0, 1, 2]


def test_unsynced_readings_wait_for_the_clock_then_convert(mpy):
    out = mpy.json(
        spool(
            100,
            """
        sp.new_clock_epoch()
        sp.append(946684900, 1, 1, False)   # RTC at 2000-01-01 + 100 s
        sp.append(946684960, 2, 2, False)
        waiting = sp.peek(10)
        sp.set_clock_offset(1795000000 - 946684960)   # the clock is set 0 s after the second reading
        print(json.dumps([waiting, [r[1] for r in sp.peek(10)]]))
    """,
        )
    )
    assert out == [[], [1795000000 - 60, 1795000000]]


def test_readings_from_an_epoch_that_never_got_a_clock_are_dropped_and_counted(mpy):
    out = mpy.json(
        spool(
            100,
            """
        sp.new_clock_epoch()
        sp.append(946684900, 1, 1, False)
        sp.new_clock_epoch()                 # power lost again before the clock was set
        sp.append(946684800, 2, 2, False)
        sp.set_clock_offset(1795000000 - 946684800)
        print(json.dumps([[r[0] for r in sp.peek(10)], sp.dropped]))
    """,
        )
    )
    assert out == [[1], 1]


def test_compaction_keeps_unacked_records(mpy):
    out = mpy.json(
        spool(
            1000,
            """
        for i in range(400):
            sp.append(1795000000 + i, 1, 1, True)
        sp.ack(300)
        import os
        files = [f for f in os.listdir() if f.startswith("spool.") and f[6:].isdigit()]
        print(json.dumps([sp.peek(1)[0][0], sp.depth(), files, os.stat(files[0])[6]]))
    """,
        )
    )
    first, depth, files, size = out
    assert (first, depth) == (300, 100) and len(files) == 1 and size == 100 * 16


def test_a_full_spool_stays_bounded_on_flash(mpy):
    # While the receiver is unreachable for days the spool keeps dropping the oldest:
    # the data file must be compacted as it goes, not grow until the flash is full.
    out = mpy.json(
        spool(
            100,
            """
        import os
        biggest = 0
        for i in range(2000):
            sp.append(1795000000 + i, 1, 1, True)
            biggest = max(biggest, os.stat(sp._data())[6])
        print(json.dumps([sp.depth(), sp.dropped, sp.peek(1)[0][0], biggest]))
    """,
        )
    )
    depth, dropped, oldest, biggest = out
    assert depth <= 100 and dropped == 2000 - depth and oldest == dropped
    assert biggest <= 2 * 4096 + 2 * 100 * 16


def test_flash_bytes_written_per_reading(mpy):
    # Every byte the spool writes goes through open(); count them over 1000 readings sent
    # in batches of 20 (docs/firmware.md quotes this figure).
    out = mpy.json(
        spool(
            5000,
            """
        import builtins
        written = [0]
        class Counting:
            def __init__(self, f):
                self.f = f
            def write(self, b):
                written[0] += len(b)
                return self.f.write(b)
            def __getattr__(self, name):
                return getattr(self.f, name)
            def __enter__(self):
                return self
            def __exit__(self, *a):
                self.f.close()
        def counting_open(path, mode="r"):
            return Counting(builtins.open(path, mode))
        spool.open = counting_open
        for i in range(1000):
            sp.append(1795000000 + i, 215, 450, True)
            if sp.depth() == 20:
                sp.ack(len(sp.peek(20)))
        print(json.dumps(written[0] / 1000))
    """,
        )
    )
    assert 16 <= out <= 24
    print("flash bytes per reading:", out)
