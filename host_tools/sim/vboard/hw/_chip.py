# The chip around the firmware: runs first in every virtual board process and makes
# the MicroPython Unix port look like an ESP32 from the inside.
#
# - Confinement: the board's directory (the process's cwd) becomes `/`, through a
#   filesystem object mounted at `/` in place of the host's VfsPosix. Every path any
#   code gives (open, import, execfile, os.*, mpremote's fs verbs) is normalised against
#   the board's own working directory; `..` stops at `/` as on any filesystem, so no path
#   names anything outside. The chip's own state (.vboard/: RTC memory, clock) is not
#   part of the flash: hidden from the board, reached only through read()/write() below.
#   The doors around the mount are shut: `os`/`uos` and `vfs` are replaced by modules
#   without VfsPosix, system or the environment; the host's VfsPosix objects live only
#   in closures. Mounting is the ESP32's (vfs.mount in extmod/vfs.c; VfsFat and VfsLfs2,
#   the filesystems ports/esp32/mpconfigport.h builds in): any filesystem the board's
#   code makes (a RAM disk, mpremote's `mount` of the host directory a user chose) can be
#   mounted anywhere but over `/`, and a host filesystem (VfsPosix) never. This is the
#   first wall; the OS sandbox that the host runs the process in (launch.py) is the
#   second, for code that goes around MicroPython.
# - Boot: boot.py then main.py, as the ESP32 port runs them; if main.py returns or
#   raises (Ctrl-C included), the REPL follows. Deep sleep, reset and the watchdog end
#   the process with SystemExit(75/76/77), which is never caught here.
import json
import sys
import os
import vfs

EPERM, ENOENT, EACCES, EEXIST, EINVAL = 1, 2, 13, 17, 22
CHIP = ".vboard"
FLASH_BYTES = 0x200000  # the vfs partition of a 4 MB ESP32 (MicroPython's default table)
BLOCK = 4096

RESET_LINES = {
    1: "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
    2: "rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",  # machine.reset(), a panic
    3: "rst:0x8 (TG1WDT_SYS_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
    4: "rst:0x5 (DEEPSLEEP_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
    5: "rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
}


# The host's VfsPosix is used without a root of its own, with each path prefixed here
# (VfsPosix(root).rename() builds both paths in one buffer and gets the first one wrong).
# The prefix is relative to the process's working directory, the board's directory,
# which nothing inside can change (os.chdir is the flash's own): so the board's heap
# does not depend on where on the host its directory is.
def _chip_io(posix, root):
    # Plain names only: the chip's files are few and flat.
    def check(name):
        if not name or "/" in name or "\0" in name or name in (".", ".."):
            raise OSError(EINVAL)
        return root + "/" + name

    def read(name, binary=False):
        with posix.open(check(name), "rb" if binary else "r") as f:
            return f.read()

    def write(name, data):
        # Atomic, as the RTC's and the clock's state must never be half-written.
        tmp = check(name + ".tmp")
        with posix.open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        posix.rename(tmp, check(name))

    def dump(name, obj):
        # As write(name, json.dumps(obj)), but json.dump writes the text to the file as it
        # goes: none of it in the heap, which here is the firmware's (the chip keeps this
        # state in C, and a socket's close or a sleep in the middle of an OTA download
        # must not need a few hundred bytes of it).
        tmp = check(name + ".tmp")
        with posix.open(tmp, "w") as f:
            json.dump(obj, f)
        posix.rename(tmp, check(name))

    def remove(name):
        try:
            posix.remove(check(name))
        except OSError:
            pass

    return read, write, dump, remove


def _flash(posix, root):
    cwd = ["/"]

    def norm(path):
        if not isinstance(path, str) or "\0" in path:
            raise OSError(EINVAL)
        if not path.startswith("/"):
            path = cwd[0] + "/" + path
        parts = []
        for part in path.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        if parts and parts[0] == CHIP:
            raise OSError(ENOENT)
        return "/" + "/".join(parts)

    def host(full):
        return root + full if full != "/" else root

    def changing(path):
        # The root itself cannot be removed, renamed or replaced.
        full = norm(path)
        if full == "/":
            raise OSError(EPERM)
        return host(full)

    def used_blocks(path):
        total = 0
        for entry in posix.ilistdir(host(path)):
            if path == "/" and entry[0] == CHIP:
                continue
            child = path.rstrip("/") + "/" + entry[0]
            if entry[1] == 0x4000:
                total += 1 + used_blocks(child)
            else:
                total += (posix.stat(host(child))[6] + BLOCK - 1) // BLOCK
        return total

    class Flash:
        def __repr__(self):
            return "<VfsFlash>"

        def mount(self, readonly, mkfs):
            pass

        def umount(self):
            pass

        def open(self, path, mode):
            full = norm(path)
            if full == "/":
                raise OSError(EACCES)
            return posix.open(host(full), mode)

        def ilistdir(self, path):
            # (name, type, inode, size), as VfsLfs2 and VfsFat list: `mpremote fs ls` shows the size.
            full = norm(path)
            for entry in posix.ilistdir(host(full)):
                if not (full == "/" and entry[0] == CHIP):
                    size = 0
                    if entry[1] != 0x4000:
                        try:
                            size = posix.stat(host(full.rstrip("/") + "/" + entry[0]))[6]
                        except OSError:
                            pass  # removed meanwhile, or a dangling link
                    yield (entry[0], entry[1], entry[2], size)

        def stat(self, path):
            try:
                return posix.stat(host(norm(path)))
            except KeyboardInterrupt:
                # A Ctrl-C raised in this Python stat while an import asks for a module's
                # file would be taken for "no such file" (mp_vfs_import_stat in extmod/vfs.c
                # catches everything: ImportError); the ESP32's filesystems are C and raise
                # it after the stat. Every field raises it when used, the importer's too.
                return (_INTERRUPTED,) * 10

        def statvfs(self, path):
            norm(path)
            blocks = FLASH_BYTES // BLOCK
            free = max(0, blocks - used_blocks("/"))
            return (BLOCK, BLOCK, blocks, free, free, 0, 0, 0, 0, 255)

        def mkdir(self, path):
            posix.mkdir(changing(path))

        def rmdir(self, path):
            if norm(path) == "/":
                raise OSError(EINVAL)  # a mount point, as the ESP32 port answers
            posix.rmdir(changing(path))

        def remove(self, path):
            posix.remove(changing(path))

        def rename(self, old, new):
            posix.rename(changing(old), changing(new))

        def chdir(self, path):
            full = norm(path)
            if posix.stat(host(full))[0] & 0x4000 == 0:
                raise OSError(ENOENT)
            cwd[0] = full

        def getcwd(self):
            return cwd[0]

    return Flash()


def _interrupt(*_):
    raise KeyboardInterrupt


class _Interrupted:
    """A stat field that a Ctrl-C cut short."""

    __int__ = __index__ = __and__ = __rand__ = __eq__ = __ne__ = __lt__ = __gt__ = __repr__ = _interrupt


_INTERRUPTED = _Interrupted()


class _Module:
    def __init__(self, name, names, source, **extra):
        self.__name__ = name
        for attr in names:
            if hasattr(source, attr):
                setattr(self, attr, getattr(source, attr))
        for attr in extra:
            setattr(self, attr, extra[attr])


def _mount_point(path):
    # Absolute and normalised as the flash's paths are; `/` is the flash's and stays so.
    if not isinstance(path, str) or "\0" in path:
        raise OSError(EINVAL)
    parts = []
    for part in (path if path.startswith("/") else os.getcwd() + "/" + path).split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    if not parts:
        raise OSError(EPERM)
    return "/" + "/".join(parts)


def _mounts(posix_type):
    def mount(*args, **kwargs):
        if not args:
            return vfs.mount()  # the list of mounts, as on the ESP32 port
        if len(args) < 2 or isinstance(args[0], posix_type):
            raise OSError(EPERM)  # the host's own files are never the board's
        return vfs.mount(args[0], _mount_point(args[1]), *args[2:], **kwargs)

    def umount(target):
        if isinstance(target, str):
            target = _mount_point(target)
        else:
            for obj, point in vfs.mount():
                if obj is target and point == "/":
                    raise OSError(EPERM)
        return vfs.umount(target)

    return mount, umount


def _lock_down(root):
    flash = _flash(vfs.VfsPosix(), root)
    vfs.umount("/")
    vfs.mount(flash, "/")
    os.chdir("/")
    mount, umount = _mounts(vfs.VfsPosix)
    # What os offers on an ESP32: files, dirs, urandom; no shell, no environment, no mounts.
    safe_os = _Module(
        "os",
        (
            "sep",
            "chdir",
            "getcwd",
            "ilistdir",
            "listdir",
            "mkdir",
            "remove",
            "rename",
            "rmdir",
            "stat",
            "statvfs",
            "unlink",
            "urandom",
            "errno",
            "VfsFat",
            "VfsLfs2",
        ),
        os,
        mount=mount,
        umount=umount,
    )
    safe_vfs = _Module("vfs", ("VfsFat", "VfsLfs2"), vfs, mount=mount, umount=umount)
    for name in ("os", "uos"):
        sys.modules[name] = safe_os
    for name in ("vfs", "uvfs"):
        sys.modules[name] = safe_vfs
    sys.path[:] = ["", ".frozen", "/lib"]


read, write, dump, remove = _chip_io(vfs.VfsPosix(), CHIP)


def start(mode):
    """mode: "main" (a wake: boot.py, main.py, then the REPL if main returns), "repl"
    (straight to the REPL, as after Ctrl-C at boot or a soft reset in the raw REPL), or
    "code" (the caller's code follows, as typed at the REPL)."""
    import _board
    import machine
    import time
    import socket
    import network
    import dht
    import ntptime

    # The virtual ssl only where the board may speak https: on the chip ssl is frozen and
    # costs the heap nothing until imported, while here it takes the firmware's heap (not
    # counted in shim_heap_bytes). The runner says so, or, on a tool's board ("config"),
    # the endpoint its config.json holds at this boot: a blank board's REPL would
    # otherwise lose 2 KiB, and the large block FAT's volume needs, to an ssl it never uses.
    tls = _board.state.get("tls")
    if tls == "config":
        try:
            with open("config.json") as f:
                tls = '"https://' in f.read()
        except OSError:
            tls = False
    if tls:
        import ssl  # noqa: F401 - kept in sys.modules for the firmware's import

    putenv = os.putenv
    _lock_down(".")
    del time, socket, network, dht, ntptime
    _board.boot_real_us = _board.real_us()
    if mode == "code":
        return
    # Set first, so that a Ctrl-C landing anywhere from here on ends at the REPL.
    putenv("MICROPYINSPECT", "1")
    if mode == "main":
        scope = {"__name__": "__main__"}
        try:
            # The ROM's first line; the host side waits for it before passing the UART's bytes on.
            print(RESET_LINES.get(machine.reset_cause(), RESET_LINES[1]))
            for script in ("boot.py", "main.py"):
                try:
                    os.stat(script)
                except OSError:
                    continue
                execfile(script, scope)  # noqa: F821 - a MicroPython builtin
        except SystemExit:
            putenv("MICROPYINSPECT", "")  # deep sleep, reset, watchdog: the process ends
            raise
        except BaseException as e:  # noqa: BLE001 - a crash or Ctrl-C: the REPL takes over, as on a board
            sys.print_exception(e)
