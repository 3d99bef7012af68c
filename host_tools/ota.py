"""Over-the-air app releases, host side: publish, roll out, follow (docs/ota.md).

A release is the same compiled files `make flash` uploads (host_tools/serial/firmware.py),
less boot.py, main.py and updater.py, which stay the board's own (the part that must
survive a bad release), with a manifest naming each file's size and SHA-256. Its version
is the app's own `FW` (device/app.py): a board reports that in `status.fw`, which is how
the receiver knows a board runs the release. A published release never changes: the same
version with other content is refused.

Releases live where the receiver serves them from (cloud/releases.py): under
DATA_DIR/releases/VERSION/ for the local endpoint, in the deployed stack's ReleasesBucket
under releases/VERSION/ for API Gateway. One class per medium, the same verbs.
"""

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud.releases import MANIFEST, PREFIX, VERSION, directory_reader, s3_reader
from host_tools.errors import CommandError
from host_tools.serial import firmware

MANIFEST_MAX = 4096  # device/ota.py asks for bytes 0-4095 of it
RANGE_BYTES = 8192  # device/ota.py's CHUNK: a board asks for a file in ranges of this size


def requests_per_board(manifest: dict[str, Any]) -> int:
    """GET /ota/... requests a board makes for a release when nothing fails: the manifest,
    then each file in ranges."""
    return 1 + sum(-(-entry["size"] // RANGE_BYTES) for entry in manifest["files"])


BOARD_OWN = (*firmware.SOURCE_ONLY, "updater.mpy")  # what switches and rolls back: never in a release


class Releases:
    """Where published releases are kept: read a file (as the receiver does), write a whole release."""

    where = ""

    def __init__(self, read: Callable[[str, str], bytes | None]) -> None:
        self.read = read

    def write_release(self, version: str, files: dict[str, bytes], manifest: bytes) -> None:
        """Store files, then the manifest: a release without its manifest is not published."""
        raise NotImplementedError


class LocalReleases(Releases):
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / PREFIX
        self.where = str(self.root)
        super().__init__(directory_reader(self.root))

    def write_release(self, version: str, files: dict[str, bytes], manifest: bytes) -> None:
        # Written to a temporary folder and renamed into place: a release folder is always whole.
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.root))
        try:
            for name, data in files.items():
                (staging / name).write_bytes(data)
            (staging / MANIFEST).write_bytes(manifest)
            shutil.rmtree(self.root / version, ignore_errors=True)  # files of an upload cut before its manifest
            staging.rename(self.root / version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class S3Releases(Releases):
    def __init__(self, bucket: str, client: Any = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3")
        self.bucket, self.client = bucket, client
        self.where = f"s3://{bucket}/{PREFIX}/"
        super().__init__(s3_reader(bucket, client))

    def write_release(self, version: str, files: dict[str, bytes], manifest: bytes) -> None:
        # The manifest goes last: a board is offered a release only through its manifest's
        # digest, so files of a cut upload are never fetched (and the next publish rewrites them).
        for name, data in [*sorted(files.items()), (MANIFEST, manifest)]:
            self.client.put_object(
                Bucket=self.bucket,
                Key=f"{PREFIX}/{version}/{name}",
                Body=data,
                ContentType="application/octet-stream",
            )


def stack_releases(stack: str) -> S3Releases:
    """The releases of a deployed stack (its ReleasesBucketName output)."""
    from host_tools import registry

    try:
        bucket = registry.stack_outputs(stack).get("ReleasesBucketName")
    except LookupError as error:
        raise CommandError(str(error)) from None
    except Exception as error:  # botocore's credential and region errors share no base class worth naming
        raise CommandError(f"cannot reach AWS: {error}") from None
    if not bucket:
        raise CommandError(f"stack {stack!r} has no ReleasesBucketName output: redeploy it (`make deploy`)")
    return S3Releases(bucket)


def app_version(device_dir: Path = firmware.DEVICE) -> str:
    match = re.search(r'^FW = "([^"]*)"', (device_dir / "app.py").read_text(), re.MULTILINE)
    if not match or not VERSION.fullmatch(match.group(1)):
        raise CommandError('device/app.py has no valid FW = "VERSION" line (1-32 of A-Z a-z 0-9 . + _ -)')
    return match.group(1)


def manifest_bytes(version: str, files: dict[str, bytes]) -> bytes:
    """The manifest as stored and as its digest is taken: JSON in one canonical form, so the
    same release always has the same digest, with the version first and one file per line,
    so a board reads it a line at a time (device/ota.py) rather than in one heap block."""
    head = {"version": version, "size": sum(len(data) for data in files.values())}
    lines = [json.dumps(head, separators=(",", ":"))[:-1] + ',"files":[']
    entries = [
        json.dumps({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}, separators=(",", ":"))
        for name, data in sorted(files.items())
    ]
    lines += [entry + "," for entry in entries[:-1]] + entries[-1:] + ["]}"]
    return ("\n".join(lines) + "\n").encode()


def release_files(device_dir: Path = firmware.DEVICE) -> dict[str, bytes]:
    return {name: data for name, data in firmware.build(device_dir).items() if name not in BOARD_OWN}


def publish(releases: Releases, device_dir: Path = firmware.DEVICE) -> tuple[str, dict[str, Any], bool]:
    """Build the app in device_dir and publish it; returns (version, manifest, newly published)."""
    version = app_version(device_dir)
    files = release_files(device_dir)
    manifest = manifest_bytes(version, files)
    if len(manifest) > MANIFEST_MAX:
        raise CommandError(
            f"the release's manifest is {len(manifest)} bytes, more than the {MANIFEST_MAX} a board fetches "
            f"(device/ota.py): {len(files)} files is too many"
        )
    published = releases.read(version, MANIFEST)
    if published is not None:
        if published == manifest:
            return version, json.loads(manifest), False
        raise CommandError(
            f"release {version} is already published with other content: a release never changes, so raise "
            'FW = "..." in device/app.py for this one'
        )
    releases.write_release(version, files, manifest)
    return version, json.loads(manifest), True


def target(releases: Releases, version: str) -> dict[str, Any]:
    """What the receiver offers for a published release: {"v", "sha", "size"}."""
    manifest = releases.read(version, MANIFEST) if VERSION.fullmatch(version) else None
    if manifest is None:
        raise CommandError(f"no release {version} in {releases.where}: `dhtlink ota publish` makes one")
    return {"v": version, "sha": hashlib.sha256(manifest).hexdigest(), "size": json.loads(manifest)["size"]}


def rollout(store: Any, offer: dict[str, Any], device: str | None, canary: int | None) -> list[str]:
    """Point one device, or all (the first `canary` of those not yet targeted), at the
    release; returns the device ids newly targeted."""
    from host_tools import registry

    if device is not None:
        registry.set_ota_target(store, device, offer)
        return [device]
    rows = [row for row in store.list_devices() if (row.get("ota_target") or {}).get("v") != offer["v"]]
    chosen = [row["device_id"] for row in sorted(rows, key=lambda r: r["device_id"])][:canary]
    for device_id in chosen:
        registry.set_ota_target(store, device_id, offer)
    return chosen


def cancel(store: Any, version: str, device: str | None) -> list[str]:
    """Stop offering release `version` to one device, or to every device it is offered to
    and does not run yet; returns the device ids no longer offered it. A board that has
    already downloaded it whole still switches at its next boot (it cannot hear of the
    cancel before then) and runs it on trial."""
    from host_tools import registry

    rows = [store.get_device(device) or {"device_id": device}] if device is not None else store.list_devices()
    stopped = []
    for row in rows:
        target = row.get("ota_target") or {}
        if target.get("v") == version and (row.get("last_status") or {}).get("fw") != version:
            registry.set_ota_target(store, row["device_id"], None)
            stopped.append(row["device_id"])
    return sorted(stopped)


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
    if status.get("ota") == "download":
        return f"{version} downloading"
    if status.get("ota") == "ready":
        return f"{version} ready, switching"
    return f"{version} offered at its next send"
