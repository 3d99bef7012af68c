"""device/ and cloud/ state the same protocol facts, each in one place per side.

The firmware cannot import cloud/ (nor CPython the firmware: it imports machine), so the
firmware's facts are read from its source as the constants and literals they are, and
compared with cloud/protocol.py's and the host tools'. A change on one side only fails here.
"""

import ast
import string
from pathlib import Path

from cloud import protocol
from cloud.stores.base import RENUMBER_CEILING
from host_tools.serial import files as board_files
from host_tools.sim.vboard import board as vboard

REPO = Path(__file__).resolve().parents[1]
DEVICE = REPO / "device"


def constants(path: Path) -> dict[str, object]:
    """The module's top-level NAME = literal assignments."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return found


def string_keys(tree: ast.AST) -> set[str]:
    """Keys of dict literals, of subscript assignments (`status["x"] = ...`) and of loops that
    copy keys (`for k in ("a", "b"): out[k] = ...`) in tree."""
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple):
            keys |= {e.value for e in node.iter.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        if isinstance(node, ast.Dict):
            keys |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                    keys.add(target.slice.value)
    return keys


def function(path: Path, name: str) -> ast.AST:
    return next(
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == name
    )


config = constants(DEVICE / "config.py")


def test_device_ids_allow_the_same_characters_and_length():
    printable = set(string.printable)
    assert {c for c in printable if protocol.DEVICE_ID.fullmatch(c)} == set(config["ID_CHARS"])
    assert protocol.DEVICE_ID.fullmatch("a" * config["ID_MAX"]) and not protocol.DEVICE_ID.fullmatch(
        "a" * (config["ID_MAX"] + 1)
    )


def test_secrets_have_the_same_format():
    assert protocol.SECRET.fullmatch(config["HEX"][0] * config["SECRET_LEN"])
    assert not protocol.SECRET.fullmatch("0" * (config["SECRET_LEN"] - 1))
    assert {c for c in string.printable if protocol.SECRET.fullmatch(c * config["SECRET_LEN"])} == set(config["HEX"])


def test_a_full_batch_is_one_the_receiver_takes():
    assert config["BATCH_MAX"] == protocol.MAX_READINGS


def test_the_board_renumbers_below_the_ceiling_the_receiver_answers_under():
    # A 409's next_seq is below RENUMBER_CEILING; the board stores seqs in 32 bits.
    assert constants(DEVICE / "delivery.py")["SEQ_CEILING"] == RENUMBER_CEILING == 2**32


def test_every_sensor_reads_only_values_the_receiver_stores():
    # device/sensor.py keeps tenths: (t min, t max, h min, h max) per sensor type
    ranges = constants(DEVICE / "sensor.py")["RANGE"]
    for kind, (t_low, t_high, h_low, h_high) in ranges.items():
        assert protocol.T_RANGE[0] <= t_low / 10 <= t_high / 10 <= protocol.T_RANGE[1], kind
        assert protocol.H_RANGE[0] <= h_low / 10 <= h_high / 10 <= protocol.H_RANGE[1], kind
    assert ranges["DHT22"] == (protocol.T_RANGE[0] * 10, protocol.T_RANGE[1] * 10, 0, protocol.H_RANGE[1] * 10)


def test_the_status_the_board_sends_is_the_status_the_receiver_knows():
    sent = string_keys(function(DEVICE / "app.py", "status")) | string_keys(
        function(DEVICE / "delivery.py", "_counters")
    )
    # Spool's FULL, CLOCK, POISON: the drop causes, each a status key
    spool = next(n for n in ast.parse((DEVICE / "spool.py").read_text()).body if isinstance(n, ast.ClassDef))
    causes = next(n for n in spool.body if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Tuple))
    drop_names = set(ast.literal_eval(causes.value))
    assert len(drop_names) == 3
    assert sent | drop_names == set(protocol.STATUS_KEYS)


def test_board_file_names_agree():
    app, log = constants(DEVICE / "app.py"), constants(DEVICE / "log.py")
    assert (app["SAFE"], config["PATH"], config["SETTINGS"], log["PATH"], log["OLD"]) == (
        board_files.SAFE,
        board_files.CONFIG,
        board_files.SETTINGS,
        board_files.LOG,
        board_files.OLD_LOG,
    )
    assert constants(DEVICE / "delivery.py")["SKIPPED"] == board_files.SEQ_SKIPPED
    assert f'open("{board_files.SEQ_SKIPPED}")' in (DEVICE / "diag.py").read_text()  # named, not imported
    updater = constants(DEVICE / "updater.py")
    assert (updater["STATE"], updater["DOWNLOAD"], (updater["STAGE"], updater["OLD"])) == (
        board_files.OTA_STATE,
        board_files.OTA_DOWNLOAD,
        board_files.OTA_DIRS,
    )
    from host_tools import ota

    device_ota = constants(DEVICE / "ota.py")
    assert device_ota["CHUNK"] == ota.RANGE_BYTES
    # The spool names its state file after its prefix ("spool" unless told otherwise).
    assert board_files.SPOOL_STATE == "spool.state"
    assert 'prefix="spool"' in (DEVICE / "spool.py").read_text() and '".state"' in (DEVICE / "spool.py").read_text()


def test_reset_causes_agree_between_the_virtual_chip_and_its_runner():
    machine = constants(Path(vboard.__file__).parent / "hw" / "machine.py")
    for name in ("PWRON_RESET", "WDT_RESET", "DEEPSLEEP_RESET", "SOFT_RESET"):
        assert machine[name] == getattr(vboard, name), name
    # and MicroPython's ESP32 port's values, which device/app.py compares against
    assert (machine["PWRON_RESET"], machine["HARD_RESET"], machine["WDT_RESET"]) == (1, 2, 3)
    assert (machine["DEEPSLEEP_RESET"], machine["SOFT_RESET"]) == (4, 5)
