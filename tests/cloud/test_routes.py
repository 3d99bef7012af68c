"""One route table (cloud/local/routes.py): the SAM template's HttpApi events, the read handler's
parameters and the local endpoint's routing all follow it."""

from pathlib import Path

import pytest
import requests
import yaml

from cloud import read_api
from cloud.local import routes

TEMPLATE = Path(__file__).resolve().parents[2] / "cloud" / "template.yaml"


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short tags (!Ref, !GetAtt, !Sub...) as plain values."""


CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def template_routes() -> dict[tuple[str, str], str]:
    resources = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)["Resources"]  # noqa: S506 - a safe loader
    found = {}
    for resource in resources.values():
        for event in (resource.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                key = (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
                assert key not in found, f"{key} is routed twice in the template"
                found[key] = resource["Properties"]["Handler"]
    return found


def test_the_template_routes_exactly_the_table_to_the_same_handlers():
    assert template_routes() == routes.ROUTES


def test_the_read_handler_knows_the_parameters_of_every_read_route_and_no_other():
    read_paths = {path for (method, path), handler in routes.ROUTES.items() if handler == routes.READ}
    assert set(read_api.KNOWN_PARAMS) == read_paths


@pytest.mark.parametrize(("method", "path"), sorted(routes.ROUTES))
def test_the_local_endpoint_answers_every_route_and_refuses_other_methods(endpoint, method, path):
    if path.startswith("/ota/"):  # a release's file (docs/ota.md), present in the endpoint's data folder
        release = endpoint.data_dir / "releases" / "0.1.0"
        release.mkdir(parents=True, exist_ok=True)
        (release / "app.mpy").write_bytes(b"M\x06")
    path = path.replace("/ota/{file+}", "/ota/0.1.0/app.mpy").replace("{file+}", "app.js")
    answer = requests.request(method, endpoint.url + path, timeout=5)
    assert answer.status_code not in (404, 405), answer.text
    other = "DELETE"
    refused = requests.request(other, endpoint.url + path, timeout=5)
    assert refused.status_code == 405 and refused.headers["allow"] == ", ".join(routes.methods(path))


def test_an_unknown_path_is_404(endpoint):
    assert requests.get(endpoint.url + "/nothing-here", timeout=5).status_code == 404
