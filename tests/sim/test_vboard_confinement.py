"""A virtual board reaches its own directory and nothing else: mpremote's filesystem
verbs and the board's own code, with every kind of path, against a canary directory
beside the board that must come out untouched."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.sim.vboard import board as vboard
from tests.cli.conftest import start_vboard

MPREMOTE = str(Path(sys.executable).parent / "mpremote")


def snapshot(root: Path, skip: Path) -> dict[str, str]:
    """Every file and directory under root (but not under skip), with its content's hash."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path == skip or skip in path.parents:
            continue
        out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


@pytest.fixture
def confined(tmp_path):
    """A board at tmp_path/board with a canary tree beside it: tmp_path/canary/... and a
    file one level up from the board's own files."""
    (tmp_path / "canary" / "etc").mkdir(parents=True)
    (tmp_path / "canary" / "etc" / "hostname").write_text("host\n")
    (tmp_path / "canary" / "keep.txt").write_text("do not touch\n")
    (tmp_path / "beside.txt").write_text("beside the board\n")
    (tmp_path / "upload.txt").write_text("payload\n")
    process, board = start_vboard(tmp_path / "board")
    before = snapshot(tmp_path, board.dir)
    yield board
    process.terminate()
    process.wait(timeout=10)
    assert snapshot(tmp_path, board.dir) == before, "the host outside the board's directory changed"


def mpremote(port: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [MPREMOTE, "connect", port, "resume", *args], capture_output=True, text=True, timeout=30, check=False
    )
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def board_files(board) -> list[str]:
    return sorted(str(p.relative_to(board.dir)) for p in board.dir.rglob("*") if ".vboard" not in p.parts)


def test_root_lists_exactly_the_boards_files(confined):
    (confined.dir / "main.py").write_text("")
    assert mpremote(confined.port, "fs", "ls", ":/").stdout.split()[-2:] == ["0", "main.py"]
    out = mpremote(confined.port, "exec", "import os; print(sorted(os.listdir('/')), sorted(os.listdir('../../..')))")
    assert out.stdout.strip() == "['main.py'] ['main.py']", "`..` stops at the board's /"


@pytest.mark.parametrize("path", ["../beside.txt", "../../canary/keep.txt", "/../canary/etc/hostname", "/etc/hostname"])
def test_paths_outside_name_nothing(confined, path):
    done = mpremote(confined.port, "fs", "cat", f":{path}", check=False)
    assert done.returncode != 0 and "No such file" in done.stdout + done.stderr
    assert "host" not in done.stdout and "touch" not in done.stdout


def test_every_fs_verb_stays_inside(confined, tmp_path):
    local = tmp_path / "upload.txt"
    digest = hashlib.sha256(b"payload\n").hexdigest()
    mpremote(confined.port, "fs", "cp", str(local), ":../../../escape.txt")
    mpremote(confined.port, "fs", "mkdir", ":../d")
    mpremote(confined.port, "fs", "touch", ":/d/../../t")
    mpremote(confined.port, "fs", "cp", str(local), ":d/f.txt")
    assert board_files(confined) == ["d", "d/f.txt", "escape.txt", "t"]
    assert not (tmp_path / "escape.txt").exists()
    assert digest in mpremote(confined.port, "fs", "sha256sum", ":../d/f.txt").stdout
    tree = mpremote(confined.port, "fs", "tree", ":/").stdout
    assert "f.txt" in tree and ".vboard" not in tree and "canary" not in tree
    df = mpremote(confined.port, "df").stdout.splitlines()[-1].split()
    assert df[1:3] == ["2097152", "12288"] and df[-1] == "/", "a 2 MiB flash, 3 blocks used"
    # rename and rmdir with paths that try to leave
    mpremote(confined.port, "exec", "import os; os.rename('/t', '../../../moved')")
    assert (confined.dir / "moved").exists() and not (tmp_path / "moved").exists()
    renamed = mpremote(confined.port, "exec", "import os; os.rename('/moved', '../canary/keep.txt')", check=False)
    assert "ENOENT" in renamed.stdout + renamed.stderr, "the board has no canary/ directory"
    for code in ("import os; os.rmdir('..')", "import os; os.rename('/', '/x')", "import os; os.remove('/../..')"):
        done = mpremote(confined.port, "exec", code, check=False)
        assert "OSError" in done.stdout + done.stderr, code
    # and the chip's own state is not on the flash
    hidden = mpremote(confined.port, "exec", "import os; print(os.stat('.vboard'))", check=False)
    assert "ENOENT" in hidden.stdout + hidden.stderr


def test_rm_r_root_empties_the_board_and_nothing_else(confined, tmp_path):
    local = tmp_path / "upload.txt"
    for target in (":a.txt", ":lib/b.txt"):
        if target == ":lib/b.txt":
            mpremote(confined.port, "fs", "mkdir", ":lib")
        mpremote(confined.port, "fs", "cp", str(local), target)
    # Everything under / goes; / itself is MicroPython's virtual root, which refuses rmdir with
    # EPERM on an ESP32 too, so mpremote ends by saying so.
    done = mpremote(confined.port, "fs", "rm", "-r", ":/", check=False)
    assert "cannot remove :/ Operation not permitted" in done.stderr
    assert board_files(confined) == []
    assert (confined.dir / ".vboard" / "state.json").exists(), "the chip's state is not on the flash"
    assert mpremote(confined.port, "exec", "print(6 * 7)").stdout.strip() == "42", "the board still answers"


# Block devices as MicroPython's docs give them (docs/reference/filesystem.rst): the simple
# interface for FAT, the extended one (offsets, erase) for littlefs.
RAMDISK = (
    "import gc, os, vfs\n"
    "class RAM:\n"
    "    def __init__(self, blocks):\n"
    "        self.data = bytearray(512 * blocks)\n"
    "    def readblocks(self, n, buf):\n"
    "        buf[:] = self.data[n * 512 : n * 512 + len(buf)]\n"
    "    def writeblocks(self, n, buf):\n"
    "        self.data[n * 512 : n * 512 + len(buf)] = buf\n"
    "    def ioctl(self, op, arg):\n"
    "        return {4: len(self.data) // 512, 5: 512}.get(op)\n"
    "class Flash(RAM):\n"
    "    def readblocks(self, n, buf, off=0):\n"
    "        buf[:] = self.data[n * 512 + off : n * 512 + off + len(buf)]\n"
    "    def writeblocks(self, n, buf, off=0):\n"
    "        self.data[n * 512 + off : n * 512 + off + len(buf)] = buf\n"
    "    def ioctl(self, op, arg):\n"
    "        return 0 if op == 6 else RAM.ioctl(self, op, arg)\n"
)


def test_no_door_around_the_mount(confined):
    code = RAMDISK + (
        "import sys\n"
        "for name in ('system', 'getenv', 'VfsPosix', 'putenv'):\n"
        "    assert not hasattr(os, name), name\n"
        "assert not hasattr(vfs, 'VfsPosix')\n"
        "flash = vfs.mount()[0][0]\n"
        "for attempt in (lambda: vfs.mount(flash, '/'), lambda: os.mount(RAM(50), '/./x/..'),\n"
        "                lambda: vfs.umount('/'), lambda: vfs.umount(flash), lambda: vfs.mount(RAM(50), '/'),\n"
        "                lambda: os.umount('//')):\n"
        "    try:\n"
        "        attempt()\n"
        "        print('ALLOWED')\n"
        "    except OSError as e:\n"
        "        print('refused', e.errno)\n"
        "print(sys.path)\n"
    )
    out = mpremote(confined.port, "exec", code).stdout.split()
    assert out[:12] == ["refused", "1"] * 6, "`/` stays the board's flash"
    assert "['',", out[12] and "'/lib']" in out[-1]


def test_user_filesystems_mount_as_on_an_esp32(confined, tmp_path):
    """A RAM disk formatted as FAT or littlefs mounts beside the flash, and mpremote's own
    `mount` of a host directory the user chose works; nothing of either lands on the flash."""
    code = RAMDISK + (
        "for kind, point, disk in ((vfs.VfsFat, '/fat', RAM(50)), (os.VfsLfs2, '/lfs', Flash(12))):\n"
        "    gc.collect()\n"
        "    kind.mkfs(disk)\n"
        "    os.mount(kind(disk), point)\n"
        "    with open(point + '/f.txt', 'w') as f:\n"
        "        f.write('x' * 700)\n"
        "    print(point, os.stat(point + '/f.txt')[6], os.listdir(point))\n"
        "os.chdir('/fat')\n"
        "print(os.getcwd(), open('f.txt').read(3), open('/lfs/f.txt').read(2))\n"
        "os.chdir('/')\n"
        "vfs.umount('/fat')\n"
        "print(sorted(p for _, p in vfs.mount()))\n"
    )
    out = mpremote(confined.port, "exec", code).stdout.splitlines()
    assert out[:3] == ["/fat 700 ['f.txt']", "/lfs 700 ['f.txt']", "/fat xxx xx"], out
    assert out[3] == "['/', '/lfs']"
    assert board_files(confined) == []
    (tmp_path / "canary" / "mod.py").write_text("print('from the host', 6 * 7)\n")
    code = "import mod; open('w.txt', 'w').write('ok')"
    done = mpremote(confined.port, "mount", str(tmp_path / "canary"), "exec", code)
    assert "from the host 42" in done.stdout
    assert (tmp_path / "canary" / "w.txt").read_text() == "ok", "written through mpremote's mount"
    (tmp_path / "canary" / "w.txt").unlink()  # the fixture's snapshot of the canary
    (tmp_path / "canary" / "mod.py").unlink()


def test_the_chip_loads_ssl_only_for_a_board_whose_config_speaks_https(confined):
    """On the ESP32 ssl is frozen and costs no heap until imported; the virtual one takes the
    firmware's heap, so the chip loads it at boot only where the config's endpoint is https."""
    loaded = "import sys; print('ssl' in sys.modules)"
    assert mpremote(confined.port, "exec", loaded).stdout.strip() == "False", "a blank board"
    (confined.dir / "config.json").write_text(json.dumps({"endpoint": "https://h.example/data"}))
    assert mpremote(confined.port, "soft-reset", "exec", loaded).stdout.strip() == "True"
    (confined.dir / "config.json").unlink()


def test_ls_shows_real_sizes(confined, tmp_path):
    (tmp_path / "big.bin").write_bytes(b"z" * 5000)
    mpremote(confined.port, "fs", "cp", str(tmp_path / "big.bin"), ":big.bin")
    (tmp_path / "big.bin").unlink()
    assert "5000 big.bin" in " ".join(mpremote(confined.port, "fs", "ls", ":").stdout.split())


@pytest.mark.skipif(not vboard.sandbox_available(), reason="this host has no user and mount namespaces")
def test_the_os_sandbox_holds_when_the_first_wall_is_gone(confined, tmp_path):
    """Board code that undoes the first wall (fetches the real vfs module back and opens
    host paths through a VfsPosix of its own) still finds nothing of the host."""
    canary = tmp_path / "canary" / "keep.txt"
    code = (
        "import sys\n"
        "for name in ('vfs', 'uvfs', 'os', 'uos'):\n"
        "    sys.modules.pop(name, None)\n"
        "import vfs\n"
        "host = vfs.VfsPosix()\n"
        f"for path in ({str(canary)!r}, {str(tmp_path / 'beside.txt')!r}, {str(tmp_path / 'new.txt')!r}):\n"
        "    try:\n"
        "        host.open(path, 'w').write('overwritten')\n"
        "        print('WROTE', path)\n"
        "    except OSError as e:\n"
        "        print('refused', e.errno)\n"
        "print(sorted(host.ilistdir('/')))\n"
    )
    out = mpremote(confined.port, "exec", code).stdout
    assert "WROTE" not in out and out.count("refused") == 3
    assert "'etc'" not in out and "'usr'" not in out, "the host's root is not there at all"


def test_vboard_refuses_to_start_unconfined_unless_told_the_risk(tmp_path, monkeypatch, capsys):
    from host_tools.cli import main
    from host_tools.sim.vboard import pty_bridge

    monkeypatch.setattr(pty_bridge, "sandbox_available", lambda: False)
    assert main(["vboard", "--dir", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "cannot build the virtual board's OS sandbox" in err and "--unconfined-board-can-reach-host" in err
    assert not (tmp_path / "b").exists(), "nothing started"
