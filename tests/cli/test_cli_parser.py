"""The CLI grammar's safety rules, on the real parser of every verb."""

import pytest

from host_tools import cli
from tests.cli.conftest import every_parser

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


# -- one grammar: the same option means the same thing, in the same place, in every verb --------

BOARD_VERBS = ("flash", "provision", "repl", "logs", "reset", "safe-mode", "status")


def options(parser):
    return {flag: action for action in parser._actions for flag in action.option_strings}


def test_every_verb_and_option_has_help():
    import argparse

    for path, parser in every_parser():
        where = f"dhtlink {' '.join(path)}"
        if len(path) == 1:
            assert parser.description, f"{where} has no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions), f"{where}: a sub-command has no help"
            elif action.help != argparse.SUPPRESS:
                assert action.help, f"{where}: {action.option_strings or action.dest} has no help"


def test_board_verbs_take_dash_p_and_say_where_the_port_comes_from():
    parsers = dict(every_parser())
    for verb in BOARD_VERBS:
        port = options(parsers[(verb,)])["-p"]
        assert port is options(parsers[(verb,)])["--port"]
        assert "$DHTLINK_PORT" in port.help, verb


def test_one_spelling_per_idea_after_the_sub_command():
    parsers = dict(every_parser())
    for path in [("query", "latest"), ("query", "range"), ("sim",), ("provision",)]:
        assert "--device" in options(parsers[path]), path
    for path in [("query", "latest"), ("query", "range"), ("query", "devices"), ("sim",), ("provision",), ("bench",)]:
        assert "--endpoint" in options(parsers[path]), path
    for path in [("serve",), ("provision",), ("query", "devices"), *[("devices", a) for a in ("add", "list")]]:
        assert "--data-dir" in options(parsers[path]), path
    for path in [("status",), ("sim",), ("query", "latest"), ("query", "range"), ("query", "devices")]:
        assert "--json" in options(parsers[path]), path
    for action in ("add", "list", "remove", "rotate"):
        assert {"--aws", "--stack"} <= set(options(parsers[("devices", action)]))
    # The sub-command's parent takes none of them: they go after it, as the README writes them.
    assert not {"--json", "--endpoint", "--url", "--token", "--aws"} & set(options(parsers[("query",)]))
    assert not {"--json", "--aws"} & set(options(parsers[("devices",)]))


def test_old_spellings_still_parse_but_are_not_listed():
    parser = cli.build_parser()
    args = parser.parse_args(["provision", "--device-id", "d1", "--wifi-ssid", "s", "--endpoint", "http://h"])
    assert args.device == "d1"
    assert parser.parse_args(["query", "devices", "--url", "http://h"]).endpoint == "http://h"
    help_text = dict(every_parser())[("provision",)].format_help()
    assert "--device-id" not in help_text and "--device ID" in help_text


def test_a_missing_device_is_named(capsys):
    code, err = run(capsys, ["query", "latest"])
    assert code == 2 and "the following arguments are required: --device" in err
