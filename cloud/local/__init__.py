"""The local endpoint: the Lambda handlers behind a loopback HTTP server."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloud.local.server import LocalEndpoint

__all__ = ["LocalEndpoint"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the server needs waitress (dhtlink[tools]), while the registry's
    # files module beside it is used by commands a Pi node's install has (dhtlink query).
    if name == "LocalEndpoint":
        from cloud.local.server import LocalEndpoint

        return LocalEndpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
