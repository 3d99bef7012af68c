"""`dhtlink bench --ota`: a release of the app offered to a fleet flying through chaos, with
power cuts in the wakes that resume a download and that switch to the release."""

import json

from host_tools.cli import main
from host_tools.sim.fleet import run_bench


def cut_phases(report, device_id):
    """The update phases whose wake was cut, over the run and the drain after it."""
    counts: dict[str, int] = {}
    for boots in report.per_device[device_id]["boots"].values():
        for key, count in boots.items():
            if key.startswith("ota_cut_"):
                counts[key] = counts.get(key, 0) + count
    return counts


def test_a_release_reaches_a_chaotic_fleet_through_power_cuts_in_download_and_switch(tmp_path):
    report = run_bench(devices=4, hours=2, chaos=True, data_dir=tmp_path / "run", show_progress=False, ota=True)
    assert (report.lost, report.duplicates_stored) == (0, 0)
    update = report.ota
    assert update["version"].endswith("-bench") and update["bytes"] > 10_000
    assert update["runs"] == [f"bench-{i:02d}" for i in range(1, 5)] and not update["rolled_back"]
    for device_id in update["runs"]:
        board = tmp_path / "run" / "boards" / device_id
        assert json.loads((board / "ota.last").read_text()) == {"v": update["version"]}, "committed"
        assert not (board / "ota.state").exists() and not (board / "ota.dl").exists()
        cuts = cut_phases(report, device_id)
        assert cuts.get("ota_cut_ready") == 1, f"{device_id}: its switching wake was cut (run or drain)"
    resumed = [d for d in update["runs"] if cut_phases(report, d).get("ota_cut_download")]
    assert resumed, "a download resumed after a cut on some board (chaos breaks downloads across wakes)"


def test_bench_ota_fails_when_a_board_rolls_the_release_back(tmp_path, monkeypatch, capsys):
    import host_tools.sim.fleet as fleet

    real = fleet.ota_outcome

    def one_rolled_back(store, offer, device_ids):
        outcome = real(store, offer, device_ids)
        outcome["rolled_back"], outcome["runs"] = outcome["runs"][:1], outcome["runs"][1:]
        return outcome

    monkeypatch.setattr(fleet, "ota_outcome", one_rolled_back)
    args = ["bench", "--devices", "2", "--duration", "30m", "--ota", "--data-dir", str(tmp_path / "run")]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "runs on 1 of 2 boards; rolled back on 1" in captured.out
    assert "was rolled back on bench-01" in captured.err


def test_ota_is_for_the_endpoint_the_bench_starts(capsys):
    assert main(["bench", "--ota", "--endpoint", "http://127.0.0.1:9"]) == 2
    assert "--ota runs against the endpoint the bench starts itself" in capsys.readouterr().err
