"""The systemd unit that keeps `dhtlink node` running on a Linux board."""

import grp
import pwd
import shlex
import sys
from pathlib import Path

UNIT_NAME = "dhtlink-node.service"
UNIT_DIR = Path("/etc/systemd/system")
GPIO_GROUP = "gpio"


def unit_text(node_args: list[str], secret_file: Path, user: str, python: str = sys.executable) -> str:
    """The unit. The secret reaches the node as a systemd credential: the file can stay
    root's (mode 600) and only this service sees its copy; it is never on a command line."""
    command = shlex.join([python, "-m", "host_tools.cli", "node", *node_args])
    return f"""\
# Written by `dhtlink node install-service`. Enable it with:
#   sudo systemctl daemon-reload && sudo systemctl enable --now dhtlink-node
[Unit]
Description=dhtlink sensor node (DHT reads, signed delivery; docs/pi-node.md)
Wants=network-online.target time-sync.target
After=network-online.target time-sync.target

[Service]
Type=simple
User={user}
SupplementaryGroups={GPIO_GROUP}
LoadCredential=secret:{secret_file}
ExecStart={command} --secret-file %d/secret
StateDirectory=dhtlink-node
StateDirectoryMode=0750
Restart=on-failure
RestartSec=10
# A configuration error (an option, the secret file, a pin the board lacks) exits 2:
# retrying cannot fix that. Anything else exits 1 and is restarted; a GPIO stack that
# cannot be opened is not an exit at all: the node retries it with backoff.
RestartPreventExitStatus=2
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def user_problems(user: str) -> list[str]:
    """What is wrong with running the service as `user`, each with the command that fixes it."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return [f"no user {user!r}: create it with `sudo useradd --system --no-create-home --groups gpio {user}`"]
    try:
        group = grp.getgrnam(GPIO_GROUP)
    except KeyError:
        return [f"no {GPIO_GROUP!r} group on this system: the service user needs access to /dev/gpiochip*"]
    if entry.pw_gid != group.gr_gid and user not in group.gr_mem:
        return [f"{user} is not in the gpio group: `sudo usermod -aG gpio {user}`"]
    return []


def install(text: str, unit_dir: Path = UNIT_DIR) -> Path:
    path = unit_dir / UNIT_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(path)
    return path
