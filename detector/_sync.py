"""Run a coroutine to completion from sync code, whether or not this thread runs a loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_coroutine_sync(
    factory: Callable[[], Coroutine[Any, Any, T]],
    *,
    thread_name: str,
    keep_context: bool = False,
) -> T:
    """Run the coroutine `factory()` makes on a fresh event loop and return its result.

    Without a running loop in this thread it runs here (like `asyncio.run`). Inside a
    running loop (sync code called from async code) it runs on a helper thread named
    `thread_name` and blocks this thread until it ends; its exception is re-raised here.
    `keep_context=True` runs it in a copy of the caller's context variables (a sync call
    made inside an invocation stays part of it); otherwise the helper thread starts with
    an empty context, so the work is never attributed to the caller's invocation.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    context = contextvars.copy_context() if keep_context else contextvars.Context()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = context.run(lambda: asyncio.run(factory()))
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=thread_name)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
