"""Plugins: registry, dispatch order, isolation of failing hooks, configure, flush, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from detector import (
    CapturedLog,
    ConfigurationError,
    EventModule,
    InvocationInfo,
    InvocationStatus,
    JobInfo,
    JobResult,
    ListenOptions,
    ListenResult,
    Plugin,
    job,
    listen_to,
    plugin_hook_errors,
    register_plugin,
    registered_plugins,
    run,
    unregister_plugin,
)
from detector.dispatch import PluginDispatcher
from tests.support.library import RecordingPlugin, clean_plugin_state, hasura_payload


@pytest.fixture(autouse=True)
def isolated_plugins() -> Iterator[None]:
    with clean_plugin_state():
        yield


def ok(event_name: str, event: Any, options: dict[str, Any]) -> str:
    options["logger"].info("job ran")
    return "ok"


def failing(event_name: str, event: Any, options: dict[str, Any]) -> None:
    raise RuntimeError("job failed")


def modules(*jobs: Any) -> list[EventModule]:
    async def handler(event_name: str, event: Any) -> Any:
        return await run(event_name, event, list(jobs or [job(ok)]))

    return [EventModule("orders.shipped", lambda name, event: True, handler)]


class Ordered(Plugin):
    def __init__(self, label: str, trail: list[str]) -> None:
        self.label, self.trail = label, trail

    async def on_invocation_start(self, invocation: InvocationInfo) -> None:
        self.trail.append(f"{self.label}:start")

    def on_job_end(self, job: JobInfo, result: JobResult) -> None:  # a plain method works too
        self.trail.append(f"{self.label}:job_end")

    async def flush(self) -> None:
        self.trail.append(f"{self.label}:flush")


# Registry ------------------------------------------------------------------------------


async def test_registered_plugins_run_in_registration_order_by_default() -> None:
    trail: list[str] = []
    first, second = (
        register_plugin(Ordered("first", trail)),
        register_plugin(Ordered("second", trail)),
    )
    register_plugin(first)  # registering again changes nothing
    assert registered_plugins()[-2:] == [first, second]
    await listen_to(hasura_payload(), modules=modules())
    assert trail == [
        "first:start",
        "second:start",
        "first:job_end",
        "second:job_end",
        "first:flush",
        "second:flush",
    ]


async def test_explicit_plugins_replace_the_registered_ones() -> None:
    trail: list[str] = []
    register_plugin(Ordered("registered", trail))
    await listen_to(hasura_payload(), modules=modules(), plugins=[Ordered("explicit", trail)])
    assert all(entry.startswith("explicit") for entry in trail)
    await listen_to(hasura_payload(), modules=modules(), plugins=[])
    assert len(trail) == 3


def test_only_plugins_may_be_registered() -> None:
    with pytest.raises(ConfigurationError, match="Plugin instance"):
        register_plugin(object())  # type: ignore[arg-type]


def test_unregistering_outside_a_loop_shuts_the_plugin_down() -> None:
    plugin = register_plugin(RecordingPlugin())
    assert unregister_plugin(plugin) is None
    assert plugin.hooks() == ["shutdown"]
    assert plugin not in registered_plugins()
    assert unregister_plugin(plugin) is None  # unknown now: ignored
    assert plugin.hooks() == ["shutdown"]


async def test_unregistering_inside_a_loop_returns_the_shutdown_task() -> None:
    plugin = register_plugin(RecordingPlugin())
    task = unregister_plugin(plugin)
    assert task is not None
    await task
    assert plugin.hooks() == ["shutdown"]


def test_plugins_are_shut_down_at_interpreter_exit(tmp_path: Path) -> None:
    marker = tmp_path / "shutdown.txt"
    script = textwrap.dedent(
        f"""
        import asyncio, detector

        class Registered(detector.Plugin):
            async def shutdown(self):
                await asyncio.sleep(0)
                open({str(marker)!r}, "a").write("registered\\n")

        class Explicit(detector.Plugin):
            def shutdown(self):
                open({str(marker)!r}, "a").write("explicit\\n")

        detector.register_plugin(Registered())
        payload = {{"event": {{"op": "INSERT", "data": {{"new": {{"id": 1}}}}}}}}
        explicit = Explicit()  # explicit plugins are tracked weakly: this one is alive
        detector.listen_to_sync(payload, modules=[], plugins=[explicit])
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert sorted(marker.read_text().split()) == ["explicit", "registered"]


# Dispatch ------------------------------------------------------------------------------


class OnlyJobEnd(Plugin):
    async def on_job_end(self, job: JobInfo, result: JobResult) -> None:
        pass


def test_hooks_a_plugin_does_not_override_are_skipped() -> None:
    dispatcher = PluginDispatcher([OnlyJobEnd()])
    assert dispatcher.wants("on_job_end")
    assert not dispatcher.wants("on_job_start")
    assert not dispatcher.wants("on_log")
    assert not PluginDispatcher([]).wants("on_job_end")


async def test_a_hook_assigned_on_the_instance_is_called() -> None:
    plugin = Plugin()
    seen: list[str] = []
    plugin.flush = lambda: seen.append("flushed")  # type: ignore[method-assign]
    await listen_to(hasura_payload(), modules=[], plugins=[plugin])
    assert seen == ["flushed"]


class Exploding(Plugin):
    name = "exploding"

    async def on_job_start(self, job: JobInfo) -> None:
        raise RuntimeError("plugin bug")

    def on_invocation_end(self, invocation: InvocationInfo, result: ListenResult) -> None:
        raise ValueError("another bug")


async def test_a_raising_hook_is_isolated_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = RecordingPlugin()
    with caplog.at_level(logging.ERROR, logger="detector.plugins"):
        first = await listen_to(
            hasura_payload(), modules=modules(), plugins=[Exploding(), recorder]
        )
        second = await listen_to(
            hasura_payload(), modules=modules(), plugins=[Exploding(), recorder]
        )
    assert first.status is second.status is InvocationStatus.COMPLETED
    assert first.jobs[0].result == "ok"
    # the plugin after the broken one still got every hook
    assert recorder.hooks().count("on_job_start") == 2
    assert recorder.hooks().count("on_invocation_end") == 2
    assert plugin_hook_errors() == {
        ("exploding", "on_job_start"): 2,
        ("exploding", "on_invocation_end"): 2,
    }
    messages = [
        record.getMessage() for record in caplog.records if record.name == "detector.plugins"
    ]
    assert len(messages) == 2
    assert any(
        "exploding: hook on_job_start raised RuntimeError: plugin bug" in m for m in messages
    )
    assert all(record.exc_info for record in caplog.records if record.name == "detector.plugins")


async def test_hook_errors_never_reach_captured_logs() -> None:
    recorder = RecordingPlugin()
    await listen_to(hasura_payload(), modules=modules(), plugins=[Exploding(), recorder])
    assert [log.message for log in recorder.logs] == ["job ran"]


async def test_job_failures_reach_on_error_with_the_job() -> None:
    recorder = RecordingPlugin()
    result = await listen_to(hasura_payload(), modules=modules(job(failing)), plugins=[recorder])
    (error, scope, invocation, event, job_info) = recorder.args("on_error")[0]
    assert scope == "job" and str(error) == "job failed"
    assert invocation.invocation_id == result.invocation_id
    assert job_info.job_execution_id == result.jobs[0].job_execution_id
    assert event is job_info.event
    on_job_end = recorder.args("on_job_end")[0]
    assert on_job_end[1].exception is error


async def test_job_info_carries_the_users_options_only() -> None:
    recorder = RecordingPlugin()
    await listen_to(
        hasura_payload(),
        modules=modules(job(ok, name="mail", timeout=3, retries=1, template="shipped")),
        plugins=[recorder],
    )
    (info,) = recorder.args("on_job_start")[0]
    assert dict(info.options) == {"template": "shipped"}
    assert (info.name, info.function_name, info.timeout, info.retries) == ("mail", "ok", 3.0, 1)


async def test_flush_runs_at_the_end_of_every_invocation() -> None:
    recorder = RecordingPlugin()
    for _ in range(3):
        await listen_to(hasura_payload(), modules=[], plugins=[recorder])
    assert recorder.hooks().count("flush") == 3


# on_configure ----------------------------------------------------------------------------


class Configure(Plugin):
    def __init__(self, change: Any) -> None:
        self.change = change

    async def on_configure(self, options: ListenOptions) -> Any:
        return self.change(options)


async def test_on_configure_may_return_new_options() -> None:
    recorder = RecordingPlugin()
    plugin = Configure(lambda options: dataclasses.replace(options, correlation_id="from-plugin"))
    result = await listen_to(hasura_payload(), modules=[], plugins=[plugin, recorder])
    assert result.correlation_id == "from-plugin"
    assert recorder.args("on_configure")[0][0].correlation_id == "from-plugin"


async def test_on_configure_may_return_a_dict_of_changes_or_edit_in_place() -> None:
    def edit(options: ListenOptions) -> None:
        options.context["added"] = True
        options.source_function = "edited"

    recorder = RecordingPlugin()
    await listen_to(
        hasura_payload(),
        modules=[],
        plugins=[Configure(lambda options: {"only": []}), Configure(edit), recorder],
    )
    (invocation,) = recorder.args("on_invocation_start")[0]
    assert invocation.source_function == "edited"
    assert invocation.context == {"added": True}
    assert invocation.options.only == []


async def test_invalid_options_from_a_plugin_are_dropped_as_a_hook_error() -> None:
    bad = Configure(lambda options: dataclasses.replace(options, correlation_id="bad\nid"))
    bad.name = "bad-config"
    wrong_type = Configure(lambda options: 42)
    wrong_type.name = "wrong-type"
    result = await listen_to(
        hasura_payload(), modules=[], correlation_id="mine", plugins=[bad, wrong_type]
    )
    assert result.correlation_id == "mine"
    assert plugin_hook_errors() == {
        ("bad-config", "on_configure"): 1,
        ("wrong-type", "on_configure"): 1,
    }


# on_log ----------------------------------------------------------------------------------


class AsyncLogs(Plugin):
    def __init__(self) -> None:
        self.lines: list[CapturedLog] = []
        self.ended_with: int | None = None

    async def on_log(self, record: CapturedLog) -> None:
        await asyncio.sleep(0.01)
        self.lines.append(record)

    async def on_invocation_end(self, invocation: InvocationInfo, result: ListenResult) -> None:
        self.ended_with = len(self.lines)


async def test_async_on_log_is_awaited_before_the_invocation_ends() -> None:
    def threaded(event_name: str, event: Any, options: dict[str, Any]) -> None:
        for number in range(5):
            options["logger"].info("line %d", number)

    plugin = AsyncLogs()
    await listen_to(hasura_payload(), modules=modules(job(threaded)), plugins=[plugin])
    assert plugin.ended_with == 5
    assert sorted(line.message for line in plugin.lines) == [f"line {n}" for n in range(5)]


class RaisingLog(Plugin):
    name = "raising-log"

    def on_log(self, record: CapturedLog) -> None:
        print("printing inside on_log is not captured")
        logging.getLogger("plugin").error("neither is logging")
        raise RuntimeError("on_log bug")


async def test_a_raising_on_log_is_isolated_and_does_not_loop() -> None:
    recorder = RecordingPlugin()
    result = await listen_to(hasura_payload(), modules=modules(), plugins=[RaisingLog(), recorder])
    assert result.status is InvocationStatus.COMPLETED
    assert [log.message for log in recorder.logs] == ["job ran"]
    assert plugin_hook_errors() == {("raising-log", "on_log"): 1}
