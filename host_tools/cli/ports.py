"""`dhtlink ports`: the verb over host_tools.serial.ports."""

import argparse

from host_tools.serial.ports import candidates


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ports",
        help="list serial ports that look like ESP32 boards",
        description="List USB serial ports with VID:PID, the bridge or chip, and whether MicroPython answers on them.",
    )
    parser.add_argument("--no-probe", action="store_true", help="do not open the ports to ask for MicroPython")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from host_tools.serial.board import probe

    found = candidates()
    if not found:
        print("no ESP32 boards found on USB")
        return 0
    for port in found:
        version = None if args.no_probe else probe(port.device)
        answer = "" if args.no_probe else f"MicroPython {version}" if version else "no MicroPython answer"
        print(f"{port.device:<16} {port.vid_pid}  {port.chip:<36} {answer}")
    return 0
