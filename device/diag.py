# `import app; app.report()` for `dhtlink status`: one JSON line, no secret, no Wi-Fi
# password. A module of its own so that the app's wakes do not carry its code in the heap.
import json
import app


def report():
    import config
    import spool

    out = {"fw": app.FW, "safe_mode": app._exists(app.SAFE)}
    rtc = app.rtc_load()
    out["sensor_errors"] = rtc.get("sensor_errors", 0)
    out["sensor_retries"] = rtc.get("sensor_retries", 0)
    out["last_error"] = rtc.get("last_error")
    out["heap_hw"] = rtc.get("heap_hw", 0)
    out["requests"] = rtc.get("requests", 0)
    out["boot"] = rtc.get("boot", 0)
    out["unverified"] = rtc.get("unverified", 0)
    # Remote settings (running, stored, refused) and over-the-air updates (from its files:
    # this is no wake, its heap does not matter).
    import updater

    updater.note(rtc)
    for k in ("cfg_v", "cfg_new", "cfg_refused", "cfg_error", "ota", "ota_failed", "ota_error"):
        if rtc.get(k) is not None:
            out[k] = rtc[k]
    try:
        cfg = config.load()
        out["device_id"] = cfg["device_id"]
        out["config"] = config.summary(cfg)
        sp = spool.Spool(cfg["spool_max"])
    except config.ConfigError as e:
        out["config_error"] = str(e)
        sp = spool.Spool()
    out["spool_depth"] = sp.depth()
    out["next_seq"] = sp.next_seq
    out["seq_skipped"] = 0  # seqs renumberings jumped over
    try:
        # delivery.SKIPPED: named here, not imported, as loading delivery (and transport
        # and signing with it) would cost the REPL session that asked 6 KB of its heap.
        with open("seq.skip") as f:
            out["seq_skipped"] = int(f.read())
    except (OSError, ValueError):
        pass
    out["dropped"] = sp.dropped
    out.update(sp.drops)
    out["clock_forgotten"] = sp.forgotten
    print(json.dumps(out))
