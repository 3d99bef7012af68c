"""`dhtlink ota publish|rollout|status`: the flashed app's compiled files as a release with a manifest,
kept locally or in the stack's bucket, offered to devices."""

import hashlib
import json
import shutil

import pytest

from cloud.protocol import Reading
from cloud.stores.base import Delivery
from host_tools import ota, registry
from host_tools.cli import main
from host_tools.errors import CommandError
from host_tools.serial import firmware


def test_a_release_is_the_flashed_app_without_the_boards_own_boot_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    assert main(["ota", "publish"]) == 0
    version = ota.app_version()
    assert f"published release {version}" in capsys.readouterr().out
    release = tmp_path / "data" / "releases" / version
    manifest = json.loads((release / "manifest.json").read_bytes())
    flashed = firmware.build()
    expected = {name: data for name, data in flashed.items() if name not in ("boot.py", "main.py", "updater.mpy")}
    assert "app.mpy" in expected and {e["name"] for e in manifest["files"]} == set(expected)
    for entry in manifest["files"]:
        data = (release / entry["name"]).read_bytes()
        assert data == expected[entry["name"]]
        assert (entry["size"], entry["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    assert manifest["version"] == version and manifest["size"] == sum(len(d) for d in expected.values())
    assert sorted(p.name for p in release.iterdir()) == sorted([*expected, "manifest.json"])

    assert main(["ota", "publish"]) == 0, "publishing the same app again changes nothing"
    assert "already published with this content" in capsys.readouterr().out


def test_a_published_version_never_changes(tmp_path):
    device = tmp_path / "device"
    shutil.copytree(firmware.DEVICE, device)
    releases = ota.LocalReleases(tmp_path / "data")
    version, _, _ = ota.publish(releases, device)
    before = (tmp_path / "data" / "releases" / version / "log.mpy").read_bytes()
    with (device / "log.py").open("a") as f:
        f.write("\nCHANGED = 1\n")
    with pytest.raises(CommandError, match=f'release {version} is already published with other content.*FW = "'):
        ota.publish(releases, device)
    assert (tmp_path / "data" / "releases" / version / "log.mpy").read_bytes() == before
    app = device / "app.py"
    app.write_text(app.read_text().replace(f'FW = "{version}"', 'FW = "0.2.0-rc1"'))
    assert ota.publish(releases, device)[0] == "0.2.0-rc1"
    assert not [p for p in (tmp_path / "data" / "releases").iterdir() if p.name.startswith(".")]


def test_a_missing_or_bad_fw_line_is_named(tmp_path):
    device = tmp_path / "device"
    shutil.copytree(firmware.DEVICE, device)
    app = device / "app.py"
    app.write_text(app.read_text().replace('FW = "', 'FW = "bad version '))
    with pytest.raises(CommandError, match="FW ="):
        ota.publish(ota.LocalReleases(tmp_path / "data"), device)


def test_rollout_to_one_device_or_a_canary_of_the_fleet_and_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    for device_id in ("a-1", "b-2", "c-3"):
        assert main(["devices", "add", device_id]) == 0
    assert main(["ota", "rollout", "9.9.9", "--all"]) == 1
    assert "no release 9.9.9" in capsys.readouterr().err
    assert main(["ota", "publish"]) == 0
    version = ota.app_version()
    assert main(["ota", "rollout", version, "--device", "c-3", "--canary", "1"]) == 2
    assert "--canary goes with --all" in capsys.readouterr().err
    assert main(["ota", "rollout", version, "--device", "nobody"]) == 1
    assert main(["ota", "rollout", version, "--all", "--canary", "1"]) == 0
    assert f"release {version} offered to 1 device(s): a-1" in capsys.readouterr().out
    assert main(["ota", "rollout", version, "--all", "--canary", "1"]) == 0, "the next canary: one not yet targeted"
    assert "offered to 1 device(s): b-2" in capsys.readouterr().out
    assert main(["ota", "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"{version} offered at its next send" in lines[0] and "no release targeted" in lines[2]
    manifest = (tmp_path / "data" / "releases" / version / "manifest.json").read_bytes()
    row = registry.local_store(tmp_path / "data").get_device("a-1")
    assert row["ota_target"] == {
        "v": version,
        "sha": hashlib.sha256(manifest).hexdigest(),
        "size": len(
            b"".join(
                (tmp_path / "data" / "releases" / version / e["name"]).read_bytes()
                for e in json.loads(manifest)["files"]
            )
        ),
    }


def test_a_release_whose_manifest_a_board_cannot_fetch_is_refused(tmp_path):
    device = tmp_path / "device"
    shutil.copytree(firmware.DEVICE, device)
    for i in range(40):
        (device / f"extra_module_{i:02d}.py").write_text(f"X = {i}\n")
    with pytest.raises(CommandError, match="more than the 4096 a board fetches"):
        ota.publish(ota.LocalReleases(tmp_path / "data"), device)
    assert not (tmp_path / "data" / "releases").exists() or not list((tmp_path / "data" / "releases").iterdir())


def test_cancel_stops_offering_a_release_to_boards_that_do_not_run_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    for device_id in ("a-1", "b-2", "c-3"):
        assert main(["devices", "add", device_id]) == 0
    assert main(["ota", "publish"]) == 0
    version = ota.app_version()
    assert main(["ota", "rollout", version, "--all"]) == 0
    store = registry.local_store(tmp_path / "data")
    # a-1 already runs it: its target stays, the cancel is for boards still to update
    store.record_delivery(store.get_device("a-1"), Delivery(0, {"fw": version}, [Reading(0, 1795000000, 20.0, 50.0)]))
    capsys.readouterr()
    assert main(["ota", "cancel", version, "--device", "b-2"]) == 0
    assert "no longer offered to 1 device(s): b-2" in capsys.readouterr().out
    assert main(["ota", "cancel", version, "--all"]) == 0
    assert "no longer offered to 1 device(s): c-3" in capsys.readouterr().out
    assert [store.get_device(d)["ota_target"] is None for d in ("a-1", "b-2", "c-3")] == [False, True, True]
    assert main(["ota", "cancel", version, "--all"]) == 0
    assert "was not offered to any board that does not run it already" in capsys.readouterr().out
    assert main(["ota", "cancel", version, "--device", "bad id!"]) == 2
