# Rotating log on flash: log.txt (newest) and log.1.txt, each at most MAX bytes.
# Never pass secrets here: the log is readable with `dhtlink logs`.
import os
import time

PATH = "log.txt"
OLD = "log.1.txt"
MAX = 4096
echo = True


def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


def write(level, msg):
    line = "%d %s %s\n" % (time.time(), level, msg)
    if echo:
        print(line, end="")
    try:
        if _size(PATH) + len(line) > MAX:
            try:
                os.remove(OLD)
            except OSError:
                pass
            os.rename(PATH, OLD)
        with open(PATH, "a") as f:
            f.write(line)
    except OSError:
        pass  # a full or failing flash must not stop the sensor


def info(msg):
    write("I", msg)


def warn(msg):
    write("W", msg)


def error(msg):
    write("E", msg)
