"""Deadlines (serverless): cut outstanding work at the safety margin, return partial results."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from detector import (
    EventModule,
    EventStatus,
    InvocationStatus,
    JobStatus,
    job,
    listen_to,
    run,
)
from tests.support.library import RecordingPlugin, hasura_payload


def handler_running(*jobs: Any) -> Any:
    async def handler(event_name: str, event: Any) -> Any:
        return await run(event_name, event, list(jobs))

    return handler


def always(event_name: str, event: Any) -> bool:
    return True


async def quick(event_name: str, event: Any, options: dict[str, Any]) -> str:
    return "done"


def assert_hooks_paired(plugin: RecordingPlugin) -> None:
    """Every start hook has its end hook, for the same ids."""
    for start, end in (
        ("on_detection_start", "on_detection_end"),
        ("on_handler_start", "on_handler_end"),
    ):
        started = sorted(args[0].event_execution_id for args in plugin.args(start))
        ended = sorted(args[0].event_execution_id for args in plugin.args(end))
        assert started == ended, (start, end)
    started_jobs = sorted(args[0].job_execution_id for args in plugin.args("on_job_start"))
    ended_jobs = sorted(args[0].job_execution_id for args in plugin.args("on_job_end"))
    assert started_jobs == ended_jobs


async def test_deadline_cuts_slow_jobs_and_returns_the_partial_result() -> None:
    plugin = RecordingPlugin()
    after_sleep: list[str] = []

    async def slow(event_name: str, event: Any, options: dict[str, Any]) -> None:
        await asyncio.sleep(5)
        after_sleep.append("ran on")

    started = time.perf_counter()
    result = await listen_to(
        hasura_payload(),
        modules=[EventModule("x", always, handler_running(job(quick), job(slow)))],
        time_budget_ms=400,
        safety_margin_ms=200,
        plugins=[plugin],
    )
    elapsed = time.perf_counter() - started
    assert 0.15 <= elapsed < 0.4, f"cut after {elapsed * 1000:.0f} ms, expected about 200 ms"
    assert result.timed_out is True
    assert result.status is InvocationStatus.TIMEOUT
    assert "deadline reached" in (result.error or "")
    done, cut = result.events[0].jobs
    assert (done.status, done.result) == (JobStatus.COMPLETED, "done")
    assert cut.status is JobStatus.TIMEOUT and cut.error_type == "JobTimeoutError"
    assert "deadline" in (cut.error or "")
    # Cut by the deadline, as its job and the invocation: `timeout`, not `handler_failed`.
    assert result.events[0].status is EventStatus.TIMEOUT
    assert result.events[0].detected is True
    assert plugin.hooks()[-2:] == ["on_invocation_end", "flush"]
    assert plugin.args("on_invocation_end")[0][1] is result
    assert_hooks_paired(plugin)
    await asyncio.sleep(0.1)
    assert after_sleep == []


async def test_absolute_monotonic_deadline_works_the_same() -> None:
    async def slow(event_name: str, event: Any, options: dict[str, Any]) -> None:
        await asyncio.sleep(5)

    result = await listen_to(
        hasura_payload(),
        modules=[EventModule("x", always, handler_running(job(slow)))],
        deadline=time.monotonic() + 0.3,
        safety_margin_ms=100,
        plugins=[],
    )
    assert result.timed_out and result.jobs[0].status is JobStatus.TIMEOUT


async def test_jobs_see_the_invocation_deadline() -> None:
    deadline = time.monotonic() + 30

    async def read(event_name: str, event: Any, options: dict[str, Any]) -> float:
        return options["deadline"]

    result = await listen_to(
        hasura_payload(),
        modules=[EventModule("x", always, handler_running(job(read)))],
        deadline=deadline,
        plugins=[],
    )
    assert result.jobs[0].result == deadline
    assert result.timed_out is False and result.status is InvocationStatus.COMPLETED


async def test_a_detector_still_running_at_the_deadline_is_cut() -> None:
    plugin = RecordingPlugin()

    async def slow_detector(event_name: str, event: Any) -> bool:
        await asyncio.sleep(5)
        return True

    result = await listen_to(
        hasura_payload(),
        modules=[
            EventModule("slow", slow_detector, handler_running()),
            EventModule("fast", always, handler_running(job(quick))),
        ],
        time_budget_ms=300,
        safety_margin_ms=100,
        plugins=[plugin],
    )
    slow, fast = result.events
    assert (slow.detected, slow.status) == (False, EventStatus.TIMEOUT)
    assert "before the detector of `slow` answered" in (slow.error or "")
    assert fast.status is EventStatus.COMPLETED and fast.jobs[0].completed
    assert result.status is InvocationStatus.TIMEOUT
    assert_hooks_paired(plugin)


async def test_a_handler_still_running_outside_jobs_is_cut() -> None:
    async def slow_handler(event_name: str, event: Any) -> Any:
        await asyncio.sleep(5)

    result = await listen_to(
        hasura_payload(),
        modules=[EventModule("x", always, slow_handler)],
        time_budget_ms=300,
        safety_margin_ms=100,
        plugins=[],
    )
    (event,) = result.events
    assert (event.detected, event.status) == (True, EventStatus.TIMEOUT)
    assert "before the handler of `x` returned" in (event.error or "")


async def test_a_sync_job_at_the_deadline_is_marked_timeout_without_waiting_for_it() -> None:
    release = threading.Event()

    def blocking(event_name: str, event: Any, options: dict[str, Any]) -> None:
        release.wait(5)

    started = time.perf_counter()
    result = await listen_to(
        hasura_payload(),
        modules=[EventModule("x", always, handler_running(job(blocking)))],
        time_budget_ms=300,
        safety_margin_ms=100,
        plugins=[],
    )
    elapsed = time.perf_counter() - started
    release.set()
    assert result.jobs[0].status is JobStatus.TIMEOUT
    assert elapsed < 0.6


async def test_a_job_that_swallows_cancellation_is_still_finished_as_timeout() -> None:
    plugin = RecordingPlugin()

    async def stubborn(event_name: str, event: Any, options: dict[str, Any]) -> str:
        for _ in range(8):
            try:
                await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                pass  # misbehaving user code
        return "finished eventually"

    started = time.perf_counter()
    result = await listen_to(
        hasura_payload(),
        modules=[EventModule("x", always, handler_running(job(stubborn)))],
        time_budget_ms=1300,
        safety_margin_ms=1000,
        plugins=[plugin],
    )
    elapsed = time.perf_counter() - started
    assert result.jobs[0].status is JobStatus.TIMEOUT
    assert elapsed < 1.0, "the library waited for a job that ignores cancellation"
    assert len(plugin.args("on_job_end")) == 1
    await asyncio.sleep(0.8)  # the stubborn job ends now: its record must not change
    assert result.jobs[0].status is JobStatus.TIMEOUT
    assert len(plugin.args("on_job_end")) == 1


async def test_no_retry_is_started_that_cannot_finish_before_the_deadline() -> None:
    attempts: list[int] = []

    async def failing(event_name: str, event: Any, options: dict[str, Any]) -> None:
        attempts.append(options["attempt"])
        raise ConnectionError("down")

    started = time.perf_counter()
    result = await listen_to(
        hasura_payload(),
        modules=[EventModule("x", always, handler_running(job(failing, retries=5, backoff=2)))],
        time_budget_ms=1500,
        safety_margin_ms=500,
        plugins=[],
    )
    elapsed = time.perf_counter() - started
    assert attempts == [1]
    assert (result.jobs[0].status, result.jobs[0].attempts) == (JobStatus.FAILED, 1)
    assert result.timed_out is False and elapsed < 0.5


async def test_a_budget_already_spent_cuts_everything_at_once() -> None:
    plugin = RecordingPlugin()
    result = await listen_to(
        hasura_payload(),
        modules=[
            EventModule("a", always, handler_running(job(quick))),
            EventModule("b", always, quick),
        ],
        time_budget_ms=100,
        safety_margin_ms=2000,
        plugins=[plugin],
    )
    assert result.timed_out and result.status is InvocationStatus.TIMEOUT
    assert [event.status for event in result.events] == [EventStatus.TIMEOUT] * 2
    assert_hooks_paired(plugin)
    assert plugin.hooks()[-1] == "flush"


async def test_without_a_deadline_nothing_is_cut() -> None:
    async def medium(event_name: str, event: Any, options: dict[str, Any]) -> str:
        await asyncio.sleep(0.3)
        return "done"

    result = await listen_to(
        hasura_payload(),
        modules=[EventModule("x", always, handler_running(job(medium)))],
        plugins=[],
    )
    assert result.jobs[0].result == "done" and not result.timed_out
