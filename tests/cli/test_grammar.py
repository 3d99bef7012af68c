"""One grammar across the CLI, read from the real parser of every verb: one spelling per idea,
the same option meaning the same thing everywhere, durations and times in one syntax, and no
option that takes a secret's value on the command line."""

import argparse
import re
from collections import defaultdict

import pytest

from host_tools.common import duration, timestamp
from host_tools.errors import UsageError
from tests.cli.conftest import every_parser

# For each idea, the one spelling every verb uses, and others a verb might grow by habit.
IDEAS = {
    "the device id": ("--device", ["--device-id", "--id", "--node"]),
    "every device": ("--all", ["--all-devices", "--every"]),
    "the receiver's base URL": ("--endpoint", ["--url", "--api-url", "--server"]),
    "the local store's folder": ("--data-dir", ["--dir-data", "--store-dir", "--db"]),
    "machine-readable output": ("--json", ["--as-json", "--format"]),
    "the serve's TCP port": ("--listen", ["--tcp-port", "--http-port", "--bind"]),
    "simulated time": ("--duration", ["--hours", "--minutes", "--days"]),
    "keeping data": ("--retention", ["--retention-days", "--keep-days"]),
}
# Options that would carry a secret's value into shell history and `ps`.
SECRET_VALUES = {"--secret", "--token", "--password", "--wifi-password", "--mqtt-password", "--key"}
# Suffixes that make a second spelling of the same idea (`--device` and `--device-id`).
SAME_IDEA_SUFFIXES = ("-id", "-days", "-hours", "-minutes", "-seconds", "-devices", "-url", "-s")


def listed_options():
    """(verb path, option string, action) for every option `--help` shows."""
    for path, parser in every_parser():
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
                continue
            for flag in action.option_strings:
                yield path, flag, action


def where(path):
    return "dhtlink " + " ".join(path)


def test_each_idea_has_one_spelling_in_every_help():
    listed = {flag for _, flag, _ in listed_options()}
    for idea, (spelling, others) in IDEAS.items():
        assert spelling in listed, f"{idea}: {spelling} is listed by no verb"
        assert not listed & set(others), f"{idea} is spelt {sorted(listed & set(others))} besides {spelling}"


def test_no_two_listed_options_differ_by_a_suffix_that_names_the_same_idea():
    stems = defaultdict(set)
    for _path, flag, _ in listed_options():
        if flag.startswith("--"):
            stem = flag
            for suffix in SAME_IDEA_SUFFIXES:
                stem = stem.removesuffix(suffix)
            stems[stem].add(flag)
    clashes = {stem: sorted(flags) for stem, flags in stems.items() if len(flags) > 1}
    assert not clashes, f"two spellings of one idea: {clashes}"


def test_an_option_takes_the_same_kind_of_value_in_every_verb():
    kinds = defaultdict(dict)
    for path, flag, action in listed_options():
        if flag.startswith("--") and flag not in ("--help", "--version"):
            kind = "flag" if action.nargs == 0 else (action.metavar or action.dest.upper())
            kinds[flag].setdefault(kind, where(path))
    mixed = {flag: seen for flag, seen in kinds.items() if len(seen) > 1}
    assert not mixed, f"options whose value differs by verb: {mixed}"


def test_dash_p_is_the_serial_port_in_every_verb_that_has_it():
    for path, flag, action in listed_options():
        if flag in ("-p", "--port"):
            assert "serial port" in action.help, f"{where(path)} {flag} is not the board's serial port"


def test_no_option_takes_a_secret_on_the_command_line():
    for path, flag, _ in listed_options():
        assert flag not in SECRET_VALUES, f"{where(path)} {flag} puts a secret in shell history"


def test_every_span_of_time_is_a_duration_and_every_point_in_time_a_time():
    unit_words = re.compile(r"\b(seconds|minutes|hours|days)\b (between|to|of)|\bin seconds\b|\(s\)")
    for path, flag, action in listed_options():
        if action.nargs == 0 or not flag.startswith("--"):
            continue
        help_text = action.help or ""
        if action.metavar == "DURATION":
            assert "90s" in help_text or re.search(r"\d+d\b", help_text), f"{where(path)} {flag}: show the syntax"
        else:
            assert not unit_words.search(help_text), f"{where(path)} {flag} counts time in a unit: use DURATION"
            assert not re.search(r"-(seconds|minutes|hours|days)$", flag) and flag != "--hours", flag
        if flag in ("--from", "--to", "--since", "--until"):
            assert action.metavar == "TIME", f"{where(path)} {flag} is a time"


def test_short_flags_users_expect():
    parsers = dict(every_parser())
    root = {flag for action in parsers[()]._actions for flag in action.option_strings}
    assert {"-q", "-v", "--quiet", "--verbose"} <= root
    logs = {flag for action in parsers[("logs",)]._actions for flag in action.option_strings}
    assert {"-f", "--follow"} <= logs
    for path, parser in parsers.items():
        flags = {flag for action in parser._actions for flag in action.option_strings}
        if "--aws" in flags:
            assert {"--region", "--profile"} <= flags, f"{where(path)} has --aws without --region/--profile"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("6h", 21600), ("30d", 2592000), ("300", 300), ("1.5h", 5400), (" 2m ", 120)],
)
def test_one_duration_syntax(text, seconds):
    assert duration("--x", text, 0, 10**9) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10 minutes", "--x must be a duration (90s, 10m, 6h or 30d; a bare number is seconds), got '10 minutes'"),
        ("1h30m", "--x must be a duration"),
        ("-5m", "--x must be a duration"),
        ("1", "--x must be from 1m to 1d, got 1 (a bare number is seconds)"),
        ("2d", "--x must be from 1m to 1d, got 2d"),
    ],
)
def test_a_bad_duration_names_the_option_and_the_syntax(text, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        duration("--x", text, 60, 86400)


@pytest.mark.parametrize(
    ("text", "ts"),
    [
        ("1795300000", 1795300000),
        ("2026-12-07", 1796601600),
        ("2026-12-07T06:00", 1796623200),
        ("2026-12-07 06:00:00", 1796623200),
        ("2026-12-07T07:00+01:00", 1796623200),
        ("2026-12-07T06:00Z", 1796623200),
    ],
)
def test_a_time_is_iso_8601_in_utc_unless_it_names_a_zone_or_unix_seconds(text, ts):
    assert timestamp("--from", text) == ts


def test_a_bad_time_names_the_option_and_both_forms():
    with pytest.raises(UsageError, match=r"--from must be a time: ISO 8601 .* or Unix seconds; got 'last week'"):
        timestamp("--from", "last week")


def test_the_device_is_an_argument_only_where_it_is_what_the_verb_acts_on():
    """`devices add|remove|rotate|set DEVICE` act on the registry entry itself (as `git remote
    add NAME`); every other verb names the device it reads or sends as with --device."""
    for path, parser in every_parser():
        positional = [a for a in parser._actions if not a.option_strings and a.dest in ("device", "device_id")]
        if positional:
            assert path[0] == "devices", f"{where(path)} takes the device as an argument: use --device"
