"""Progress on stderr, one renderer for every command that waits: flash (bytes per file),
sim (wakes of one board), bench (wakes of each board at once).

On a terminal each task is a tqdm bar redrawn in place (several at once keep a line each);
elsewhere (a CI log, a pipe) each task prints a plain line at every quarter and at its end,
so a log shows progress without carriage-return noise.
"""

import sys
import threading
from typing import Any, TextIO

# `dhtlink -q`: no progress at all, only each command's answer and its errors.
quiet = False


class Task:
    def __init__(self, progress: "Progress", name: str, total: int, unit: str, position: int) -> None:
        self.progress = progress
        self.name = name
        self.total = max(total, 1)
        self.unit = unit
        self.done = 0
        self.reported: set[int] = set()
        self.bar: Any = None
        if progress.tty and not quiet:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc=f"{name:<16}",
                unit=unit,
                unit_scale=unit == "B",
                position=position,
                leave=True,
                file=progress.stream,
                dynamic_ncols=True,
            )

    def update(self, done: int, _total: int | None = None) -> None:
        """done: how much of total is finished now (not an increment). Takes mpremote's
        progress_callback(done, total) as it is."""
        with self.progress.lock:
            step, self.done = done - self.done, done
            if self.bar is not None:
                self.bar.update(step)
                return
            if quiet:
                return
            quarter = min(4, done * 4 // self.total)
            if quarter and quarter not in self.reported:
                self.reported.add(quarter)
                print(f"{self.name}: {done}/{self.total} {self.unit}", file=self.progress.stream, flush=True)

    def close(self) -> None:
        with self.progress.lock:
            if self in self.progress.open:
                self.progress.open.remove(self)
                if self.bar is not None:
                    self.bar.close()


class Progress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.lock = threading.RLock()
        self.open: list[Task] = []  # a task's bar keeps its line while it is open

    def task(self, name: str, total: int, unit: str) -> Task:
        with self.lock:
            task = Task(self, name, total, unit, position=len(self.open))
            self.open.append(task)
        return task

    def close(self) -> None:
        for task in list(self.open):
            task.close()
