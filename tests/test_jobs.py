"""Jobs: concurrency, worker threads, isolation, timeouts, retries, names and options."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import threading
import time
import uuid
from typing import Any

import pytest

from detector import (
    ConfigurationError,
    Job,
    JobStatus,
    TrackingToken,
    job,
    run,
)
from detector.jobs import RESERVED_OPTIONS
from detector.payload import parse_hasura_event
from tests.support.library import hasura_payload

EVENT = parse_hasura_event(hasura_payload())


async def run_jobs(*jobs: Any) -> list[Any]:
    return await run("orders.shipped", EVENT, list(jobs))


# Concurrency -------------------------------------------------------------------------


async def test_async_jobs_run_concurrently() -> None:
    async def wait(event_name: str, event: Any, options: dict[str, Any]) -> str:
        await asyncio.sleep(0.2)
        return "ok"

    started = time.perf_counter()
    results = await run_jobs(job(wait), job(wait))
    elapsed = time.perf_counter() - started
    assert [result.status for result in results] == [JobStatus.COMPLETED] * 2
    assert elapsed < 0.35, f"two 200 ms jobs took {elapsed * 1000:.0f} ms: not concurrent"


async def test_sync_jobs_run_concurrently_in_worker_threads_without_blocking_the_loop() -> None:
    main_thread = threading.get_ident()
    threads: list[int] = []
    ticks = 0

    def blocking(event_name: str, event: Any, options: dict[str, Any]) -> str:
        threads.append(threading.get_ident())
        time.sleep(0.2)
        return "done"

    async def heartbeat() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beating = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    results = await run_jobs(job(blocking), job(blocking))
    elapsed = time.perf_counter() - started
    beating.cancel()
    assert [result.result for result in results] == ["done", "done"]
    assert elapsed < 0.35
    assert main_thread not in threads and len(set(threads)) == 2
    assert ticks >= 5, "the event loop was blocked while sync jobs ran"


async def test_results_keep_input_order_whatever_finishes_first() -> None:
    def sleeper(seconds: float) -> Any:
        async def sleep(event_name: str, event: Any, options: dict[str, Any]) -> float:
            await asyncio.sleep(seconds)
            return seconds

        return sleep

    results = await run_jobs(*(job(sleeper(s), name=f"s{s}") for s in (0.06, 0.0, 0.03)))
    assert [result.result for result in results] == [0.06, 0.0, 0.03]
    assert [result.name for result in results] == ["s0.06", "s0.0", "s0.03"]


async def test_a_failing_job_never_affects_its_siblings() -> None:
    finished: list[str] = []

    async def good(event_name: str, event: Any, options: dict[str, Any]) -> str:
        await asyncio.sleep(0.02)
        finished.append("good")
        return "fine"

    def bad(event_name: str, event: Any, options: dict[str, Any]) -> None:
        raise KeyError("missing customer")

    results = await run_jobs(job(good), job(bad), job(good))
    assert finished == ["good", "good"]
    good_result, bad_result, _ = results
    assert (good_result.completed, good_result.status, good_result.result) == (
        True,
        JobStatus.COMPLETED,
        "fine",
    )
    assert (bad_result.completed, bad_result.status) == (False, JobStatus.FAILED)
    assert bad_result.error == "'missing customer'"
    assert bad_result.error_type == "KeyError"
    assert isinstance(bad_result.exception, KeyError)


async def test_result_records_timing_and_ids() -> None:
    async def quick(event_name: str, event: Any, options: dict[str, Any]) -> int:
        await asyncio.sleep(0.01)
        return 1

    (result,) = await run_jobs(job(quick))
    assert result.started_at is not None and result.ended_at is not None
    assert result.started_at.tzinfo is not None
    assert result.ended_at >= result.started_at
    assert 5 <= result.duration_ms < 1000
    assert uuid.UUID(result.job_execution_id)
    assert result.attempts == 1
    json.dumps(result.to_dict())
    assert "exception" not in result.to_dict()


# Timeouts ----------------------------------------------------------------------------


async def test_async_job_over_its_timeout_is_cancelled_and_marked_timeout() -> None:
    progress: list[str] = []

    async def slow(event_name: str, event: Any, options: dict[str, Any]) -> str:
        progress.append("started")
        await asyncio.sleep(1.0)
        progress.append("after sleep")  # must never run
        return "late"

    started = time.perf_counter()
    (result,) = await run_jobs(job(slow, timeout=0.1))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)  # had the coroutine survived, it would have finished by now
    assert progress == ["started"]
    assert result.status is JobStatus.TIMEOUT and not result.completed
    assert result.error_type == "JobTimeoutError"
    assert "exceeded its timeout of 0.1 s" in (result.error or "")
    assert elapsed < 0.5


async def test_sync_job_over_its_timeout_is_reported_at_once_and_not_retried() -> None:
    calls: list[int] = []
    finished = threading.Event()

    def stuck(event_name: str, event: Any, options: dict[str, Any]) -> None:
        calls.append(options["attempt"])
        time.sleep(0.4)
        finished.set()

    started = time.perf_counter()
    (result,) = await run_jobs(job(stuck, timeout=0.1, retries=3, backoff=0))
    elapsed = time.perf_counter() - started
    assert result.status is JobStatus.TIMEOUT
    assert elapsed < 0.35, "the caller waited for the thread"
    assert result.exception is not None and result.exception.thread_still_running
    assert calls == [1], "a sync attempt still running in its thread must not be retried"
    assert not finished.is_set()
    assert await asyncio.to_thread(finished.wait, 2.0), "the thread keeps running to its end"


async def test_a_jobs_own_timeout_error_is_a_failure_not_our_timeout() -> None:
    async def raises_timeout(event_name: str, event: Any, options: dict[str, Any]) -> None:
        raise TimeoutError("smtp server timed out")

    (result,) = await run_jobs(job(raises_timeout, timeout=5))
    assert result.status is JobStatus.FAILED
    assert result.error == "smtp server timed out"


async def test_async_timeouts_are_retried() -> None:
    async def slow_then_fast(event_name: str, event: Any, options: dict[str, Any]) -> int:
        if options["attempt"] == 1:
            await asyncio.sleep(1)
        return options["attempt"]

    (result,) = await run_jobs(job(slow_then_fast, timeout=0.05, retries=1, backoff=0))
    assert (result.status, result.attempts, result.result) == (JobStatus.COMPLETED, 2, 2)


# Retries -----------------------------------------------------------------------------


async def test_failing_twice_then_succeeding_with_two_retries_reports_three_attempts() -> None:
    seen: list[int] = []

    def flaky(event_name: str, event: Any, options: dict[str, Any]) -> str:
        seen.append(options["attempt"])
        if len(seen) < 3:
            raise ConnectionError(f"gateway down ({len(seen)})")
        return "charged"

    (result,) = await run_jobs(job(flaky, retries=2, backoff=0.01))
    assert (result.status, result.completed, result.attempts, result.result) == (
        JobStatus.COMPLETED,
        True,
        3,
        "charged",
    )
    assert seen == [1, 2, 3]
    assert result.error is None


async def test_retries_exhausted_reports_the_last_error_and_every_attempt() -> None:
    async def always(event_name: str, event: Any, options: dict[str, Any]) -> None:
        raise ConnectionError(f"attempt {options['attempt']} failed")

    (result,) = await run_jobs(job(always, retries=2, backoff=0))
    assert (result.status, result.attempts) == (JobStatus.FAILED, 3)
    assert result.error == "attempt 3 failed"
    history = result.attempt_history
    assert [(a.attempt, a.status, a.error_type, a.error) for a in history] == [
        (n, JobStatus.FAILED, "ConnectionError", f"attempt {n} failed") for n in (1, 2, 3)
    ]


async def test_each_attempt_of_a_retried_job_is_recorded_in_order() -> None:
    async def slow_then_fast(event_name: str, event: Any, options: dict[str, Any]) -> int:
        if options["attempt"] == 1:
            await asyncio.sleep(1)
        return options["attempt"]

    (result,) = await run_jobs(job(slow_then_fast, timeout=0.05, retries=2, backoff=0))
    first, second = result.attempt_history
    assert (first.attempt, first.status, first.error_type) == (
        1,
        JobStatus.TIMEOUT,
        "JobTimeoutError",
    )
    assert (second.attempt, second.status, second.error) == (2, JobStatus.COMPLETED, None)
    # One time line: each attempt ends before the next starts, all within the job.
    assert result.started_at <= first.started_at <= first.ended_at <= second.started_at
    assert second.ended_at <= result.ended_at
    assert first.duration_ms >= 50 and second.duration_ms < first.duration_ms
    assert result.to_dict()["attempt_history"][1]["status"] == "completed"


async def test_a_job_that_ran_once_has_no_attempt_history() -> None:
    async def fine(event_name: str, event: Any, options: dict[str, Any]) -> str:
        return "ok"

    results = await run_jobs(job(fine), job(fine, retries=3))
    assert [r.attempt_history for r in results] == [None, None]


async def test_backoff_grows_exponentially() -> None:
    stamps: list[float] = []

    async def failing(event_name: str, event: Any, options: dict[str, Any]) -> None:
        stamps.append(time.perf_counter())
        raise RuntimeError("again")

    (result,) = await run_jobs(job(failing, retries=2, backoff=0.05))
    assert result.attempts == 3
    first_gap, second_gap = stamps[1] - stamps[0], stamps[2] - stamps[1]
    # backoff * 2**(n-1) plus up to backoff/2 of jitter
    assert 0.05 <= first_gap < 0.3
    assert 0.1 <= second_gap < 0.4


async def test_no_retries_means_one_attempt() -> None:
    async def failing(event_name: str, event: Any, options: dict[str, Any]) -> None:
        raise RuntimeError("once")

    (result,) = await run_jobs(job(failing))
    assert (result.status, result.attempts) == (JobStatus.FAILED, 1)


# Names and options -------------------------------------------------------------------


def send_email(event_name: str, event: Any, options: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key != "logger"}


class Mailer:
    def __call__(self, event_name: str, event: Any, options: dict[str, Any]) -> str:
        return "sent"


def test_job_names() -> None:
    assert job(send_email).name == "send_email"
    assert job(send_email, name="welcome").name == "welcome"
    assert job(lambda name, event, options: None).name == "anonymous"
    assert job(functools.partial(send_email)).name == "send_email"
    assert job(Mailer()).name == "anonymous"
    assert job(send_email).function_name == "send_email"


async def test_duplicate_names_are_fine_records_are_keyed_by_id() -> None:
    results = await run_jobs(job(send_email), job(send_email))
    assert [result.name for result in results] == ["send_email", "send_email"]
    assert results[0].job_execution_id != results[1].job_execution_id


async def test_options_carry_user_options_and_the_library_ids() -> None:
    (result,) = await run_jobs(job(send_email, template="shipped", cc=["ops@example.com"]))
    options = result.result
    assert options["template"] == "shipped" and options["cc"] == ["ops@example.com"]
    assert options["job_execution_id"] == result.job_execution_id
    assert options["job_name"] == "send_email"
    assert options["attempt"] == 1
    assert options["invocation_id"] is None and options["deadline"] is None  # standalone
    token = TrackingToken.parse(options["tracking_token"])
    assert token.correlation_id == options["correlation_id"]
    assert token.job_execution_id == result.job_execution_id
    assert set(RESERVED_OPTIONS) <= set(options) | {"logger"}


async def test_the_logger_option_is_a_logger_named_after_the_job() -> None:
    loggers: list[Any] = []

    def keep(event_name: str, event: Any, options: dict[str, Any]) -> None:
        loggers.append(options["logger"])

    await run_jobs(job(keep, name="notify"))
    assert isinstance(loggers[0], logging.Logger)
    assert loggers[0].name == "detector.jobs.notify"
    assert loggers[0].isEnabledFor(logging.INFO)


async def test_jobs_of_one_standalone_run_share_a_correlation_id() -> None:
    first, second = await run_jobs(job(send_email), job(send_email))
    assert first.result["correlation_id"] == second.result["correlation_id"]


async def test_each_job_gets_its_own_options_dict() -> None:
    def mutate(event_name: str, event: Any, options: dict[str, Any]) -> int:
        options.setdefault("counter", 0)
        options["counter"] += 1
        return options["counter"]

    descriptor = job(mutate)
    results = await run_jobs(descriptor, descriptor)
    assert [result.result for result in results] == [1, 1]
    assert "counter" not in descriptor.options


@pytest.mark.parametrize("key", sorted(RESERVED_OPTIONS))
def test_reserved_option_names_are_refused(key: str) -> None:
    with pytest.raises(ConfigurationError, match=key):
        job(send_email, **{key: "mine"})


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"backoff": -0.1}, "backoff"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_job_options_say_which(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        job(send_email, **kwargs)


def test_job_needs_a_callable() -> None:
    with pytest.raises(ConfigurationError, match="callable"):
        job("send_email")  # type: ignore[arg-type]


# run() arguments ---------------------------------------------------------------------


async def test_run_accepts_bare_functions_skips_none_and_takes_raw_payloads() -> None:
    results = await run("orders.shipped", hasura_payload(), [send_email, None, job(Mailer())])
    assert [result.name for result in results] == ["send_email", "anonymous"]
    assert await run("orders.shipped", EVENT, []) == []


async def test_run_refuses_what_is_not_a_job() -> None:
    with pytest.raises(ConfigurationError, match="job"):
        await run("orders.shipped", EVENT, [42])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="event name"):
        await run(EVENT, EVENT, [])  # type: ignore[arg-type]


async def test_job_descriptor_is_immutable_and_reusable() -> None:
    descriptor = job(send_email, retries=1)
    assert isinstance(descriptor, Job)
    with pytest.raises(AttributeError):
        descriptor.retries = 5  # type: ignore[misc]


async def test_contextvars_reach_sync_jobs_in_threads() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    request_id.set("req-7")

    def read(event_name: str, event: Any, options: dict[str, Any]) -> str:
        return request_id.get()

    (result,) = await run_jobs(job(read))
    assert result.result == "req-7"
