import json

import pytest

GOOD = {
    "device_id": "greenhouse-01",
    "secret": "ab" * 32,
    "wifi": [{"ssid": "home", "password": "pw"}],
    "endpoint": "http://192.168.1.20:8080/data",
}


def load(mpy, config):
    (mpy.workdir / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return mpy.json("""
        import json, config
        try:
            cfg = config.load()
            print(json.dumps({"ok": config.summary(cfg)}))
        except config.ConfigError as e:
            print(json.dumps({"error": str(e)}))
    """)


def test_defaults_and_summary_without_secrets(mpy):
    out = load(mpy, GOOD)["ok"]
    assert out["interval_s"] == 60 and out["batch_size"] == 20 and out["mode"] == "deep_sleep"
    assert out["wifi"] == ["home"] and "secret" not in out and "pw" not in json.dumps(out)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"device_id": "bad id"}, "device_id"),
        ({"secret": "AB" * 32}, "secret"),
        ({"secret": "ab" * 31}, "secret"),
        ({"wifi": []}, "wifi"),
        ({"wifi": [{"password": "x"}]}, "wifi[0].ssid"),
        ({"endpoint": "ftp://x/data"}, "endpoint"),
        ({"sensor": {"type": "BME280", "pin": 4}}, "sensor.type"),
        ({"sensor": {"type": "DHT22", "pin": 99}}, "sensor.pin"),
        ({"interval_s": 1}, "interval_s"),
        ({"batch_size": 101}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"mode": "sometimes"}, "mode"),
        ({"static_ip": {"ip": "1.2.3.4"}}, "static_ip.netmask"),
        ({"intervall_s": 60}, "intervall_s"),
        ({"max_batch_delay_s": -1}, "max_batch_delay_s"),
        ({"spool_max": "5000"}, "spool_max"),
        ({"static_ip": "10.0.0.2"}, "static_ip"),
        ({"wifi": [{"ssid": "home", "password": 1234}]}, "wifi[0].password"),
        ({"tls_ca": "ca.der"}, "tls_ca"),  # an http:// endpoint
        ({"endpoint": "https://x/data", "tls_ca": "missing.der"}, "tls_ca"),
    ],
)
def test_each_bad_key_is_named(mpy, change, named):
    error = load(mpy, {**GOOD, **change})["error"]
    assert error.startswith(named + ":")
    assert "ab" * 32 not in error


@pytest.mark.parametrize("missing", ["device_id", "secret", "wifi", "endpoint"])
def test_missing_required_keys(mpy, missing):
    config = {k: v for k, v in GOOD.items() if k != missing}
    assert load(mpy, config)["error"].startswith(missing + ": missing")


def test_no_file_and_broken_json(mpy):
    assert "dhtlink provision" in mpy.json("""
        import json, config
        try:
            config.load()
        except config.ConfigError as e:
            print(json.dumps(str(e)))
    """)
    assert "not valid JSON" in load(mpy, "{nope")["error"]


def test_tls_ca_file_on_the_board(mpy):
    (mpy.workdir / "ca.der").write_bytes(b"0")
    out = load(mpy, {**GOOD, "endpoint": "https://x.example/data", "tls_ca": "ca.der"})["ok"]
    assert out["tls_ca"] == "ca.der"
