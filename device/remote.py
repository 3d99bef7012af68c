# What a sending wake does after the send for fleet management: remote settings offered
# (settings.py), a release on trial that reached a verified answer (updater.py), a release
# offered (ota.py). Loaded only when one of them applies, so the plain send path's heap
# does not carry this code.
import gc
import sys


def after_send(delivery, cfg, rtc, log, deadline, trial):
    """Returns whether a release is still on trial."""
    offer, release = delivery.offered, delivery.release
    delivery.offered = delivery.release = None
    if offer:
        import settings

        settings.receive(offer, rtc, log)
        del sys.modules["settings"]
        sys.modules.pop("config", None)
    if trial and delivery.answered:
        import updater

        updater.commit()
        del sys.modules["updater"]
        trial = False
        rtc["ota"] = None
        log.info("release committed: it reached a verified answer")
    if release and not trial:
        # Downloads run in a wake whose send was small: this wake may have sent a batch of
        # 100, after which the heap has no room for the download (bench/ota_update.py), so
        # the next wake sends what it has at once and downloads then.
        if not delivery.soon:
            rtc["ota_soon"] = 1
            return trial
        gc.collect()
        import ota

        try:
            ota.step(release, cfg, log, deadline)
        except Exception as e:  # noqa: BLE001 - a bad offer or store must never crash the sensor app
            log.warn("release download: %r (resumed at the next send)" % e)
        import updater

        updater.note(rtc)  # downloading, ready, refused, or (offered again after a rollback) why
        sys.modules.pop("ota", None)
        sys.modules.pop("updater", None)
        if rtc["ota"] == "download":
            rtc["ota_soon"] = 1  # not finished: the next wake sends early again and resumes
    return trial
