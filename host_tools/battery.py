"""Battery life of a node from its duty cycle.

The awake phases the virtual board cannot measure (the radio, the chip's own boot) come
from published ESP32 figures, each named with its source in docs/performance.md:
- boot from deep sleep to main.py, stock MicroPython: 635 ms (glenn20,
  "Optimising MicroPython boot time on ESP32", FeatherS3 measurement); 192 ms for a plain
  ESP-IDF wake (hackaday.io ESP-NOW weather station log, 2020)
- Wi-Fi: ~120 ms scan on a known channel, 600-700 ms association at 240 MHz
  (esp32.com forum t=8942, measured with a power monitor); a full scan of all channels
  adds ~1.5 s (assumed from the 120 ms-per-channel-set figure above)
- TLS handshake with ECDHE on an ESP32 at 240 MHz: ~0.8 s (estimate, not cited)
Currents: ESP32-WROOM-32 datasheet typical figures (RF TX/RX average while associated
and sending ~120 mA, CPU at 240 MHz without radio ~40 mA, deep sleep ~10 uA) plus a
low-quiescent 3.3 V regulator (~5 uA) and a DHT22 (1.5 mA measuring, 50 uA standby).
"""

from dataclasses import asdict, dataclass

BOOT_S = 0.635
WIFI_FAST_S = 0.12 + 0.65  # known BSSID/channel from RTC memory
WIFI_FULL_S = 1.5 + 0.65
TLS_HANDSHAKE_S = 0.8
RADIO_MA = 120.0
CPU_MA = 40.0
SLEEP_MA = 0.010 + 0.005 + 0.050  # module deep sleep + regulator + DHT22 standby
DHT_MEASURE_MA = 1.5
BATTERY = "2x AA alkaline, 2500 mAh, 80 % usable through a 3.3 V LDO"
BATTERY_MAH = 2500 * 0.8


@dataclass(frozen=True)
class AwakeModel:
    buffering_s: float  # a wake that only reads and stores
    sending_s: float  # a wake that also connects and posts
    cpu_measured_s: float  # the firmware's own CPU time per wake, measured on the virtual board

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def awake_model(cpu_s: float, post_s: float = 0.05, tls: bool = False, cached_ap: bool = True) -> AwakeModel:
    """Modelled awake time of a buffering and a sending wake (seconds)."""
    radio = (WIFI_FAST_S if cached_ap else WIFI_FULL_S) + post_s + (TLS_HANDSHAKE_S if tls else 0.0)
    buffering = BOOT_S + cpu_s
    return AwakeModel(buffering_s=buffering, sending_s=buffering + radio, cpu_measured_s=cpu_s)


def battery_days(interval_s: float, sends_per_reading: float, model: AwakeModel) -> float:
    """Days on BATTERY at one wake per interval, a fraction of them sending."""
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    sends = min(1.0, max(0.0, sends_per_reading))
    radio_s = model.sending_s - model.buffering_s
    charge_mas = model.buffering_s * CPU_MA + sends * radio_s * RADIO_MA + 0.5 * DHT_MEASURE_MA
    awake_s = model.buffering_s + sends * radio_s
    charge_mas += max(0.0, interval_s - awake_s) * SLEEP_MA
    average_ma = charge_mas / interval_s
    return BATTERY_MAH / average_ma / 24
