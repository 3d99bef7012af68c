"""`dhtlink query devices` follows GET /devices' cursor to the end: every device, once."""

import io
import json

from cloud import observability
from cloud.local import LocalEndpoint
from host_tools.cli import main


def test_query_devices_reads_every_page(tmp_path, capsys):
    observability.set_output(io.StringIO())  # the endpoint's request log is not the command's output
    try:
        _query_all(tmp_path)
    finally:
        observability.set_output(None)
    devices = json.loads(capsys.readouterr().out)
    assert [d["device_id"] for d in devices] == [f"node-{n:04d}" for n in range(1203)]
    assert all("secret" not in d for d in devices)


def _query_all(tmp_path):
    with LocalEndpoint(tmp_path) as endpoint:
        db = endpoint.store._connect()
        # 1,203 devices (more than one 1,000-device page), written in one transaction for speed.
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO devices (device_id, secret, created_at) VALUES (?, ?, 1)",
            [(f"node-{n:04d}", "00" * 32) for n in range(1203)],
        )
        db.execute("COMMIT")
        token_file = tmp_path / "token"
        token_file.write_text(endpoint.read_token)
        assert main(["query", "devices", "--endpoint", endpoint.url, "--token-file", str(token_file), "--json"]) == 0
