# Remote settings (docs/protocol.md, "Remote settings"): the receiver offers them in a
# signed answer; the board checks the whole resulting config with config.validate, and
# keeps them in settings.json (temporary file, then one rename) only if all of it is
# valid, so a power cut or a bad value never leaves half a change. They take effect at
# the next boot (a deep-sleep wake is one); the running version, or the refused one with
# why, goes into status. Loaded only when an answer carries an offer.
import json
import os


def receive(offer, rtc, log):
    """Check and store an offer {"v": n, key: value, ...}; returns True when a new
    version was stored (it runs from the next boot)."""
    v = offer.get("v") if isinstance(offer, dict) else None
    if not isinstance(v, int) or v <= 0:
        return False
    if v in (rtc.get("cfg_v"), rtc.get("cfg_new"), rtc.get("cfg_refused")):
        return False  # running, stored, or refused already
    import config

    try:
        # Against config.json alone: an offer is the whole desired set, not a change to
        # the settings running now.
        config.validate(config.merge(config.load(remote=False), offer))
    except config.ConfigError as e:
        rtc["cfg_refused"] = v
        rtc["cfg_error"] = str(e)[:80]  # bounded: it rides in every request's status
        log.warn("remote settings v%d refused: %s" % (v, e))
        return False
    tmp = config.SETTINGS + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(offer))
    os.rename(tmp, config.SETTINGS)
    rtc["cfg_new"] = v
    log.info("remote settings v%d stored, applied from the next boot" % v)
    return True
