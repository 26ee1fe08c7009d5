"""Hasura's error shape: `{"errors": [{"message", "extensions": {"path", "code"}}]}`.

Hasura answers every GraphQL outcome with HTTP 200; a request that fails (parse,
validation, permissions, a database error) carries no `data` key at all. `path` is a
JSONPath-like pointer into the *request* (`$.selectionSet.invocations.args.where`),
and `code` is one of Hasura's codes (`validation-failed`, `access-denied`, ...).

The engine raises `EngineError` with a code; graphql-core's own errors are mapped here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError, parse
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    Node,
    OperationDefinitionNode,
)

logger = logging.getLogger(__name__)

VALIDATION_FAILED = "validation-failed"
PARSE_FAILED = "parse-failed"
ACCESS_DENIED = "access-denied"
INVALID_JWT = "invalid-jwt"
INVALID_HEADERS = "invalid-headers"
CONSTRAINT_VIOLATION = "constraint-violation"
DATA_EXCEPTION = "data-exception"
UNEXPECTED = "unexpected"
TIMEOUT = "timeout"
"""A statement ran past the database's time limit (Hasura itself answers `unexpected`)."""


class EngineError(Exception):
    """An error the engine reports to the client with a Hasura code and request path."""

    def __init__(self, code: str, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path

    def to_graphql(self) -> GraphQLError:
        return GraphQLError(
            self.message, extensions={"code": self.code, "path": self.path}, original_error=self
        )


def validation_failed(message: str, path: str = "$") -> EngineError:
    return EngineError(VALIDATION_FAILED, message, path)


def hasura_error(message: str, code: str, path: str = "$") -> dict[str, Any]:
    """One error object in Hasura's shape."""
    return {"message": message, "extensions": {"path": path, "code": code}}


def error_response(message: str, code: str, path: str = "$") -> dict[str, Any]:
    """A whole response body carrying one error."""
    return {"errors": [hasura_error(message, code, path)]}


def format_error(error: GraphQLError, document: DocumentNode | None = None) -> dict[str, Any]:
    """Hasura's form of one GraphQL error (path into the request, code)."""
    original = error.original_error
    if isinstance(original, EngineError):
        return hasura_error(original.message, original.code, original.path)
    extensions = error.extensions or {}
    if "code" in extensions:
        return hasura_error(
            error.message, str(extensions["code"]), str(extensions.get("path", "$"))
        )
    if isinstance(error, GraphQLSyntaxError) or "Syntax Error" in error.message:
        return hasura_error(
            f"not a valid graphql query: {error.message}", VALIDATION_FAILED, "$.query"
        )
    if original is not None and not isinstance(original, GraphQLError) and error.path is not None:
        # Raised while executing, not by the engine on purpose: a bug or an outage.
        logger.error("unexpected error while executing a GraphQL request", exc_info=original)
        return hasura_error("unexpected error while executing the request", UNEXPECTED, "$")
    if document is None and error.source is not None:
        try:
            document = parse(error.source.body)
        except GraphQLError:
            document = None
    path = request_path(error.nodes or (), document)
    return hasura_error(_hasura_message(error.message), VALIDATION_FAILED, path)


# graphql-core's wording → Hasura's, for the errors clients meet most (first match wins).
_HASURA_WORDING: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"Cannot query field '([^']+)' on type '([^']+)'"),
        "field '{0}' not found in type: '{1}'",
    ),
    (
        re.compile(r"Field '([^']+)' is not defined by (?:input )?type '([^']+)'"),
        "field '{0}' not found in type: '{1}'",
    ),
    (
        re.compile(r"Expected value of type '([^']+)' not to include unknown field '([^']+)'"),
        "field '{1}' not found in type: '{0}'",
    ),
    (
        re.compile(r"Unknown argument '([^']+)' on field '[^'.]+\.([^']+)'"),
        "'{1}' has no argument named '{0}'",
    ),
    (
        re.compile(
            r"Variable '\$([^']+)' (?:of required type '[^']+' was not provided"
            r"|has invalid value: Expected a value of non-null type)"
        ),
        'expecting a value for non-nullable variable: "{0}"',
    ),
    (
        re.compile(r"Argument '[^']+\(([^:']+):\)' of type '[^']+' is required"),
        "missing required field '{0}'",
    ),
    (
        re.compile(r"Field '[^'.]+\.([^']+)' of required type '[^']+' was not provided"),
        "missing required field '{0}'",
    ),
)


def _hasura_message(message: str) -> str:
    """graphql-core's wording, rephrased the way Hasura words the common cases."""
    for pattern, template in _HASURA_WORDING:
        match = pattern.search(message)
        if match:
            return template.format(*match.groups())
    return message


def format_errors(
    errors: Iterable[GraphQLError], document: DocumentNode | None = None
) -> list[dict[str, Any]]:
    return [format_error(error, document) for error in errors]


def request_path(nodes: Sequence[Node], document: DocumentNode | None) -> str:
    """Hasura's request path (`$.selectionSet.a.selectionSet.b`) of the first node.

    Nodes are matched by their position in the query text, so a freshly parsed copy of
    the same query will do.
    """
    if not nodes or document is None or nodes[0].loc is None:
        return "$"
    start = nodes[0].loc.start
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            found = _find(definition.selection_set, start, "$")
            if found:
                return found
    return "$"


def _at(node: Any, start: int) -> bool:
    return node is not None and node.loc is not None and node.loc.start == start


def _find(selection_set: Any, start: int, prefix: str) -> str | None:
    if selection_set is None:
        return None
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            # Hasura's paths name fields, not their aliases.
            here = f"{prefix}.selectionSet.{selection.name.value}"
            if _at(selection, start) or _at(selection.name, start):
                return here
            for argument in selection.arguments or ():
                if _contains(argument, start):
                    return f"{here}.args.{argument.name.value}"
            found = _find(selection.selection_set, start, here)
            if found:
                return found
        else:
            found = _find(getattr(selection, "selection_set", None), start, prefix)
            if found:
                return found
    return None


def _contains(node: Any, start: int) -> bool:
    if _at(node, start):
        return True
    for key in getattr(node, "keys", ()):
        value = getattr(node, key, None)
        if isinstance(value, Node) and _contains(value, start):
            return True
        if isinstance(value, tuple | list) and any(
            isinstance(item, Node) and _contains(item, start) for item in value
        ):
            return True
    return False
