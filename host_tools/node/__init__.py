"""`dhtlink node`: the sensor node for Linux boards (Raspberry Pi), protocol v1.1 from CPython.

One module per job: sensor (DHT reads on Blinka), spool (SQLite), delivery (signed POSTs
and the reaction table), node (the cycle), service (systemd unit), command (the CLI verb).
"""

from host_tools.node.command import register

__all__ = ["register"]
