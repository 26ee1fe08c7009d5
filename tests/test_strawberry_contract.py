"""The hooks of Strawberry and graphql-core that the engine's transport overrides still exist.

The engine joins its generated graphql-core schemas to Strawberry through a few
non-public hooks (`service/graphql/transport/strawberry.py` and `websocket.py`). A new
release that renames or reshapes one of them would otherwise break in some request far
from the cause. Each test here names the hook it checks, so a failure after an upgrade
says exactly which override to revisit.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest
import strawberry
import strawberry.asgi
from graphql import GraphQLField, GraphQLObjectType, GraphQLSchema, GraphQLString
from graphql.execution import Executor
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionContext

from service.graphql.transport import http, websocket
from service.graphql.transport import strawberry as seam

# (our class, the class it overrides, {hook: the parameter names we rely on}).
OVERRIDES: list[tuple[type, type, dict[str, tuple[str, ...]]]] = [
    (
        seam.EngineExecutor,
        StrawberryGraphQLCoreExecutionContext,
        {
            "build_resolve_info": ("self", "field_def", "field_nodes", "parent_type", "path"),
            "execute_field": (
                "self",
                "parent_type",
                "source",
                "field_details_list",
                "path",
                "position_context",
            ),
            "complete_value": (
                "self",
                "return_type",
                "field_details_list",
                "info",
                "path",
                "result",
                "position_context",
            ),
        },
    ),
    (
        seam.EngineSchema,
        strawberry.Schema,
        {
            "__init__": ("self", "query", "extensions", "execution_context_class", "config"),
            "as_str": ("self",),
            "process_errors": ("self", "errors", "execution_context"),
        },
    ),
    (
        seam.EngineValidationRules,
        SchemaExtension,
        {"__init__": ("self",), "on_operation": ("self",)},
    ),
    (seam.UndeclaredVariables, SchemaExtension, {"on_validate": ("self",)}),
    (
        seam.ResponseBudgetScope,
        SchemaExtension,
        {"__init__": ("self",), "on_operation": ("self",)},
    ),
    (
        seam.EngineValidationCache,
        SchemaExtension,
        {"__init__": ("self",), "on_validate": ("self",)},
    ),
    (
        http.GraphQLView,
        strawberry.asgi.GraphQL,
        {
            "__init__": (
                "self",
                "schema",
                "graphql_ide",
                "allow_queries_via_get",
                "keep_alive",
                "keep_alive_interval",
                "connection_init_wait_timeout",
                "max_subscriptions_per_connection",
            ),
            "__call__": ("self", "scope", "receive", "send"),
            "pick_websocket_subprotocol": ("self", "request"),
            "create_websocket_response": ("self", "request", "subprotocol"),
            "get_context": ("self", "request", "response"),
            "on_ws_connect": ("self", "context"),
            "process_result": ("self", "request", "result"),
            "encode_json": ("self", "data"),
            "decode_json": ("self", "data"),
            "parse_json": ("self", "data"),
            "run": ("self", "request"),
            "render_graphql_ide": ("self", "request"),
            "is_websocket_origin_allowed": ("self", "request", "origin"),
        },
    ),
    (
        websocket.GraphQLTransportWSHandler,
        BaseGraphQLTransportWSHandler,
        {
            "handle_message": ("self", "message"),
            "handle_subscribe": ("self", "message"),
            "handle_invalid_message": ("self", "error_message"),
            "_send_result_stream": ("self", "operation", "result_source"),
            "send_message": ("self", "message"),
        },
    ),
    (
        websocket.LegacyGraphQLWSHandler,
        BaseGraphQLWSHandler,
        {
            "__init__": (
                "self",
                "view",
                "websocket",
                "context",
                "root_value",
                "schema",
                "keep_alive",
                "keep_alive_interval",
                "max_subscriptions_per_connection",
            ),
            "handle": ("self",),
            "handle_message": ("self", "message"),
            "handle_connection_init": ("self", "message"),
            "handle_connection_terminate": ("self", "message"),
            "handle_start": ("self", "message"),
            "handle_stop": ("self", "message"),
            "handle_keep_alive": ("self",),
            "handle_async_results": (
                "self",
                "operation_id",
                "query",
                "operation_name",
                "variables",
            ),
            "send_data_message": ("self", "execution_result", "operation_id"),
            "send_message": ("self", "message"),
            "cleanup": ("self",),
        },
    ),
]

# Instance attributes of the base handlers that our overrides read or set.
HANDLER_ATTRIBUTES: list[tuple[type, tuple[str, ...]]] = [
    (
        BaseGraphQLTransportWSHandler,
        (
            "view",
            "websocket",
            "context",
            "schema",
            "connection_acknowledged",
            "connection_init_received",
            "connection_init_wait_timeout",
            "operations",
            "max_subscriptions_per_connection",
        ),
    ),
    (
        BaseGraphQLWSHandler,
        (
            "view",
            "websocket",
            "context",
            "schema",
            "root_value",
            "keep_alive",
            "keep_alive_task",
            "tasks",
            "subscriptions",
        ),
    ),
]

OWN_METHODS = {
    websocket.GraphQLTransportWSHandler: {"engine", "_send_errors"},
    websocket.LegacyGraphQLWSHandler: {
        "engine",
        "_close_without_init",
        "send_connection_error",
        "_start_failed",
        "_send_results",
        "_send_error",
    },
    http.GraphQLView: {
        "_authenticate",
        "_too_large",
        "names",
        "graphql_transport_ws_handler_class",
        "graphql_ws_handler_class",
    },
}


def _hook_id(base: type, name: str) -> str:
    return f"{base.__module__}.{base.__qualname__}.{name}"


@pytest.mark.parametrize(
    ("base", "hook", "params"),
    [(base, hook, params) for _, base, hooks in OVERRIDES for hook, params in hooks.items()],
    ids=lambda value: value if isinstance(value, str) else getattr(value, "__name__", ""),
)
def test_overridden_hook_still_exists_with_its_parameters(
    base: type, hook: str, params: tuple[str, ...]
) -> None:
    where = _hook_id(base, hook)
    member = getattr(base, hook, None)
    assert member is not None, (
        f"{where} is gone in the installed release: the engine's transport overrides it "
        "(service/graphql/transport/); revisit that override before upgrading"
    )
    actual = list(inspect.signature(member).parameters)
    missing = [name for name in params if name not in actual]
    assert not missing, (
        f"{where} no longer takes {missing} (it takes {actual}): the engine's override in "
        "service/graphql/transport/ relies on them"
    )
    positional = [name for name in actual if name in params]
    assert positional == list(params), (
        f"{where} takes {params} in another order now ({actual}): the engine's override "
        "in service/graphql/transport/ passes them by position"
    )


@pytest.mark.parametrize(
    ("ours", "base", "hooks"), OVERRIDES, ids=lambda v: getattr(v, "__name__", "")
)
def test_every_override_is_recorded_here(ours: type, base: type, hooks: dict[str, Any]) -> None:
    """A new override of a base method must be added to OVERRIDES (so it is checked)."""
    own = OWN_METHODS.get(ours, set())
    for name, member in vars(ours).items():
        if name.startswith("__") and name not in ("__init__", "__call__"):
            continue
        if not callable(member) and not isinstance(member, property):
            continue
        if name in own:
            continue
        assert name in hooks, (
            f"{ours.__qualname__}.{name} overrides {_hook_id(base, name)} but is not in "
            "tests/test_strawberry_contract.py OVERRIDES; record it (or in OWN_METHODS if "
            "the base class has no such member)"
        )
        assert hasattr(base, name), f"{_hook_id(base, name)} does not exist"


@pytest.mark.parametrize(
    ("base", "attributes"), HANDLER_ATTRIBUTES, ids=lambda v: getattr(v, "__name__", "")
)
def test_handler_attributes_the_overrides_use_are_set_by_the_base(
    base: type, attributes: tuple[str, ...]
) -> None:
    source = inspect.getsource(base.__init__)
    assigned = set(re.findall(r"self\.(\w+)\s*(?::[^=]+)?=", source))
    missing = [name for name in attributes if name not in assigned]
    assert not missing, (
        f"{_hook_id(base, '__init__')} no longer sets {missing}: the engine's WebSocket "
        "handlers (service/graphql/transport/websocket.py) read them"
    )


def test_execution_context_has_the_fields_the_validation_extension_sets() -> None:
    fields = set(ExecutionContext.__dataclass_fields__)
    for name in ("validation_rules", "parse_options"):
        assert name in fields, (
            f"strawberry.types.ExecutionContext.{name} is gone: EngineValidationRules "
            "(service/graphql/transport/strawberry.py) sets it for every operation"
        )


def test_validate_document_takes_schema_document_and_rules() -> None:
    from strawberry.schema.schema import validate_document

    parameters = list(inspect.signature(validate_document).parameters)
    assert parameters == ["schema", "document", "validation_rules"], (
        "strawberry.schema.schema.validate_document changed: EngineValidationCache calls it"
    )
    for name in ("graphql_document", "pre_execution_errors"):
        assert name in ExecutionContext.__dataclass_fields__, (
            f"strawberry.types.ExecutionContext.{name} is gone: EngineValidationCache uses it"
        )


def test_execution_context_has_what_the_variables_check_reads_and_sets() -> None:
    fields = set(ExecutionContext.__dataclass_fields__)
    for name in ("pre_execution_errors", "graphql_document", "variables"):
        assert name in fields, (
            f"strawberry.types.ExecutionContext.{name} is gone: UndeclaredVariables "
            "(service/graphql/transport/strawberry.py) uses it"
        )
    assert isinstance(inspect.getattr_static(ExecutionContext, "operation_name"), property)
    # The check runs inside the validation step, once EngineValidationCache has set the errors.
    source = inspect.getsource(strawberry.Schema._prepare_operation_async)
    assert "extensions_runner.validation()" in source and "pre_execution_errors" in source


def test_schema_execute_takes_context_in_third_position() -> None:
    """RoleSchemas forwards `execute(query, variable_values, context_value, ...)`."""
    for method in ("execute", "subscribe"):
        params = list(inspect.signature(getattr(strawberry.Schema, method)).parameters)
        assert params[1:4] == ["query", "variable_values", "context_value"], (
            f"strawberry.Schema.{method} takes {params} now: RoleSchemas "
            "(service/graphql/transport/strawberry.py) forwards by position"
        )


def test_the_view_names_the_operation_when_it_executes() -> None:
    """RoleSchemas keys the queries it answers directly (`execution/direct.py`) by the
    operation name Strawberry's view passes as `operation_name=` (and in-process callers
    pass after `root_value`)."""
    from strawberry.http.async_base_view import AsyncBaseHTTPView

    source = inspect.getsource(AsyncBaseHTTPView.execute_operation)
    assert "operation_name=request_data.operation_name" in source, (
        "Strawberry's view no longer passes operation_name by name: RoleSchemas.execute "
        "(service/graphql/transport/strawberry.py) reads it from the keywords"
    )
    params = list(inspect.signature(strawberry.Schema.execute).parameters)
    assert params[4:6] == ["root_value", "operation_name"], params


def test_executor_build_resolve_info_is_graphql_cores() -> None:
    assert callable(getattr(Executor, "build_resolve_info", None)), (
        "graphql.execution.Executor.build_resolve_info is gone: EngineExecutor uses "
        "graphql-core's own (Strawberry's passes only the coerced variables)"
    )


async def test_engine_schema_serves_a_replaced_graphql_core_schema() -> None:
    """The central trick: a Strawberry schema whose `_schema` is our generated one."""
    generated = GraphQLSchema(
        query=GraphQLObjectType(
            "query_root",
            {"hello": GraphQLField(GraphQLString, resolve=lambda *_: "from the engine")},
        )
    )
    schema = seam.EngineSchema(
        generated, extensions=[], config=StrawberryConfig(auto_camel_case=False)
    )
    assert schema._schema is generated, (
        "strawberry.Schema keeps its graphql-core schema elsewhere than `_schema` now: "
        "EngineSchema (service/graphql/transport/strawberry.py) replaces it there"
    )
    result = await schema.execute("{ hello }")
    assert result.errors is None
    assert result.data == {"hello": "from the engine"}
    assert "hello: String" in schema.as_str()
