"""`dhtlink bench --store dynamodb`: the fleet of virtual boards against the handlers over
DynamoDB tables on a DynamoDB server (HTTP), with and without faults; loss and duplicates
judged from the tables, here by the test's own Scan of them after the run."""

import json
import threading

import pytest

from host_tools.cli import main
from host_tools.dynamodb_server import MotoServer
from host_tools.sim.fleet import OverlapCounter
from host_tools.sim.verify import readings_in_tables
from tests.cloud.servers import PATIENT_S


def scan_tables(db):
    """Every readings table the run made, item by item: {device: [seq, ...]}."""
    (table,) = [name for name in db.list_tables()["TableNames"] if name.endswith("-readings")]
    return {device: [row[0] for row in rows] for device, rows in readings_in_tables(db, table).items()}


@pytest.mark.slow
@pytest.mark.parametrize("chaos", [False, True])
def test_fleet_on_dynamodb_loses_nothing_and_stores_nothing_twice(tmp_path, capsys, chaos):
    out = tmp_path / "report.json"
    with MotoServer() as server:
        args = ["bench", "--store", "dynamodb", "--dynamodb-endpoint", server.url, "--devices", "4", "--duration", "1h"]
        args += ["--seed", "3", "--data-dir", str(tmp_path / "run"), "--json-out", str(out)]
        status = main([*args, "--chaos"] if chaos else args)
        printed = capsys.readouterr()
        assert status == 0, printed.err[-2000:]
        held = scan_tables(server.client(read_timeout=PATIENT_S))
    report = json.loads(out.read_text())
    assert report["store"] == "dynamodb" and "DynamoDB" in printed.out
    for device_id, figures in report["per_device"].items():
        seqs = held[device_id]
        assert len(seqs) == len(set(seqs)), "a seq stored twice"
        sent = set(range(figures["produced"] - figures["still_spooled"]))
        assert len(sent - set(seqs)) == figures["dropped"], "missing beyond what the board counted as dropped"
        assert figures["produced"] >= 60
    assert report["lost"] == 0 and report["duplicates_stored"] == 0
    assert report["stored"] == sum(len(seqs) for seqs in held.values()) >= 150
    assert report["stored"] + report["still_spooled"] + report["dropped"] == report["produced"]
    if chaos:
        assert report["chaos_faults"] and report["duplicates_absorbed"] > 0


class _SlowStore:
    def __init__(self):
        self.inside = threading.Barrier(2, timeout=5)

    def store_batch(self, device, readings, *_):
        self.inside.wait()  # both writes are in the store at once, or this times out
        return readings


def test_overlap_counter_counts_writes_of_one_board_that_overlap():
    counter = OverlapCounter(_SlowStore())
    device = {"device_id": "a"}
    threads = [threading.Thread(target=counter.store_batch, args=(device, [1], None, 0, 0)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert counter.overlapping == {"a": 1}


def test_store_flag_errors(capsys):
    assert main(["bench", "--dynamodb-endpoint", "http://127.0.0.1:1"]) == 2
    assert "--store dynamodb" in capsys.readouterr().err
    assert main(["bench", "--store", "dynamodb", "--endpoint", "http://127.0.0.1:1"]) == 2
    assert "--store" in capsys.readouterr().err
