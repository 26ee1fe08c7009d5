"""What an events directory holds: functions, event modules, their jobs and problems.

Used by `event-detector list` / `verify` (and by `test` and `replay` to say which jobs a
detected event would run without running them). Each module is imported the way
`listen_to` imports it (so an import error shows up exactly as it would at run time);
its jobs are read from the source: every `job(...)` call, with the name the library
would record (`name=`, else the function's `__name__`, else `anonymous`). The handler is
never called: handlers run jobs, and jobs have side effects.

Layout: the directory itself may hold event modules, and each subdirectory that holds
event modules is one *function* (the webhook's `/hooks/<function>` layout).
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector import EventModule, EventModuleError
from detector.jobs import job_name_for
from detector.modules import discover


@dataclass(frozen=True, slots=True)
class JobDeclaration:
    """One `job(...)` call found in a module's source."""

    name: str
    line: int
    function: str | None = None
    timeout: float | None = None
    retries: int | None = None

    @property
    def anonymous(self) -> bool:
        """True when the library would record this job as `anonymous`."""
        return self.name == "anonymous"


@dataclass(slots=True)
class EventEntry:
    """One event module: its jobs, or why it cannot be used.

    `listens_to` is what the module declares it listens to (`public.orders (UPDATE)`),
    None when it sees every event.
    """

    name: str
    path: Path
    jobs: list[JobDeclaration] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    listens_to: str | None = None


@dataclass(slots=True)
class FunctionEntry:
    """A directory of event modules (`name` None for the top directory itself)."""

    name: str | None
    directory: Path
    events: list[EventEntry] = field(default_factory=list)


@dataclass(slots=True)
class Inventory:
    """Everything found under an events directory."""

    root: Path
    functions: list[FunctionEntry]

    @property
    def events(self) -> list[EventEntry]:
        return [event for function in self.functions for event in function.events]

    @property
    def errors(self) -> list[EventEntry]:
        """Modules that fail to import or lack `detector`/`handler`."""
        return [event for event in self.events if event.error is not None]

    @property
    def warnings(self) -> list[tuple[EventEntry, str]]:
        return [(event, warning) for event in self.events for warning in event.warnings]


def inspect_directory(root: Path) -> Inventory:
    """Inspect `root` and its function subdirectories; raises FileNotFoundError if absent."""
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"events directory {str(root)!r} does not exist")
    functions = []
    top = inspect_events(root)
    if top:
        functions.append(FunctionEntry(None, root, top))
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith(("_", ".")):
            events = inspect_events(child)
            if events:
                functions.append(FunctionEntry(child.name, child, events))
    return Inventory(root, functions)


def inspect_events(directory: Path) -> list[EventEntry]:
    """The event modules of one directory (not its subdirectories), imported and read."""
    entries = []
    for source in discover(directory):
        entry = EventEntry(source.name, Path(source.path))
        namespace: Mapping[str, Any] = {}
        try:
            module = source.load()
            namespace = getattr(module.handler, "__globals__", {})
            entry.listens_to = module.declaration()
        except EventModuleError as error:
            entry.error = error.problem
        try:
            entry.jobs = declared_jobs(entry.path, namespace)
        except SyntaxError as error:
            entry.jobs = []
            if entry.error is None:
                entry.error = f"syntax error line {error.lineno}: {error.msg}"
        _warn(entry)
        entries.append(entry)
    return entries


def _warn(entry: EventEntry) -> None:
    for declared in entry.jobs:
        if declared.anonymous:
            entry.warnings.append(
                f"job at line {declared.line} has no name: it is recorded as `anonymous`; "
                "pass name=... or use a named function"
            )
    if entry.error is None and not entry.jobs:
        entry.warnings.append("no job(...) calls found: the handler runs no jobs")


def declared_jobs(path: Path, namespace: Mapping[str, Any] | None = None) -> list[JobDeclaration]:
    """Every `job(...)` call in the file at `path`, in source order.

    `namespace` (the imported module's globals) resolves function names to the objects'
    `__name__`, the way the library names jobs. Raises SyntaxError for invalid source.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    namespace = namespace or {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_job_call(node):
            found.append(_declaration(node, namespace))
    return sorted(found, key=lambda declared: declared.line)


def _is_job_call(node: ast.Call) -> bool:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id == "job"
    return isinstance(func, ast.Attribute) and func.attr == "job"


def _constant(node: ast.expr | None) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    return None


def _declaration(node: ast.Call, namespace: Mapping[str, Any]) -> JobDeclaration:
    keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg}
    target = node.args[0] if node.args else keywords.get("fn")
    function = _function_name(target, namespace)
    explicit = keywords.get("name")
    if explicit is not None:
        value = _constant(explicit)
        name = value if isinstance(value, str) and value else f"<{ast.unparse(explicit)}>"
    else:
        name = _resolved_name(target, namespace)
    timeout = _constant(keywords.get("timeout"))
    retries = _constant(keywords.get("retries"))
    return JobDeclaration(
        name=name,
        line=node.lineno,
        function=function,
        timeout=float(timeout) if isinstance(timeout, int | float) else None,
        retries=int(retries) if isinstance(retries, int) else None,
    )


def _unwrap_partial(target: ast.expr | None) -> ast.expr | None:
    # functools.partial(fn, ...) / partial(fn, ...) name the job after fn.
    while isinstance(target, ast.Call) and target.args:
        func = target.func
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if called != "partial":
            break
        target = target.args[0]
    return target


def _function_name(target: ast.expr | None, namespace: Mapping[str, Any]) -> str | None:
    target = _unwrap_partial(target)
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):
        return ast.unparse(target)
    if isinstance(target, ast.Lambda):
        return "<lambda>"
    return None


def _resolved_name(target: ast.expr | None, namespace: Mapping[str, Any]) -> str:
    """The name the library would give the job: the function's `__name__`, or anonymous."""
    target = _unwrap_partial(target)
    if isinstance(target, ast.Lambda) or target is None:
        return "anonymous"
    if isinstance(target, ast.Name):
        value = namespace.get(target.id)
        if value is not None:
            return job_name_for(value)
        return target.id
    if isinstance(target, ast.Attribute):
        value = _lookup(target, namespace)
        if value is not None:
            return job_name_for(value)
        return target.attr
    return "anonymous"


def _lookup(target: ast.Attribute, namespace: Mapping[str, Any]) -> Any:
    parts: list[str] = []
    node: ast.expr = target
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in namespace:
        return None
    value = namespace[node.id]
    for part in reversed(parts):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def detectors_only(directory: Path) -> list[EventModule]:
    """The directory's modules with a handler that runs nothing (no jobs, no side effects).

    Declared tables and operations are kept (a module that does not listen to the event
    is skipped, as `listen_to` skips it). A module that fails to import keeps failing:
    its detector raises the import error, so it is reported `detection failed` as
    `listen_to` would report it.
    """
    modules = []
    for source in discover(directory):
        try:
            module = source.load()
        except EventModuleError as error:
            modules.append(EventModule(source.name, _raiser(error), _no_jobs, source.path))
            continue
        modules.append(dataclasses.replace(module, handler=_no_jobs))
    return modules


def _raiser(error: EventModuleError) -> Any:
    def detector(event_name: str, event: Any) -> bool:
        raise EventModuleError(error.name, error.path, error.problem)

    return detector


async def _no_jobs(event_name: str, event: Any) -> list[Any]:
    return []
