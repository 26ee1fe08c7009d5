"""Log capture: logging records and prints attributed to the right invocation, event and job."""

from __future__ import annotations

import asyncio
import logging
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from detector import (
    EventModule,
    LogLevel,
    Plugin,
    job,
    listen_to,
    run,
)
from detector.logcapture import CaptureHandler, StreamProxy
from tests.support.library import RecordingPlugin, hasura_payload

log = logging.getLogger("tests.logcapture")


@pytest.fixture(autouse=True)
def debug_logger() -> Iterator[None]:
    previous = log.level
    log.setLevel(logging.DEBUG)
    yield
    log.setLevel(previous)


def single(handler: Any, detector: Any = None) -> list[EventModule]:
    return [EventModule("orders.shipped", detector or (lambda name, event: True), handler)]


def running(*jobs: Any) -> Any:
    async def handler(event_name: str, event: Any) -> Any:
        return await run(event_name, event, list(jobs))

    return handler


async def capture(*jobs: Any, detector: Any = None) -> tuple[RecordingPlugin, Any]:
    plugin = RecordingPlugin()
    result = await listen_to(
        hasura_payload(), modules=single(running(*jobs), detector), plugins=[plugin]
    )
    return plugin, result


# What a captured line holds ------------------------------------------------------------


async def test_logging_records_keep_level_source_line_and_extras() -> None:
    def logs(event_name: str, event: Any, options: dict[str, Any]) -> None:
        log.debug("debugging %s", "x")
        log.info("informing")
        log.warning("warning", extra={"order_id": 7, "tags": ["a"]})
        log.error("erring")
        log.critical("critical")
        try:
            raise ValueError("inside")
        except ValueError:
            log.exception("failed")

    plugin, result = await capture(job(logs))
    lines = plugin.logs
    assert [(line.level, line.message) for line in lines] == [
        (LogLevel.DEBUG, "debugging x"),
        (LogLevel.INFO, "informing"),
        (LogLevel.WARN, "warning"),
        (LogLevel.ERROR, "erring"),
        (LogLevel.ERROR, "critical"),
        (LogLevel.ERROR, "failed"),
    ]
    assert all(line.source == "tests.logcapture" for line in lines)
    assert lines[1].line_number == lines[0].line_number + 1
    assert lines[2].data == {"order_id": 7, "tags": ["a"]}
    assert lines[1].data is None
    exc_text = lines[5].data["exc_info"]
    assert "Traceback" in exc_text and "ValueError: inside" in exc_text
    assert all(line.invocation_id == result.invocation_id for line in lines)
    assert all(line.created_at.tzinfo is not None for line in lines)


async def test_prints_are_captured_and_still_reach_the_real_streams(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def prints(event_name: str, event: Any, options: dict[str, Any]) -> None:
        print("to stdout")
        print("to stderr", file=sys.stderr)

    plugin, _ = await capture(job(prints))
    assert [(line.level, line.source, line.message) for line in plugin.logs] == [
        (LogLevel.INFO, "stdout", "to stdout"),
        (LogLevel.WARN, "stderr", "to stderr"),
    ]
    assert all(line.line_number is None for line in plugin.logs)
    out, err = capsys.readouterr()
    assert "to stdout" in out and "to stderr" in err


async def test_partial_lines_wait_for_their_newline_or_the_end_of_the_scope() -> None:
    async def pieces(event_name: str, event: Any, options: dict[str, Any]) -> None:
        print("progress:", end=" ")
        await asyncio.sleep(0.01)
        print("50%", end="...")
        print(" done\r")
        print()
        print("   ")
        sys.stdout.write("a\nb\nunfinished")

    plugin, _ = await capture(job(pieces))
    assert [line.message for line in plugin.logs] == [
        "progress: 50%... done",
        "a",
        "b",
        "unfinished",
    ]


async def test_sequence_numbers_increase_within_an_invocation() -> None:
    def many(event_name: str, event: Any, options: dict[str, Any]) -> None:
        for number in range(20):
            print(number)
            log.info("log %d", number)

    plugin, _ = await capture(job(many), job(many))
    seqs = [line.seq for line in plugin.logs]
    assert sorted(seqs) == list(range(1, 81))


# Attribution ---------------------------------------------------------------------------


async def test_detector_handler_and_job_lines_carry_their_ids() -> None:
    def detector(event_name: str, event: Any) -> bool:
        log.info("detecting")
        return True

    async def handler(event_name: str, event: Any) -> Any:
        print("handling")
        return await run(event_name, event, [job(lambda n, e, o: log.info("in job"), name="j")])

    plugin = RecordingPlugin()
    result = await listen_to(hasura_payload(), modules=single(handler, detector), plugins=[plugin])
    event = result.events[0]
    by_message = {line.message: line for line in plugin.logs}
    assert by_message["detecting"].event_execution_id == event.event_execution_id
    assert by_message["detecting"].job_execution_id is None
    assert by_message["handling"].event_execution_id == event.event_execution_id
    assert by_message["handling"].job_execution_id is None
    assert by_message["in job"].event_execution_id == event.event_execution_id
    assert by_message["in job"].job_execution_id == event.jobs[0].job_execution_id


async def test_lines_of_concurrent_async_and_threaded_jobs_never_mix() -> None:
    def threaded(event_name: str, event: Any, options: dict[str, Any]) -> None:
        me = options["job_name"]
        for number in range(40):
            if number % 2:
                print(f"{me} {number}")
            else:
                options["logger"].info("%s %d", me, number)
            time.sleep(random.uniform(0, 0.002))

    async def asynchronous(event_name: str, event: Any, options: dict[str, Any]) -> None:
        me = options["job_name"]
        for number in range(40):
            if number % 2:
                print(f"{me} {number}")
            else:
                log.info("%s %d", me, number)
            await asyncio.sleep(random.uniform(0, 0.002))

    plugin, result = await capture(
        job(threaded, name="thread-a"),
        job(threaded, name="thread-b"),
        job(asynchronous, name="async-a"),
        job(asynchronous, name="async-b"),
    )
    ids = {job_result.name: job_result.job_execution_id for job_result in result.jobs}
    assert len(plugin.logs) == 160
    for line in plugin.logs:
        owner = line.message.split()[0]
        assert line.job_execution_id == ids[owner], line
    for name in ids:
        numbers = [
            int(line.message.split()[1]) for line in plugin.logs if line.message.startswith(name)
        ]
        assert numbers == list(range(40)), name


async def test_concurrent_invocations_never_mix() -> None:
    async def tagged(event_name: str, event: Any, options: dict[str, Any]) -> None:
        for number in range(20):
            print(f"{event.context['tag']} {number}")
            await asyncio.sleep(0.001)

    plugins = [RecordingPlugin(), RecordingPlugin()]
    results = await asyncio.gather(
        *(
            listen_to(
                hasura_payload(),
                modules=single(running(job(tagged))),
                context={"tag": tag},
                plugins=[plugin],
            )
            for tag, plugin in zip(("first", "second"), plugins, strict=True)
        )
    )
    for tag, plugin, result in zip(("first", "second"), plugins, results, strict=True):
        assert len(plugin.logs) == 20
        assert all(line.message.startswith(tag) for line in plugin.logs)
        assert all(line.invocation_id == result.invocation_id for line in plugin.logs)


# What is not captured ------------------------------------------------------------------


async def test_lines_outside_any_scope_are_not_captured() -> None:
    stop = threading.Event()

    def background() -> None:  # a plain thread: it does not inherit the job's context
        while not stop.is_set():
            log.info("background")
            time.sleep(0.005)

    async def starts_thread(event_name: str, event: Any, options: dict[str, Any]) -> None:
        threading.Thread(target=background, daemon=True).start()
        await asyncio.sleep(0.05)
        log.info("mine")

    log.info("before")
    plugin, _ = await capture(job(starts_thread))
    log.info("after")
    stop.set()
    assert [line.message for line in plugin.logs] == ["mine"]


async def test_lines_after_the_invocation_ended_are_not_delivered() -> None:
    release = threading.Event()
    done = threading.Event()

    def outlives(event_name: str, event: Any, options: dict[str, Any]) -> None:
        print("while running")
        release.wait(2)
        print("after the end")
        done.set()

    plugin, result = await capture(job(outlives, timeout=0.1))
    assert result.jobs[0].status == "timeout"
    release.set()
    assert await asyncio.to_thread(done.wait, 2)
    assert [line.message for line in plugin.logs] == ["while running"]


# Installation ----------------------------------------------------------------------------


async def test_capture_is_installed_only_while_invocations_run() -> None:
    seen: dict[str, Any] = {}

    def look(event_name: str, event: Any, options: dict[str, Any]) -> None:
        seen["stdout"] = sys.stdout
        seen["handlers"] = list(logging.getLogger().handlers)

    stdout_before = sys.stdout
    handlers_before = list(logging.getLogger().handlers)
    await capture(job(look))
    assert isinstance(seen["stdout"], StreamProxy) and seen["stdout"].original is stdout_before
    assert any(isinstance(handler, CaptureHandler) for handler in seen["handlers"])
    assert sys.stdout is stdout_before
    assert logging.getLogger().handlers == handlers_before


async def test_without_an_on_log_plugin_nothing_is_installed() -> None:
    class Quiet(Plugin):
        async def on_job_end(self, job: Any, result: Any) -> None:
            pass

    seen: list[Any] = []
    stdout_before = sys.stdout
    await listen_to(
        hasura_payload(),
        modules=single(running(job(lambda n, e, o: seen.append(sys.stdout), name="j"))),
        plugins=[Quiet()],
    )
    assert seen == [stdout_before]


async def test_overlapping_invocations_share_one_installation() -> None:
    stdout_before = sys.stdout
    gate = asyncio.Event()

    async def waits(event_name: str, event: Any, options: dict[str, Any]) -> None:
        await gate.wait()

    async def quick(event_name: str, event: Any, options: dict[str, Any]) -> None:
        print("quick")

    slow_task = asyncio.create_task(capture(job(waits)))
    await asyncio.sleep(0.05)
    quick_plugin, _ = await capture(job(quick))
    assert isinstance(sys.stdout, StreamProxy), "the slow invocation still needs capture"
    gate.set()
    await slow_task
    assert sys.stdout is stdout_before
    assert [line.message for line in quick_plugin.logs] == ["quick"]


async def test_the_proxy_behaves_like_the_stream() -> None:
    seen: dict[str, Any] = {}

    def look(event_name: str, event: Any, options: dict[str, Any]) -> None:
        seen["encoding"] = sys.stdout.encoding
        seen["isatty"] = sys.stdout.isatty()
        sys.stdout.writelines(["x\n", "y\n"])
        sys.stdout.flush()

    plugin, _ = await capture(job(look))
    assert seen["encoding"] == sys.stdout.encoding
    assert seen["isatty"] == sys.stdout.isatty()
    assert [line.message for line in plugin.logs] == ["x", "y"]


def test_warnings_still_print_when_logging_is_not_configured() -> None:
    """With no handler anywhere Python prints warnings to stderr; capture keeps that, once."""
    script = textwrap.dedent(
        """
        import logging, detector

        class Lines(detector.Plugin):
            def __init__(self):
                self.lines = []
            def on_log(self, record):
                self.lines.append((record.source, record.message))

        def warns(event_name, event, options):
            logging.getLogger("app").warning("disk almost full")
            logging.getLogger("app").info("not printed: below the default level")

        async def handler(event_name, event):
            return await detector.run(event_name, event, [detector.job(warns)])

        plugin = Lines()
        payload = {"event": {"op": "INSERT", "data": {"new": {"id": 1}}}}
        module = detector.EventModule("x", lambda n, e: True, handler)
        detector.listen_to_sync(payload, modules=[module], plugins=[plugin])
        print(plugin.lines)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.count("disk almost full") == 1
    assert completed.stdout.strip() == "[('app', 'disk almost full')]"
