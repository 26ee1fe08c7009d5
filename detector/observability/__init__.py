"""Observability: the plugin that records invocations, and the tables it writes.

`from detector.observability import ObservabilityPlugin` is the entry point; the models,
migrations and writers live in the submodules. Imports are lazy so that importing the
models (as the service does) does not load the plugin's writers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ObservabilityConfig
    from .plugin import ObservabilityPlugin

__all__ = ["ObservabilityConfig", "ObservabilityPlugin"]


def __getattr__(name: str) -> Any:
    if name == "ObservabilityPlugin":
        from .plugin import ObservabilityPlugin

        return ObservabilityPlugin
    if name == "ObservabilityConfig":
        from .config import ObservabilityConfig

        return ObservabilityConfig
    raise AttributeError(name)
