# The sensor cycle: wake, read, spool, send when a batch is due, sleep.
# Everything that must survive deep sleep but not power loss lives in RTC memory
# (a small JSON object); everything that must survive power loss is in the spool.
import gc
import json
import os
import sys
import time
import machine
import log

FW = "0.1.0"
AWAKE_CAP_MS = 8000  # hard cap on a cycle's awake time, Wi-Fi and server down included
# A full scan of the 13 channels and DHCP after a power loss (no access point in RTC
# memory) take 3-5 s on a real network; the known access point's fast path gets half.
WIFI_BUDGET_MS = 6000
WDT_MS = 30000  # longer than the awake cap; a hung cycle resets the board
SAFE = "SAFE"
CRASH_LIMIT = 3
TRIAL = False  # set by main.py while a new release is on trial (docs/ota.md)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def rtc_load():
    try:
        return json.loads(machine.RTC().memory() or b"{}")
    except ValueError:
        return {}


def rtc_save(rtc):
    machine.RTC().memory(json.dumps(rtc).encode())


def _batch_due(cfg, spool, clock, fresh, coming=0):
    # coming: readings this wake will add before it asks again.
    if fresh or TRIAL or spool.depth() + coming >= cfg["batch_size"]:
        return True  # a fresh start reports at once, so a new or reset board shows up
    if not clock.valid():
        return True  # only a connection can set the clock
    oldest = spool.peek(1)
    return bool(oldest) and clock.unix() - oldest[0][1] >= cfg["max_batch_delay_s"]


class Node:
    def __init__(self, cfg, rtc):
        import clock
        import spool

        self.cfg = cfg
        self.rtc = rtc
        self.clock = clock
        self.spool = spool.Spool(cfg["spool_max"])
        cause = machine.reset_cause()
        self.fresh = cause != machine.DEEPSLEEP_RESET
        rtc["boot"] = rtc.get("boot", 0) + 1
        # The remote settings version this boot runs (config.load applied settings.json).
        rtc["cfg_v"] = cfg.get("settings_v", 0)
        rtc.pop("cfg_new", None)
        # The update's status keys are kept in RTC memory by the code that changes them
        # (remote.py after a download step or a commit; updater.note), never read from flash
        # here: that would cost this wake's send heap (docs/ota.md).
        if TRIAL:
            rtc["ota"] = "trial"
        elif rtc.get("ota") == "trial":
            rtc["ota"] = None  # rolled back at this boot: the next offer's step notes why
        if self.fresh:
            # The RTC keeps counting through soft, software and watchdog resets and panics;
            # any other start may be a power loss, after which the raw clock restarted and needs a new offset.
            if not clock.valid() and cause not in (machine.SOFT_RESET, machine.HARD_RESET, machine.WDT_RESET):
                self.spool.new_clock_epoch()
            rtc.pop("tx_next", None)  # a fresh start tries to send at once
            log.info("boot %d (reset cause %d), %d readings spooled" % (rtc["boot"], cause, self.spool.depth()))
        # A sending wake's buffer (6.5 KB at batch 100) before the sensor's and Wi-Fi's
        # modules and objects: their long-lived allocations split the free tail it needs.
        self.buf = None
        if _batch_due(cfg, self.spool, clock, self.fresh or "ota_soon" in rtc, 1):
            self.buf = self._send_buffer()
        import sensor
        import wifi

        s = cfg["sensor"]
        # The DHT stays powered through deep sleep; after power-on it needs its settle time.
        self.sensor = sensor.Sensor(s["type"], s["pin"], 10000 if cause == machine.DEEPSLEEP_RESET else 0)
        self.wifi = wifi.WiFi(cfg["wifi"], rtc, cfg["static_ip"])

    def status(self):
        out = {
            "fw": FW,
            "rssi": self.wifi.rssi(),
            "heap_free": gc.mem_free(),
            "boot": self.rtc["boot"],
            "sensor_errors": self.rtc.get("sensor_errors", 0),
            "unverified": self.rtc.get("unverified", 0),
            "dropped": self.spool.dropped,
            "cfg_v": self.rtc["cfg_v"],
        }
        for k in ("ota", "ota_failed", "ota_error"):
            if self.rtc.get(k):
                out[k] = self.rtc[k]
        if "cfg_refused" in self.rtc:
            out["cfg_refused"] = self.rtc["cfg_refused"]
            out["cfg_error"] = self.rtc.get("cfg_error", "")
        out.update(self.spool.drops)
        return out

    def _send_buffer(self):
        gc.collect()
        import transport

        return bytearray(transport.buffer_size(self.cfg["batch_size"]))

    def _deliver(self, delivery, deadline):
        # The buffer passes through this frame only: an argument left in cycle's frame
        # would keep it (6.5 KB at batch 100) from the collector, which scans frames
        # conservatively, and remote settings or a download after the send found no room.
        buf, self.buf = self.buf or self._send_buffer(), None
        return delivery.deliver(self.cfg, self.spool, self.clock, self.rtc, self.status(), log, deadline, buf)

    def _heap_mark(self):
        used = gc.mem_alloc()
        if used > self.rtc.get("heap_hw", 0):
            self.rtc["heap_hw"] = used

    def _online(self, deadline):
        budget = min(WIFI_BUDGET_MS, time.ticks_diff(deadline, time.ticks_ms()))
        return budget > 0 and self.wifi.connect(budget)

    def cycle(self, wdt):
        """One wake: returns the ms to sleep until the next reading is due."""
        global TRIAL
        start = time.ticks_ms()
        deadline = time.ticks_add(start, AWAKE_CAP_MS)
        cfg, rtc, clock = self.cfg, self.rtc, self.clock
        if self.buf is None and _batch_due(cfg, self.spool, clock, self.fresh or "ota_soon" in rtc, 1):
            self.buf = self._send_buffer()  # an always-on board's later cycles
        if not clock.valid() and self._online(deadline):
            # After power loss: set the clock while the DHT settles, so this reading is
            # stored with a real date rather than waiting for one (and lost to a second cut).
            clock.ntp(
                self.spool, time.ticks_add(time.ticks_ms(), min(3000, time.ticks_diff(deadline, time.ticks_ms())))
            )
        reading = self.sensor.read()
        if self.sensor.errors:
            # Failed tries, retried or not (a checksum error every few hundred reads is
            # normal for a DHT22 on a long cable; many say the wiring needs a look).
            rtc["sensor_retries"] = rtc.get("sensor_retries", 0) + self.sensor.errors
            self.sensor.errors = 0
        if reading:
            synced = clock.valid()
            self.spool.append(clock.unix(), reading[0], reading[1], synced)
        else:
            rtc["sensor_errors"] = rtc.get("sensor_errors", 0) + 1
            rtc["last_error"] = self.sensor.last_error
            log.warn("sensor: %s" % self.sensor.last_error)
        self._heap_mark()
        wdt.feed()
        if self.spool.depth() and _batch_due(cfg, self.spool, clock, self.fresh or "ota_soon" in rtc):
            if clock.unix() >= rtc.get("tx_next", 0):  # the send backoff (delivery._fail) allows it
                if self._online(deadline):
                    # Loaded only now, after Wi-Fi's allocations: the send's buffer (6.5 KB at
                    # batch 100) then finds one free block.
                    gc.collect()
                    import delivery

                    rtc["requests"] = rtc.get("requests", 0) + self._deliver(delivery, deadline)
                    self._heap_mark()
                    if delivery.offered or delivery.release or TRIAL:
                        # Remote settings, a release offered, a release on trial: only now,
                        # the send's buffer freed, and in a module loaded only for them.
                        gc.collect()
                        import remote

                        TRIAL = remote.after_send(delivery, cfg, rtc, log, deadline, TRIAL)
                        del sys.modules["remote"]
                    if cfg["mode"] == "deep_sleep":
                        self.wifi.off()
        if TRIAL:  # still on trial: this wake ran whole, but reached no verified answer
            import updater

            updater.excuse()
            del sys.modules["updater"]
        wdt.feed()
        self.buf = None  # not sent (no Wi-Fi, a backoff): an always-on board's next cycle decides again
        self.fresh = False
        awake = time.ticks_diff(time.ticks_ms(), start)
        return max(0, cfg["interval_s"] * 1000 - awake)


def report():
    """One JSON line for `dhtlink status` (in diag.py: no wake carries its code)."""
    import diag

    diag.report()


def _safe_mode(why):
    print("dhtlink: safe mode (%s). The app is not running; the REPL is yours." % why)
    print("Leave it with `dhtlink safe-mode off` (removes the SAFE file and resets).")


def main():
    import config

    if _exists(SAFE):
        _safe_mode("SAFE file present")
        return
    rtc = rtc_load()
    cause = machine.reset_cause()
    # The ESP32 port's causes (ports/esp32/modmachine.c, mp_machine_reset_cause): power-on,
    # a brownout and the EN (reset) button are PWRON_RESET; machine.reset() and a panic are
    # HARD_RESET; a watchdog WDT_RESET. Only a person gets the app another try: a crash
    # and a hang count, a reset the firmware planned ("planned") does not.
    if cause == machine.PWRON_RESET:
        rtc.pop("crashes", None)
    elif cause == machine.WDT_RESET or (cause == machine.HARD_RESET and not rtc.get("planned")):
        rtc["crashes"] = rtc.get("crashes", 0) + 1
    rtc.pop("planned", None)
    if rtc.get("crashes", 0) >= CRASH_LIMIT:
        with open(SAFE, "w") as f:
            f.write("crashed %d boots in a row\n" % rtc["crashes"])
        rtc["crashes"] = 0
        rtc_save(rtc)
        log.error("safe mode after %d crashing boots" % CRASH_LIMIT)
        _safe_mode("%d crashing boots in a row" % CRASH_LIMIT)
        return
    try:
        cfg = config.load(improv_fw=FW)
    except config.ConfigError as e:
        print("dhtlink: not starting:", e)
        return
    # The validator is only needed once: unloading it frees ~5 KB for the send.
    del config
    sys.modules.pop("config", None)
    gc.collect()
    wdt = machine.WDT(timeout=WDT_MS)
    try:
        node = Node(cfg, rtc)
        while True:
            sleep_ms = node.cycle(wdt)
            rtc["crashes"] = 0
            rtc_save(rtc)  # so report() and a crash see this cycle's counters
            if cfg["mode"] == "always_on":
                if rtc.get("cfg_new"):
                    # New remote settings: an always-on board has no next wake.
                    rtc["planned"] = 1
                    rtc_save(rtc)
                    machine.reset()

                # In slices the watchdog outlasts: a long interval must not reset the board.
                while sleep_ms > 0:
                    machine.lightsleep(min(sleep_ms, WDT_MS // 2))
                    wdt.feed()
                    sleep_ms -= WDT_MS // 2
                continue
            machine.deepsleep(sleep_ms)
    except Exception as e:  # noqa: BLE001 - any crash must end in a counted reset, not a hang
        # Counted by the next boot, as a panic's HARD_RESET is.
        rtc["last_error"] = "crash: %r" % e
        rtc_save(rtc)
        log.error("crash %d: %r" % (rtc.get("crashes", 0) + 1, e))
        time.sleep_ms(1000)
        machine.reset()
