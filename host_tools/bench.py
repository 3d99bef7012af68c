"""`dhtlink bench`: a fleet of virtual boards running the real firmware against the
local endpoint for a simulated day, optionally through faults, then a report whose
loss and duplicate figures come from the store's own contents."""

import argparse
import json
import random
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from host_tools import battery, costs
from host_tools.common import base_url
from host_tools.dynamodb_server import LOCAL_SESSION, MotoServer
from host_tools.errors import CommandError, UsageError
from host_tools.progress import Progress
from host_tools.sim import DROP_CAUSES, Summary, board_config, run_board
from host_tools.vboard import VirtualBoard

LOOK_PORT = 8080  # where the report suggests serving the run's store to look at it

CHAOS_RATES = {
    # the network and the receiver failing
    "drop": 0.03,
    "error_before": 0.03,
    "error_after": 0.04,
    "reset": 0.03,
    "truncate": 0.03,
    "delay": 0.005,
    "twin": 0.05,
    # impostors answering in the receiver's place: a board must verify, keep and retry
    "portal": 0.01,
    "forged_ack": 0.01,
    "gateway_403": 0.005,
    "gateway_404": 0.005,
    "gateway_413": 0.005,
    "gateway_429": 0.01,
    "redirect": 0.005,
    "replay": 0.01,
}
DROP_NAMES = {"drop_full": "spool full", "drop_clock": "no clock", "drop_poison": "poison"}
DRAIN_ROUNDS = 8
DRAIN_STEP = 4


@dataclass
class DeviceResult:
    device_id: str
    produced: int
    stored: int
    duplicates_stored: int
    lost: int
    missing_seqs: list[list[int]]
    dropped: int
    # dropped, by the cause the board gave (DROP_NAMES); "unexplained" is what they leave out
    drops: dict[str, int]
    unverified: int
    still_spooled: int
    requests: int
    bytes_on_wire: int
    heap_high_water: int
    sensor_errors: int
    power_cuts: int
    watchdog_resets: int
    # How each phase's wakes ended ({"run": {...}, "drain": {...}}): a cut or a watchdog
    # reset counts in the phase it happened in.
    boots: dict[str, dict[str, int]] = field(default_factory=dict)


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
    read_token: str = ""
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
    read_token: str = field(default="", repr=False)  # shown in "where to look next", kept out of JSON
    endpoint: str = ""  # the receiver, when the fleet ran against one it did not start
    pi_nodes: int = 0  # Linux nodes (dhtlink node) flown beside the boards
    store: str = "sqlite"
    # Writes of a batch that began while another write of the same device was under way.
    overlapping_writes: dict[str, int] = field(default_factory=dict)


def scenario_for(index: int, seed: int, hours: float, chaos: bool) -> dict[str, Any]:
    """Each board's world: its own sensor noise, and with chaos an outage and power cuts."""
    rng = random.Random(seed * 1009 + index)
    scenario: dict[str, Any] = {"seed": seed * 1009 + index, "t_mean": round(rng.uniform(18, 24), 1)}
    if chaos:
        span = hours * 3600
        start = rng.uniform(0.1, 0.6) * span
        scenario["wifi_down"] = [[start, start + rng.uniform(0.05, 0.2) * span]]
        scenario["power_cut_rate"] = 0.01
        scenario["sensor_fail_rate"] = 0.01
    return scenario


def _ranges(seqs: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for seq in sorted(seqs):
        if out and out[-1][1] == seq - 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


Row = tuple[int, int, float, float]  # a stored reading: seq, ts, t, h


def readings_in_file(store_file: Path, device_id: str) -> list[Row]:
    """Every stored reading of a device, straight from the SQLite file."""
    with sqlite3.connect(f"file:{store_file}?mode=ro", uri=True) as db:
        query = "SELECT seq, ts, t, h FROM readings WHERE device_id = ?"
        return [(seq, ts, t, h) for (seq, ts, t, h) in db.execute(query, (device_id,))]


def readings_in_store(store: Any, device_id: str) -> list[Row]:
    """Every stored reading of a device through the store's own query (any store, DynamoDB included)."""
    items, cursor = store.query_readings(device_id, limit=1000)
    while cursor:
        more, cursor = store.query_readings(device_id, limit=1000, cursor=cursor)
        items += more
    return [(item["seq"], item["ts"], item["t"], item["h"]) for item in items]


def stored_twice(rows: list[Row]) -> int:
    """Readings stored again under another seq: the same measurement (ts, t, h) more than
    once. Both stores key readings on (device, seq), so a seq can never hold two items and
    counting repeated seqs would be 0 by construction; a board or receiver that renumbers
    a reading it already delivered (a 409 handled wrong) shows here."""
    seen: set[tuple[int, float, float]] = set()
    twice = 0
    for _seq, ts, t, h in sorted(rows):
        content = (ts, round(t, 1), round(h, 1))
        twice += content in seen
        seen.add(content)
    return twice


def readings_in_tables(db: Any, readings_table: str) -> dict[str, list[Row]]:
    """Every item of the DynamoDB readings table by device, read with a Scan of the table
    itself (not the store's queries)."""
    rows: dict[str, list[Row]] = {}
    names = {"#d": "device_id", "#s": "seq", "#ts": "ts", "#t": "t", "#h": "h"}
    kwargs: dict[str, Any] = {
        "TableName": readings_table,
        "ProjectionExpression": ", ".join(names),
        "ExpressionAttributeNames": names,
    }
    while True:
        page = db.scan(**kwargs)
        for item in page["Items"]:
            row = (int(item["seq"]["N"]), int(item["ts"]["N"]), float(item["t"]["N"]), float(item["h"]["N"]))
            rows.setdefault(item["device_id"]["S"], []).append(row)
        if "LastEvaluatedKey" not in page:
            return rows
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class OverlapCounter:
    """The store, counting writes of a device that start while one of its writes is under
    way: evidence that retried batches really raced each other at the store."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self.overlapping: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def put_readings(self, device_id: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._in_flight.get(device_id):
                self.overlapping[device_id] = self.overlapping.get(device_id, 0) + 1
            self._in_flight[device_id] = self._in_flight.get(device_id, 0) + 1
        try:
            return self._store.put_readings(device_id, *args, **kwargs)
        finally:
            with self._lock:
                self._in_flight[device_id] -= 1


def verify(
    rows: list[Row], device_id: str, summary: Summary, phases: dict[str, dict[str, int]] | None = None
) -> DeviceResult:
    """Loss and duplicates from what the store holds, against the board's own seq counter.
    `phases`: how the wakes of each phase ended (default: the summary's, as one "run")."""
    phases = phases or {"run": summary.boots}
    stored = {row[0] for row in rows}
    sent_range = set(range(summary.readings_taken - summary.still_spooled))
    missing = sorted(sent_range - stored)
    return DeviceResult(
        device_id=device_id,
        produced=summary.readings_taken,
        stored=len(stored),
        duplicates_stored=stored_twice(rows),
        # Readings the board counted as dropped (poison batches, or taken before a clock that a
        # second power cut left unknowable) are reported, not lost; anything else missing is lost.
        lost=max(0, len(missing) - summary.dropped) + len(stored - set(range(summary.readings_taken))),
        missing_seqs=_ranges(missing),
        dropped=summary.dropped,
        drops=_explained(summary),
        unverified=summary.unverified,
        still_spooled=summary.still_spooled,
        requests=summary.requests,
        bytes_on_wire=summary.bytes_sent + summary.bytes_received,
        heap_high_water=summary.heap_high_water,
        sensor_errors=summary.sensor_errors,
        power_cuts=sum(boots.get("power_cut", 0) for boots in phases.values()),
        watchdog_resets=sum(boots.get("watchdog", 0) for boots in phases.values()),
        boots=phases,
    )


def _explained(summary: Summary) -> dict[str, int]:
    """The board's drops by cause; any part of status.dropped no cause accounts for is
    "unexplained", which fails the bench like a loss."""
    drops = {cause: summary.drops.get(cause, 0) for cause in DROP_CAUSES}
    unexplained = summary.dropped - sum(drops.values())
    if unexplained:
        drops["unexplained"] = unexplained
    return drops


def _sum_drops(results: dict[str, DeviceResult]) -> dict[str, int]:
    total: dict[str, int] = {}
    for result in results.values():
        for cause, count in result.drops.items():
            total[cause] = total.get(cause, 0) + count
    return total


def _drain(board: VirtualBoard, endpoint_url: str, scenario: dict[str, Any]) -> tuple[Summary, dict[str, int]]:
    """Faults over: the board posts straight to the receiver, every wake, until its spool is
    empty. Returns the last summary and how all the drain's wakes ended."""
    config = json.loads((board.dir / "config.json").read_text())
    config.update(endpoint=endpoint_url + "/data", max_batch_delay_s=0)
    (board.dir / "config.json").write_text(json.dumps(config))
    calm = {k: v for k, v in scenario.items() if k in ("seed", "t_mean")}
    (board.state_dir / "scenario.json").write_text(json.dumps(calm))
    summary = run_board(board, DRAIN_STEP, calm)
    boots = dict(summary.boots)
    for _ in range(DRAIN_ROUNDS):
        if summary.still_spooled == 0:
            break
        summary = run_board(board, DRAIN_STEP, calm)
        for status, count in summary.boots.items():
            boots[status] = boots.get(status, 0) + count
    return summary, boots


@dataclass
class Fleet:
    """The boards of one run and how they fly."""

    ids: list[str]
    boards: dict[str, VirtualBoard]
    scenarios: dict[str, dict[str, Any]]
    cycles: int
    interval: int
    start: float | None
    compressed: bool
    view: Progress | None

    def fly(
        self, secrets: dict[str, str], target: str, drain_to: str | None
    ) -> dict[str, tuple[Summary, dict[str, dict[str, int]]]]:
        """Each board's final summary and how its wakes ended, phase by phase."""

        def one(device_id: str) -> tuple[Summary, dict[str, dict[str, int]]]:
            board = self.boards[device_id]
            config = board_config(device_id, secrets[device_id], target + "/data", self.interval)
            board.install(config, self.scenarios[device_id], start=self.start, compressed=self.compressed)

            task = self.view.task(device_id, self.cycles, "wakes") if self.view else None

            def progress(step: dict[str, Any]) -> None:
                if task:
                    task.update(step["boot"])

            summary = run_board(board, self.cycles, self.scenarios[device_id], progress)
            if not drain_to:
                return summary, {"run": summary.boots}
            drained, drain_boots = _drain(board, drain_to, self.scenarios[device_id])
            return drained, {"run": summary.boots, "drain": drain_boots}

        # Every board at once: each wake is its own process, so the OS shares the cores.
        with ThreadPoolExecutor(min(len(self.ids), 64)) as pool:
            return dict(zip(self.ids, pool.map(one, self.ids), strict=True))


def run_bench(
    devices: int = 5,
    hours: float = 24,
    interval: int = 60,
    seed: int = 1,
    chaos: bool = False,
    data_dir: Path | None = None,
    show_progress: bool = True,
    endpoint: str | None = None,
    registry: Any = None,
    chaos_rates: dict[str, float] | None = None,
    pi_nodes: int = 0,
    store: str = "sqlite",
    dynamodb_endpoint: str | None = None,
) -> Report:
    """Run the fleet against the local endpoint it starts, or against `endpoint` (a base URL)
    whose device registry and readings are `registry` (a store: the local one behind a
    `dhtlink serve`, or a deployed stack's). `store` is the local endpoint's: "sqlite" (a
    file under the run's directory) or "dynamodb" (new tables on a DynamoDB server started for
    the run, or on `dynamodb_endpoint`'s: DynamoDB Local, or a server a test inspects after)."""
    from cloud import observability
    from cloud.local import LocalEndpoint
    from cloud.stores.dynamodb import DynamoDBStore, create_tables
    from cloud.stores.dynamodb import client as dynamodb_client
    from host_tools.chaos import ChaosProxy
    from host_tools.registry import STORE_FILE, add_device, local_store

    started = time.monotonic()
    asked = Asked(devices, hours, interval, seed, chaos)
    run = time.strftime("%Y%m%d-%H%M%S")
    root = Path(data_dir or Path(".dhtlink") / f"bench-{run}")
    root.mkdir(parents=True, exist_ok=True)
    cycles = max(1, int(hours * 3600 // interval))
    # Against a shared receiver every run needs fresh ids: new boards count seqs from 0 again.
    ids = [f"bench-{run}-{i + 1:02d}" if endpoint else f"bench-{i + 1:02d}" for i in range(devices)]
    boards = {device_id: VirtualBoard(root / "boards" / device_id) for device_id in ids}
    scenarios = {device_id: scenario_for(i, seed, hours, chaos) for i, device_id in enumerate(ids)}
    view = Progress() if show_progress else None
    if endpoint:
        # The receiver keeps its wall clock: boards keep real dates and skip their sleeps.
        fleet = Fleet(ids, boards, scenarios, cycles, interval, None, True, view)
        secrets = {device_id: add_device(registry, device_id) for device_id in ids}
        remote = fleet.fly(secrets, endpoint.rstrip("/"), None)
        results = {d: verify(readings_in_store(registry, d), d, *remote[d]) for d in ids}
        return summarize(asked, results, Seen(time.monotonic() - started, root, endpoint=endpoint))

    # The simulated day ends now, so its readings carry real, past dates.
    start = time.time() - cycles * interval - 60
    fleet = Fleet(ids, boards, scenarios, cycles, interval, start, False, view)
    pi_ids = [f"bench-pi-{i + 1:02d}" for i in range(pi_nodes)]
    scenarios.update({d: scenario_for(devices + i, seed, hours, chaos) for i, d in enumerate(pi_ids)})
    pis: dict[str, Any] = {}

    def clock(device_id: str | None) -> float:
        board = boards.get(device_id or "")
        pi = pis.get(device_id or "")
        return board.now() if board else pi.clock.now if pi else time.time()

    def fly(
        secrets: dict[str, str], target: str, drain_to: str | None
    ) -> dict[str, tuple[Summary, dict[str, dict[str, int]] | None]]:
        from host_tools.node import simulated

        pi_secrets = {d: add_device(local.store, d) for d in pi_ids}
        pis.update(simulated.make_nodes(root / "pi-nodes", pi_secrets, scenarios, interval, start))
        with ThreadPoolExecutor(1) as beside:
            pi_summaries = beside.submit(simulated.fly, pis, target, drain_to, cycles)
            boards_flown = fleet.fly(secrets, target, drain_to)
            return boards_flown | {d: (summary, None) for d, summary in pi_summaries.result().items()}

    log_file = (root / "endpoint.log").open("a")
    observability.set_output(log_file)
    faults: dict[str, int] = {}
    try:
        with ExitStack() as run_stack:
            if store == "dynamodb":
                if dynamodb_endpoint:
                    db = dynamodb_client(dynamodb_endpoint, pool=64, **LOCAL_SESSION)
                else:
                    db = run_stack.enter_context(MotoServer(root / "moto_server.log")).client()
                tables = (f"dhtlink-bench-{run}-readings", f"dhtlink-bench-{run}-devices")
                create_tables(db, *tables)
                backend = OverlapCounter(DynamoDBStore(*tables, db))
            else:
                backend = OverlapCounter(local_store(root / "endpoint"))
            local = run_stack.enter_context(LocalEndpoint(root / "endpoint", clock=clock, store=backend))
            secrets = {device_id: add_device(local.store, device_id) for device_id in ids}
            if chaos:
                with ChaosProxy(local.url, chaos_rates or CHAOS_RATES, seed=seed, delay_s=5.5) as proxy:
                    flown = fly(secrets, proxy.url, drain_to=local.url)
                    faults = proxy.stats.faults
            else:
                flown = fly(secrets, local.url, drain_to=None)
            totals = local.totals
            read_token = local.read_token
            if store == "dynamodb":
                stored_rows = readings_in_tables(db, tables[0])
            else:
                store_file = local.data_dir / STORE_FILE
                stored_rows = {d: readings_in_file(store_file, d) for d in ids + pi_ids}
    finally:
        observability.set_output(None)
        log_file.close()
    results = {d: verify(stored_rows.get(d, []), d, *flown[d]) for d in ids + pi_ids}
    seen = Seen(time.monotonic() - started, root, totals.get("duplicates", 0), faults, read_token)
    report = summarize(asked, results, seen)
    report.pi_nodes = pi_nodes
    report.store = store
    report.overlapping_writes = dict(backend.overlapping)
    return report


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
        unverified=sum(r.unverified for r in results.values()),
        still_spooled=sum(r.still_spooled for r in results.values()),
        requests_per_reading=round(per_reading, 4),
        bytes_per_reading=round(wire / produced if produced else 0, 1),
        heap_high_water=max((r.heap_high_water for r in results.values()), default=0),
        power_cuts=sum(r.power_cuts for r in results.values()),
        watchdog_resets=sum(r.watchdog_resets for r in results.values()),
        battery={
            "days": round(battery.battery_days(asked.interval, per_reading, model), 1),
            "battery": battery.BATTERY,
            "module": "ESP32-WROOM-32, deep sleep between readings",
            "awake_s": model.as_dict(),
        },
        aws_cost_per_device_month={k: (round(v, 6) if isinstance(v, float) else v) for k, v in cost.as_dict().items()},
        chaos_faults=seen.faults,
        per_device={k: asdict(v) for k, v in results.items()},
        data_dir=str(seen.data_dir.resolve()),
        read_token=seen.read_token,
        endpoint=seen.endpoint,
    )


def _store_line(report: Report) -> str:
    if report.endpoint:
        return f"the receiver at {report.endpoint}"
    if report.store == "dynamodb":
        return "DynamoDB over HTTP (moto's server app; judged by a Scan of the readings table)"
    return "SQLite (judged from the file)"


def as_json(report: Report) -> dict[str, Any]:
    out = asdict(report)
    del out["read_token"]
    return out


def _drop_causes(drops: dict[str, int]) -> str:
    named = [f"{DROP_NAMES.get(cause, cause)} {count}" for cause, count in drops.items() if count]
    return f"({', '.join(named)})" if named else "(none: no spool overflow, no reading without a clock, no poison)"


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
        f"  dropped, accounted       {report.dropped}   {_drop_causes(report.drops)}",
        f"  unverified answers       {report.unverified}   (counted by the boards since power-on: kept, retried)",
        f"  requests per reading     {report.requests_per_reading}",
        f"  bytes per reading        {report.bytes_per_reading}   (HTTP request + response, both ways)",
        f"  heap high-water          {report.heap_high_water} bytes of a 65536-byte budget",
        f"  battery life (modelled)  {report.battery['days']} days on {report.battery['battery']}",
        f"                           {report.battery['module']}; see docs/performance.md for the model",
        f"  AWS cost per device      ${cost['total']:.5f} a month at this traffic ({cost['prices_as_of']})",
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
    if not report.endpoint:
        raced = sum(report.overlapping_writes.values())
        lines.append(
            f"  racing writes            {raced} on {len(report.overlapping_writes)} boards   "
            "(a batch write that began while the same board's was under way)"
        )
    first = next(iter(report.per_device), "bench-01")
    # The token names this run's store: a query that reached another server would be refused, not answered.
    look = f"--endpoint http://127.0.0.1:{LOOK_PORT} --token {report.read_token}"
    if report.endpoint:
        lines += [
            "",
            "Where to look next:",
            f"  boards' files  {report.data_dir}/boards",
            f"  a device       dhtlink query latest --device {first} --endpoint {report.endpoint}",
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
    lines += [
        "",
        "Where to look next:",
        f"  data          {report.data_dir}",
        f"  read API      dhtlink serve --data-dir {report.data_dir}/endpoint --port {LOOK_PORT}   (in another "
        "terminal), then",
        f"                dhtlink query devices {look}",
        f"  a device      dhtlink query latest --device {first} {look}",
    ]
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a fleet of virtual boards against the local endpoint and report",
        description="Start the local endpoint, provision N virtual boards and run the real firmware on each "
        "for a simulated stretch of time, then report delivery, wire, memory, battery and cost figures. "
        "Fails (exit 1) if any reading was lost or stored twice.",
    )
    parser.add_argument("--devices", type=int, default=5, help="number of boards (default 5)")
    parser.add_argument("--hours", type=float, default=24, help="simulated hours (default 24)")
    parser.add_argument("--interval", type=int, default=60, help="seconds between readings (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="seed for sensor noise and faults (default 1)")
    parser.add_argument(
        "--chaos", action="store_true", help="faults between boards and endpoint, Wi-Fi outages and power cuts"
    )
    parser.add_argument(
        "--pi-nodes", type=int, default=0, help="also run this many Linux nodes (`dhtlink node`, simulated sensor)"
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "dynamodb"),
        default="sqlite",
        help="the local endpoint's store: sqlite (default) or dynamodb (a moto_server started for the run)",
    )
    parser.add_argument(
        "--dynamodb-endpoint",
        metavar="URL",
        default=None,
        help="with --store dynamodb: use this DynamoDB server (e.g. DynamoDB Local) instead of starting one; "
        "the run creates its own tables there",
    )
    parser.add_argument("--json-out", type=Path, default=None, help="also write the report as JSON here")
    parser.add_argument("--data-dir", type=Path, default=None, help="where to keep the run (default .dhtlink/bench-*)")
    parser.add_argument(
        "--endpoint",
        default=None,
        help="run against this receiver's base URL instead (a `dhtlink serve` whose $DATA_DIR is "
        "this one's, or a deployed stack with --aws); no proxy, boards keep real dates",
    )
    parser.add_argument("--aws", action="store_true", help="with --endpoint: register and verify in the stack")
    parser.add_argument("--stack", default="dhtlink", help="with --aws: the stack name (default dhtlink)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.devices <= 500:
        raise UsageError("--devices must be from 1 to 500")
    if not 0 < args.hours <= 24 * 31:
        raise UsageError("--hours must be more than 0 and at most 744")
    if not 2 <= args.interval <= 86400:
        raise UsageError("--interval must be from 2 to 86400 seconds")
    if args.hours * 3600 < args.interval:
        raise UsageError("--hours must cover at least one --interval")
    if not 0 <= args.pi_nodes <= 100:
        raise UsageError("--pi-nodes must be from 0 to 100")
    if args.dynamodb_endpoint is not None:
        if args.store != "dynamodb":
            raise UsageError("--dynamodb-endpoint goes with --store dynamodb")
        if not args.dynamodb_endpoint.startswith(("http://", "https://")):
            raise UsageError("--dynamodb-endpoint must be a URL such as http://127.0.0.1:8000")
    registry = None
    if args.endpoint and args.pi_nodes:
        raise UsageError("--pi-nodes runs against the endpoint the bench starts itself, not with --endpoint")
    if args.endpoint:
        from host_tools.devices import open_store

        if args.chaos:
            raise UsageError("--chaos runs against the endpoint the bench starts itself, not with --endpoint")
        if args.store != "sqlite":
            raise UsageError("--store picks the store of the endpoint the bench starts, not with --endpoint")
        args.endpoint = base_url(args.endpoint)
        registry = open_store(args.aws, args.stack)
    elif args.aws:
        raise UsageError("--aws goes with --endpoint (the deployed stack's ApiUrl)")
    report = run_bench(
        args.devices,
        args.hours,
        args.interval,
        args.seed,
        args.chaos,
        args.data_dir,
        endpoint=args.endpoint,
        registry=registry,
        pi_nodes=args.pi_nodes,
        store=args.store,
        dynamodb_endpoint=args.dynamodb_endpoint,
    )
    print(render(report))
    if args.json_out:
        args.json_out.write_text(json.dumps(as_json(report), indent=2))
    if report.lost or report.duplicates_stored:
        bad = {d: r["missing_seqs"] for d, r in report.per_device.items() if r["lost"] or r["duplicates_stored"]}
        raise CommandError(
            f"{report.lost} readings lost, {report.duplicates_stored} stored twice; "
            f"missing seq ranges per device: {bad}"
        )
    if report.drops.get("unexplained"):
        raise CommandError(
            f"{report.drops['unexplained']} dropped readings have no cause on their board "
            "(status.dropped exceeds drop_full + drop_clock + drop_poison)"
        )
    return 0
