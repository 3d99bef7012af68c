"""A bench run's figures: summed over the fleet, rendered for a person or as JSON."""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from host_tools.models import battery, costs
from host_tools.sim.verify import DeviceResult

LOOK_PORT = 8080  # where the report suggests serving the run's store to look at it


DROP_NAMES = {"drop_full": "spool full", "drop_clock": "no clock", "drop_poison": "poison"}


@dataclass(frozen=True)
class Asked:
    """What a run was asked for."""

    devices: int
    hours: float
    interval: int
    seed: int
    chaos: bool


@dataclass
class Seen:
    """What the run saw besides the boards' own counts: the receiver's and the proxy's."""

    wall_s: float
    data_dir: Path
    duplicates_absorbed: int = 0  # re-sent readings the receiver answered as duplicates
    faults: dict[str, int] = field(default_factory=dict)  # injected by the chaos proxy, by kind
    endpoint: str = ""  # the receiver, when the fleet ran against one it did not start


@dataclass
class Report:
    devices: int
    hours: float
    interval_s: int
    seed: int
    chaos: bool
    wall_s: float
    produced: int
    stored: int
    duplicates_absorbed: int
    duplicates_stored: int
    lost: int
    dropped: int
    drops: dict[str, int]
    unverified: int
    still_spooled: int
    requests_per_reading: float
    bytes_per_reading: float
    heap_high_water: int
    power_cuts: int
    watchdog_resets: int
    battery: dict[str, Any]
    aws_cost_per_device_month: dict[str, Any]
    chaos_faults: dict[str, int] = field(default_factory=dict)
    per_device: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_dir: str = ""
    endpoint: str = ""  # the receiver, when the fleet ran against one it did not start
    pi_nodes: int = 0  # Linux nodes (dhtlink node) flown beside the boards
    store: str = "sqlite"
    # Writes of a batch that began while another write of the same device was under way.
    overlapping_writes: dict[str, int] = field(default_factory=dict)
    # With --ota: the release offered and where each board's update ended (sim/fleet.ota_outcome).
    ota: dict[str, Any] = field(default_factory=dict)
    clock_forgotten: int = 0  # of drops["drop_clock"]: readings whose clock was known once


def _sum_drops(results: dict[str, DeviceResult]) -> dict[str, int]:
    total: dict[str, int] = {}
    for result in results.values():
        for cause, count in result.drops.items():
            total[cause] = total.get(cause, 0) + count
    return total


def summarize(asked: Asked, results: dict[str, DeviceResult], seen: Seen) -> Report:
    """The fleet's figures from each device's result, the battery and cost models at that traffic."""
    produced = sum(r.produced for r in results.values())
    stored = sum(r.stored for r in results.values())
    requests = sum(r.requests for r in results.values())
    wire = sum(r.bytes_on_wire for r in results.values())
    per_reading = requests / produced if produced else 0.0
    model = battery.awake_model()
    cost = costs.cost_per_device_month(asked.interval, stored / requests if requests else 1.0)
    return Report(
        devices=asked.devices,
        hours=asked.hours,
        interval_s=asked.interval,
        seed=asked.seed,
        chaos=asked.chaos,
        wall_s=round(seen.wall_s, 1),
        produced=produced,
        stored=stored,
        duplicates_absorbed=seen.duplicates_absorbed,
        duplicates_stored=sum(r.duplicates_stored for r in results.values()),
        lost=sum(r.lost for r in results.values()),
        dropped=sum(r.dropped for r in results.values()),
        drops=_sum_drops(results),
        clock_forgotten=sum(r.clock_forgotten for r in results.values()),
        unverified=sum(r.unverified for r in results.values()),
        still_spooled=sum(r.still_spooled for r in results.values()),
        requests_per_reading=round(per_reading, 4),
        bytes_per_reading=round(wire / produced if produced else 0, 1),
        heap_high_water=max((r.heap_high_water for r in results.values()), default=0),
        power_cuts=sum(r.power_cuts for r in results.values()),
        watchdog_resets=sum(r.watchdog_resets for r in results.values()),
        battery={
            "days": round(battery.battery_days(asked.interval, per_reading, model), 1),
            # the deployed path: API Gateway speaks HTTPS only, a TLS handshake every sending wake
            "days_https": round(battery.battery_days(asked.interval, per_reading, battery.awake_model(tls=True)), 1),
            "battery": battery.BATTERY,
            "module": "ESP32-WROOM-32, deep sleep between readings",
            "awake_s": model.as_dict(),
        },
        aws_cost_per_device_month={k: (round(v, 6) if isinstance(v, float) else v) for k, v in cost.as_dict().items()},
        chaos_faults=seen.faults,
        per_device={k: asdict(v) for k, v in results.items()},
        data_dir=str(seen.data_dir.resolve()),
        endpoint=seen.endpoint,
    )


def _store_line(report: Report) -> str:
    if report.endpoint:
        return f"the receiver at {report.endpoint}"
    if report.store == "dynamodb":
        return "DynamoDB over HTTP (moto's server app; judged by a Scan of the readings table)"
    return "SQLite (judged from the file)"


def as_json(report: Report) -> dict[str, Any]:
    return asdict(report)


def _drop_causes(drops: dict[str, int]) -> str:
    named = [f"{DROP_NAMES.get(cause, cause)} {count}" for cause, count in drops.items() if count]
    return f"({', '.join(named)})" if named else "(none: no spool overflow, no reading without a clock, no poison)"


def _drop_verdict(report: Report) -> str:
    """Whether the drops are the designed outcome of the faults the run injected."""
    if not report.dropped:
        return ""
    if report.drops.get("unexplained") or report.clock_forgotten:
        return ": NOT expected (below)"
    if report.drops.get("drop_poison"):
        return ": the receiver refused some (below)"
    return ": expected from the power cuts and outages injected (below)" if report.chaos else ": see below"


# What each drop cause means, for a person reading the report.
DROP_WHY = {
    "drop_clock": "taken after a power cut while the board could not learn the time (no Wi-Fi, NTP or "
    "receiver answer yet), then lost to the next power cut before it could: their date can never be "
    "known, so they are dropped, never stored with a wrong one",
    "drop_full": "the oldest readings, pushed out of a full spool during a long outage",
    "drop_poison": "batches the receiver refused for good in a signed answer",
    "unexplained": "dropped by a board without a cause: a bug, fails the bench",
}


def _drop_lines(report: Report) -> list[str]:
    lines = []
    for cause, count in report.drops.items():
        if not count:
            continue
        lines.append(f"    {DROP_NAMES.get(cause, cause):<22} {count}: {DROP_WHY.get(cause, cause)}")
        if cause == "drop_clock":
            designed = count - report.clock_forgotten
            if report.clock_forgotten:
                lines.append(
                    f"{'':27}{designed} are that designed case (two power cuts before any clock); "
                    f"{report.clock_forgotten} had a clock once and lost it (not designed: a bug)"
                )
            else:
                lines.append(f"{'':27}all {count} are that designed case (two power cuts before any clock)")
    return lines


def render(report: Report) -> str:
    cost = report.aws_cost_per_device_month
    lines = [
        "",
        f"dhtlink bench: {report.devices} boards x {report.hours:g} h at {report.interval_s} s"
        f"{f' + {report.pi_nodes} Pi nodes' if report.pi_nodes else ''}"
        f"{' with chaos' if report.chaos else ''} (seed {report.seed}), {report.wall_s} s wall",
        f"  store                    {_store_line(report)}",
        f"  readings produced        {report.produced}",
        f"  stored                   {report.stored}",
        f"  on the boards, unsent    {report.still_spooled}   (the batch each board is still filling)",
        f"  duplicates absorbed      {report.duplicates_absorbed}   (re-sent, answered as duplicates, stored once)",
        f"  duplicates stored        {report.duplicates_stored}",
        f"  lost                     {report.lost}",
        f"  dropped, accounted       {report.dropped}   {_drop_causes(report.drops)}{_drop_verdict(report)}",
        *_drop_lines(report),
        f"  unverified answers       {report.unverified}   (counted by the boards since power-on: kept, retried)",
        f"  requests per reading     {report.requests_per_reading}",
        f"  bytes per reading        {report.bytes_per_reading}   (HTTP request + response, both ways)",
        f"  heap high-water          {report.heap_high_water} bytes of a 65536-byte budget",
        f"  battery life (modelled)  {report.battery['days']} days on {report.battery['battery']} to a local "
        f"endpoint (HTTP); {report.battery['days_https']} days to AWS (HTTPS: a TLS handshake a sending wake)",
        f"                           {report.battery['module']}; see docs/performance.md for the model",
        f"  AWS cost per device      ${cost['total']:.5f} a month at this traffic, deployed (HTTPS) path, "
        f"fleet of 1,000 ({cost['prices_as_of']}); a local endpoint costs only its machine",
    ]
    if report.chaos_faults:
        lines.append(f"  faults injected          {report.chaos_faults}")
    lines.append(f"  power cuts               {report.power_cuts}   watchdog resets {report.watchdog_resets}")
    if report.power_cuts or report.watchdog_resets:
        for device_id, figures in report.per_device.items():
            phases = ", ".join(
                f"{phase} {boots.get('power_cut', 0)}/{boots.get('watchdog', 0)}"
                for phase, boots in figures["boots"].items()
            )
            lines.append(f"    {device_id:<22} cuts/watchdog resets by phase: {phases}")
    if report.ota:
        update = report.ota
        boards = len(update["runs"]) + len(update["rolled_back"]) + len(update["under_way"])
        lines.append(
            f"  OTA release              {update['version']} ({update['bytes']} bytes): runs on "
            f"{len(update['runs'])} of {boards} boards; rolled back on {len(update['rolled_back'])}"
        )
        per_board = costs.ota_cost_per_board(update["requests_per_board"], update["bytes"])
        lines.append(
            f"                           {update['requests_per_board']} requests a board when none fails; "
            f"through AWS ${per_board * 1000:.4f} per 1,000 boards ({costs.PRICES_AS_OF})"
        )
        for device_id, state in update["under_way"].items():
            lines.append(f"    {device_id:<22} {state}")
    if not report.endpoint:
        raced = sum(report.overlapping_writes.values())
        lines.append(
            f"  racing writes            {raced} on {len(report.overlapping_writes)} boards   "
            "(a batch write that began while the same board's was under way)"
        )
    first = next(iter(report.per_device), "bench-01")
    if report.endpoint:
        lines += [
            "",
            "Where to look next:",
            f"  boards' files  {report.data_dir}/boards",
            f"  a device       dhtlink query latest --device {first} --endpoint {report.endpoint}",
            f"  dashboard      {report.endpoint}/",
        ]
        return "\n".join(lines)
    if report.store == "dynamodb":
        lines += [
            "",
            "Where to look next:",
            f"  boards' files  {report.data_dir}/boards   (the tables went with the run's moto_server)",
            f"  receiver log   {report.data_dir}/endpoint.log",
        ]
        return "\n".join(lines)
    # The read token stays in its file: query finds it through --data-dir, the dashboard asks for it.
    store = f"{report.data_dir}/endpoint"
    look = f"--endpoint http://127.0.0.1:{LOOK_PORT} --data-dir {store}"
    lines += [
        "",
        "Where to look next:",
        f"  data          {report.data_dir}   (receiver log: endpoint.log)",
        f"  serve it      dhtlink serve --data-dir {store} --listen {LOOK_PORT}   (in another terminal), then",
        f"  the fleet     dhtlink query devices {look}",
        f"  a device      dhtlink query latest --device {first} {look}",
        f"  dashboard     http://127.0.0.1:{LOOK_PORT}/   (sign in with the read token in {store}/read-token)",
    ]
    return "\n".join(lines)
