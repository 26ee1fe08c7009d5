"""Event modules: directory loading, caching and reloading, explicit modules and the registry."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from detector import (
    ConfigurationError,
    EventModule,
    EventRegistry,
    EventStatus,
    InvocationStatus,
    JobStatus,
    Operation,
    job,
    listen_to,
    run,
)
from tests.support.library import RecordingPlugin, hasura_payload, write_module

ALWAYS = """
from detector import job, run

def detector(event_name, event):
    return True

async def handler(event_name, event):
    return await run(event_name, event, [job(lambda name, event, options: name, name="echo")])
"""


def module_source(body: str) -> str:
    return textwrap.dedent(body).lstrip()


@pytest.fixture
def events_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "events"
    directory.mkdir()
    return directory


# Discovery -----------------------------------------------------------------------------


async def test_every_py_file_is_an_event_named_after_it_with_dots_kept(events_dir: Path) -> None:
    write_module(events_dir, "orders.shipped", ALWAYS)
    write_module(events_dir, "users.signed_up", ALWAYS)
    write_module(events_dir, "_helpers", "raise RuntimeError('helpers are not events')")
    (events_dir / ".hidden.py").write_text("raise RuntimeError('hidden')")
    (events_dir / "notes.txt").write_text("not python")
    (events_dir / "sub.py").mkdir()  # a directory, even if it looks like a module
    result = await listen_to(hasura_payload(), events_dir=events_dir, plugins=[])
    assert [event.name for event in result.events] == ["orders.shipped", "users.signed_up"]
    assert [event.jobs[0].result for event in result.events] == [
        "orders.shipped",
        "users.signed_up",
    ]
    assert result.status is InvocationStatus.COMPLETED


async def test_modules_share_code_through_relative_imports(events_dir: Path) -> None:
    write_module(
        events_dir,
        "_helpers",
        "def is_shipped(event):\n    return event.new['status'] == 'shipped'\n",
    )
    write_module(
        events_dir,
        "orders.shipped",
        module_source(
            """
            from ._helpers import is_shipped

            def detector(event_name, event):
                return is_shipped(event)

            def handler(event_name, event):
                return None
            """
        ),
    )
    result = await listen_to(hasura_payload(), events_dir=events_dir, plugins=[])
    assert result.events[0].detected is True
    assert result.events[0].status is EventStatus.COMPLETED


async def test_event_names_never_clash_with_real_modules(events_dir: Path) -> None:
    write_module(events_dir, "json", ALWAYS)
    write_module(events_dir, "logging.handlers", ALWAYS)
    json_module, logging_module = sys.modules["json"], sys.modules.get("logging.handlers")
    result = await listen_to(hasura_payload(), events_dir=events_dir, plugins=[])
    assert [event.detected for event in result.events] == [True, True]
    assert sys.modules["json"] is json_module and json.dumps({}) == "{}"
    assert sys.modules.get("logging.handlers") is logging_module


async def test_relative_events_dir_is_resolved_against_the_working_directory(
    events_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(events_dir, "orders.shipped", ALWAYS)
    monkeypatch.chdir(events_dir.parent)
    plugin = RecordingPlugin()
    explicit = await listen_to(hasura_payload(), events_dir="events", plugins=[plugin])
    default = await listen_to(hasura_payload(), plugins=[])  # ./events by default
    assert [event.name for event in explicit.events] == ["orders.shipped"]
    assert [event.name for event in default.events] == ["orders.shipped"]
    (options,) = plugin.args("on_configure")[0]
    assert options.events_dir == events_dir


async def test_a_missing_events_dir_is_recorded_then_raised(tmp_path: Path) -> None:
    plugin = RecordingPlugin()
    with pytest.raises(ConfigurationError, match="does not exist"):
        await listen_to(hasura_payload(), events_dir=tmp_path / "nowhere", plugins=[plugin])
    assert plugin.hooks() == [
        "on_configure",
        "on_invocation_start",
        "on_error",
        "on_invocation_end",
        "flush",
    ]
    _, result = plugin.args("on_invocation_end")[0]
    assert result.status is InvocationStatus.FAILED
    assert "does not exist" in result.error
    assert plugin.args("on_error")[0][1] == "invocation"


# Broken modules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("raise ImportError('no module named stripe')", "ImportError: no module named stripe"),
        ("def detector(:\n    pass", "SyntaxError"),
        (
            "def handler(event_name, event):\n    return None\n",
            "must define `detector(event_name, event)`",
        ),
        (
            "detector = 'yes'\ndef handler(e, v):\n    return None\n",
            "`detector(event_name, event)`",
        ),
        ("def detector(e, v):\n    return True\n", "`handler(event_name, event)`"),
        ("import sys\nsys.exit(3)", "failed to import"),
    ],
)
async def test_a_broken_module_fails_its_own_event_only(
    events_dir: Path, source: str, problem: str
) -> None:
    write_module(events_dir, "a.broken", source)
    write_module(events_dir, "b.fine", ALWAYS)
    plugin = RecordingPlugin()
    result = await listen_to(hasura_payload(), events_dir=events_dir, plugins=[plugin])
    broken, fine = result.events
    assert (broken.detected, broken.status) == (False, EventStatus.DETECTION_FAILED)
    assert problem in (broken.error or "")
    assert str(events_dir / "a.broken.py") in (broken.error or "")
    assert fine.detected and fine.jobs[0].status is JobStatus.COMPLETED
    assert result.status is InvocationStatus.FAILED
    (error, scope, _, event_info, _) = plugin.args("on_error")[0]
    assert scope == "module" and event_info.name == "a.broken"
    detection_ends = {args[0].name: args for args in plugin.args("on_detection_end")}
    assert detection_ends["a.broken"][1] is False and detection_ends["a.broken"][3] is error


# Declared tables and operations ----------------------------------------------------------

LISTENS = """
from detector import job, run

tables = {tables!r}
operations = {operations!r}

def detector(event_name, event):
    with open(__file__.rsplit("/", 1)[0] + "/detected.txt", "a") as calls:
        calls.write(event_name + "\\n")
    return True

async def handler(event_name, event):
    return await run(event_name, event, [job(lambda name, event, options: name, name="echo")])
"""


async def test_modules_that_do_not_listen_to_the_table_or_operation_are_skipped(
    events_dir: Path,
) -> None:
    declared = {
        "orders.updated": ("public.orders", "UPDATE"),
        "orders.any": ("orders", None),
        "orders.inserted": ("orders", ["insert"]),
        "users.changed": (["users", "auth.users"], None),
        "sales.orders": ("sales.orders", None),
    }
    for name, (tables, operations) in declared.items():
        write_module(events_dir, name, LISTENS.format(tables=tables, operations=operations))
    write_module(events_dir, "undeclared", ALWAYS)
    plugin = RecordingPlugin()
    result = await listen_to(hasura_payload(), events_dir=events_dir, plugins=[plugin])
    statuses = {event.name: event.status for event in result.events}
    assert statuses == {
        "orders.any": EventStatus.COMPLETED,
        "orders.inserted": EventStatus.SKIPPED,
        "orders.updated": EventStatus.COMPLETED,
        "sales.orders": EventStatus.SKIPPED,
        "undeclared": EventStatus.COMPLETED,  # declares nothing: every event, as before
        "users.changed": EventStatus.SKIPPED,
    }
    assert result.status is InvocationStatus.COMPLETED
    skipped = {name for name, status in statuses.items() if status is EventStatus.SKIPPED}
    assert all(
        not e.detected and not e.jobs and e.error is None
        for e in result.events
        if e.name in skipped
    )
    # Skipped: no detector call, and plugins see on_event_skipped and nothing else for them.
    assert {args[0].name for args in plugin.args("on_event_skipped")} == skipped
    detected = {args[0].name for args in plugin.args("on_detection_start")}
    assert detected.isdisjoint(skipped) and len(detected) == 3
    assert sorted((events_dir / "detected.txt").read_text().split()) == sorted(
        detected - {"undeclared"}
    )
    assert json.loads(json.dumps(result.to_dict()))["events"][1]["status"] == "skipped"


async def test_declarations_on_explicit_modules_and_the_registry() -> None:
    seen: list[str] = []

    def detector(event_name: str, event: Any) -> bool:
        seen.append(event_name)
        return False

    events = EventRegistry()
    events.detector("users.deleted", tables="users", operations="DELETE")(detector)
    events.handler("users.deleted")(lambda name, event: None)
    explicit = EventModule("orders.any", detector, lambda n, e: None, tables=["orders"])
    assert explicit.tables == ("public.orders",) and explicit.declaration() == "public.orders"
    (registered,) = events.modules()
    assert registered.operations == (Operation.DELETE,)
    assert registered.declaration() == "public.users (DELETE)"
    result = await listen_to(
        hasura_payload(table="users"), modules=[explicit, registered], plugins=[]
    )
    assert [e.status for e in result.events] == [EventStatus.SKIPPED, EventStatus.SKIPPED]
    deleted = await listen_to(
        hasura_payload("DELETE", old={"id": 1}, table="users"), modules=events, plugins=[]
    )
    assert deleted.events[0].status is EventStatus.NOT_DETECTED and seen == ["users.deleted"]


@pytest.mark.parametrize(
    ("declaration", "problem"),
    [
        ("tables = 3", "`tables` must be a string or a list of strings"),
        ("tables = []", "`tables` must list at least one"),
        ("tables = ['a.b.c']", "is not a table name"),
        ("tables = 'orders'\noperations = ['upsert']", "'upsert' is not a Hasura operation"),
    ],
)
async def test_an_invalid_declaration_fails_its_own_event_naming_the_problem(
    events_dir: Path, declaration: str, problem: str
) -> None:
    write_module(events_dir, "bad", f"{declaration}\n{ALWAYS}")
    result = await listen_to(hasura_payload(), events_dir=events_dir, plugins=[])
    (bad,) = result.events
    assert bad.status is EventStatus.DETECTION_FAILED and problem in (bad.error or "")
    with pytest.raises(ConfigurationError, match="EventModule `x`"):
        EventModule("x", print, print, tables=3)  # type: ignore[arg-type]


# Caching and reloading -----------------------------------------------------------------

COUNTING = """
with open({marker!r}, "a") as marker:
    marker.write("imported\\n")
VERSION = {version!r}

def detector(event_name, event):
    return True

def handler(event_name, event):
    return run(event_name, event, [job(lambda n, e, o: VERSION, name="version")])

from detector import job, run
"""


def write_counting(events_dir: Path, marker: Path, version: str) -> None:
    write_module(events_dir, "orders.shipped", COUNTING.format(marker=str(marker), version=version))


async def versions(events_dir: Path, **options: Any) -> str:
    result = await listen_to(hasura_payload(), events_dir=events_dir, plugins=[], **options)
    return result.events[0].jobs[0].result


async def test_modules_are_imported_once_and_cached(events_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "imports.log"
    write_counting(events_dir, marker, "v1")
    assert [await versions(events_dir) for _ in range(3)] == ["v1"] * 3
    assert marker.read_text().count("imported") == 1


async def test_a_changed_file_is_imported_again(events_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "imports.log"
    write_counting(events_dir, marker, "v1")
    assert await versions(events_dir) == "v1"
    write_counting(events_dir, marker, "v2")
    path = events_dir / "orders.shipped.py"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert await versions(events_dir) == "v2"
    assert marker.read_text().count("imported") == 2


async def test_reload_forces_a_fresh_import_of_modules_and_helpers(
    events_dir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "imports.log"
    write_module(
        events_dir,
        "_helpers",
        f"with open({str(marker)!r}, 'a') as m:\n    m.write('helper\\n')\n",
    )
    write_module(events_dir, "orders.shipped", "from . import _helpers\n" + ALWAYS)
    await listen_to(hasura_payload(), events_dir=events_dir, plugins=[])
    await listen_to(hasura_payload(), events_dir=events_dir, plugins=[])
    assert marker.read_text().count("helper") == 1
    await listen_to(hasura_payload(), events_dir=events_dir, plugins=[], reload=True)
    assert marker.read_text().count("helper") == 2


# Explicit modules and the registry -----------------------------------------------------


async def test_explicit_modules_disable_directory_loading(tmp_path: Path) -> None:
    async def handler(event_name: str, event: Any) -> Any:
        return await run(event_name, event, [job(lambda n, e, o: "ran", name="j")])

    modules = [
        EventModule("orders.shipped", lambda name, event: True, handler),
        EventModule("orders.cancelled", lambda name, event: False, handler),
    ]
    result = await listen_to(
        hasura_payload(), modules=modules, events_dir=tmp_path / "ignored", plugins=[]
    )
    assert [(event.name, event.detected) for event in result.events] == [
        ("orders.shipped", True),
        ("orders.cancelled", False),
    ]
    assert result.events[1].status is EventStatus.NOT_DETECTED


def test_event_module_validates_its_parts() -> None:
    with pytest.raises(ConfigurationError, match="detector must be callable"):
        EventModule("x", "yes", lambda n, e: None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="non-empty"):
        EventModule("", lambda n, e: True, lambda n, e: None)


async def test_modules_option_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="EventModule"):
        await listen_to(hasura_payload(), modules=[lambda n, e: True], plugins=[])  # type: ignore[list-item]
    twice = EventModule("x", lambda n, e: True, lambda n, e: None)
    with pytest.raises(ConfigurationError, match="more than once: x"):
        await listen_to(hasura_payload(), modules=[twice, twice], plugins=[])


async def test_registry_decorators_declare_events() -> None:
    events = EventRegistry()

    @events.detector("orders.shipped")
    def shipped(event_name: str, event: Any) -> bool:
        return event.new["status"] == "shipped"

    @events.handler("orders.shipped")
    async def on_shipped(event_name: str, event: Any) -> Any:
        return await run(event_name, event, [job(lambda n, e, o: "emailed", name="email")])

    @events.detector("orders.cancelled")
    async def cancelled(event_name: str, event: Any) -> bool:
        return event.new["status"] == "cancelled"

    @events.handler("orders.cancelled")
    def on_cancelled(event_name: str, event: Any) -> None:
        return None

    assert events.names == ["orders.shipped", "orders.cancelled"]
    assert len(events) == 2
    assert shipped.__name__ == "shipped"  # decorators return the function unchanged
    result = await listen_to(hasura_payload(), modules=events, plugins=[])
    assert [(event.name, event.detected) for event in result.events] == [
        ("orders.shipped", True),
        ("orders.cancelled", False),
    ]
    assert result.events[0].jobs[0].result == "emailed"


def test_registry_reports_incomplete_and_duplicate_events() -> None:
    events = EventRegistry()
    events.detector("orders.shipped")(lambda n, e: True)
    with pytest.raises(ConfigurationError, match=r"`orders.shipped` has no handler"):
        events.modules()
    with pytest.raises(ConfigurationError, match="already has a detector"):
        events.detector("orders.shipped")(lambda n, e: True)
    events.add(EventModule("users.signed_up", lambda n, e: True, lambda n, e: None))
    assert events.names == ["orders.shipped", "users.signed_up"]


# only ----------------------------------------------------------------------------------


async def test_only_listens_for_the_named_events(events_dir: Path) -> None:
    for name in ("a.one", "b.two", "c.three"):
        write_module(events_dir, name, ALWAYS)
    result = await listen_to(
        hasura_payload(), events_dir=events_dir, only=["c.three", "a.one"], plugins=[]
    )
    assert [event.name for event in result.events] == ["c.three", "a.one"]
    single = await listen_to(hasura_payload(), events_dir=events_dir, only="b.two", plugins=[])
    assert [event.name for event in single.events] == ["b.two"]


async def test_an_unknown_name_in_only_is_a_detection_error(events_dir: Path) -> None:
    write_module(events_dir, "a.one", ALWAYS)
    result = await listen_to(
        hasura_payload(), events_dir=events_dir, only=["a.one", "typo"], plugins=[]
    )
    missing = result.events[1]
    assert (missing.name, missing.status) == ("typo", EventStatus.DETECTION_FAILED)
    assert "no event module with this name" in (missing.error or "")
    assert result.status is InvocationStatus.FAILED
