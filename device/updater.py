# Over-the-air switch and rollback (docs/ota.md), run by main.py before the app is
# imported, and only while ota.state exists. Never part of a release: a bad release
# cannot break the code that removes it.
#
# ota.state (JSON, replaced atomically: temporary file, then rename) holds the phase:
#   ready    a release is downloaded and verified in ota/: switch at this boot
#   retire   moving the running app's .mpy files into old/
#   install  moving the release's files from ota/ into place
#   trial    the release runs; committed by its first verified answer, rolled back
#            after TRIAL_BOOTS boots without one (crash at import, hang, bad config)
#   rb_clear, rb_restore   rolling back: remove the release's files, restore old/
#   done     committed (or rolled back): old/ and ota/ are cleared at the next boot
# Every phase is a loop of renames that can be cut and run again from its start: the
# files still to move are exactly the ones still where the phase moves them from.
import json
import os

STATE = "ota.state"
STAGE = "ota"
OLD = "old"
OWN = ("updater.mpy",)  # the board's own: never moved
TRIAL_BOOTS = 3


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def load():
    try:
        with open(STATE) as f:
            s = json.loads(f.read())
        return s if isinstance(s, dict) else {}
    except (OSError, ValueError):
        return {}


def save(s):
    with open(STATE + ".tmp", "w") as f:
        f.write(json.dumps(s))
    os.rename(STATE + ".tmp", STATE)


def _mpy(path):
    d = path or "."
    try:
        names = os.listdir(d)
    except OSError:
        return []
    return [n for n in names if n.endswith(".mpy") and n not in OWN]


def _clear(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        os.remove(path + "/" + n)


def _phase(s, phase):
    s["phase"] = phase
    save(s)


def boot():
    """Advance the update by one boot; returns True while a release is on trial (main.py
    then resets the board if the app fails to start, so every failed start is counted)."""
    s = load()
    phase = s.get("phase")
    if phase == "ready":
        _clear(OLD)
        if not _exists(OLD):
            os.mkdir(OLD)
        _phase(s, "retire")
        phase = "retire"
    if phase == "retire":
        for n in _mpy(""):
            os.rename(n, OLD + "/" + n)
        _phase(s, "install")
        phase = "install"
    if phase == "install":
        for n in _mpy(STAGE):
            os.rename(STAGE + "/" + n, n)
        s["boots"] = 0
        _phase(s, "trial")
        phase = "trial"
    if phase == "trial":
        s["boots"] = s.get("boots", 0) + 1
        if s["boots"] <= TRIAL_BOOTS:
            save(s)
            return True
        s["failed"] = s.get("v")
        s["why"] = "no verified answer in %d boots" % TRIAL_BOOTS
        _phase(s, "rb_clear")
        phase = "rb_clear"
    if phase == "rb_clear":
        for n in _mpy(""):
            os.remove(n)
        _phase(s, "rb_restore")
        phase = "rb_restore"
    if phase == "rb_restore":
        for n in _mpy(OLD):
            os.rename(OLD + "/" + n, n)
        try:
            os.remove("SAFE")  # the failed release's crashes put it there, not the app's
        except OSError:
            pass
        print("dhtlink: release %s rolled back: %s" % (s.get("v"), s.get("why")))
        _phase(s, "done")
        phase = "done"
    if phase == "done":
        _clear(OLD)
        _clear(STAGE)
        save({"phase": "idle", "failed": s.get("failed"), "why": s.get("why"), "last": s.get("v")})
    return False


def commit():
    """The running release reached a verified answer: keep it."""
    s = load()
    if s.get("phase") == "trial":
        s["failed"] = None
        s["why"] = None
        _phase(s, "done")
