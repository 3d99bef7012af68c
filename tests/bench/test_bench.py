import io
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from cloud import observability
from cloud.local import LocalEndpoint
from host_tools.cli import main
from host_tools.models import battery, costs
from host_tools.registry import local_store
from host_tools.sim.chaos import IMPOSTORS
from host_tools.sim.fleet import Fleet, run_bench
from host_tools.sim.run import Summary
from host_tools.sim.vboard import VirtualBoard
from host_tools.sim.verify import readings_in_file, readings_in_store, verify
from tests.cloud.test_hostile import DHTLINK, start_serve

JSON_KEYS = {
    "produced",
    "stored",
    "lost",
    "duplicates_stored",
    "requests_per_reading",
    "bytes_per_reading",
    "heap_high_water",
    "per_device",
}


def summary(taken, spooled=0, dropped=0):
    return Summary("d", 10, taken, taken - spooled - dropped, spooled, dropped, 0, 0, 1, 1, 1, 0)


def store_with(tmp_path, seqs, content=None):
    """A store holding seqs; content maps a seq to its (ts, t, h) (default: one per seq)."""
    path = tmp_path / "s.sqlite3"
    content = content or {}
    with sqlite3.connect(path) as db:
        columns = "device_id TEXT, seq INTEGER, ts INTEGER, t REAL, h REAL, PRIMARY KEY (device_id, seq)"
        db.execute(f"CREATE TABLE readings ({columns})")
        rows = [(s, *content.get(s, (1795000000 + 60 * s, 21.0, 50.0))) for s in seqs]
        db.executemany("INSERT INTO readings VALUES ('d', ?, ?, ?, ?)", rows)
    return path


def test_verify_passes_a_complete_store(tmp_path):
    result = verify(readings_in_file(store_with(tmp_path, range(10)), "d"), "d", summary(12, spooled=2))
    assert (result.lost, result.duplicates_stored, result.missing_seqs) == (0, 0, [])


def test_verify_finds_a_gap_and_a_reading_stored_again_under_another_seq(tmp_path):
    # seq 7 holds seq 6's measurement: a reading renumbered after it was stored
    store = store_with(tmp_path, [0, 1, 2, 5, 6, 7], content={7: (1795000000 + 360, 21.0, 50.0)})
    result = verify(readings_in_file(store, "d"), "d", summary(8))
    assert result.lost == 2 and result.missing_seqs == [[3, 4]]
    assert result.duplicates_stored == 1


def test_dropped_readings_are_accounted_not_lost(tmp_path):
    result = verify(readings_in_file(store_with(tmp_path, [0, 1, 3]), "d"), "d", summary(4, dropped=1))
    assert result.lost == 0 and result.missing_seqs == [[2, 2]]


def test_drops_are_explained_by_cause_and_a_gap_in_the_causes_is_flagged(tmp_path):
    rows = readings_in_file(store_with(tmp_path, [0, 1, 5]), "d")
    explained = summary(6, dropped=3)
    explained.drops = {"drop_clock": 2, "drop_poison": 1}
    result = verify(rows, "d", explained)
    assert result.lost == 0
    assert result.drops == {"drop_full": 0, "drop_clock": 2, "drop_poison": 1}
    unaccounted = summary(6, dropped=3)
    unaccounted.drops = {"drop_clock": 2}
    assert verify(rows, "d", unaccounted).drops["unexplained"] == 1


@pytest.mark.slow
def test_impostors_on_the_path_cost_no_reading_and_no_clock(tmp_path):
    """Every impostor the chaos proxy knows, often, between two boards and the receiver."""
    impostors = {kind: 0.06 for kind in IMPOSTORS}  # about half of all requests
    report = run_bench(
        3, 6, 60, seed=4, chaos=True, data_dir=tmp_path / "run", show_progress=False, chaos_rates=impostors
    )
    assert set(report.chaos_faults) == set(IMPOSTORS), report.chaos_faults
    assert report.lost == 0 and report.duplicates_stored == 0
    assert report.drops.get("drop_poison", 0) == 0 and "unexplained" not in report.drops
    # The boards saw them as unverified answers (a counter kept in RTC memory, which a power
    # cut clears, as on the chip: so at least some, not all of them).
    assert report.unverified > 0
    # The forged acks carried a server_time an hour ahead: no stored reading may be from the future.
    with sqlite3.connect(tmp_path / "run" / "endpoint" / "dhtlink.sqlite3") as db:
        newest, received = db.execute("SELECT MAX(ts), MAX(received_at) FROM readings").fetchone()
    assert newest <= received


def test_battery_model_sends_cost_more():
    model = battery.awake_model()
    extra_cpu = (battery.HOST_CPU_SENDING_S - battery.HOST_CPU_BUFFERING_S) * battery.ESP32_SLOWDOWN
    assert model.sending_s - model.buffering_s == pytest.approx(battery.figure("wifi_cached_s") + extra_cpu)
    assert battery.awake_model(tls=True).sending_s == pytest.approx(model.sending_s + battery.figure("tls_handshake_s"))
    every_wake = battery.battery_days(60, 1.0, model)
    batched = battery.battery_days(60, 0.05, model)
    assert batched > 3 * every_wake
    assert battery.battery_days(600, 0.05, model) > batched


def test_cost_scales_with_traffic():
    minute = costs.cost_per_device_month(60, 20)
    assert minute.readings == pytest.approx(43200)
    assert minute.requests == pytest.approx(2160)
    assert minute.api_gateway == pytest.approx(2160 / 1e6 * costs.HTTP_API_PER_MILLION)
    # 3 units a reading; a request: the device row (transactional) and its two indexes (5), its summaries (6)
    assert minute.dynamodb_writes == pytest.approx((43200 * 3 + 2160 * 11) / 1e6 * costs.DYNAMODB_WRITE_PER_MILLION)
    figures = ("readings", "requests", "total", "storage_month_12", "prices_as_of")
    assert minute.total == pytest.approx(sum(v for k, v in minute.as_dict().items() if k not in figures))
    assert costs.cost_per_device_month(600, 20).total < minute.total / 5
    with pytest.raises(ValueError):
        costs.cost_per_device_month(0, 20)


@pytest.mark.slow
def test_short_chaos_bench_loses_nothing_and_stores_nothing_twice(tmp_path, capsys):
    out = tmp_path / "report.json"
    status = main(
        [
            "bench",
            "--devices",
            "2",
            "--duration",
            "1h",
            "--chaos",
            "--seed",
            "3",
            "--data-dir",
            str(tmp_path / "run"),
            "--json-out",
            str(out),
        ]
    )
    assert status == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert JSON_KEYS <= set(report)
    assert "read_token" not in report
    # From the store's own file, not the report: every device's seqs once each, no gaps.
    with sqlite3.connect(Path(tmp_path / "run" / "endpoint" / "dhtlink.sqlite3")) as db:
        for device_id, figures in report["per_device"].items():
            seqs = [s for (s,) in db.execute("SELECT seq FROM readings WHERE device_id = ? ORDER BY seq", (device_id,))]
            assert len(seqs) == len(set(seqs))
            expected = set(range(figures["produced"] - figures["still_spooled"]))
            assert len(expected - set(seqs)) == figures["dropped"]
            assert figures["produced"] >= 60
    assert report["lost"] == 0 and report["duplicates_stored"] == 0
    assert report["stored"] >= 120
    printed = capsys.readouterr().out
    assert "Where to look next" in printed
    # It ends with the dashboard's address, and no read token for a command line.
    last = printed.strip().splitlines()[-1]
    assert last.split()[0] == "dashboard" and "http://127.0.0.1:" in last
    assert "--token" not in printed
    if report["dropped"]:
        assert "expected from the power cuts and outages injected" in printed


def test_bad_flags(capsys):
    assert main(["bench", "--devices", "0"]) == 2
    assert "--devices" in capsys.readouterr().err


@pytest.mark.slow
def test_fleet_against_a_separately_served_endpoint(endpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))  # the registry behind that endpoint
    out = tmp_path / "report.json"
    assert (
        main(
            [
                "bench",
                "--devices",
                "2",
                "--duration",
                "30m",
                "--endpoint",
                endpoint.url,
                "--data-dir",
                str(tmp_path / "run"),
                "--json-out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["lost"] == 0 and report["produced"] == report["stored"] + sum(
        d["still_spooled"] for d in report["per_device"].values()
    )
    for device_id, figures in report["per_device"].items():
        assert device_id.startswith("bench-2")  # fresh ids per run against a shared receiver
        stored = endpoint.store.query_readings(device_id, limit=1000)[0]
        assert len(stored) == figures["stored"] > 0
    assert f"--endpoint {endpoint.url}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--endpoint", "x:8080"], "base URL"),
        (["--endpoint", "http://x", "--chaos"], "--chaos"),
        (["--aws"], "--endpoint"),
        (["--duration", "6"], "--duration must be from 1m to 31d, got 6 (a bare number is seconds)"),
        (["--duration", "32d"], "--duration must be from 1m to 31d"),
        (["--duration", "1m", "--interval", "90s"], "--duration must cover at least one --interval"),
        (["--duration", "1h", "--hours", "2"], "--hours is the old spelling of --duration"),
    ],
)
def test_endpoint_flag_errors(args, needle, capsys):
    assert main(["bench", *args]) == 2
    assert needle in capsys.readouterr().err


def test_power_cuts_count_in_the_phase_they_happened_in(tmp_path):
    """The calm drain after a chaos run used to replace the run's figures: cuts vanished."""
    observability.set_output(io.StringIO())
    board = VirtualBoard(tmp_path / "board")
    scenario = {"seed": 1, "power_cuts": [2, 5, 9]}
    fleet = Fleet(["cut-01"], {"cut-01": board}, {"cut-01": scenario}, 12, 60, None, False, None)
    try:
        with LocalEndpoint(tmp_path / "endpoint", clock=lambda _d: board.now()) as local:
            secret = local.add_device("cut-01")
            summary, phases = fleet.fly({"cut-01": secret}, local.url, drain_to=local.url)["cut-01"]
            result = verify(readings_in_store(local.store, "cut-01"), "cut-01", summary, phases)
    finally:
        observability.set_output(None)
    assert phases["run"]["power_cut"] == 3 and "power_cut" not in phases["drain"]
    assert result.power_cuts == 3 and result.watchdog_resets == 0
    assert result.lost == 0 and result.boots == phases


def test_duplicates_are_judged_by_seq_where_the_seqs_are_known(tmp_path):
    # Compressed time: readings 0-3 in one second with the same values. Distinct seqs below
    # the board's counter are distinct readings, not one stored four times.
    same = {s: (1795000000, 21.0, 50.0) for s in range(4)}
    rows = readings_in_file(store_with(tmp_path, range(6), content=same), "d")
    known = summary(6)
    known.next_seq = 6
    assert verify(rows, "d", known).duplicates_stored == 0
    # A seq the board never gave a reading: a copy stored under a second seq.
    (tmp_path / "s.sqlite3").unlink()
    beyond = readings_in_file(store_with(tmp_path, [*range(6), 9]), "d")
    assert verify(beyond, "d", known).duplicates_stored == 1
    # Seqs moved by a renumbering are not known: judged by content.
    renumbered = summary(6)
    renumbered.next_seq = 30
    assert verify(rows, "d", renumbered).duplicates_stored == 3


@pytest.mark.slow
def test_bench_against_a_healthy_dhtlink_serve_exits_0(tmp_path):
    """The documented load test of a receiver, `dhtlink bench --endpoint`, run as a user runs
    it against a `dhtlink serve` process: compressed time puts many readings in one second
    with equal values, which once failed it with "N stored twice"."""
    data_dir = tmp_path / "data"
    local_store(data_dir)
    process, port = start_serve(data_dir)
    try:
        env = {**os.environ, "DATA_DIR": str(data_dir)}
        argv = [DHTLINK, "bench", "--endpoint", f"http://127.0.0.1:{port}", "--devices", "3", "--duration", "2h"]
        argv += ["--data-dir", str(tmp_path / "run"), "--json-out", str(tmp_path / "report.json")]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["lost"], report["duplicates_stored"]) == (0, 0) and report["stored"] >= 300
