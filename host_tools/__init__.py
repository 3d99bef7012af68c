"""dhtlink host tools: the `dhtlink` CLI and the virtual board."""
