"""`dhtlink status`: what is on the board and how the app is doing, without secrets."""

import json
from typing import Any

from host_tools.serial.board import VERSION_EXPRESSION, BoardFiles
from host_tools.serial.files import MANIFEST

PROBE = f"""
import sys, os, gc, json
st = os.statvfs("/") if hasattr(os, "statvfs") else None
gc.collect()
print(json.dumps({{"micropython": {VERSION_EXPRESSION}, "platform": sys.platform,
                  "flash_free": st[0] * st[3] if st else None, "heap_free": gc.mem_free(),
                  "files": os.listdir()}}))
"""


def read_status(board: BoardFiles) -> dict[str, Any]:
    status = json.loads(board.exec(PROBE).strip().splitlines()[-1])
    files = set(status.pop("files"))
    status["app"] = status["app_incomplete"] = None
    if MANIFEST in files:
        # `dhtlink flash` removes the manifest before it changes a file and writes it after the
        # last one: present means the upload completed, unless a file it lists has gone since.
        missing = sorted(set(json.loads(board.read_file(MANIFEST) or b"[]")) - files)
        if missing:
            status["app_incomplete"] = f"missing {', '.join(missing)}"
        else:
            lines = [line for line in board.exec("import app\napp.report()").splitlines() if line.startswith("{")]
            status["app"] = json.loads(lines[-1]) if lines else None
    elif files & {"app.mpy", "app.py"}:
        status["app_incomplete"] = "app files without dhtlink's manifest: a `dhtlink flash` did not finish"
    return status
