"""The CLI grammar's safety rules, on the real parser of every verb."""

import pytest

from host_tools import cli

PASSWORD = "hunter2-correct-horse"
PROVISION = ["provision", "--device-id", "d1", "--wifi-ssid", "home", "--endpoint", "http://127.0.0.1:9/data"]


def run(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    return exit_info.value.code, capsys.readouterr().err


def test_an_abbreviated_option_is_refused_and_the_value_not_echoed(capsys):
    # --wifi-password is a prefix of --wifi-password-file: argparse would have taken it.
    code, err = run(capsys, [*PROVISION, "--wifi-password", PASSWORD])
    assert code == 2
    assert "unknown option(s) --wifi-password (values not shown)" in err
    assert PASSWORD not in err


def test_option_equals_value_is_not_echoed_either(capsys):
    code, err = run(capsys, [*PROVISION, f"--wifi-password={PASSWORD}"])
    assert code == 2 and PASSWORD not in err and "unknown option(s) --wifi-password " in err


def test_stray_positional_words_are_counted_not_shown(capsys):
    code, err = run(capsys, ["ports", PASSWORD])
    assert code == 2 and PASSWORD not in err and "1 unexpected argument" in err


def test_nested_verbs_refuse_abbreviations_too(capsys):
    # `devices add` has --json; `--js` must not stand for it.
    code, err = run(capsys, ["devices", "add", "x1", "--js"])
    assert code == 2 and "--js" in err
