# Over-the-air switch and rollback (docs/ota.md), run by main.py before the app is
# imported, and only while ota.state exists (a switch, a trial or a rollback under way);
# a download in progress keeps its own state in ota.dl (ota.py), which main.py ignores,
# so the wakes of a download and every wake after an update never load this module. The
# outcome of the last update is kept in ota.last. Never part of a release: a bad release
# cannot break the code that removes it.
#
# ota.state (JSON, replaced atomically: temporary file, then rename) holds the phase:
#   ready    a release is downloaded and verified in ota.new/: switch at this boot
#   retire   moving the running app's .mpy files into ota.old/
#   install  moving the release's files from ota.new/ into place
#   trial    the release runs; committed by its first verified answer, rolled back
#            after TRIAL_BOOTS failed boots (crash at import, hang, bad config)
#   rb_clear, rb_restore   rolling back: remove the release's files, restore ota.old/
#   done     committed (or rolled back): ota.old/ and ota.new/ are cleared, the outcome goes to
#            ota.last and ota.state is removed
# Every phase is a loop of renames that can be cut and run again from its start: the
# files still to move are exactly the ones still where the phase moves them from.
import json
import os

STATE = "ota.state"
DOWNLOAD = "ota.dl"  # a download in progress (ota.py)
LAST = "ota.last"
STAGE = "ota.new"  # not "ota": a directory of that name would shadow ota.mpy on import
OLD = "ota.old"
OWN = ("updater.mpy",)  # the board's own: never moved
TRIAL_BOOTS = 3  # boots the release may crash or hang in (a power cut is not held against it)
# Trial wakes that ran whole but reached no verified answer (Wi-Fi down, the send backoff
# holding, a request lost on the way) give their boot back, up to this many: a bad network
# does not roll a good release back, and a release that never gets through still is.
EXCUSED_MAX = 288


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def load(path=STATE):
    try:
        with open(path) as f:
            s = json.loads(f.read())
        return s if isinstance(s, dict) else {}
    except (OSError, ValueError):
        return {}


def save(s, path=STATE):
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(s))
    os.rename(path + ".tmp", path)


def finish(outcome):
    # The outcome first, then the end of the update: a cut between the two runs "done" again.
    save({k: outcome[k] for k in outcome if outcome[k] is not None}, LAST)
    for path in (STATE, DOWNLOAD):
        try:
            os.remove(path)
        except OSError:
            pass


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
        try:
            os.remove(DOWNLOAD)  # left by a cut between ota.py's two writes
        except OSError:
            pass
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
        boots = s.get("boots", 0)
        if boots and _power_lost():
            boots -= 1  # the last boot ended in a power cut, not in a fault of the release
        s["boots"] = boots + 1
        if s["boots"] <= TRIAL_BOOTS:
            save(s)
            return True
        s["failed"] = s.get("v")
        s["why"] = "%d trial boots failed (crash, hang, or no verified answer)" % TRIAL_BOOTS
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
        finish({"v": s.get("v"), "failed": s.get("failed"), "why": s.get("why")})
    return False


def main():
    """main.py's start while ota.state exists: returns unless a release is on trial; a
    release on trial never stops at the REPL: a failed start resets the board, and each
    boot counts towards its rollback."""
    if not boot():
        return
    try:
        import app

        app.TRIAL = True
        app.main()
    except Exception as e:  # noqa: BLE001 - any failure of the release is counted, whatever it is
        print("dhtlink: release on trial failed to start: %r" % e)
    import machine

    machine.reset()


def _power_lost():
    import machine

    return machine.reset_cause() == machine.PWRON_RESET


def excuse():
    """A trial wake ran whole but reached no verified answer: the network's doing, until
    EXCUSED_MAX such wakes say otherwise."""
    s = load()
    if s.get("phase") == "trial" and s.get("boots", 0) > 0 and s.get("excused", 0) < EXCUSED_MAX:
        s["boots"] -= 1
        s["excused"] = s.get("excused", 0) + 1
        save(s)


def note(rtc):
    """The status keys: the phase under way (ota.state, or "download" while ota.dl
    exists), and how the last update failed (ota.last)."""
    last = load(LAST)
    rtc["ota"] = load().get("phase") or ("download" if _exists(DOWNLOAD) else None)
    failed = last.get("failed") or (last.get("v") if last.get("refused") else None)
    rtc["ota_failed"] = failed
    rtc["ota_error"] = (last.get("why") or "")[:80] if failed else None


def commit():
    """The running release reached a verified answer: keep it."""
    s = load()
    if s.get("phase") == "trial":
        s["failed"] = None
        s["why"] = None
        _phase(s, "done")
        _clear(OLD)
        _clear(STAGE)
        finish({"v": s.get("v")})
