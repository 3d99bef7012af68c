import os


def _on_trial():
    # An over-the-air update in progress (docs/ota.md): switch, count a trial boot, or
    # roll back, before any module of the release is imported.
    try:
        os.stat("ota.state")
    except OSError:
        return False
    import sys
    import updater

    trial = updater.boot()
    del sys.modules["updater"]
    return trial


if _on_trial():
    # A release on trial must never stop at the REPL: a failed start resets the board,
    # and each boot counts towards its rollback.
    try:
        import app

        app.TRIAL = True
        app.main()
    except Exception as e:  # noqa: BLE001 - any failure of the release is counted, whatever it is
        print("dhtlink: release on trial failed to start: %r" % e)
    import machine

    machine.reset()
else:
    import app

    app.main()
