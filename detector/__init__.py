"""Run business logic on Hasura event triggers, with every step reported to plugins.

    from detector import listen_to, run, job, column_has_changed

    result = await listen_to(payload, events_dir="events")

Importing this package is cheap: it pulls in no web, database or validation stack (the
observability plugin lives in `detector.observability` and is imported only when used).
"""

from __future__ import annotations

from .correlation import TrackingToken
from .dispatch import (
    plugin_hook_errors,
    register_plugin,
    registered_plugins,
    reset_plugin_hook_errors,
    unregister_plugin,
)
from .errors import (
    ConfigurationError,
    DeadlineExceededError,
    DetectorError,
    EventModuleError,
    InvalidEventPayload,
    InvalidTrackingToken,
    JobTimeoutError,
)
from .jobs import Job, job, run
from .listen import listen_to, listen_to_sync
from .modules import EventModule, EventRegistry
from .payload import (
    DeliveryInfo,
    HasuraEvent,
    TableRef,
    TraceContext,
    changed_columns,
    column_has_changed,
    parse_hasura_event,
)
from .plugins import CapturedLog, EventInfo, InvocationInfo, JobInfo, ListenOptions, Plugin
from .results import EventResult, JobAttempt, JobResult, ListenResult
from .status import EventStatus, InvocationStatus, JobStatus, LogLevel, Operation

__all__ = [
    "CapturedLog",
    "ConfigurationError",
    "DeadlineExceededError",
    "DeliveryInfo",
    "DetectorError",
    "EventInfo",
    "EventModule",
    "EventModuleError",
    "EventRegistry",
    "EventResult",
    "EventStatus",
    "HasuraEvent",
    "InvalidEventPayload",
    "InvalidTrackingToken",
    "InvocationInfo",
    "InvocationStatus",
    "Job",
    "JobAttempt",
    "JobInfo",
    "JobResult",
    "JobStatus",
    "JobTimeoutError",
    "ListenOptions",
    "ListenResult",
    "LogLevel",
    "Operation",
    "Plugin",
    "TableRef",
    "TraceContext",
    "TrackingToken",
    "changed_columns",
    "column_has_changed",
    "job",
    "listen_to",
    "listen_to_sync",
    "parse_hasura_event",
    "plugin_hook_errors",
    "register_plugin",
    "registered_plugins",
    "reset_plugin_hook_errors",
    "run",
    "unregister_plugin",
]
