"""Dependencies point one way: the rules of docs/architecture.md, checked on the source.

Every import in every module counts (top level, inside functions, under
`TYPE_CHECKING`), so a lazy import cannot hide a dependency that points the wrong way.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The service's layers, lowest first: a module may import its own layer and lower ones.
SERVICE_LAYERS = (
    "service.assets",  # where the packaged files live: standard library only
    "service.settings",
    "service.graphql",  # the engine: also imports nothing else of the service (below)
    "service.storage",
    "service.live",
    "service.operations",
    "service.endpoints",
    "service.app",
    "service.cli",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str | None = None) -> set[str]:
    """Absolute names of every module `path` (named `module`) imports, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = (module or _module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            # `from pkg import module` imports pkg.module when it is one.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _layer(name: str) -> int | None:
    for index, layer in enumerate(SERVICE_LAYERS):
        if _within(name, layer):
            return index
    return None


def _violations(package: str, forbidden: Callable[[str, str], str | None]) -> list[str]:
    problems = []
    for path in _modules(package):
        module = _module_name(path)
        for imported in sorted(_imports(path)):
            reason = forbidden(module, imported)
            if reason:
                problems.append(f"{path.relative_to(ROOT)} imports {imported}: {reason}")
    return problems


def test_the_library_never_imports_the_service() -> None:
    problems = _violations(
        "detector",
        lambda module, imported: (
            "the library must stay usable without the service"
            if _within(imported, "service")
            else None
        ),
    )
    assert not problems, "\n".join(problems)


def test_the_library_core_never_imports_its_observability_plugin() -> None:
    """As OpenTelemetry's API and SDK: `listen_to` runs with no plugin installed."""

    def forbidden(module: str, imported: str) -> str | None:
        if _within(module, "detector.observability") or module == "detector.otel":
            return None  # the plugins themselves
        if _within(imported, "detector.observability"):
            return "the core library must not depend on the observability plugin"
        return None

    problems = _violations("detector", forbidden)
    assert not problems, "\n".join(problems)


def test_the_engine_imports_nothing_of_the_app() -> None:
    def forbidden(module: str, imported: str) -> str | None:
        if _within(imported, "service") and not _within(imported, "service.graphql"):
            if imported == "service":
                return None
            return (
                "the engine stands alone (settings, storage, HTTP, CLI, live queries are the app's)"
            )
        return None

    problems = _violations("service.graphql", forbidden)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("layer", SERVICE_LAYERS)
def test_service_layers_import_only_their_own_and_lower_layers(layer: str) -> None:
    own = SERVICE_LAYERS.index(layer)

    def forbidden(module: str, imported: str) -> str | None:
        target = _layer(imported)
        if target is not None and target > own:
            return f"{layer} may not depend on {SERVICE_LAYERS[target]} (a higher layer)"
        return None

    paths = _modules(layer) if (ROOT / layer.replace(".", "/")).is_dir() else []
    single = ROOT / (layer.replace(".", "/") + ".py")
    if single.exists():
        paths = [single]
    assert paths, f"{layer}: no modules found (did the tree move?)"
    problems = []
    for path in paths:
        for imported in sorted(_imports(path)):
            reason = forbidden(_module_name(path), imported)
            if reason:
                problems.append(f"{path.relative_to(ROOT)} imports {imported}: {reason}")
    assert not problems, "\n".join(problems)


def test_every_service_module_belongs_to_a_layer() -> None:
    """A new top-level module or package in service/ must be placed in SERVICE_LAYERS."""
    unplaced = [
        _module_name(path)
        for path in _modules("service")
        if _module_name(path) != "service" and _layer(_module_name(path)) is None
    ]
    assert not unplaced, f"not in any layer of tests/test_layering.py: {unplaced}"


def test_import_analysis_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """The checker itself: imports inside functions and TYPE_CHECKING blocks count."""
    source = tmp_path / "probe.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from service.app import create_app\n"
        "def later():\n    import service.cli\n"
        "from ..storage import database\n"
    )
    found = _imports(source, "service.graphql.probe")
    assert {"service.app", "service.cli", "service.storage.database"} <= found
