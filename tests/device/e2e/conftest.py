"""A virtual board running the real firmware, posting to a real local endpoint whose
clock is the board's clock (so virtual hours pass in seconds)."""

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloud import observability
from cloud.local import LocalEndpoint
from host_tools.sim.run import Summary, board_config, run_board
from host_tools.sim.vboard import VirtualBoard

DEVICE = "bench-node"


@dataclass
class Rig:
    board: VirtualBoard
    endpoint: LocalEndpoint
    secret: str

    def install(self, scenario: dict[str, Any] | None = None, url: str | None = None, **config: Any) -> None:
        config.setdefault("batch_size", 5)
        cfg = board_config(
            DEVICE, self.secret, (url or self.endpoint.url) + "/data", config.pop("interval", 60), **config
        )
        self.board.install(cfg, scenario)

    def run(self, cycles: int, scenario: dict[str, Any] | None = None) -> Summary:
        return run_board(self.board, cycles, scenario)

    def stored(self) -> list[dict[str, Any]]:
        """Every stored reading, oldest first, paged through the store's own query."""
        items, cursor = self.endpoint.store.query_readings(DEVICE, limit=500)
        while cursor:
            more, cursor = self.endpoint.store.query_readings(DEVICE, limit=500, cursor=cursor)
            items += more
        return sorted(items, key=lambda r: r["seq"])

    def device_row(self) -> dict[str, Any]:
        row = self.endpoint.store.get_device(DEVICE)
        assert row is not None
        return row


@pytest.fixture
def rig(tmp_path: Path):
    observability.set_output(io.StringIO())
    board = VirtualBoard(tmp_path / "board")
    with LocalEndpoint(tmp_path / "endpoint", read_token="t", clock=lambda _device: board.now()) as endpoint:
        yield Rig(board, endpoint, endpoint.add_device(DEVICE))
    observability.set_output(None)


def assert_exactly_once(rig: Rig, summary: Summary) -> list[dict[str, Any]]:
    """Every seq the board assigned is stored exactly once, still on the board, or counted
    in status.dropped: the store's own contents against the board's seq counter."""
    stored = rig.stored()
    seqs = [r["seq"] for r in stored]
    assert len(seqs) == len(set(seqs)), "a reading stored twice"
    assert summary.acknowledged == len(stored)
    sent_range = set(range(summary.readings_taken - summary.still_spooled))
    missing = sent_range - set(seqs)
    assert not set(seqs) - sent_range, "stored seqs the board never assigned or still holds"
    assert len(missing) == summary.dropped, f"missing seqs {sorted(missing)[:20]} not accounted as dropped"
    timestamps = [r["ts"] for r in stored]
    assert timestamps == sorted(timestamps), "readings arrive oldest first and keep their order"
    return stored
