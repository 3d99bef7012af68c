"""pip, resolving as on a Raspberry Pi: `python pip_for_a_pi.py MACHINE PIP-ARGS...`.

pip's own resolver, with two things it cannot be told on the command line:
- environment markers are evaluated for MACHINE (pip evaluates `platform_machine` and
  `python_full_version` for the interpreter that runs it, whatever --platform says), as
  Raspberry Pi OS Bookworm's CPython 3.11.2 on that machine would;
- source distributions are allowed beside --platform. pip forbids the mix because it would
  build them for this host; under --dry-run it only prepares their metadata, and the
  caller checks each sdist it picks can build on a Pi (test_pi_install.py).
The report's "environment" shows the markers it used.
"""

import platform
import sys

BOOKWORM_PYTHON = "3.11.2"


def main() -> int:
    machine, *argv = sys.argv[1:]
    platform.machine = lambda: machine  # before pip computes (and caches) its marker environment
    platform.python_version = lambda: BOOKWORM_PYTHON

    from pip._internal.cli import cmdoptions
    from pip._internal.cli.main import main as pip

    cmdoptions.check_dist_restriction = lambda options, check_target=False: None
    return pip(argv)


if __name__ == "__main__":
    sys.exit(main())
