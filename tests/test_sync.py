"""`run_coroutine_sync`: the one bridge from sync code to a coroutine, with or without a loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from detector._sync import run_coroutine_sync

_marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


async def _where_and_marker() -> tuple[str, str]:
    await asyncio.sleep(0)
    return threading.current_thread().name, _marker.get()


async def _fail() -> None:
    await asyncio.sleep(0)
    raise LookupError("the coroutine's own error")


def test_without_a_loop_it_runs_in_this_thread() -> None:
    name, _ = run_coroutine_sync(_where_and_marker, thread_name="helper")
    assert name == threading.current_thread().name


async def test_inside_a_running_loop_it_runs_on_the_named_helper_thread() -> None:
    name, _ = run_coroutine_sync(_where_and_marker, thread_name="bridge-under-test")
    assert name == "bridge-under-test"


async def test_keep_context_carries_the_callers_context_variables() -> None:
    token = _marker.set("caller")
    try:
        kept = run_coroutine_sync(_where_and_marker, thread_name="helper", keep_context=True)
        fresh = run_coroutine_sync(_where_and_marker, thread_name="helper")
    finally:
        _marker.reset(token)
    assert kept[1] == "caller"
    assert fresh[1] == "unset"


@pytest.mark.parametrize("in_loop", [False, True])
def test_the_coroutines_error_is_raised_to_the_caller(in_loop: bool) -> None:
    def call() -> None:
        run_coroutine_sync(_fail, thread_name="helper")

    async def from_a_loop() -> None:
        call()

    with pytest.raises(LookupError, match="the coroutine's own error"):
        asyncio.run(from_a_loop()) if in_loop else call()
