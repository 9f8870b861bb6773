"""Progress of one long call (one `annotate` run) in either execution mode.

Delegated, the call runs on the operator's thread and each report goes straight to the run's record
(`ctx.set_progress`), while the call's state (its field lock) holds. Immediate, the App shows progress only through
messages a generator operator yields, which it cannot do from inside a call: the call runs on a worker thread while
the operator yields each report as it comes. Either way it is one call, so one plan, one lock and one pipeline
that never drains mid-run.
"""
from __future__ import annotations

import queue
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

PROGRESS_STEPS = 20  # progress updates per run: enough to look alive, few enough to cost nothing

T = TypeVar("T")
Report = Callable[[float, str], None]  # (fraction done, label)


def in_steps(report: Report, label: Callable[[int, int], str], start: float = 0.0,
             span: float = 1.0) -> Callable[[int, int], None]:
    """An `on_progress(done, total)` that reports at most PROGRESS_STEPS times (and always the last count) as
    the fraction `start + span * done / total`."""
    last = -1

    def on_progress(done: int, total: int) -> None:
        nonlocal last
        step = done * PROGRESS_STEPS // total if total else PROGRESS_STEPS
        if step > last or done == total:
            last = step
            report(start + span * (done / total if total else 1.0), label(done, total))

    return on_progress


def report_to(ctx) -> Report:
    """Reports into a delegated run's record."""
    return lambda fraction, label: ctx.set_progress(progress=fraction, label=label)


def run_reporting(ctx, work: Callable[[Report], T]) -> Generator[Any, None, T]:
    """Runs `work(report)` and returns its result (or raises its error); immediate, yields the App's progress
    message for each report meanwhile (use as `result = yield from run_reporting(ctx, work)`)."""
    if ctx.delegated:
        return work(report_to(ctx))
    reports: queue.Queue[tuple[float, str] | None] = queue.Queue()
    with ThreadPoolExecutor(1, thread_name_prefix="mslite-app-run") as pool:
        future = pool.submit(work, lambda fraction, label: reports.put((fraction, label)))
        future.add_done_callback(lambda _: reports.put(None))
        for fraction, label in iter(reports.get, None):
            yield ctx.ops.set_progress(progress=fraction, label=label)
        return future.result()
