"""The one progress renderer flash, sim and bench share."""

import io
import threading

from host_tools.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_plain_line_per_quarter_and_at_the_end():
    log = io.StringIO()
    task = Progress(log).task("attic-01", 8, "wakes")
    for done in range(1, 9):
        task.update(done)
    task.close()
    assert log.getvalue().splitlines() == [f"attic-01: {n}/8 wakes" for n in (2, 4, 6, 8)]


def test_a_terminal_gets_a_bar_per_task_sharing_the_screen_across_threads():
    screen = Terminal()
    progress = Progress(screen)
    tasks = [progress.task(f"board-{n}", 50, "wakes") for n in range(3)]

    def wake(task):
        for done in range(1, 51):
            task.update(done)

    threads = [threading.Thread(target=wake, args=(task,)) for task in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [abs(task.bar.pos) for task in tasks] == [0, 1, 2]  # tqdm keeps an open bar's line negated
    progress.close()
    drawn = screen.getvalue()
    assert all(f"board-{n}" in drawn for n in range(3)) and "50/50" in drawn
    assert not progress.open


def test_bytes_take_mpremotes_callback_as_is_and_a_closed_task_frees_its_line():
    screen = Terminal()
    progress = Progress(screen)
    first = progress.task("app.mpy", 3000, "B")
    first.update(1024, 3000)  # mpremote's progress_callback(written, total)
    first.update(3000, 3000)
    first.close()
    assert "3.00k/3.00k" in screen.getvalue()
    assert abs(progress.task("boot.py", 110, "B").bar.pos) == 0
