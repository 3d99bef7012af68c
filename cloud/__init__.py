"""dhtlink cloud: Lambda handlers, stores and the local endpoint that runs them."""

__version__ = "0.1.0"
