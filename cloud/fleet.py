"""Fleet management keys the receiver adds to a signed 200 answer (docs/protocol.md,
"Remote settings"). Stdlib only and computed from the device row ingest already read: no
extra store call on the hot path."""

from typing import Any


def answer_keys(device: dict[str, Any] | None, status: dict[str, Any] | None) -> dict[str, Any]:
    """What to add to a signed 200 answer: {"settings": {"v": version, key: value, ...}}
    while the board does not yet run the desired version and has not refused it, and
    {"ota": {"v", "sha", "size"}} while it does not run its target release and has not
    rolled it back or refused it. An old board ignores both keys."""
    if not device:
        return {}
    status = status or {}
    out: dict[str, Any] = {}
    version = device.get("desired_version") or 0
    desired = device.get("desired")
    if version and desired and version not in (status.get("cfg_v"), status.get("cfg_refused")):
        out["settings"] = {"v": version, **desired}
    target = device.get("ota_target")
    if target and target["v"] not in (status.get("fw"), status.get("ota_failed")):
        out["ota"] = target
    return out
