"""Alerts beside the local endpoint: what the stream and schedule functions do in AWS.

Three daemon threads, so nothing here runs on a request's thread:
- evaluation: batches handed over by ingest (`cloud.alerts.after_store`) go through a
  bounded queue; the handler only enqueues, and a full queue costs an evaluation, never
  the board's answer;
- schedule: the scheduled handler every `interval_s` (one minute for `dhtlink serve`);
- delivery: webhooks and e-mail, with their retries, off the evaluation thread.
"""

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from cloud import alerts
from cloud.alerts.engine import Evaluator
from cloud.alerts.notify import Notifier
from cloud.alerts.rules import Rule
from cloud.alerts.scheduled import run_schedule
from cloud.observability import log
from cloud.stores.base import reading_item

QUEUE_LIMIT = 10_000


class LocalAlerts:
    def __init__(
        self,
        store: Any,
        clock: Callable[[], float],
        interval_s: float = 60.0,
        notifier: Notifier | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.interval_s = interval_s
        self.notifier = notifier or Notifier(store, topic_arn=os.environ.get("ALERTS_TOPIC_ARN"))
        self.evaluator = Evaluator(store, self._queue_delivery)
        self._batches: queue.Queue[tuple[str, list[dict[str, Any]], int]] = queue.Queue(QUEUE_LIMIT)
        self._deliveries: queue.Queue[tuple[Rule, dict[str, Any]]] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.dropped_batches = 0

    def start(self) -> "LocalAlerts":
        alerts.register_sink(self.store, self._take)
        for name, target in (
            ("alerts-evaluate", self._evaluate_loop),
            ("alerts-deliver", self._deliver_loop),
            ("alerts-schedule", self._schedule_loop),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, drain_s: float = 3.0) -> None:
        """Stop taking batches, give queued work `drain_s` to finish, then stop the threads."""
        alerts.register_sink(self.store, None)
        try:
            self.wait_idle(drain_s)
        except TimeoutError:
            log(
                "WARNING",
                "alerts stopped with work queued",
                batches=self._batches.qsize(),
                notifications=self._deliveries.qsize(),
            )
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> "LocalAlerts":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 30.0, deliveries: bool = True) -> None:
        """Until every handed-over batch is evaluated and (unless `deliveries` is False) its
        notifications sent (tests, bench)."""
        done = threading.Event()

        def join() -> None:
            self._batches.join()
            if deliveries:
                self._deliveries.join()
            done.set()

        threading.Thread(target=join, daemon=True).start()
        if not done.wait(timeout):
            raise TimeoutError(f"alert queues still busy after {timeout} s")

    def run_schedule(self) -> int:
        """The scheduled handler now, on the caller's thread (its notifications are queued)."""
        return run_schedule(self.evaluator, self.store, int(self.clock()))

    def _take(self, device_id: str, stored: list[Any], now: int) -> None:
        try:
            self._batches.put_nowait((device_id, [reading_item(r) for r in stored], now))
        except queue.Full:
            self.dropped_batches += 1
            log("WARNING", "alert queue full: batch not evaluated", device_id=device_id)

    def _queue_delivery(self, rule: Rule, event: dict[str, Any]) -> None:
        self._deliveries.put((rule, event))

    def _next(self, jobs: queue.Queue) -> Any:
        while not self._stop.is_set():
            try:
                return jobs.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    def _evaluate_loop(self) -> None:
        while (job := self._next(self._batches)) is not None:
            try:
                self.evaluator.on_stored(*job)
            except Exception as error:
                log("ERROR", "alert evaluation failed", error=type(error).__name__, detail=str(error)[:200])
            finally:
                self._batches.task_done()

    def _deliver_loop(self) -> None:
        while (job := self._next(self._deliveries)) is not None:
            try:
                self.notifier.deliver(*job)
            except Exception as error:
                log("ERROR", "alert delivery failed", error=type(error).__name__)
            finally:
                self._deliveries.task_done()

    def _schedule_loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_schedule()
            except Exception as error:
                log("ERROR", "scheduled alert run failed", error=type(error).__name__, detail=str(error)[:200])
