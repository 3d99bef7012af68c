"""Every route the receiver answers, and the handler behind it: the table the local endpoint
routes by (host side, like the rest of cloud/local/; API Gateway routes in AWS) and the SAM
template's HttpApi events are tested against (tests/cloud/test_routes.py), so the two cannot
drift apart."""

INGEST = "cloud.ingest.handler"
READ = "cloud.read_api.handler"
DASHBOARD = "cloud.dashboard.handler"
RELEASES = "cloud.releases.handler"

ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/data"): INGEST,
    ("GET", "/data/latest"): READ,
    ("GET", "/data"): READ,
    ("GET", "/data/series"): READ,
    ("GET", "/data/csv"): READ,
    ("GET", "/devices"): READ,
    ("GET", "/alerts"): READ,
    ("GET", "/"): DASHBOARD,
    ("GET", "/static/{file+}"): DASHBOARD,  # API Gateway's greedy path variable: anything under /static/
    ("GET", "/ota/{file+}"): RELEASES,  # /ota/VERSION/NAME (docs/ota.md)
}


def _matches(route: str, path: str) -> bool:
    if route.endswith("{file+}"):
        prefix = route[: -len("{file+}")]
        return path.startswith(prefix) and len(path) > len(prefix)
    return route == path


def handler(method: str, path: str) -> str | None:
    return next((name for (m, route), name in ROUTES.items() if m == method and _matches(route, path)), None)


def methods(path: str) -> list[str]:
    """The methods a path answers (empty: no such path)."""
    return sorted({method for method, route in ROUTES if _matches(route, path)})
