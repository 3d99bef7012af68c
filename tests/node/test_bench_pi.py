"""The fleet bench with Pi nodes beside the virtual ESP32s."""

import pytest

from host_tools.cli import main
from host_tools.sim.fleet import run_bench


@pytest.mark.slow
@pytest.mark.parametrize("chaos", [False, True], ids=["calm", "chaos"])
def test_bench_flies_pi_nodes_beside_boards(tmp_path, chaos):
    report = run_bench(
        devices=1, hours=0.5, interval=60, chaos=chaos, data_dir=tmp_path, show_progress=False, pi_nodes=2
    )
    pis = {d: r for d, r in report.per_device.items() if d.startswith("bench-pi-")}
    assert sorted(pis) == ["bench-pi-01", "bench-pi-02"] and "bench-01" in report.per_device
    for result in pis.values():
        assert result["produced"] >= 29
        assert result["lost"] == 0 and result["duplicates_stored"] == 0
        assert result["stored"] + result["still_spooled"] + result["dropped"] == result["produced"]
    assert report.lost == 0 and report.pi_nodes == 2
    assert (tmp_path / "pi-nodes" / "node.log").exists()


def test_pi_nodes_option_is_checked(capsys):
    assert main(["bench", "--pi-nodes", "101"]) == 2
    assert "--pi-nodes must be from 0 to 100" in capsys.readouterr().err
    assert main(["bench", "--pi-nodes", "1", "--endpoint", "http://127.0.0.1:9"]) == 2
    assert "--pi-nodes runs against the endpoint the bench starts itself" in capsys.readouterr().err
