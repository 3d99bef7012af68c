"""Run `dhtlink` as a Raspberry Pi's install of it would: only the distributions that
dhtlink's core requirements (plus the extras named with --extra) bring can be imported;
every other installed distribution (boto3, mpremote, esptool, waitress, the MicroPython
Unix port, Blinka...) raises ModuleNotFoundError as if it were absent.

    python tests/node/node_only.py [--extra pi] [--without gpiod] -- node --simulate ...

--without takes away one more module, as a user who skipped a requirement would have it.

The allowed set is computed from the installed metadata (importlib.metadata), so a
requirement moved in pyproject.toml moves here too once `make venv` reinstalled it.
"""

import importlib.abc
import importlib.metadata as metadata
import re
import sys

from packaging.requirements import Requirement

PROJECT = "dhtlink"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(extras: set[str]) -> set[str]:
    """Canonical names of the distributions `pip install 'dhtlink[EXTRAS]'` brings."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(PROJECT, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        key = canonical(name)
        if (key, wanted) in seen:
            continue
        seen.add((key, wanted))
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in {"", *wanted}):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return {key for key, _ in seen}


def blocked_modules(extras: set[str]) -> set[str]:
    allowed = closure(extras)
    blocked = set()
    for module, dists in metadata.packages_distributions().items():
        if not any(canonical(dist) in allowed for dist in dists):
            blocked.add(module)
    return blocked


class Absent(importlib.abc.MetaPathFinder):
    def __init__(self, modules: set[str]) -> None:
        self.modules = modules

    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in self.modules:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def main() -> int:
    argv = sys.argv[1:]
    extras, without = set(), set()
    while argv and argv[0] != "--":
        option, value, *argv = argv
        assert option in ("--extra", "--without"), f"usage: {__doc__}"
        (extras if option == "--extra" else without).add(value)
    argv = argv[1:]
    blocked = blocked_modules(extras) | without
    # Loaded before the hook (importlib.metadata needs it here; a Pi has no use for it).
    for module in [name for name in sys.modules if name.partition(".")[0] in blocked]:
        del sys.modules[module]
    sys.meta_path.insert(0, Absent(blocked))
    if argv == ["--print-blocked"]:
        print("\n".join(sorted(blocked)))
        return 0
    from host_tools.cli import main as dhtlink

    sys.argv = ["dhtlink", *argv]
    return dhtlink(argv)


if __name__ == "__main__":
    sys.exit(main())
