"""Event modules: a detector that recognises a business event and a handler that runs jobs.

Three ways to provide them:

- a directory (`events_dir`): every `*.py` file not starting with `_` is one module, the
  event name being the file name without `.py` (`orders.shipped.py` → `orders.shipped`).
  Each file must define `detector(event_name, event)` and `handler(event_name, event)`.
  Files are loaded by path under a private package (one per directory), so dotted names
  never clash with real packages and modules can share code with relative imports
  (`from ._helpers import money`); files starting with `_` are never event modules.
  Loaded modules are cached by path, modification time and size; `reload=True` forces a
  fresh import of the directory's modules (helpers included).
- explicit `EventModule(name, detector, handler)` objects;
- an `EventRegistry` filled with decorators.

A module may declare what it listens to: `tables` (`"orders"` for `public.orders`, or
`"schema.table"`) and, optionally, `operations` (`"INSERT"`, `"UPDATE"`, `"DELETE"`,
`"MANUAL"`), as module-level names in a file or as `EventModule` / decorator arguments.
An event outside them is `skipped` before the detector runs; a module that declares
nothing sees every event. A module that fails to load is reported for its own event only
(`detection_failed`).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import sys
import threading
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from .errors import ConfigurationError, EventModuleError
from .payload import HasuraEvent
from .status import Operation

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_TABLE_SCHEMA = "public"


def _names(value: Any, what: str) -> tuple[str, ...] | None:
    """`value` (None, one string or an iterable of strings) as a tuple of strings."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    try:
        items = list(items)
    except TypeError:
        raise ConfigurationError(
            f"`{what}` must be a string or a list of strings, got {type(value).__name__}"
        ) from None
    if not items or not all(isinstance(item, str) and item.strip() for item in items):
        raise ConfigurationError(f"`{what}` must list at least one non-empty string, got {value!r}")
    return tuple(item.strip() for item in items)


def listened_tables(value: Any) -> tuple[str, ...] | None:
    """Declared tables as `schema.table` (a bare name is in `public`, as in Hasura's
    metadata); None when nothing is declared. Raises ConfigurationError."""
    names = _names(value, "tables")
    if names is None:
        return None
    qualified = []
    for name in names:
        parts = name.split(".")
        if len(parts) > 2 or not all(part.strip() for part in parts):
            raise ConfigurationError(
                f"`tables`: {name!r} is not a table name: use `table` or `schema.table`"
            )
        qualified.append(name if len(parts) == 2 else f"{DEFAULT_TABLE_SCHEMA}.{name}")
    return tuple(dict.fromkeys(qualified))


def listened_operations(value: Any) -> tuple[Operation, ...] | None:
    """Declared operations (case-insensitive); None when nothing is declared.
    Raises ConfigurationError naming the valid ones."""
    names = _names(value, "operations")
    if names is None:
        return None
    valid = [op.value for op in Operation]
    found = []
    for name in names:
        if name.upper() not in valid:
            raise ConfigurationError(
                f"`operations`: {name!r} is not a Hasura operation (use {', '.join(valid)})"
            )
        found.append(Operation(name.upper()))
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class EventModule:
    """One business event: `detector(event_name, event) -> bool` and `handler(event_name, event)`.

    Both may be sync or async. The handler returns the list of `JobResult`s from
    `await run(event_name, event, [job(...), ...])` (a sync handler may return the `run(...)`
    coroutine itself). `path` is the file it came from, if any.

    `tables` (`"orders"` means `public.orders`; or `"schema.table"`) and `operations`
    (`"INSERT"`, `"UPDATE"`, `"DELETE"`, `"MANUAL"`) say which events the module listens
    to; they are stored normalised (`("public.orders",)`, `(Operation.UPDATE,)`), None
    when not declared (every event). Raises ConfigurationError for invalid values.
    """

    name: str
    detector: Callable[..., Any]
    handler: Callable[..., Any]
    path: str | None = None
    # Sequence: a list or a bare string is accepted; stored as a normalised tuple.
    tables: Sequence[str] | None = None
    operations: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigurationError(
                f"EventModule name must be a non-empty string, got {self.name!r}"
            )
        for role in ("detector", "handler"):
            if not callable(getattr(self, role)):
                raise ConfigurationError(
                    f"EventModule `{self.name}`: {role} must be callable, "
                    f"got {type(getattr(self, role)).__name__}"
                )
        try:
            # Frozen: normalised values are set through object.__setattr__.
            object.__setattr__(self, "tables", listened_tables(self.tables))
            object.__setattr__(self, "operations", listened_operations(self.operations))
        except ConfigurationError as error:
            raise ConfigurationError(f"EventModule `{self.name}`: {error}") from None

    def listens_to(self, event: HasuraEvent) -> bool:
        """Whether `event` is one this module declared (always True when it declared nothing)."""
        if self.operations is not None and event.op not in self.operations:
            return False
        if self.tables is None:
            return True
        return event.table is not None and str(event.table) in self.tables

    def declaration(self) -> str | None:
        """What the module listens to, for people (`public.orders (UPDATE)`); None when all."""
        if self.tables is None and self.operations is None:
            return None
        tables = ", ".join(self.tables) if self.tables is not None else "any table"
        if self.operations is None:
            return tables
        return f"{tables} ({', '.join(self.operations)})"


class EventRegistry:
    """Event modules declared with decorators; pass it as `listen_to(payload, modules=events)`.

    ::

        events = EventRegistry()

        @events.detector("orders.shipped", tables="orders", operations="UPDATE")
        def shipped(event_name, event):
            return column_has_changed("status", event) and event.new["status"] == "shipped"

        @events.handler("orders.shipped")
        async def on_shipped(event_name, event):
            return await run(event_name, event, [job(send_email)])
    """

    def __init__(self) -> None:
        self._detectors: dict[str, Callable[..., Any]] = {}
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._listens: dict[str, tuple[Any, Any]] = {}

    def detector(
        self, name: str, *, tables: Any = None, operations: Any = None
    ) -> Callable[[F], F]:
        """Decorator registering the detector of event `name`; `tables` and `operations`
        declare what it listens to (see `EventModule`)."""
        if tables is not None or operations is not None:
            listened_tables(tables)  # invalid values fail here, at the decorator
            listened_operations(operations)
            self._listens[name] = (tables, operations)
        return self._decorator(name, self._detectors, "detector")

    def handler(self, name: str) -> Callable[[F], F]:
        """Decorator registering the handler of event `name`."""
        return self._decorator(name, self._handlers, "handler")

    def add(self, module: EventModule) -> EventModule:
        """Register a whole `EventModule`."""
        self._store(module.name, self._detectors, "detector", module.detector)
        self._store(module.name, self._handlers, "handler", module.handler)
        if module.tables is not None or module.operations is not None:
            self._listens[module.name] = (module.tables, module.operations)
        return module

    @property
    def names(self) -> list[str]:
        """Event names, in the order they were first declared."""
        return list(dict.fromkeys([*self._detectors, *self._handlers]))

    def modules(self) -> list[EventModule]:
        """The declared events; raises ConfigurationError if one lacks its detector or handler."""
        out = []
        for name in self.names:
            detector, handler = self._detectors.get(name), self._handlers.get(name)
            if detector is None or handler is None:
                missing = "detector" if detector is None else "handler"
                raise ConfigurationError(
                    f"event `{name}` has no {missing}: declare it with @events.{missing}({name!r})"
                )
            tables, operations = self._listens.get(name, (None, None))
            out.append(EventModule(name, detector, handler, None, tables, operations))
        return out

    def __iter__(self) -> Iterator[EventModule]:
        return iter(self.modules())

    def __len__(self) -> int:
        return len(self.names)

    def _decorator(
        self, name: str, table: dict[str, Callable[..., Any]], role: str
    ) -> Callable[[F], F]:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"@events.{role}(name): name must be a non-empty string")

        def register(fn: F) -> F:
            self._store(name, table, role, fn)
            return fn

        return register

    @staticmethod
    def _store(
        name: str, table: dict[str, Callable[..., Any]], role: str, fn: Callable[..., Any]
    ) -> None:
        if not callable(fn):
            raise ConfigurationError(f"the {role} of `{name}` must be callable")
        if name in table:
            raise ConfigurationError(f"event `{name}` already has a {role}")
        table[name] = fn


def as_module_list(modules: Iterable[EventModule] | EventRegistry) -> list[EventModule]:
    """Normalise the `modules` option; raises ConfigurationError for anything else."""
    if isinstance(modules, EventRegistry):
        return modules.modules()
    if isinstance(modules, EventModule):
        return [modules]
    try:
        items = list(modules)
    except TypeError:
        raise ConfigurationError(
            f"`modules` must be a list of EventModule or an EventRegistry, got {type(modules).__name__}"
        ) from None
    for item in items:
        if not isinstance(item, EventModule):
            raise ConfigurationError(
                f"`modules` must contain EventModule objects, got {type(item).__name__}"
            )
    names = [item.name for item in items]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigurationError(f"`modules` lists events more than once: {', '.join(duplicates)}")
    return items


class ModuleSource(Protocol):
    """Something that yields an `EventModule` for one event name (maybe by importing it)."""

    name: str
    path: str | None

    def load(self) -> EventModule: ...


@dataclass(slots=True)
class LoadedModule:
    """A module given explicitly: loading is free and cannot fail."""

    module: EventModule

    @property
    def name(self) -> str:
        return self.module.name

    @property
    def path(self) -> str | None:
        return self.module.path

    def load(self) -> EventModule:
        return self.module


@dataclass(slots=True)
class MissingModule:
    """An event named in `only` that has no module: reported as its detection error."""

    name: str
    where: str
    path: str | None = None

    def load(self) -> EventModule:
        raise EventModuleError(self.name, None, f"no event module with this name in {self.where}")


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles from source every time: no stale `.pyc` when a file changes within a second."""

    def get_code(self, fullname: str) -> types.CodeType:
        source = self.get_data(self.path)
        return compile(source, self.path, "exec", dont_inherit=True)


_cache_lock = threading.RLock()
# path -> (mtime_ns, size, module or the import error)
_cache: dict[str, tuple[int, int, EventModule | BaseException]] = {}


def _digest(text: str) -> str:
    # hashlib (OpenSSL) loads with the first module loaded from a directory, not with
    # the library.
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()


def _package_name(directory: Path) -> str:
    digest = _digest(str(directory))[:12]
    return f"_detector_events_{digest}"


def _package_for(directory: Path) -> str:
    """Name of the private package standing for `directory` (created on first use)."""
    name = _package_name(directory)
    if name not in sys.modules:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(directory)]
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(directory)]
        sys.modules[name] = package
    return name


def _module_name(package: str, event_name: str) -> str:
    # Dots would mean sub-packages: replace them, and add a digest so `a.b` and `a_b` differ.
    slug = re.sub(r"\W", "_", event_name)
    digest = _digest(event_name)[:8]
    return f"{package}.{slug}_{digest}"


def _import(name: str, path: Path) -> EventModule:
    package = _package_for(path.parent)
    fullname = _module_name(package, name)
    loader = _SourceOnlyLoader(fullname, str(path))
    spec = importlib.util.spec_from_file_location(fullname, path, loader=loader)
    assert spec is not None  # a file location with an explicit loader always gives a spec
    module = importlib.util.module_from_spec(spec)
    sys.modules[fullname] = module
    try:
        loader.exec_module(module)
    except (Exception, SystemExit) as error:  # a script-like module calling sys.exit()
        sys.modules.pop(fullname, None)
        raise EventModuleError(
            name, str(path), f"failed to import: {type(error).__name__}: {error}"
        ) from error
    missing = [
        role for role in ("detector", "handler") if not callable(getattr(module, role, None))
    ]
    if missing:
        raise EventModuleError(
            name,
            str(path),
            "must define "
            + " and ".join(f"`{role}(event_name, event)`" for role in missing)
            + " as functions",
        )
    try:
        tables = listened_tables(getattr(module, "tables", None))
        operations = listened_operations(getattr(module, "operations", None))
    except ConfigurationError as error:
        raise EventModuleError(name, str(path), str(error)) from None
    return EventModule(name, module.detector, module.handler, str(path), tables, operations)


@dataclass(slots=True)
class FileModule:
    """An event module file in an events directory, imported on first `load()`."""

    name: str
    path: str
    mtime_ns: int
    size: int

    def load(self) -> EventModule:
        """Import (or reuse the cached import of) the file; raises EventModuleError."""
        with _cache_lock:
            cached = _cache.get(self.path)
            if cached is None or cached[0] != self.mtime_ns or cached[1] != self.size:
                try:
                    outcome: EventModule | BaseException = _import(self.name, Path(self.path))
                except EventModuleError as error:
                    outcome = error
                cached = (self.mtime_ns, self.size, outcome)
                _cache[self.path] = cached
        outcome = cached[2]
        if isinstance(outcome, EventModule):
            return outcome
        # A fresh exception each time: re-raising one object would pile up tracebacks.
        error = EventModuleError(self.name, self.path, getattr(outcome, "problem", str(outcome)))
        raise error from outcome.__cause__


def discover(events_dir: Path) -> list[FileModule]:
    """The event module files of `events_dir`, sorted by event name.

    Raises ConfigurationError when the directory does not exist or cannot be read.
    """
    try:
        entries = list(os.scandir(events_dir))
    except FileNotFoundError:
        raise ConfigurationError(
            f"events directory {str(events_dir)!r} does not exist: pass `events_dir=` "
            "(relative paths are resolved against the current working directory) or `modules=`"
        ) from None
    except OSError as error:
        raise ConfigurationError(
            f"events directory {str(events_dir)!r} cannot be read: {error}"
        ) from None
    found = []
    for entry in entries:
        if not entry.name.endswith(".py") or entry.name.startswith(("_", ".")):
            continue
        try:
            if not entry.is_file():
                continue
            stat = entry.stat()
        except OSError:  # vanished between listing and stat
            continue
        found.append(
            FileModule(entry.name[: -len(".py")], entry.path, stat.st_mtime_ns, stat.st_size)
        )
    return sorted(found, key=lambda module: module.name)


def forget_directory(events_dir: Path) -> None:
    """Drop cached imports of `events_dir` (its event modules and helper modules)."""
    prefix = str(events_dir) + os.sep
    with _cache_lock:
        for path in [path for path in _cache if path.startswith(prefix)]:
            del _cache[path]
        # The package goes too: it holds its submodules as attributes, and
        # `from . import _helpers` would find the old one there.
        package = _package_name(events_dir)
        stale = [name for name in sys.modules if name == package or name.startswith(package + ".")]
        for name in stale:
            del sys.modules[name]
    importlib.invalidate_caches()
