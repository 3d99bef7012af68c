"""The modelled ESP32 wake and the battery life it gives: one model for `dhtlink bench`'s
report and for bench/device_cycle.py.

The host cannot time an ESP32. The model adds the firmware's own CPU time, measured on the
virtual board and scaled by an assumed host-to-ESP32 slowdown, to published figures for
what the host cannot run (boot, radio, TLS). Sources are named beside each figure;
docs/performance.md lists them.
"""

from dataclasses import asdict, dataclass

CITED: dict[str, tuple[float, str]] = {
    "boot_to_app_s": (
        0.30,
        "ESP32 power-on/wake to app_main, unoptimised: ~300 ms (Espressif, 'ESP Chip Startup Time Optimization')",
    ),
    "wifi_cached_s": (
        0.80,
        "association with cached channel+BSSID, no DHCP: ~120 ms one-channel scan + 600-700 ms connect "
        "at 240 MHz (esp32.io forum, topic 8942)",
    ),
    "wifi_full_s": (
        2.50,
        "association without the cache: all-channel scan (~13 x 120 ms) + connect + DHCP, derived from the same",
    ),
    "tls_handshake_s": (
        1.25,
        "mbedTLS RSA key exchange at 216 MHz: 1.2-1.3 s; ECDHE ~5 s "
        "(Stratify Labs, 'Handshake Times by Cipher using mbedTLS')",
    ),
    "dht22_read_s": (0.025, "DHT22 transaction: 18 ms start signal + 40-bit frame ~5 ms (datasheet timing)"),
}
# Assumption, not a measurement: MicroPython bytecode on an ESP32 at 240 MHz runs roughly
# 20-60x slower than on a desktop x86 core; 40x is used. Verify on hardware.
ESP32_SLOWDOWN = 40
# The firmware's host CPU per wake at batch 20, measured by bench/device_cycle.py (2026-11-23,
# after the in-place request body).
HOST_CPU_BUFFERING_S = 0.0018
HOST_CPU_SENDING_S = 0.0070

# Currents: ESP32-WROOM-32 datasheet typical figures, a low-quiescent 3.3 V LDO, a DHT22.
RADIO_MA = 120.0  # Wi-Fi associating and sending, averaged
CPU_MA = 40.0  # 240 MHz, radio off
SLEEP_MA = 0.010 + 0.005 + 0.050  # module deep sleep + regulator + DHT22 standby
DHT_MEASURE_MA = 1.5
BATTERY = "2x AA alkaline, 2500 mAh, 80 % usable through a 3.3 V LDO"
BATTERY_MAH = 2500 * 0.8


@dataclass(frozen=True)
class AwakeModel:
    buffering_s: float  # a wake that reads and stores
    sending_s: float  # a wake that also connects and posts

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def figure(name: str) -> float:
    return CITED[name][0]


def awake_model(
    cpu_buffering_s: float = HOST_CPU_BUFFERING_S * ESP32_SLOWDOWN,
    cpu_sending_s: float = HOST_CPU_SENDING_S * ESP32_SLOWDOWN,
    tls: bool = False,
    cached_ap: bool = True,
) -> AwakeModel:
    """Modelled awake seconds of a buffering and a sending wake."""
    base = figure("boot_to_app_s") + figure("dht22_read_s")
    radio = figure("wifi_cached_s" if cached_ap else "wifi_full_s") + (figure("tls_handshake_s") if tls else 0.0)
    return AwakeModel(buffering_s=base + cpu_buffering_s, sending_s=base + cpu_sending_s + radio)


def battery_days(interval_s: float, sends_per_reading: float, model: AwakeModel) -> float:
    """Days on BATTERY at one wake per interval, a fraction of the wakes sending."""
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    sends = min(1.0, max(0.0, sends_per_reading))
    radio_s = model.sending_s - model.buffering_s
    charge_mas = model.buffering_s * CPU_MA + sends * radio_s * RADIO_MA
    charge_mas += figure("dht22_read_s") * DHT_MEASURE_MA
    charge_mas += max(0.0, interval_s - model.buffering_s - sends * radio_s) * SLEEP_MA
    return BATTERY_MAH / (charge_mas / interval_s) / 24
