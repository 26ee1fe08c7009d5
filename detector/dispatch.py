"""The plugin registry and the dispatcher that calls plugin hooks.

Hooks run in registration order. Only hooks a plugin overrides are called (a plugin that
only implements `on_job_end` costs nothing on the other hooks). Whatever a hook returns
that is awaitable is awaited. A hook that raises is isolated: the error is counted per
plugin and hook (`plugin_hook_errors()`), the first one is logged through `logging`
(logger `detector.plugins`), and the invocation carries on.

Registered plugins are shut down when unregistered and, best effort, at interpreter exit
(together with any plugin passed explicitly to `listen_to`).
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .plugins import ListenOptions, Plugin
from .runtime import capture_suspended

if TYPE_CHECKING:
    from .plugins import CapturedLog
    from .runtime import InvocationRuntime

HOOKS = (
    "on_configure",
    "on_invocation_start",
    "on_event_skipped",
    "on_detection_start",
    "on_detection_end",
    "on_handler_start",
    "on_handler_end",
    "on_job_start",
    "on_job_end",
    "on_log",
    "on_error",
    "on_invocation_end",
    "flush",
    "shutdown",
)

logger = logging.getLogger("detector.plugins")

_registry: list[Plugin] = []
_registry_lock = threading.Lock()
# Plugins passed explicitly to listen_to: also shut down at exit (best effort).
_seen: weakref.WeakSet[Plugin] = weakref.WeakSet()

_hook_errors: dict[tuple[str, str], int] = {}
_hook_errors_lock = threading.Lock()

_overrides_cache: dict[type, frozenset[str]] = {}


def _overridden_hooks(plugin: Plugin) -> frozenset[str]:
    """Names of the hooks `plugin` implements (its class's, plus instance attributes).

    An instance attribute set to None opts out of that hook (a plugin configured not to
    record logs sets `self.on_log = None`, so no log capture is installed for it).
    """
    cls = type(plugin)
    names = _overrides_cache.get(cls)
    if names is None:
        names = frozenset(
            name for name in HOOKS if getattr(cls, name, None) is not getattr(Plugin, name)
        )
        _overrides_cache[cls] = names
    instance = getattr(plugin, "__dict__", {})
    instance_names = instance.keys() & set(HOOKS)
    if not instance_names:
        return names
    opted_out = {name for name in instance_names if instance[name] is None}
    return (names | instance_names) - opted_out


def record_hook_error(plugin: Plugin, hook: str, error: BaseException) -> None:
    """Count a hook failure; log the first one per plugin and hook."""
    key = (plugin.name or type(plugin).__name__, hook)
    with _hook_errors_lock:
        count = _hook_errors.get(key, 0) + 1
        _hook_errors[key] = count
    if count == 1:
        token = capture_suspended.set(True)
        try:
            logger.error(
                "plugin %s: hook %s raised %s: %s (the invocation carries on; later errors "
                "of this hook are only counted, see detector.plugin_hook_errors())",
                key[0],
                hook,
                type(error).__name__,
                error,
                exc_info=error,
            )
        finally:
            capture_suspended.reset(token)


def plugin_hook_errors() -> dict[tuple[str, str], int]:
    """How many times each (plugin name, hook) raised in this process."""
    with _hook_errors_lock:
        return dict(_hook_errors)


def reset_plugin_hook_errors() -> None:
    """Forget the counts (and log the next failure of each hook again)."""
    with _hook_errors_lock:
        _hook_errors.clear()


def register_plugin(plugin: Plugin) -> Plugin:
    """Register `plugin` for every `listen_to` call that passes no `plugins=` (returns it).

    Registering the same instance twice is a no-op; order of registration is the order
    hooks run in. Raises ConfigurationError for an object that is not a `Plugin`.
    """
    if not isinstance(plugin, Plugin):
        raise ConfigurationError(
            f"register_plugin expects a detector.Plugin instance, got {type(plugin).__name__}"
        )
    with _registry_lock:
        if not any(existing is plugin for existing in _registry):
            _registry.append(plugin)
    return plugin


def unregister_plugin(plugin: Plugin) -> asyncio.Task[None] | None:
    """Remove `plugin` from the registry and call its `shutdown` hook.

    Without a running event loop in this thread, `shutdown` runs to completion before this
    returns (None). Inside a running loop it is scheduled on that loop and the task is
    returned: await it to wait for the shutdown. Unknown plugins are ignored.
    """
    with _registry_lock:
        found = any(existing is plugin for existing in _registry)
        _registry[:] = [existing for existing in _registry if existing is not plugin]
    if not found:
        return None
    dispatcher = PluginDispatcher([plugin])
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(dispatcher.call("shutdown"))
        return None
    return loop.create_task(dispatcher.call("shutdown"))


def registered_plugins() -> list[Plugin]:
    """The registered plugins, in registration order (a copy)."""
    with _registry_lock:
        return list(_registry)


def remember_plugins(plugins: Iterable[Plugin]) -> None:
    """Note explicitly passed plugins so they are shut down at exit too."""
    for plugin in plugins:
        try:
            _seen.add(plugin)
        except TypeError:  # a plugin class with __slots__ and no __weakref__
            pass


@atexit.register
def _shutdown_at_exit() -> None:
    plugins = registered_plugins()
    plugins += [plugin for plugin in list(_seen) if all(plugin is not p for p in plugins)]
    if not plugins:
        return
    dispatcher = PluginDispatcher(plugins)

    async def shutdown_all() -> None:
        # Bounded: a plugin that cannot reach its store must not hang the exit.
        try:
            await asyncio.wait_for(dispatcher.call("shutdown"), timeout=10.0)
        except TimeoutError:
            logger.warning("plugin shutdown at exit took over 10 s and was abandoned")

    try:
        asyncio.run(shutdown_all())
    except Exception:  # best effort: the interpreter is going away
        logger.exception("plugin shutdown at exit failed")


class PluginDispatcher:
    """Calls the hooks of a fixed list of plugins, in order, isolating their errors."""

    __slots__ = ("_by_hook", "_log_entries", "plugins")

    def __init__(self, plugins: Iterable[Plugin]) -> None:
        self.plugins = tuple(plugins)
        by_hook: dict[str, list[tuple[Plugin, Callable[..., Any]]]] = {}
        for plugin in self.plugins:
            for hook in _overridden_hooks(plugin):
                by_hook.setdefault(hook, []).append((plugin, getattr(plugin, hook)))
        self._by_hook = {hook: tuple(entries) for hook, entries in by_hook.items()}
        # on_log is called from any thread: note which implementations are coroutines.
        self._log_entries = tuple(
            (plugin, method, inspect.iscoroutinefunction(method))
            for plugin, method in self._by_hook.get("on_log", ())
        )

    def wants(self, hook: str) -> bool:
        """True when at least one plugin implements `hook` (check before building arguments)."""
        return hook in self._by_hook

    async def call(self, hook: str, *args: Any) -> None:
        """Run `hook` on every plugin implementing it, in order; errors are isolated."""
        entries = self._by_hook.get(hook)
        if not entries:
            return
        token = capture_suspended.set(True)
        try:
            for plugin, method in entries:
                try:
                    outcome = method(*args)
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception as error:
                    record_hook_error(plugin, hook, error)
        finally:
            capture_suspended.reset(token)

    async def configure(
        self, options: ListenOptions, validate: Callable[[ListenOptions], ListenOptions]
    ) -> ListenOptions:
        """Run `on_configure` hooks in order; each may return new options (or a dict of changes).

        Each plugin gets a copy; what it returns (or the copy it changed in place) is
        checked with `validate`, and a plugin whose options are invalid is treated as a
        failed hook: its changes are dropped.
        """
        entries = self._by_hook.get("on_configure")
        if not entries:
            return options
        token = capture_suspended.set(True)
        try:
            for plugin, method in entries:
                candidate = dataclasses.replace(options)
                try:
                    outcome = method(candidate)
                    if inspect.isawaitable(outcome):
                        outcome = await outcome
                    if outcome is None:
                        outcome = candidate
                    elif isinstance(outcome, Mapping):
                        outcome = dataclasses.replace(options, **outcome)
                    elif not isinstance(outcome, ListenOptions):
                        raise TypeError(
                            "on_configure must return ListenOptions, a dict of changes or "
                            f"None, got {type(outcome).__name__}"
                        )
                    options = validate(outcome)
                except Exception as error:
                    record_hook_error(plugin, "on_configure", error)
        finally:
            capture_suspended.reset(token)
        return options

    def deliver_log(self, record: CapturedLog, invocation: InvocationRuntime) -> None:
        """Pass a captured line to every `on_log` (callable from any thread).

        Plain `on_log` methods run right here, in the logging thread; coroutine ones are
        scheduled on the invocation's loop and awaited before the invocation ends.
        """
        for plugin, method, is_coroutine in self._log_entries:
            if is_coroutine:
                self._schedule(plugin, method, record, invocation)
                continue
            token = capture_suspended.set(True)
            try:
                outcome = method(record)
                if inspect.isawaitable(outcome):
                    self._schedule(plugin, lambda _record, o=outcome: o, record, invocation)
            except Exception as error:
                record_hook_error(plugin, "on_log", error)
            finally:
                capture_suspended.reset(token)

    @staticmethod
    def _schedule(
        plugin: Plugin,
        method: Callable[..., Any],
        record: CapturedLog,
        invocation: InvocationRuntime,
    ) -> None:
        async def guarded() -> None:
            capture_suspended.set(True)
            try:
                await method(record)
            except Exception as error:
                record_hook_error(plugin, "on_log", error)

        def start() -> None:
            task = invocation.loop.create_task(guarded())
            invocation.pending_hooks.add(task)
            task.add_done_callback(invocation.pending_hooks.discard)

        if threading.get_ident() == invocation.loop_thread:
            start()
            return
        try:
            invocation.loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop has closed: the invocation is long over
            pass
