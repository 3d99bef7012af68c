"""The virtual board: the real firmware under the MicroPython Unix port, with the
ESP32's hardware replaced by the modules in hw/ (docs/virtual-board.md)."""

from host_tools.sim.vboard.board import BootResult, VirtualBoard

__all__ = ["BootResult", "VirtualBoard"]
