"""The device registry behind `dhtlink devices`, `provision` and `bench`: local (the SQLite store
in a data folder) or a deployed stack's (found through CloudFormation). Host side only: the
Lambda artifact holds none of it."""

import time
from typing import Any

from cloud import protocol
from cloud.local.files import STORE_FILE, TOKEN_FILE, local_store
from cloud.protocol import DEVICE_ID
from cloud.stores.base import DeviceExists, InvalidLabel, NoSuchDevice, Store, check_label, public_device

__all__ = [
    "STORE_FILE",
    "TOKEN_FILE",
    "DeviceExists",
    "InvalidDeviceId",
    "InvalidLabel",
    "NoSuchDevice",
    "local_store",
]


class InvalidDeviceId(ValueError):
    pass


def check_device_id(device_id: str) -> str:
    if not DEVICE_ID.fullmatch(device_id or ""):
        raise InvalidDeviceId(
            f"invalid device id {device_id!r}: use 1-64 characters of A-Z a-z 0-9 _ - (e.g. greenhouse-01)"
        )
    return device_id


def add_device(store: Store, device_id: str) -> str:
    """Register a device; returns its new secret (64 hex characters)."""
    check_device_id(device_id)
    secret = protocol.new_secret()
    try:
        store.add_device(device_id, secret, int(time.time()))
    except DeviceExists:
        raise DeviceExists(
            f"device {device_id} is already registered: `dhtlink devices rotate {device_id}` gives it a new secret"
        ) from None
    return secret


def rotate_secret(store: Store, device_id: str) -> str:
    check_device_id(device_id)
    secret = protocol.new_secret()
    try:
        store.set_secret(device_id, secret)
    except NoSuchDevice:
        raise NoSuchDevice(f"no device {device_id}: `dhtlink devices add {device_id}` registers it") from None
    return secret


def remove_device(store: Store, device_id: str) -> None:
    check_device_id(device_id)
    try:
        store.remove_device(device_id)
    except NoSuchDevice:
        raise NoSuchDevice(f"no device {device_id} in the registry") from None


def set_desired(store: Store, device_id: str, changes: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Merge changes into the device's desired settings (docs/protocol.md, "Remote
    settings"); returns (new version, desired settings)."""
    check_device_id(device_id)
    try:
        return store.set_desired(device_id, changes)
    except NoSuchDevice:
        raise NoSuchDevice(f"no device {device_id}: `dhtlink devices add {device_id}` registers it") from None


def set_labels(store: Store, device_id: str, labels: dict[str, str]) -> dict[str, str]:
    """Set a device's name and/or room, shown on the dashboard ("" clears one); returns
    them as stored (checked, spaces trimmed)."""
    check_device_id(device_id)
    checked = {field: check_label(field, value) for field, value in labels.items()}
    try:
        store.set_labels(device_id, checked)
    except NoSuchDevice:
        raise NoSuchDevice(f"no device {device_id}: `dhtlink devices add {device_id}` registers it") from None
    return checked


def set_ota_target(store: Store, device_id: str, target: dict[str, Any] | None) -> None:
    """Offer a release to a device (docs/ota.md), or stop offering one (None)."""
    check_device_id(device_id)
    try:
        store.set_ota_target(device_id, target)
    except NoSuchDevice:
        raise NoSuchDevice(f"no device {device_id}: `dhtlink devices add {device_id}` registers it") from None


def list_devices(store: Store) -> list[dict[str, Any]]:
    return [public_device(row) for row in store.list_devices()]


def stack_outputs(stack_name: str, cloudformation: Any = None) -> dict[str, str]:
    import boto3
    from botocore.exceptions import ClientError

    cfn = cloudformation or boto3.client("cloudformation")
    try:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as error:
        raise LookupError(f"no CloudFormation stack {stack_name!r}: deploy it with `make deploy` first") from error
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def forget_in_home_assistant(stack_name: str, device_id: str) -> bool:
    """With the stack's Home Assistant block on (output HomeAssistantBridgePolicyName), remove
    the device from Home Assistant too (docs/home-assistant.md); False when the block is off."""
    if "HomeAssistantBridgePolicyName" not in stack_outputs(stack_name):
        return False
    from cloud.homeassistant import iot

    iot.forget(iot.iot_data_client(), device_id)
    return True


def aws_store(stack_name: str) -> Store:
    from cloud.stores.dynamodb import DynamoDBStore

    outputs = stack_outputs(stack_name)
    try:
        return DynamoDBStore(
            outputs["ReadingsTableName"], outputs["DevicesTableName"], alerts_table=outputs.get("AlertsTableName", "")
        )
    except KeyError:
        raise LookupError(f"stack {stack_name!r} has no ReadingsTableName/DevicesTableName outputs") from None
