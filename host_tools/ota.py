"""`dhtlink ota publish`: the app as a release for over-the-air updates.

A release is the same compiled files `make flash` uploads (host_tools/firmware.py), less
boot.py and main.py, which stay the board's own (the part that must survive a bad
release), with a manifest naming each file's size and SHA-256. Its version is the app's
own `FW` (device/app.py): a board reports that in `status.fw`, which is how the receiver
will know a board runs the release. Releases are kept under $DATA_DIR/releases/VERSION/
and never change once published: the same version with other content is refused.

`dhtlink ota rollout` points devices at a release in the registry; the receiver then
offers it in its signed answer (docs/ota.md). `dhtlink ota status` shows where each
device is. Releases are served by the local endpoint (`dhtlink serve`) from the same
DATA_DIR; a deployed stack does not serve them yet.
"""

import argparse
import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from host_tools import firmware
from host_tools.common import data_dir
from host_tools.errors import CommandError, UsageError

RELEASES = "releases"
MANIFEST = "manifest.json"
VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}")  # fits status.fw (32 characters)


def app_version(device_dir: Path = firmware.DEVICE) -> str:
    match = re.search(r'^FW = "([^"]*)"', (device_dir / "app.py").read_text(), re.MULTILINE)
    if not match or not VERSION.fullmatch(match.group(1)):
        raise CommandError('device/app.py has no valid FW = "VERSION" line (1-32 of A-Z a-z 0-9 . + _ -)')
    return match.group(1)


def manifest_bytes(version: str, files: dict[str, bytes]) -> bytes:
    """The manifest as stored and as its digest is taken: canonical JSON, so the same
    release always has the same digest."""
    entries = [
        {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in sorted(files.items())
    ]
    document = {"version": version, "files": entries, "size": sum(len(d) for d in files.values())}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


BOARD_OWN = (*firmware.SOURCE_ONLY, "updater.mpy")  # what switches and rolls back: never in a release


def release_files(device_dir: Path = firmware.DEVICE) -> dict[str, bytes]:
    return {name: data for name, data in firmware.build(device_dir).items() if name not in BOARD_OWN}


def publish(root: Path, device_dir: Path = firmware.DEVICE) -> tuple[str, dict[str, Any], bool]:
    """Build and store the release of the app in device_dir under root/releases/VERSION;
    returns (version, manifest, newly published). Written to a temporary directory and
    renamed into place, so a release directory is always whole."""
    version = app_version(device_dir)
    files = release_files(device_dir)
    manifest = manifest_bytes(version, files)
    releases = root / RELEASES
    target = releases / version
    if target.exists():
        if (target / MANIFEST).read_bytes() == manifest:
            return version, json.loads(manifest), False
        raise CommandError(
            f"release {version} is already published with other content: a release never changes, so raise "
            'FW = "..." in device/app.py for this one'
        )
    releases.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=releases))
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        (staging / MANIFEST).write_bytes(manifest)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return version, json.loads(manifest), True


def target(root: Path, version: str) -> dict[str, Any]:
    """What the receiver offers for a published release: {"v", "sha", "size"}."""
    path = root / RELEASES / version / MANIFEST
    if not VERSION.fullmatch(version) or not path.is_file():
        raise CommandError(f"no release {version} in {root / RELEASES}: `dhtlink ota publish` makes one")
    manifest = path.read_bytes()
    return {"v": version, "sha": hashlib.sha256(manifest).hexdigest(), "size": json.loads(manifest)["size"]}


def rollout(store: Any, offer: dict[str, Any], device: str | None, canary: int | None) -> list[str]:
    """Point one device, or all (the first `canary` of those not yet targeted), at the
    release; returns the device ids newly targeted."""
    if device is not None:
        from cloud.stores.base import NoSuchDevice

        try:
            store.set_ota_target(device, offer)
        except NoSuchDevice:
            raise CommandError(f"no device {device} in the registry") from None
        return [device]
    rows = [row for row in store.list_devices() if (row.get("ota_target") or {}).get("v") != offer["v"]]
    chosen = [row["device_id"] for row in sorted(rows, key=lambda r: r["device_id"])][:canary]
    for device_id in chosen:
        store.set_ota_target(device_id, offer)
    return chosen


def state(row: dict[str, Any]) -> str:
    """One device's rollout state, from its target and what its last status reported."""
    wanted = row.get("ota_target")
    status = row.get("last_status") or {}
    if not wanted:
        return "no release targeted"
    version = wanted["v"]
    if status.get("fw") == version:
        return f"runs {version}" + (" (on trial)" if status.get("ota") == "trial" else "")
    if status.get("ota_failed") == version:
        return f"{version} ROLLED BACK or refused: {status.get('ota_error')}"
    if status.get("ota") in ("download", "ready"):
        return f"{version} {status['ota']}ing" if status["ota"] == "download" else f"{version} ready, switching"
    return f"{version} offered at its next send"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ota",
        help="over-the-air app releases",
        description="Publish the app (device/) as a release with a manifest of file sizes and SHA-256 digests, "
        "under $DATA_DIR/releases/. Its version is FW in device/app.py. See docs/ota.md.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("publish", help="build the app into a release (version: FW in device/app.py)")
    roll = actions.add_parser("rollout", help="offer a published release to a device or the fleet")
    roll.add_argument("version")
    which = roll.add_mutually_exclusive_group(required=True)
    which.add_argument("--device", default=None, help="one device id")
    which.add_argument("--all", action="store_true", help="every registered device")
    roll.add_argument("--canary", default=None, help="with --all: only this many devices not yet targeted")
    actions.add_parser("status", help="each device's release target and what it reports")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = data_dir()
    if args.action == "rollout":
        return run_rollout(args, root)
    if args.action == "status":
        from cloud import admin

        rows = admin.local_store(root).list_devices()
        if not rows:
            print("no devices: `dhtlink devices add ID` registers one")
        for row in rows:
            fw = (row.get("last_status") or {}).get("fw", "-")
            print(f"{row['device_id']:<24} fw={fw:<10} {state(row)}")
        return 0
    version, manifest, new = publish(root)
    where = root / RELEASES / version
    files = manifest["files"]
    if new:
        print(f"published release {version}: {len(files)} files, {manifest['size']} bytes, in {where}")
    else:
        print(f"release {version} is already published with this content ({where})")
    return 0


def run_rollout(args: argparse.Namespace, root: Path) -> int:
    from cloud import admin

    canary = None
    if args.canary is not None:
        if not args.all:
            raise UsageError("--canary goes with --all")
        if not args.canary.isdigit() or int(args.canary) < 1:
            raise UsageError(f"--canary must be a whole number of devices from 1 up, got {args.canary!r}")
        canary = int(args.canary)
    if args.device is not None:
        try:
            admin.check_device_id(args.device)
        except admin.InvalidDeviceId as error:
            raise UsageError(f"--device: {error}") from None
    offer = target(root, args.version)
    chosen = rollout(admin.local_store(root), offer, args.device, canary)
    print(f"release {args.version} offered to {len(chosen)} device(s): {', '.join(chosen) or 'none left'}")
    print("  each downloads it at its next sends and switches at the boot after; `dhtlink ota status` follows it")
    return 0
