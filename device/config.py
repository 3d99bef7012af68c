# config.json: read once at boot and validated key by key, so a typo is named
# at the REPL instead of turning into a crash loop.
import json

PATH = "config.json"
SETTINGS = "settings.json"  # remote settings, written by settings.py (docs/protocol.md)
# What `dhtlink devices set` may change: identity, Wi-Fi, endpoint and TLS stay USB-only,
# since a wrong one would cut the board off from the receiver that could fix it.
REMOTE = ("sensor.type", "sensor.pin", "interval_s", "batch_size", "max_batch_delay_s", "mode", "spool_max")

DEFAULTS = {
    "sensor": {"type": "DHT22", "pin": 4},
    "interval_s": 60,
    "batch_size": 20,
    "max_batch_delay_s": 1200,
    "mode": "deep_sleep",
    "spool_max": 5000,
    "static_ip": None,
    "tls_ca": None,
}
MODES = ("deep_sleep", "always_on")
SENSORS = ("DHT22", "DHT11")
# The protocol's facts, as cloud/protocol.py states them (tests/test_protocol_contract.py).
HEX = "0123456789abcdef"
SECRET_LEN = 64  # 32 random bytes as lowercase hex
ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
ID_MAX = 64
BATCH_MAX = 100  # readings in one POST


# The GPIOs of a classic ESP32 that can carry a DHT's data line, which the driver both
# drives and reads (drivers/dht/dht.c: open drain). PIN_WHY says why each other one cannot;
# host_tools/device_settings.py checks the same (tests/cli/test_provision_settings.py).
DHT_PINS = (0, 2, 4, 5, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 25, 26, 27, 32, 33)
PIN_WHY = (
    ((1, 3), "is the USB serial port (the REPL and every dhtlink tool)"),
    ((6, 7, 8, 9, 10, 11), "is wired to the module's flash"),
    ((12,), "is a strapping pin: the sensor's pull-up at power-on selects 1.8 V flash and the board does not start"),
    ((34, 35, 36, 37, 38, 39), "is input-only: a DHT needs a pin that can also pull its data line low"),
)


def pin_error(pin):
    """Why a classic ESP32 cannot read a DHT on GPIO pin, or None if it can."""
    if not isinstance(pin, int) or isinstance(pin, bool):
        return "must be a GPIO number, got %r" % (pin,)
    if pin in DHT_PINS:
        return None
    why = "does not exist on an ESP32"
    for pins, text in PIN_WHY:
        if pin in pins:
            why = text
    return "GPIO %d %s; use one of %s" % (pin, why, ", ".join(str(p) for p in DHT_PINS))


class ConfigError(Exception):
    pass


def _int(cfg, key, lo, hi):
    v = cfg[key]
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ConfigError("%s: must be a whole number from %d to %d, got %r" % (key, lo, hi, v))


def validate(cfg):
    if not isinstance(cfg, dict):
        raise ConfigError("config.json must hold a JSON object")
    for key in ("device_id", "secret", "wifi", "endpoint"):
        if key not in cfg:
            raise ConfigError("%s: missing (run `dhtlink provision` to write config.json)" % key)
    known = ("device_id", "secret", "wifi", "endpoint")
    for key in cfg:
        if key not in DEFAULTS and key not in known:
            raise ConfigError("%s: unknown key (check the spelling; see docs/firmware.md)" % key)
    for key in DEFAULTS:
        if key not in cfg:
            cfg[key] = DEFAULTS[key]
    dev = cfg["device_id"]
    if not isinstance(dev, str) or not 1 <= len(dev) <= ID_MAX or any(c not in ID_CHARS for c in dev):
        raise ConfigError("device_id: 1-64 characters of A-Z a-z 0-9 _ -")
    sec = cfg["secret"]
    if not isinstance(sec, str) or len(sec) != SECRET_LEN or any(c not in HEX for c in sec):
        raise ConfigError("secret: must be 64 lowercase hex characters")
    nets = cfg["wifi"]
    if not isinstance(nets, list) or not nets:
        raise ConfigError('wifi: must be a non-empty list of {"ssid", "password"}')
    for i, net in enumerate(nets):
        if not isinstance(net, dict) or not isinstance(net.get("ssid"), str) or not net["ssid"]:
            raise ConfigError("wifi[%d].ssid: missing or empty" % i)
        if not isinstance(net.get("password", ""), str):
            raise ConfigError("wifi[%d].password: must be a string" % i)
    url = cfg["endpoint"]
    if not isinstance(url, str) or not (url.startswith("http://") or url.startswith("https://")):
        raise ConfigError("endpoint: must be an http:// or https:// URL ending in /data")
    sensor = cfg["sensor"]
    if not isinstance(sensor, dict) or sensor.get("type") not in SENSORS:
        raise ConfigError("sensor.type: must be DHT22 or DHT11")
    why = pin_error(sensor.get("pin"))
    if why:
        raise ConfigError("sensor.pin: " + why)
    _int(cfg, "interval_s", 2, 86400)
    _int(cfg, "batch_size", 1, BATCH_MAX)
    _int(cfg, "max_batch_delay_s", 0, 7 * 86400)
    _int(cfg, "spool_max", 10, 100000)
    if cfg["mode"] not in MODES:
        raise ConfigError("mode: must be deep_sleep or always_on")
    ip = cfg["static_ip"]
    if ip is not None:
        if not isinstance(ip, dict):
            raise ConfigError('static_ip: must be null or {"ip", "netmask", "gateway", "dns"}')
        for k in ("ip", "netmask", "gateway", "dns"):
            if not isinstance(ip.get(k), str):
                raise ConfigError("static_ip.%s: missing" % k)
    ca = cfg["tls_ca"]
    if ca is not None:
        if not isinstance(ca, str) or not url.startswith("https://"):
            raise ConfigError("tls_ca: must be null, or the name of a DER certificate file for an https:// endpoint")
        try:
            open(ca).close()
        except OSError:
            raise ConfigError("tls_ca: no file %s on the board: copy the CA certificate (DER) there" % ca) from None
    return cfg


def _read(path):
    try:
        with open(path) as f:
            raw = f.read()
    except OSError:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ConfigError("%s is not valid JSON: re-run `dhtlink provision`" % path) from None


def _improv(fw, path):
    """No Wi-Fi yet (no config.json, or `dhtlink up`'s identity alone): Improv Wi-Fi on the
    serial line until a host gives the board a network (device/improv.py keeps it in
    config.json), then config.json read again, so the app starts in the same boot."""
    import sys
    import gc
    import improv

    improv.Improv(fw).serve()
    del improv, sys.modules["improv"]
    gc.collect()
    return _read(path)


def merge(cfg, remote):
    # cfg with remote settings ({"v": n, "interval_s": ..., "sensor.pin": ...}) applied,
    # as a new dict; a key the board does not take remotely is an error, never skipped.
    out = dict(cfg)
    for key in remote:
        if key == "v":
            continue
        if key not in REMOTE:
            raise ConfigError("%s: not a setting a board takes remotely" % key)
        if key.startswith("sensor."):
            sensor = dict(out.get("sensor") or DEFAULTS["sensor"])
            sensor[key[7:]] = remote[key]
            out["sensor"] = sensor
        else:
            out[key] = remote[key]
    return out


def load(path=PATH, remote=True, improv_fw=None):
    """config.json, validated (with improv_fw, the firmware version, a board without Wi-Fi
    first gets it over Improv Wi-Fi); with remote=True the remote settings in settings.json on
    top (cfg["settings_v"] their version, 0 for none). settings.json was validated
    against config.json when it was received; should it no longer fit (config.json
    changed by hand), the board runs config.json alone and says why at the REPL."""
    cfg = _read(path)
    if improv_fw and (cfg is None or (isinstance(cfg, dict) and not cfg.get("wifi"))):
        cfg = _improv(improv_fw, path)
    if cfg is None:
        raise ConfigError("no %s on the board: run `dhtlink provision` to write it" % path)
    if not remote:
        return validate(cfg)
    try:
        offer = _read(SETTINGS)
        if isinstance(offer, dict) and isinstance(offer.get("v"), int):
            merged = validate(merge(cfg, offer))
            merged["settings_v"] = offer["v"]
            return merged
    except ConfigError as e:
        print("dhtlink: remote settings not applied:", e)
    cfg = validate(cfg)
    cfg["settings_v"] = 0
    return cfg


def summary(cfg):
    # Safe to print or report: no secret, no Wi-Fi password.
    out = {}
    for k in cfg:
        if k == "secret":
            continue
        if k == "wifi":
            out[k] = [n.get("ssid") for n in cfg[k]]
        else:
            out[k] = cfg[k]
    return out
