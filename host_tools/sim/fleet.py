"""A fleet of virtual boards (and Pi nodes) flown against a receiver, with or without chaos."""

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_tools.dynamodb_server import LOCAL_SESSION, MotoServer
from host_tools.progress import Progress
from host_tools.sim.report import Asked, Report, Seen, summarize
from host_tools.sim.run import Summary, board_config, run_board
from host_tools.sim.vboard import VirtualBoard
from host_tools.sim.verify import readings_in_file, readings_in_store, readings_in_tables, verify

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
DRAIN_ROUNDS = 8
DRAIN_STEP = 4


def scenario_for(index: int, seed: int, hours: float, chaos: bool, ota: bool = False) -> dict[str, Any]:
    """Each board's world: its own sensor noise, and with chaos an outage and power cuts.
    With an over-the-air release offered from the start, chaos also cuts each board's power
    in the first wake that resumes its download and in the wake that switches to the release."""
    rng = random.Random(seed * 1009 + index)
    scenario: dict[str, Any] = {"seed": seed * 1009 + index, "t_mean": round(rng.uniform(18, 24), 1)}
    if chaos:
        span = hours * 3600
        start = rng.uniform(0.1, 0.6) * span
        scenario["wifi_down"] = [[start, start + rng.uniform(0.05, 0.2) * span]]
        scenario["power_cut_rate"] = 0.01
        scenario["sensor_fail_rate"] = 0.01
        if ota:
            scenario["ota_cuts"] = ["download", "ready"]
    return scenario


def offer_release(endpoint: Any, device_ids: list[str], root: Path) -> dict[str, Any]:
    """Publish the app under a new version (FW + "-bench") into the endpoint's releases and
    offer it to every board (`dhtlink ota publish` and `ota rollout --all`); returns the
    offer with the requests a board makes for it."""
    import shutil

    from host_tools import ota, registry
    from host_tools.serial import firmware

    source = root / "release-src"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(firmware.DEVICE, source)
    flashed = ota.app_version(source)
    version = flashed + "-bench"
    app = source / "app.py"
    app.write_text(app.read_text().replace(f'FW = "{flashed}"', f'FW = "{version}"', 1))
    releases = ota.LocalReleases(endpoint.data_dir)
    _, manifest, _ = ota.publish(releases, source)
    offer = ota.target(releases, version)
    for device_id in device_ids:
        registry.set_ota_target(endpoint.store, device_id, offer)
    return {**offer, "requests": ota.requests_per_board(manifest)}


def ota_outcome(store: Any, offer: dict[str, Any], device_ids: list[str]) -> dict[str, Any]:
    """Where each board's update ended, from what it last reported to the receiver (the
    offer as offer_release returned it)."""
    from host_tools import ota

    states = {d: ota.state(store.get_device(d) or {"ota_target": offer}) for d in device_ids}
    return {
        "version": offer["v"],
        "bytes": offer["size"],
        "requests_per_board": offer["requests"],
        "runs": sorted(d for d, s in states.items() if s.startswith("runs ")),
        "rolled_back": sorted(d for d, s in states.items() if "ROLLED BACK" in s),
        "under_way": {d: s for d, s in states.items() if not s.startswith("runs ") and "ROLLED BACK" not in s},
    }


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

    def store_batch(self, device: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        device_id = device["device_id"]
        with self._lock:
            if self._in_flight.get(device_id):
                self.overlapping[device_id] = self.overlapping.get(device_id, 0) + 1
            self._in_flight[device_id] = self._in_flight.get(device_id, 0) + 1
        try:
            return self._store.store_batch(device, *args, **kwargs)
        finally:
            with self._lock:
                self._in_flight[device_id] -= 1


def _drain(
    board: VirtualBoard, endpoint_url: str, scenario: dict[str, Any], run_boots: dict[str, int]
) -> tuple[Summary, dict[str, int]]:
    """Faults over: the board posts straight to the receiver, every wake, until its spool is
    empty and any update's switch is over. Returns the last summary and how all the drain's
    wakes ended. run_boots: how the run's wakes ended, whose update cuts are not repeated."""
    config = json.loads((board.dir / "config.json").read_text())
    config.update(endpoint=endpoint_url + "/data", max_batch_delay_s=0)
    (board.dir / "config.json").write_text(json.dumps(config))
    # No more network faults, outages or random cuts; an update's cuts still fall where it is.
    # Each phase of an update is cut once: a switch cut in the run's last wake is finished
    # here, not cut again.
    calm = {k: v for k, v in scenario.items() if k in ("seed", "t_mean")}
    (board.state_dir / "scenario.json").write_text(json.dumps(calm))
    boots: dict[str, int] = {}

    def uncut() -> list[str]:
        done = {**run_boots, **boots}
        return [phase for phase in scenario.get("ota_cuts", ()) if f"ota_cut_{phase}" not in done]

    summary = run_board(board, DRAIN_STEP, {**calm, "ota_cuts": uncut()})
    boots.update(summary.boots)
    for _ in range(DRAIN_ROUNDS):
        # Done when the spool is empty and no over-the-air switch is left half done (a cut
        # in its boot is finished by the next).
        if summary.still_spooled == 0 and not (board.dir / "ota.state").exists():
            break
        summary = run_board(board, DRAIN_STEP, {**calm, "ota_cuts": uncut()})
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
            drained, drain_boots = _drain(board, drain_to, self.scenarios[device_id], summary.boots)
            return drained, {"run": summary.boots, "drain": drain_boots}

        # Every board at once: each wake is its own process, so the OS shares the cores.
        try:
            with ThreadPoolExecutor(min(len(self.ids), 64)) as pool:
                return dict(zip(self.ids, pool.map(one, self.ids), strict=True))
        finally:
            if self.view:
                self.view.close()  # every bar ends its line before the report is printed below them


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
    ota: bool = False,
    start: float | None = None,
) -> Report:
    """Run the fleet against the local endpoint it starts, or against `endpoint` (a base URL)
    whose device registry and readings are `registry` (a store: the local one behind a
    `dhtlink serve`, or a deployed stack's). `store` is the local endpoint's: "sqlite" (a
    file under the run's directory) or "dynamodb" (new tables on a DynamoDB server started for
    the run, or on `dynamodb_endpoint`'s: DynamoDB Local, or a server a test inspects after).
    With `ota`, a release of the app is offered to every board from the start (docs/ota.md).
    `start`: when the simulated stretch begins (Unix s; default: so that it ends now). The
    boards' sensors follow the time of day, so two runs compare exactly only from the same
    start."""
    from cloud import observability
    from cloud.local import LocalEndpoint
    from cloud.stores.dynamodb import DynamoDBStore, create_tables
    from cloud.stores.dynamodb import client as dynamodb_client
    from host_tools.registry import STORE_FILE, add_device, local_store
    from host_tools.sim.chaos import ChaosProxy

    started = time.monotonic()
    asked = Asked(devices, hours, interval, seed, chaos)
    run = time.strftime("%Y%m%d-%H%M%S")
    root = Path(data_dir or Path(".dhtlink") / f"bench-{run}")
    root.mkdir(parents=True, exist_ok=True)
    cycles = max(1, int(hours * 3600 // interval))
    # Against a shared receiver every run needs fresh ids: new boards count seqs from 0 again.
    ids = [f"bench-{run}-{i + 1:02d}" if endpoint else f"bench-{i + 1:02d}" for i in range(devices)]
    boards = {device_id: VirtualBoard(root / "boards" / device_id) for device_id in ids}
    scenarios = {device_id: scenario_for(i, seed, hours, chaos, ota) for i, device_id in enumerate(ids)}
    view = Progress() if show_progress else None
    if endpoint:
        # The receiver keeps its wall clock: boards keep real dates and skip their sleeps.
        fleet = Fleet(ids, boards, scenarios, cycles, interval, None, True, view)
        secrets = {device_id: add_device(registry, device_id) for device_id in ids}
        remote = fleet.fly(secrets, endpoint.rstrip("/"), None)
        results = {d: verify(readings_in_store(registry, d), d, *remote[d]) for d in ids}
        return summarize(asked, results, Seen(time.monotonic() - started, root, endpoint=endpoint))

    # By default the simulated day ends now, so its readings carry real, past dates.
    if start is None:
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
            offer = offer_release(local, ids, root) if ota else None
            if chaos:
                with ChaosProxy(local.url, chaos_rates or CHAOS_RATES, seed=seed, delay_s=5.5) as proxy:
                    flown = fly(secrets, proxy.url, drain_to=local.url)
                    faults = proxy.stats.faults
            else:
                flown = fly(secrets, local.url, drain_to=None)
            totals = local.totals
            update = ota_outcome(local.store, offer, ids) if offer else {}
            if store == "dynamodb":
                stored_rows = readings_in_tables(db, tables[0])
            else:
                store_file = local.data_dir / STORE_FILE
                stored_rows = {d: readings_in_file(store_file, d) for d in ids + pi_ids}
    finally:
        observability.set_output(None)
        log_file.close()
    results = {d: verify(stored_rows.get(d, []), d, *flown[d]) for d in ids + pi_ids}
    seen = Seen(time.monotonic() - started, root, totals.get("duplicates", 0), faults)
    report = summarize(asked, results, seen)
    report.pi_nodes = pi_nodes
    report.store = store
    report.overlapping_writes = dict(backend.overlapping)
    report.ota = update
    return report
