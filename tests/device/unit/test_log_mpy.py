"""The rotating log under MicroPython: two files of at most 4 KiB, newest in log.txt."""


def test_log_rotates_and_stays_small(mpy):
    mpy.run("""
        import log
        log.echo = False
        for i in range(500):
            log.info("line %d of the test" % i)
    """)
    new = (mpy.workdir / "log.txt").read_text()
    old = (mpy.workdir / "log.1.txt").read_text()
    assert len(new) <= 4096 and len(old) <= 4096
    assert new.splitlines()[-1].endswith("I line 499 of the test")
    # Rotation drops only whole lines older than the two files hold, in order.
    numbers = [int(line.split()[3]) for line in (old + new).splitlines()]
    assert numbers == list(range(numbers[0], 500)) and numbers[0] > 0


def test_a_failing_flash_does_not_stop_the_caller(mpy):
    (mpy.workdir / "log.txt").mkdir()  # an unwritable log path
    out = mpy.run("""
        import log
        log.echo = False
        log.error("still running")
        print("carried on")
    """)
    assert "carried on" in out
