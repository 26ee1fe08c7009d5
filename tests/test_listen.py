"""`listen_to` end to end: options, ids, hook order, concurrency, errors and the sync face."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest

from detector import (
    ConfigurationError,
    EventModule,
    EventStatus,
    InvalidEventPayload,
    InvocationStatus,
    JobStatus,
    ListenResult,
    job,
    listen_to,
    listen_to_sync,
    run,
)
from tests.support.library import RecordingPlugin, hasura_payload


def module(
    name: str,
    *,
    detect: Any = True,
    jobs: list[Any] | None = None,
    handler: Any = None,
) -> EventModule:
    """An event module whose detector answers `detect` (or calls it) and runs `jobs`."""

    def detector(event_name: str, event: Any) -> bool:
        return detect(event_name, event) if callable(detect) else detect

    async def default_handler(event_name: str, event: Any) -> Any:
        return await run(event_name, event, jobs or [])

    return EventModule(name, detector, handler or default_handler)


def ok(event_name: str, event: Any, options: dict[str, Any]) -> str:
    return "ok"


def boom(event_name: str, event: Any, options: dict[str, Any]) -> None:
    raise RuntimeError("boom")


# The whole flow --------------------------------------------------------------------------


async def test_hooks_fire_in_order_with_the_ids_the_library_assigned() -> None:
    plugin = RecordingPlugin()
    result = await listen_to(
        hasura_payload(),
        modules=[module("orders.shipped", jobs=[job(ok)])],
        plugins=[plugin],
    )
    assert plugin.hooks() == [
        "on_configure",
        "on_invocation_start",
        "on_detection_start",
        "on_detection_end",
        "on_handler_start",
        "on_job_start",
        "on_job_end",
        "on_handler_end",
        "on_invocation_end",
        "flush",
    ]
    (invocation,) = plugin.args("on_invocation_start")[0]
    assert uuid.UUID(result.invocation_id).version == 4
    assert invocation.invocation_id == result.invocation_id
    assert invocation.correlation_id == result.correlation_id
    assert invocation.source_function == "orders_events"
    assert invocation.event is not None and invocation.event.new["status"] == "shipped"
    (event_info,) = plugin.args("on_detection_start")[0]
    assert event_info.event_execution_id == result.events[0].event_execution_id
    assert event_info.invocation is invocation
    job_info, job_result = plugin.args("on_job_end")[0]
    assert job_info.job_execution_id == result.events[0].jobs[0].job_execution_id
    assert job_info.event is event_info
    assert job_result is result.events[0].jobs[0]
    end_invocation, end_result = plugin.args("on_invocation_end")[0]
    assert end_invocation is invocation and end_result is result
    assert result.status is InvocationStatus.COMPLETED and not result.timed_out


async def test_one_result_per_listened_event_detected_or_not() -> None:
    result = await listen_to(
        hasura_payload(),
        modules=[module("a", detect=False), module("b", jobs=[job(ok)]), module("c", detect=False)],
        plugins=[],
    )
    assert [(event.name, event.detected, event.status) for event in result.events] == [
        ("a", False, EventStatus.NOT_DETECTED),
        ("b", True, EventStatus.COMPLETED),
        ("c", False, EventStatus.NOT_DETECTED),
    ]
    assert [event.name for event in result.detected_events] == ["b"]
    assert [job_result.result for job_result in result.jobs] == ["ok"]


async def test_no_event_modules_is_a_completed_empty_invocation() -> None:
    result = await listen_to(hasura_payload(), modules=[], plugins=[])
    assert (result.events, result.status, result.error) == ([], InvocationStatus.COMPLETED, None)


async def test_result_serialises_to_json_in_both_key_styles() -> None:
    result = await listen_to(
        hasura_payload(),
        modules=[module("orders.shipped", jobs=[job(ok), job(boom)])],
        plugins=[],
    )
    snake = json.loads(json.dumps(result.to_dict()))
    camel = json.loads(json.dumps(result.to_dict(camel=True)))
    assert snake["events"][0]["jobs"][1]["error_type"] == "RuntimeError"
    assert camel["events"][0]["jobs"][1]["errorType"] == "RuntimeError"
    assert camel["invocationId"] == result.invocation_id and camel["timedOut"] is False
    assert snake["status"] == "failed" and snake["events"][0]["status"] == "completed"
    assert "exception" not in snake["events"][0]


async def test_result_to_dict_is_json_ready_whatever_jobs_return_as_the_plugin_records_it() -> None:
    from detector.observability.capture import Sanitizer

    class Opaque:
        pass

    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    listed: list[Any] = [1]
    listed.append(listed)
    returned = {"loop": loop, "listed": listed, "bytes": b"\x00\x01", "object": Opaque()}

    async def odd(event_name: str, event: Any, options: dict[str, Any]) -> Any:
        return returned

    result = await listen_to(hasura_payload(), modules=[module("x", jobs=[job(odd)])], plugins=[])
    as_dict = result.to_dict()
    out = json.loads(json.dumps(as_dict))["events"][0]["jobs"][0]["result"]
    assert out["loop"] == {"name": "loop", "self": "[circular reference]"}
    assert out["listed"] == [1, "[circular reference]"]
    assert out["bytes"] == "[bytes: 2 bytes]"
    assert out["object"].endswith("Opaque object]")
    # The same safe form the recorder stores (here without redaction).
    assert out == Sanitizer(redact_keys=()).clean(returned)
    assert result.jobs[0].result is returned  # the result object itself is untouched


# Options ---------------------------------------------------------------------------------


async def test_explicit_ids_and_source_function_are_used() -> None:
    plugin = RecordingPlugin()
    invocation_id = str(uuid.uuid4()).upper()
    result = await listen_to(
        hasura_payload(),
        modules=[],
        invocation_id=invocation_id,
        correlation_id="order-7",
        source_function="netlify-orders",
        plugins=[plugin],
    )
    assert result.invocation_id == invocation_id.lower()
    assert result.correlation_id == "order-7"
    (invocation,) = plugin.args("on_invocation_start")[0]
    assert invocation.source_function == "netlify-orders"


async def test_source_function_falls_back_to_unknown_without_a_trigger_name() -> None:
    plugin = RecordingPlugin()
    await listen_to(hasura_payload(trigger=None), modules=[], plugins=[plugin])
    assert plugin.args("on_invocation_start")[0][0].source_function == "unknown"


async def test_context_reaches_detectors_handlers_and_jobs() -> None:
    seen: dict[str, Any] = {}

    def detector(event_name: str, event: Any) -> bool:
        seen["detector"] = event.context["tenant"]
        return True

    async def handler(event_name: str, event: Any) -> Any:
        seen["handler"] = event.context["tenant"]
        return await run(event_name, event, [job(lambda n, e, o: e.context["tenant"], name="j")])

    result = await listen_to(
        hasura_payload(),
        modules=[EventModule("x", detector, handler)],
        context={"tenant": "acme"},
        plugins=[],
    )
    assert seen == {"detector": "acme", "handler": "acme"}
    assert result.jobs[0].result == "acme"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"invocation_id": "inv-7"}, "`invocation_id` must be a UUID"),
        ({"context": ["tenant"]}, "`context` must be a dict"),
        ({"only": [1]}, "`only`"),
        ({"source_function": ""}, "`source_function`"),
        ({"events_dir": 5}, "`events_dir`"),
        ({"deadline": "soon"}, "`deadline`"),
        ({"deadline": 1.0, "time_budget_ms": 100}, "not both"),
        ({"time_budget_ms": -1}, "`time_budget_ms`"),
        ({"safety_margin_ms": -5}, "`safety_margin_ms`"),
        ({"plugins": [object()]}, "`plugins`"),
        ({"correlation_id": ""}, "`correlation_id`"),
    ],
)
async def test_invalid_options_raise_configuration_errors_naming_the_option(
    options: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        await listen_to(hasura_payload(), modules=[], **{"plugins": [], **options})


# Rejected payloads ------------------------------------------------------------------------


async def test_an_invalid_payload_is_recorded_as_rejected_then_raised() -> None:
    plugin = RecordingPlugin()
    payload = hasura_payload()
    payload["event"]["op"] = "UPSERT"
    with pytest.raises(InvalidEventPayload, match=r"event\.op") as caught:
        await listen_to(payload, modules=[module("x")], plugins=[plugin], correlation_id="c-1")
    assert plugin.hooks() == ["on_configure", "on_invocation_start", "on_invocation_end", "flush"]
    (invocation,) = plugin.args("on_invocation_start")[0]
    assert invocation.event is None and invocation.error is caught.value
    assert invocation.payload is payload
    assert invocation.source_function == "orders_events"
    assert invocation.correlation_id == "c-1"
    _, result = plugin.args("on_invocation_end")[0]
    assert isinstance(result, ListenResult)
    assert result.status is InvocationStatus.REJECTED
    assert result.error == str(caught.value)
    assert result.invocation_id == invocation.invocation_id and result.events == []


async def test_a_payload_that_is_not_even_a_mapping_is_rejected_too() -> None:
    plugin = RecordingPlugin()
    with pytest.raises(InvalidEventPayload, match="`payload`"):
        await listen_to(["not", "a", "payload"], modules=[], plugins=[plugin])
    assert plugin.args("on_invocation_start")[0][0].source_function == "unknown"


# Concurrency -----------------------------------------------------------------------------


async def test_all_detectors_run_concurrently_sync_ones_in_threads() -> None:
    def slow_sync(event_name: str, event: Any) -> bool:
        time.sleep(0.2)
        return False

    async def slow_async(event_name: str, event: Any) -> bool:
        await asyncio.sleep(0.2)
        return False

    modules = [
        EventModule("a", slow_sync, ok),
        EventModule("b", slow_sync, ok),
        EventModule("c", slow_async, ok),
    ]
    started = time.perf_counter()
    await listen_to(hasura_payload(), modules=modules, plugins=[])
    elapsed = time.perf_counter() - started
    assert elapsed < 0.35, f"three 200 ms detectors took {elapsed * 1000:.0f} ms"


async def test_a_handler_starts_as_soon_as_its_detector_says_yes() -> None:
    stamps: dict[str, float] = {}

    async def slow_no(event_name: str, event: Any) -> bool:
        await asyncio.sleep(0.3)
        stamps["slow detector done"] = time.perf_counter()
        return False

    async def fast_handler(event_name: str, event: Any) -> Any:
        stamps["fast handler started"] = time.perf_counter()
        return None

    await listen_to(
        hasura_payload(),
        modules=[
            EventModule("slow", slow_no, ok),
            EventModule("fast", lambda n, e: True, fast_handler),
        ],
        plugins=[],
    )
    assert stamps["fast handler started"] < stamps["slow detector done"] - 0.2


# Failures ----------------------------------------------------------------------------------


async def test_a_detector_that_raises_is_not_detected_and_its_error_recorded() -> None:
    plugin = RecordingPlugin()

    def broken(event_name: str, event: Any) -> bool:
        raise KeyError("status")

    result = await listen_to(
        hasura_payload(),
        modules=[EventModule("broken", broken, ok), module("fine", jobs=[job(ok)])],
        plugins=[plugin],
    )
    broken_result, fine = result.events
    assert (broken_result.detected, broken_result.status, broken_result.error) == (
        False,
        EventStatus.DETECTION_FAILED,
        "'status'",
    )
    assert isinstance(broken_result.exception, KeyError)
    assert fine.jobs[0].completed
    assert result.status is InvocationStatus.FAILED
    assert "broken: 'status'" in (result.error or "")
    error, scope, _, event_info, job_info = plugin.args("on_error")[0]
    assert (scope, event_info.name, job_info) == ("detector", "broken", None)
    assert isinstance(error, KeyError)


async def test_a_handler_that_raises_keeps_detected_and_the_jobs_it_ran() -> None:
    plugin = RecordingPlugin()

    async def handler(event_name: str, event: Any) -> Any:
        await run(event_name, event, [job(ok)])
        raise ValueError("template missing")

    result = await listen_to(
        hasura_payload(), modules=[EventModule("x", lambda n, e: True, handler)], plugins=[plugin]
    )
    (event,) = result.events
    assert (event.detected, event.status, event.error) == (
        True,
        EventStatus.HANDLER_FAILED,
        "template missing",
    )
    assert [job_result.result for job_result in event.jobs] == ["ok"]
    assert result.status is InvocationStatus.FAILED
    handler_end = plugin.args("on_handler_end")[0]
    assert isinstance(handler_end[3], ValueError) and handler_end[1] == event.jobs
    assert [args[1] for args in plugin.args("on_error")] == ["handler"]


async def test_a_handler_returning_unrun_jobs_is_told_what_to_do() -> None:
    def handler(event_name: str, event: Any) -> Any:
        return [job(ok)]

    result = await listen_to(
        hasura_payload(), modules=[EventModule("x", lambda n, e: True, handler)], plugins=[]
    )
    assert result.events[0].status is EventStatus.HANDLER_FAILED
    assert "return `await run(event_name, event" in (result.events[0].error or "")


async def test_a_sync_handler_may_return_the_run_coroutine() -> None:
    def handler(event_name: str, event: Any) -> Any:
        return run(event_name, event, [job(ok)])

    result = await listen_to(
        hasura_payload(), modules=[EventModule("x", lambda n, e: True, handler)], plugins=[]
    )
    assert result.events[0].status is EventStatus.COMPLETED
    assert result.jobs[0].result == "ok"


async def test_a_failed_job_fails_the_invocation_but_not_its_event() -> None:
    result = await listen_to(
        hasura_payload(), modules=[module("x", jobs=[job(ok), job(boom)])], plugins=[]
    )
    assert result.events[0].status is EventStatus.COMPLETED
    assert [job_result.status for job_result in result.jobs] == [
        JobStatus.COMPLETED,
        JobStatus.FAILED,
    ]
    assert result.status is InvocationStatus.FAILED
    assert result.error == "x / job boom: failed (boom)"


async def test_cancelling_listen_to_records_the_invocation_and_propagates() -> None:
    plugin = RecordingPlugin()
    started = asyncio.Event()

    async def slow(event_name: str, event: Any, options: dict[str, Any]) -> None:
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(
        listen_to(hasura_payload(), modules=[module("x", jobs=[job(slow)])], plugins=[plugin])
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    _, job_result = plugin.args("on_job_end")[0]
    assert job_result.status is JobStatus.CANCELLED
    _, result = plugin.args("on_invocation_end")[0]
    assert result.status is InvocationStatus.FAILED
    assert result.error == "the invocation was cancelled"
    assert plugin.hooks()[-1] == "flush"


# The sync face ---------------------------------------------------------------------------


def test_listen_to_sync_runs_without_a_loop() -> None:
    result = listen_to_sync(hasura_payload(), modules=[module("x", jobs=[job(ok)])], plugins=[])
    assert result.jobs[0].result == "ok"


def test_listen_to_sync_is_safe_in_concurrent_threads() -> None:
    results: list[ListenResult] = []

    def call() -> None:
        results.append(
            listen_to_sync(hasura_payload(), modules=[module("x", jobs=[job(ok)])], plugins=[])
        )

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(results) == 4
    assert all(result.status is InvocationStatus.COMPLETED for result in results)
    assert len({result.invocation_id for result in results}) == 4


async def test_listen_to_sync_works_from_a_thread_whose_loop_is_running() -> None:
    result = listen_to_sync(hasura_payload(), modules=[module("x", jobs=[job(ok)])], plugins=[])
    assert result.jobs[0].result == "ok"


def test_listen_to_sync_raises_the_same_errors() -> None:
    with pytest.raises(InvalidEventPayload):
        listen_to_sync({"event": {}}, modules=[], plugins=[])


# Packaging ---------------------------------------------------------------------------------


def test_importing_detector_pulls_in_no_heavy_dependency() -> None:
    code = (
        "import sys, detector\n"
        "heavy = {'sqlalchemy', 'sqlmodel', 'pydantic', 'strawberry', 'starlette', 'asyncpg',"
        " 'httpx', 'uvicorn', 'graphql', 'opentelemetry', 'aiosqlite', 'yaml'}\n"
        "loaded = sorted(heavy & {name.split('.')[0] for name in sys.modules})\n"
        "assert not loaded, loaded\n"
        "assert detector.listen_to and detector.job and detector.run\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr


def test_public_api_is_reexported() -> None:
    import detector

    for name in (
        "listen_to",
        "listen_to_sync",
        "job",
        "run",
        "EventModule",
        "EventRegistry",
        "Plugin",
        "register_plugin",
        "unregister_plugin",
        "HasuraEvent",
        "parse_hasura_event",
        "column_has_changed",
        "changed_columns",
        "TrackingToken",
        "JobResult",
        "EventResult",
        "ListenResult",
        "InvalidEventPayload",
        "ConfigurationError",
        "JobStatus",
        "InvocationStatus",
        "EventStatus",
    ):
        assert hasattr(detector, name), name
        assert name in detector.__all__
