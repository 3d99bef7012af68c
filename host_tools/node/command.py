"""`dhtlink node`: run a sensor node on a Linux board; `node status`; `node install-service`."""

import argparse
import json
import logging
import os
import signal
import stat
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

from cloud.protocol import DEVICE_ID, SECRET
from host_tools.common import DATA_PATH, DURATION_HELP, base_url, duration
from host_tools.errors import CommandError, UsageError

# Where a simulated node keeps its spool unless told: beside `dhtlink serve`'s .dhtlink data.
SIMULATED_STATE_DIR = Path(".dhtlink/nodes")


def _node_options(parser: argparse.ArgumentParser) -> None:
    from host_tools.node.node import DEFAULT_STATE_DIR

    parser.add_argument("--device", dest="device_id", metavar="ID", help="the id registered with `dhtlink devices add`")
    parser.add_argument("--device-id", dest="device_id", help=argparse.SUPPRESS)  # the old spelling
    parser.add_argument(
        "--secret-file",
        type=Path,
        metavar="FILE",
        help="file holding the device secret (mode 600), or `devices add --json` output",
    )
    parser.add_argument(
        "--endpoint",
        metavar="URL",
        help="the receiver's base URL, e.g. http://192.168.1.10:8080 (the node POSTs to it + /data; "
        "a URL ending in /data works too)",
    )
    parser.add_argument("--sensor", metavar="TYPE", default="DHT22", help="DHT22 (default) or DHT11")
    parser.add_argument(
        "--simulate",
        action="store_true",
        help="read a simulated DHT22 instead of the GPIO (no Blinka needed): try a node against `dhtlink serve`",
    )
    parser.add_argument(
        "--pin",
        metavar="GPIO",
        default="D4",
        help="the data line's GPIO: a number (4) or a Blinka board pin name (D4, the default; = GPIO4)",
    )
    parser.add_argument(
        "--interval", metavar="DURATION", default="60s", help=f"time between readings: {DURATION_HELP} (default 60s)"
    )
    parser.add_argument(
        "--batch-size", metavar="N", type=int, default=20, help="readings per request, 1-100 (default 20)"
    )
    parser.add_argument(
        "--max-batch-delay",
        metavar="DURATION",
        default="5m",
        help=f"send a partial batch once its oldest reading is this old: {DURATION_HELP} (default 5m)",
    )
    parser.add_argument(
        "--spool-max", metavar="N", type=int, default=100_000, help="readings kept while offline (default 100000)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"where the spool lives (default $STATE_DIRECTORY, else {DEFAULT_STATE_DIR}; "
        f"with --simulate {SIMULATED_STATE_DIR}/ID)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    # No abbreviations: `--secret VALUE` must not be taken for --secret-file (and echoed).
    parser = subparsers.add_parser(
        "node",
        allow_abbrev=False,
        help="run a sensor node on a Raspberry Pi or other Linux board",
        description="Read a DHT11/DHT22 through Blinka, spool to disk and send signed batches (protocol v1.1). "
        "`dhtlink node status` shows the spool; `dhtlink node install-service` writes a systemd unit.",
    )
    _node_options(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every reading")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    status = actions.add_parser("status", allow_abbrev=False, help="spool depth, last send, last error of a node")
    status.add_argument("--state-dir", type=Path, default=argparse.SUPPRESS, help="the node's --state-dir")
    status.add_argument("--json", action="store_true", help="one JSON object")
    service = actions.add_parser(
        "install-service", allow_abbrev=False, help="write the systemd unit that runs this node"
    )
    _node_options(service)
    service.add_argument("--user", default="dhtlink", help="non-root user the service runs as (default dhtlink)")
    service.add_argument("--unit-dir", type=Path, default=None, help="where to write the unit (/etc/systemd/system)")
    service.add_argument("--print", action="store_true", help="print the unit instead of writing it")
    parser.set_defaults(func=run)


def read_secret(path: Path, device_id: str) -> str:
    """The device secret from a file only its owner can read. Never echoes the content."""
    if SECRET.fullmatch(path.name):
        raise UsageError("--secret-file takes the path of a file holding the secret, not the secret itself")
    try:
        info = path.stat()
    except OSError as error:
        raise UsageError(f"--secret-file {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"--secret-file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise UsageError(
            f"--secret-file {path} can be read by group or others (mode {stat.S_IMODE(info.st_mode):o}): "
            f"run `chmod 600 {path}`"
        )
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--secret-file {path}: cannot read it ({type(error).__name__})") from None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise UsageError(f"--secret-file {path}: looks like JSON but does not parse") from None
        if not isinstance(data, dict):
            raise UsageError(f"--secret-file {path}: expected the object `dhtlink devices add --json` prints")
        if data.get("device_id") not in (None, device_id):
            raise UsageError(f"--secret-file {path} is for device {data.get('device_id')!r}, not {device_id!r}")
        text = str(data.get("secret", ""))
    if not SECRET.fullmatch(text):
        raise UsageError(
            f"--secret-file {path} must hold the 64 lowercase hex characters `dhtlink devices add` printed"
        )
    return text


def chosen_state_dir(args: argparse.Namespace) -> Path:
    from host_tools.node.node import DEFAULT_STATE_DIR

    if args.state_dir is not None:
        return args.state_dir
    if os.environ.get("STATE_DIRECTORY"):  # set by systemd's StateDirectory=
        return Path(os.environ["STATE_DIRECTORY"])
    if getattr(args, "simulate", False) and getattr(args, "device_id", None):
        return SIMULATED_STATE_DIR / args.device_id
    return DEFAULT_STATE_DIR


def node_config(args: argparse.Namespace):
    from host_tools.node.node import NodeConfig
    from host_tools.node.sensor import KINDS, PIN_NAME

    for option, flag in (("device_id", "--device"), ("secret_file", "--secret-file"), ("endpoint", "--endpoint")):
        if getattr(args, option) is None:
            raise UsageError(f"{flag} is required")
    if not DEVICE_ID.fullmatch(args.device_id):
        raise UsageError("--device must be 1-64 characters of A-Z a-z 0-9 _ -")
    url = urlsplit(args.endpoint)
    if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
        raise UsageError(f"--endpoint must be an http:// or https:// URL, got {args.endpoint!r}")
    endpoint = base_url(args.endpoint) + DATA_PATH
    if args.sensor not in KINDS:
        raise UsageError(f"--sensor must be DHT22 or DHT11, got {args.sensor!r}")
    pin = f"D{args.pin}" if args.pin.isdigit() else args.pin  # a GPIO number, as `provision --pin` takes
    if not PIN_NAME.match(pin):
        raise UsageError(f"--pin must be a board pin name such as D4, got {args.pin!r}")
    interval_s = duration("--interval", args.interval, 2, 86400)
    max_batch_delay_s = duration("--max-batch-delay", args.max_batch_delay, 0, 7 * 86400)
    for option, low, high in (
        ("batch_size", 1, 100),
        ("spool_max", 100, 10_000_000),
    ):
        if not low <= getattr(args, option) <= high:
            raise UsageError(f"--{option.replace('_', '-')} must be from {low} to {high}")
    return NodeConfig(
        device_id=args.device_id,
        endpoint=endpoint,
        secret=read_secret(args.secret_file, args.device_id),
        sensor=args.sensor,
        pin=pin,
        interval_s=interval_s,
        batch_size=args.batch_size,
        max_batch_delay_s=max_batch_delay_s,
        spool_max=args.spool_max,
        state_dir=chosen_state_dir(args),
        simulate=args.simulate,
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "status":
        return show_status(chosen_state_dir(args), args.json)
    if args.action == "install-service":
        return install_service(args)
    return run_node(node_config(args), args.verbose)


def run_node(config, verbose: bool = False) -> int:
    """Exit status: 0 when stopped (SIGTERM, Ctrl-C); 2 (UsageError) for a configuration no
    retry can fix, which the systemd unit does not restart on; 1 for anything else, which it
    restarts. A sensor that cannot be opened is not an exit: the node retries it with backoff."""
    from host_tools.node.clock import Clock
    from host_tools.node.delivery import Sender
    from host_tools.node.node import Node
    from host_tools.node.sensor import Sensor, SensorSetupError, open_driver
    from host_tools.node.spool import Spool, SpoolError

    # Under systemd (INVOCATION_ID set) the journal stamps each line itself.
    stamp = "" if os.environ.get("INVOCATION_ID") else "%(asctime)s "
    # force: `dhtlink -v` (and node's own -v, which sets the same flag) has already set up
    # logging at INFO for the other verbs; a node's log is its own, and -v shows every reading.
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format=stamp + "%(levelname)s %(message)s", force=True
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    try:
        spool = Spool(config.state_dir, config.spool_max)
    except SpoolError as error:
        raise CommandError(f"{error}; pass --state-dir a directory this user may write") from None
    clock = Clock()

    def stop_on_signals() -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: clock.stop.set())

    def open_sensor() -> Sensor:
        seed = zlib.crc32(config.device_id.encode())  # each simulated node its own weather
        sensor = Sensor(config.sensor, open_driver(config.sensor, config.pin, config.simulate, seed), clock)
        # Blinka's pulseio sets its own SIGTERM handler (exit 1) when it loads: a stop stays a stop.
        stop_on_signals()
        return sensor

    stop_on_signals()
    node = Node(config, open_sensor, spool, Sender(config.endpoint, config.device_id, config.secret), clock)
    logging.getLogger("dhtlink.node").info(
        "node %s: %s on %s every %d s, %d readings spooled in %s, sending to %s",
        config.device_id,
        config.sensor,
        "a simulation (--simulate)" if config.simulate else f"pin {config.pin}",
        config.interval_s,
        spool.depth(),
        spool.path,
        config.endpoint,
    )
    try:
        node.run()
    except SensorSetupError as error:
        logging.getLogger("dhtlink.node").error("stopping for good: %s", error)
        raise UsageError(str(error)) from None
    finally:
        node.close()
    return 0


def _ago(ts, now: float) -> str:
    if not ts:
        return "never"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ts))} ({int(now - ts)} s ago)"


def show_status(state_dir: Path, as_json: bool) -> int:
    from host_tools.node.spool import FILE, Spool, SpoolError

    if not (state_dir / FILE).exists():
        raise CommandError(f"no node spool in {state_dir}: pass the node's --state-dir")
    try:
        spool = Spool(state_dir, readonly=True)
        info = spool.snapshot()
        spool.close()
    except SpoolError as error:
        raise CommandError(f"{error} (run as the node's user: sudo -u dhtlink dhtlink node status)") from None
    if as_json:
        print(json.dumps(info, sort_keys=True))
        return 0
    now = time.time()
    oldest = info.get("oldest_unsent_ts")
    print(f"device         {info.get('device_id') or '-'}")
    print(f"spool depth    {info['spool_depth']} unsent" + (f", oldest from {_ago(oldest, now)}" if oldest else ""))
    print(f"last send      {info.get('last_send') or '-'}, {_ago(info.get('last_send_at'), now)}")
    print(
        f"last error     {info.get('last_error') or '-'}"
        + (f", {_ago(info.get('last_error_at'), now)}" if info.get("last_error_at") else "")
    )
    print(f"next seq       {info['next_seq']}")
    print(
        f"counters       boots={info['boot']} requests={info['requests']} sensor_errors={info['sensor_errors']} "
        f"dropped={info['dropped']} (full {info['drop_full']}, poison {info['drop_poison']}) "
        f"rejected={info['rejected']} unverified={info['unverified']}"
    )
    print(f"clock offset   {info.get('clock_offset') or 0:+d} s (from the receiver's signed answers)")
    return 0


def install_service(args: argparse.Namespace) -> int:
    from host_tools.node import service

    config = node_config(args)  # checks every option and the secret file now, not at boot
    if args.user == "root" or args.user.isdigit() and int(args.user) == 0:
        raise UsageError("--user must not be root: the node needs only the gpio group")
    node_args = [
        "--device", config.device_id,
        "--endpoint", config.endpoint,
        "--sensor", config.sensor,
        "--pin", config.pin,
        "--interval", str(config.interval_s),
        "--batch-size", str(config.batch_size),
        "--max-batch-delay", str(config.max_batch_delay_s),
        "--spool-max", str(config.spool_max),
        "--state-dir", "/var/lib/dhtlink-node",
        *(["--simulate"] if config.simulate else []),
    ]  # fmt: skip
    text = service.unit_text(node_args, args.secret_file.resolve(), args.user)
    if args.print:
        print(text, end="")
        return 0
    unit_dir = args.unit_dir or service.UNIT_DIR
    try:
        path = service.install(text, unit_dir)
    except OSError as error:
        raise CommandError(
            f"cannot write {unit_dir / service.UNIT_NAME}: {error.strerror}; run with sudo, or --print it"
        ) from None
    print(f"wrote {path}")
    for problem in service.user_problems(args.user):
        print(f"before enabling: {problem}", file=sys.stderr)
    if Path(sys.executable).is_relative_to("/home"):
        print(
            f"note: {sys.executable} is under /home; the {args.user} user must be able to read it "
            "(docs/pi-node.md installs into /opt/dhtlink)",
            file=sys.stderr,
        )
    print("enable and start it:  sudo systemctl daemon-reload && sudo systemctl enable --now dhtlink-node")
    print("follow its log:       journalctl -u dhtlink-node -f")
    dhtlink = Path(sys.executable).parent / "dhtlink"
    print(f"see its spool:        sudo -u {args.user} {dhtlink} node status --state-dir /var/lib/dhtlink-node")
    return 0
