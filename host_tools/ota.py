"""`dhtlink ota publish`: the app as a release for over-the-air updates.

A release is the same compiled files `make flash` uploads (host_tools/firmware.py), less
boot.py and main.py, which stay the board's own (the part that must survive a bad
release), with a manifest naming each file's size and SHA-256. Its version is the app's
own `FW` (device/app.py): a board reports that in `status.fw`, which is how the receiver
will know a board runs the release. Releases are kept under $DATA_DIR/releases/VERSION/
and never change once published: the same version with other content is refused.

How the rest of the update is meant to work (rollout, the signed offer, download,
switch, rollback) is docs/ota.md; only publishing is built so far.
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
from host_tools.errors import CommandError

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


def release_files(device_dir: Path = firmware.DEVICE) -> dict[str, bytes]:
    return {name: data for name, data in firmware.build(device_dir).items() if name not in firmware.SOURCE_ONLY}


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


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ota",
        help="over-the-air app releases",
        description="Publish the app (device/) as a release with a manifest of file sizes and SHA-256 digests, "
        "under $DATA_DIR/releases/. Its version is FW in device/app.py. See docs/ota.md.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("publish", help="build the app into a release (version: FW in device/app.py)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = data_dir()
    version, manifest, new = publish(root)
    where = root / RELEASES / version
    files = manifest["files"]
    if new:
        print(f"published release {version}: {len(files)} files, {manifest['size']} bytes, in {where}")
    else:
        print(f"release {version} is already published with this content ({where})")
    return 0
