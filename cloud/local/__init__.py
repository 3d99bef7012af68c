"""The local endpoint: the Lambda handlers behind a loopback HTTP server."""

from cloud.local.server import LocalEndpoint

__all__ = ["LocalEndpoint"]
